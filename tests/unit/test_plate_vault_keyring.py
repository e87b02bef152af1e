"""The plate keyring: file (JSON/YAML, private mode) or KMS command, and the errors that say what to fix."""

from __future__ import annotations

import base64
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from central_ingest.plates.keyring import (
    KeyringError,
    load_keyring,
    new_keyring,
    read_keyring_file,
    with_new_data_key,
    with_new_index_key,
    without_key,
    write_keyring_file,
)
from central_ingest.settings import Settings

KEY = base64.b64encode(b"\x01" * 32).decode()
OTHER = base64.b64encode(b"\x02" * 32).decode()


def _doc(**changes: Any) -> dict[str, Any]:
    return {"active": "k2", "keys": {"k1": KEY, "k2": OTHER}, "index_key": {"id": "i1", "key": KEY}, **changes}


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_json_or_yaml_file_gives_the_keyring(tmp_path: Path) -> None:
    for name, text in (("keys.json", json.dumps(_doc())), ("keys.yaml", yaml.safe_dump(_doc()))):
        keyring = load_keyring(Settings(plate_keys_file=_write(tmp_path / name, text)))
        assert keyring is not None
        assert (keyring.active, sorted(keyring.keys), keyring.index_key_id) == ("k2", ["k1", "k2"], "i1")
        assert keyring.keys["k2"] == b"\x02" * 32


def test_no_setting_means_no_keyring_and_both_settings_are_refused(tmp_path: Path) -> None:
    assert load_keyring(Settings()) is None
    both = Settings(plate_keys_file=tmp_path / "k.json", plate_keys_command="true")
    with pytest.raises(KeyringError, match="not both"):
        load_keyring(both)


def test_the_plain_environment_names_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOC_PLATE_KEYS_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("IOC_PLATE_KEYS_COMMAND", "kms-get plates")
    settings = Settings()
    assert settings.plate_keys_file == tmp_path / "keys.json"
    assert settings.plate_keys_command == "kms-get plates"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(active="k3"), "active key 'k3' is not among keys"),
        (_doc(keys={"k2": "not base64!"}), "not valid base64"),
        (_doc(keys={"k2": base64.b64encode(b"short").decode()}), "must decode to 32 bytes, got 5"),
        (_doc(index_key={"id": "i1"}), "index_key.key: Field required"),
        (_doc(keys={"bad id": KEY}, active="bad id"), "must match"),
        (_doc(old_index_keys={"i1": KEY}), "also listed in old_index_keys"),
        (_doc(extra=1), "extra: Extra inputs are not permitted"),
    ],
)
def test_a_bad_keyring_is_refused_without_echoing_keys(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    path = _write(tmp_path / "keys.json", json.dumps(doc))
    with pytest.raises(KeyringError, match=message) as caught:
        read_keyring_file(path)
    assert KEY not in str(caught.value)
    assert OTHER not in str(caught.value)


def test_unreadable_unsafe_or_malformed_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot read plate keyring"):
        read_keyring_file(tmp_path / "missing.json")
    shared = _write(tmp_path / "shared.json", json.dumps(_doc()), mode=0o640)
    with pytest.raises(KeyringError, match=r"chmod 600"):
        read_keyring_file(shared)
    with pytest.raises(KeyringError, match="expected an object"):
        read_keyring_file(_write(tmp_path / "list.json", "[1, 2]"))
    with pytest.raises(KeyringError, match="not valid JSON or YAML"):
        read_keyring_file(_write(tmp_path / "broken.json", '{"active": "k1", "keys": {'))


def _command(script: str) -> str:
    return shlex.join([sys.executable, "-c", script])


def test_the_kms_command_prints_the_keyring() -> None:
    printed = _command(f"print({json.dumps(json.dumps(_doc()))})")
    keyring = load_keyring(Settings(plate_keys_command=printed))
    assert keyring is not None
    assert keyring.active == "k2"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("import sys; print('secret-ish'); sys.exit(3)", "exited with 3; run it by hand"),
        ("import time; time.sleep(30)", "did not finish within 0.5 s"),
        ("print('hello')", "expected an object"),
    ],
)
def test_a_failing_kms_command_is_refused_without_its_output(script: str, message: str) -> None:
    settings = Settings(plate_keys_command=_command(script), plate_keys_command_timeout_s=0.5)
    with pytest.raises(KeyringError, match=message) as caught:
        load_keyring(settings)
    assert "secret-ish" not in str(caught.value)


def test_a_missing_command_is_named() -> None:
    with pytest.raises(KeyringError, match="cannot run the plate keys command '/nonexistent/kms'"):
        load_keyring(Settings(plate_keys_command="/nonexistent/kms --get"))


def test_keygen_writes_a_private_file_and_keys_are_added_and_retired(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "plates.json"
    write_keyring_file(path, new_keyring())
    assert path.stat().st_mode & 0o777 == 0o600
    first = read_keyring_file(path)
    second = with_new_index_key(with_new_data_key(first))
    assert (second.active, second.index_key_id, sorted(second.old_index_keys)) == ("k2", "i2", ["i1"])
    assert second.keys["k1"] == first.keys["k1"]
    write_keyring_file(path, without_key(without_key(second, "k1"), "i1"))
    final = read_keyring_file(path)
    assert (sorted(final.keys), sorted(final.old_index_keys)) == (["k2"], [])
    with pytest.raises(KeyringError, match="is the active data key"):
        without_key(final, "k2")
    with pytest.raises(KeyringError, match="current index key"):
        without_key(final, "i2")
    with pytest.raises(KeyringError, match="no key 'k7'"):
        without_key(final, "k7")
