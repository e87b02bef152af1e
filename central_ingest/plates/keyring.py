"""The plate keyring: data keys (AES-256-GCM) and the index key (HMAC-SHA256), from a file or a KMS hook.

Format (JSON, or the same structure in YAML)::

    {"active": "k2",
     "keys": {"k1": "<base64 of 32 bytes>", "k2": "<base64 of 32 bytes>"},
     "index_key": {"id": "i1", "key": "<base64 of 32 bytes>"},
     "old_index_keys": {"i0": "<base64 of 32 bytes>"}}

New plates are sealed with ``active``; every other data key still opens the rows sealed with it until
``central-ingest plates rotate`` has re-sealed them and ``plates retire`` removed it. ``old_index_keys``
(optional) are index keys being rotated away: searches look under them too, until ``plates rotate
--index`` has recomputed every blind index and token with ``index_key``.

Where it comes from (``load_keyring``): ``IOC_PLATE_KEYS_FILE`` (a file only its owner may read, like
every secret file of this project), or ``IOC_PLATE_KEYS_COMMAND`` (a KMS hook: a command that prints
the keyring on stdout; run once at start with a timeout; its output is never logged).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import shlex
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from central_ingest.settings import Settings

KEY_BYTES = 32
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
COMMAND_OUTPUT_LIMIT = 1024 * 1024
"""A keyring is a few hundred bytes; more output than this from the KMS hook is a mistake."""


class KeyringError(ValueError):
    """The keyring is missing, unreadable, badly formed or unsafe; the message says what to fix."""


def _decode_key(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("is not valid base64") from error
    if len(raw) != KEY_BYTES:
        raise ValueError(f"must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


class IndexKeyModel(BaseModel):
    """The key of the blind index and of the partial-search tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_ID_PATTERN)
    key: str

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        _decode_key(value)
        return value


