"""Seal plates at rest (AES-256-GCM), index them for exact search (HMAC-SHA256 blind index) and for partial search.

- ``seal``: the printed plate, padded to ``PLAINTEXT_BYTES`` (so the ciphertext length does not tell the
  plate's format), encrypted under the active data key with a fresh 96-bit random nonce. The additional
  authenticated data binds the ciphertext to its row (``plate_aad``: agent and event id), so a ciphertext
  copied into another row does not open. Stored as ``nonce || ciphertext || tag`` with the key id.
- ``blind_index``: HMAC-SHA256 of the compact plate (letters and digits, upper-case) under the index key,
  truncated to 128 bits: equal plates give equal values, and without the key nothing else is learnt.
- ``tokens``: the partial-search tokens (``partial``).

Old data keys still open the rows sealed with them; old index keys are still searched (``search_keys``)
until re-indexing has finished. ``docs/plate_vault.md`` has the threat model.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from central_ingest.plates.keyring import Keyring, KeyringError, load_keyring
from central_ingest.plates.partial import compact_plate, plate_tokens

if TYPE_CHECKING:
    from central_ingest.settings import Settings

__all__ = [
    "Keyring",
    "KeyringError",
    "PlateVault",
    "PlateVaultError",
    "SealedPlate",
    "SearchKey",
    "load_keyring",
    "plate_aad",
    "vault_from_settings",
]

NONCE_BYTES = 12
TAG_BYTES = 16
BLIND_INDEX_BYTES = 16
PLAINTEXT_BYTES = 16
"""Every plate is padded to this length before encryption (the contract's plates are at most 16 characters)."""
BLIND_INDEX_LABEL = b"ioc.plate.bidx.v1\x00"
PLATE_AAD_LABEL = b"ioc.plate.v1\x00"


class PlateVaultError(Exception):
    """A sealed value that does not open: unknown key, wrong key, tampered, or moved to another row."""


@dataclass(frozen=True, slots=True)
class SealedPlate:
    """What a row stores instead of the plate."""

    key_id: str
    ciphertext: bytes
    """nonce (12) || ciphertext || tag (16)."""
    blind_index: bytes
    index_key_id: str
    tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One index key's values for a query: the current key and every old one still being rotated away."""

    index_key_id: str
    index_key: bytes


def plate_aad(agent_id: str, event_id: UUID) -> bytes:
    """The additional authenticated data of a row's plate: the agent and the event it belongs to."""
    return PLATE_AAD_LABEL + agent_id.encode("utf-8") + b"\x00" + event_id.bytes


def _pad(plate: str) -> bytes:
    raw = plate.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError("a plate cannot contain NUL")
    size = max(PLAINTEXT_BYTES, -(-len(raw) // PLAINTEXT_BYTES) * PLAINTEXT_BYTES)
    return raw.ljust(size, b"\x00")


class PlateVault:
    """Encryption and indexing of plates (and evidence blobs) with one keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> PlateVault:
        return cls(keyring)

    def __repr__(self) -> str:
        return f"PlateVault({self._keyring!r})"

    @property
    def active_key_id(self) -> str:
        return self._keyring.active

    @property
    def index_key_id(self) -> str:
        return self._keyring.index_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keyring.keys)

    def search_keys(self) -> tuple[SearchKey, ...]:
        """The current index key first, then the old ones (rows not yet re-indexed are found under those)."""
        current = SearchKey(self._keyring.index_key_id, self._keyring.index_key)
        old = (SearchKey(key_id, key) for key_id, key in sorted(self._keyring.old_index_keys.items()))
        return (current, *old)

    # --- plates -----------------------------------------------------------------------------------

    def seal(self, plate: str, *, aad: bytes = b"") -> SealedPlate:
        """Encrypt ``plate`` under the active key and index it; ``aad``: see ``plate_aad``."""
        key_id, ciphertext = self._encrypt(_pad(plate), aad)
        compact = compact_plate(plate)
        return SealedPlate(
            key_id=key_id,
            ciphertext=ciphertext,
            blind_index=self.blind_index(plate),
            index_key_id=self._keyring.index_key_id,
            tokens=tuple(plate_tokens(self._keyring.index_key, compact)),
        )

    def open(self, key_id: str, ciphertext: bytes, *, aad: bytes = b"") -> str:
        """The plate sealed in ``ciphertext``; ``PlateVaultError`` when it does not open with this keyring."""
        return self._decrypt(key_id, ciphertext, aad).rstrip(b"\x00").decode("utf-8")

    def blind_index(self, plate: str, *, index_key: bytes | None = None) -> bytes:
        """HMAC-SHA256 (index key) of the compact plate, truncated to 128 bits."""
        key = self._keyring.index_key if index_key is None else index_key
        message = BLIND_INDEX_LABEL + compact_plate(plate).encode("ascii")
        return hmac.digest(key, message, "sha256")[:BLIND_INDEX_BYTES]

    # --- evidence ---------------------------------------------------------------------------------

    def seal_blob(self, data: bytes, aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce || ciphertext || tag) of ``data`` under the active key."""
        return self._encrypt(data, aad)

    def open_blob(self, key_id: str, sealed: bytes, aad: bytes) -> bytes:
        return self._decrypt(key_id, sealed, aad)

    # --- AES-GCM ----------------------------------------------------------------------------------

    def _encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        key_id = self._keyring.active
        nonce = os.urandom(NONCE_BYTES)
        return key_id, nonce + self._ciphers[key_id].encrypt(nonce, plaintext, aad)

    def _decrypt(self, key_id: str, sealed: bytes, aad: bytes) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PlateVaultError(
                f"sealed with key {key_id!r}, which is not in the keyring (keys: {sorted(self._ciphers)})"
            )
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise PlateVaultError(f"sealed value of {len(sealed)} bytes is too short to be AES-GCM output")
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise PlateVaultError(
                f"sealed value does not open with key {key_id!r}: wrong key, tampered, or moved from another row"
            ) from None


def vault_from_settings(settings: Settings) -> PlateVault | None:
    """The vault of the configured keyring (``load_keyring``), or None when none is configured."""
    keyring = load_keyring(settings)
    return None if keyring is None else PlateVault.from_keyring(keyring)
