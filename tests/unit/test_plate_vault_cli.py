"""``central-ingest plates keygen``: a new private keyring, keys added, never overwritten, never printed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from central_ingest.cli import main
from central_ingest.plates.keyring import read_keyring_file


def test_keygen_writes_adds_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plates.json"
    assert main(["plates", "keygen", "--file", str(path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o600
    first = read_keyring_file(path)
    assert main(["plates", "keygen", "--file", str(path)]) == 1
    assert "exists: use --add-key" in capsys.readouterr().err
    assert main(["plates", "keygen", "--file", str(path), "--add-key"]) == 0
    assert main(["plates", "keygen", "--file", str(path), "--new-index-key"]) == 0
    out = capsys.readouterr().out
    assert "plates rotate --index" in out
    final = read_keyring_file(path)
    assert (final.active, final.index_key_id, sorted(final.old_index_keys)) == ("k2", "i2", ["i1"])
    assert final.keys["k1"] == first.keys["k1"]
    for key in final.keys.values():
        assert base64.b64encode(key).decode() not in out


def test_commands_that_need_a_keyring_say_how_to_configure_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IOC_PLATE_KEYS_FILE", raising=False)
    monkeypatch.delenv("IOC_PLATE_KEYS_COMMAND", raising=False)
    assert main(["plates", "keygen"]) == 1
    assert "--file F or IOC_PLATE_KEYS_FILE" in capsys.readouterr().err
    assert main(["--database-url", "postgresql:///nowhere", "plates", "rotate"]) == 1
    assert "no plate keyring configured" in capsys.readouterr().err
    shared = tmp_path / "shared.json"
    assert main(["plates", "keygen", "--file", str(shared)]) == 0
    shared.chmod(0o644)
    assert main(["plates", "keygen", "--file", str(shared), "--add-key"]) == 1
    assert "chmod 600" in capsys.readouterr().err