class KeyringModel(BaseModel):
    """The keyring file as written (base64 keys), validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str = Field(pattern=KEY_ID_PATTERN)
    keys: dict[str, str] = Field(min_length=1)
    index_key: IndexKeyModel
    old_index_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Index keys being rotated away: still searched until `plates rotate --index` has finished.",
    )

    @field_validator("keys", "old_index_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key_id, text in value.items():
            if not isinstance(key_id, str) or not re.fullmatch(KEY_ID_PATTERN, key_id):
                raise ValueError(f"key id {key_id!r} must match {KEY_ID_PATTERN}")
            try:
                _decode_key(text)
            except ValueError as error:
                raise ValueError(f"key {key_id!r} {error}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KeyringModel:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not among keys {sorted(self.keys)}")
        if self.index_key.id in self.old_index_keys:
            raise ValueError(f"index key {self.index_key.id!r} is also listed in old_index_keys")
        return self


@dataclass(frozen=True)
class Keyring:
    """Decoded keys. ``repr`` shows key ids only, never key bytes."""

    active: str
    keys: Mapping[str, bytes]
    index_key_id: str
    index_key: bytes
    old_index_keys: Mapping[str, bytes]

    def __repr__(self) -> str:
        return (
            f"Keyring(active={self.active!r}, keys={sorted(self.keys)}, index_key_id={self.index_key_id!r}, "
            f"old_index_keys={sorted(self.old_index_keys)})"
        )

    @classmethod
    def from_model(cls, model: KeyringModel) -> Keyring:
        return cls(
            active=model.active,
            keys={key_id: _decode_key(text) for key_id, text in model.keys.items()},
            index_key_id=model.index_key.id,
            index_key=_decode_key(model.index_key.key),
            old_index_keys={key_id: _decode_key(text) for key_id, text in model.old_index_keys.items()},
        )

    def to_model(self) -> KeyringModel:
        return KeyringModel(
            active=self.active,
            keys={key_id: _encode(key) for key_id, key in self.keys.items()},
            index_key=IndexKeyModel(id=self.index_key_id, key=_encode(self.index_key)),
            old_index_keys={key_id: _encode(key) for key_id, key in self.old_index_keys.items()},
        )


def _encode(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def parse_keyring(text: str, origin: str) -> Keyring:
    """A keyring from JSON or YAML text; ``origin`` (a path, "the KMS command") names it in errors."""
    try:
        data: Any = yaml.safe_load(text)  # JSON is YAML: one parser reads both
    except yaml.YAMLError as error:
        raise KeyringError(f"{origin}: not valid JSON or YAML ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise KeyringError(f"{origin}: expected an object with active, keys and index_key")
    try:
        return Keyring.from_model(KeyringModel.model_validate(data))
    except ValidationError as error:
        # include_input=False: the inputs are keys.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(keyring)'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)
        )
        raise KeyringError(f"{origin}: {problems}") from None


def check_private_file(path: Path) -> None:
    """Refuse a key file that its group or others may read or write (``chmod 600 FILE``)."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise KeyringError(f"cannot read plate keyring {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise KeyringError(f"plate keyring {path} is not a regular file")
    if mode & 0o077:
        raise KeyringError(
            f"plate keyring {path} is readable or writable by group/others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def read_keyring_file(path: Path) -> Keyring:
    check_private_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeyringError(f"cannot read plate keyring {path}: {error}") from None
    return parse_keyring(text, str(path))


def run_keyring_command(command: str, timeout_s: float) -> Keyring:
    """Run the KMS hook (no shell) and parse its stdout; neither its output nor its stderr is logged."""
    argv = shlex.split(command)
    if not argv:
        raise KeyringError("IOC_PLATE_KEYS_COMMAND is empty")
    try:
        result = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise KeyringError(f"the plate keys command {argv[0]!r} did not finish within {timeout_s:g} s") from None
    except OSError as error:
        raise KeyringError(f"cannot run the plate keys command {argv[0]!r}: {error.strerror}") from None
    if result.returncode != 0:
        raise KeyringError(
            f"the plate keys command {argv[0]!r} exited with {result.returncode}; run it by hand to see why "
            "(its output is not shown here: it may hold keys)"
        )
    if len(result.stdout) > COMMAND_OUTPUT_LIMIT:
        raise KeyringError(f"the plate keys command {argv[0]!r} printed more than {COMMAND_OUTPUT_LIMIT} bytes")
    try:
        text = result.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyringError(f"the plate keys command {argv[0]!r} printed something that is not UTF-8") from None
    return parse_keyring(text, f"the output of the plate keys command {argv[0]!r}")


def load_keyring(settings: Settings) -> Keyring | None:
    """The configured keyring, or None when neither a file nor a command is set (plates are then refused)."""
    if settings.plate_keys_file is not None and settings.plate_keys_command is not None:
        raise KeyringError("set IOC_PLATE_KEYS_FILE or IOC_PLATE_KEYS_COMMAND, not both")
    if settings.plate_keys_file is not None:
        return read_keyring_file(settings.plate_keys_file)
    if settings.plate_keys_command is not None:
        return run_keyring_command(settings.plate_keys_command, settings.plate_keys_command_timeout_s)
    return None


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _next_id(prefix: str, taken: set[str]) -> str:
    number = 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"


def new_keyring() -> Keyring:
    """A fresh keyring: one data key ``k1`` (active) and one index key ``i1``."""
    return Keyring(active="k1", keys={"k1": new_key()}, index_key_id="i1", index_key=new_key(), old_index_keys={})


def with_new_data_key(keyring: Keyring) -> Keyring:
    """A new data key, made active; the old ones stay to open older rows until rotated and retired."""
    key_id = _next_id("k", set(keyring.keys))
    return Keyring(
        active=key_id,
        keys={**keyring.keys, key_id: new_key()},
        index_key_id=keyring.index_key_id,
        index_key=keyring.index_key,
        old_index_keys=keyring.old_index_keys,
    )


def with_new_index_key(keyring: Keyring) -> Keyring:
    """A new index key; the current one moves to ``old_index_keys`` (still searched) until re-indexing ends."""
    key_id = _next_id("i", {keyring.index_key_id, *keyring.old_index_keys})
    return Keyring(
        active=keyring.active,
        keys=keyring.keys,
        index_key_id=key_id,
        index_key=new_key(),
        old_index_keys={**keyring.old_index_keys, keyring.index_key_id: keyring.index_key},
    )


def without_key(keyring: Keyring, key_id: str) -> Keyring:
    """The keyring less a retired data key or old index key (the caller checked no row uses it)."""
    if key_id == keyring.active:
        raise KeyringError(f"{key_id!r} is the active data key: add a new one (plates keygen --add-key) first")
    if key_id == keyring.index_key_id:
        raise KeyringError(f"{key_id!r} is the current index key: it cannot be retired")
    if key_id in keyring.keys:
        return Keyring(
            keyring.active,
            {k: v for k, v in keyring.keys.items() if k != key_id},
            keyring.index_key_id,
            keyring.index_key,
            keyring.old_index_keys,
        )
    if key_id in keyring.old_index_keys:
        return Keyring(
            keyring.active,
            keyring.keys,
            keyring.index_key_id,
            keyring.index_key,
            {k: v for k, v in keyring.old_index_keys.items() if k != key_id},
        )
    raise KeyringError(f"no key {key_id!r} in the keyring")


def write_keyring_file(path: Path, keyring: Keyring) -> None:
    """Write ``keyring`` as JSON, mode 0600, atomically (a crash leaves the old file or the new one)."""
    text = json.dumps(keyring.to_model().model_dump(mode="json"), indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
