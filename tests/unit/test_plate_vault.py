"""The plate vault: AES-256-GCM sealing bound to its row, rotation, blind index, and the plate-free writer rows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from central_ingest.plates.keyring import Keyring, new_keyring, with_new_data_key, with_new_index_key
from central_ingest.plates.vault import NONCE_BYTES, PlateVault, PlateVaultError, plate_aad
from central_ingest.store.tables import PlateVaultMissingError, stage_rows
from event_contract import PlatePassEvent, ViolationEvent

EVENT = uuid.UUID("00000000-0000-4000-8000-000000000001")
AAD = plate_aad("agent-1", EVENT)
TIME = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def keyring() -> Keyring:
    return new_keyring()


def test_a_sealed_plate_opens_to_the_printed_form_and_hides_its_length(keyring: Keyring) -> None:
    vault = PlateVault.from_keyring(keyring)
    short, long = vault.seal("30A-123.4", aad=AAD), vault.seal("59X1-234.56", aad=AAD)
    assert vault.open(short.key_id, short.ciphertext, aad=AAD) == "30A-123.4"
    assert vault.open(long.key_id, long.ciphertext, aad=AAD) == "59X1-234.56"
    assert len(short.ciphertext) == len(long.ciphertext)  # padded: the format is not told by the length
    assert b"30A" not in short.ciphertext
    again = vault.seal("30A-123.4", aad=AAD)
    assert again.ciphertext[:NONCE_BYTES] != short.ciphertext[:NONCE_BYTES]  # a fresh nonce every time


def test_a_ciphertext_moved_to_another_row_does_not_open(keyring: Keyring) -> None:
    vault = PlateVault.from_keyring(keyring)
    sealed = vault.seal("30A-123.45", aad=AAD)
    for other in (plate_aad("agent-2", EVENT), plate_aad("agent-1", uuid.uuid4()), b""):
        with pytest.raises(PlateVaultError, match="moved from another row"):
            vault.open(sealed.key_id, sealed.ciphertext, aad=other)


@pytest.mark.parametrize("position", [0, NONCE_BYTES, -1])
def test_tampering_with_any_part_is_detected(keyring: Keyring, position: int) -> None:
    vault = PlateVault.from_keyring(keyring)
    sealed = bytearray(vault.seal("30A-123.45", aad=AAD).ciphertext)
    sealed[position] ^= 0x01
    with pytest.raises(PlateVaultError, match="tampered"):
        vault.open(keyring.active, bytes(sealed), aad=AAD)
    with pytest.raises(PlateVaultError, match="too short"):
        vault.open(keyring.active, bytes(sealed[:20]), aad=AAD)


def test_a_wrong_or_unknown_key_does_not_open(keyring: Keyring) -> None:
    sealed = PlateVault.from_keyring(keyring).seal("30A-123.45", aad=AAD)
    stranger = PlateVault.from_keyring(new_keyring())  # same key id "k1", other bytes
    with pytest.raises(PlateVaultError, match="wrong key"):
        stranger.open(sealed.key_id, sealed.ciphertext, aad=AAD)
    with pytest.raises(PlateVaultError, match="not in the keyring"):
        stranger.open("k9", sealed.ciphertext, aad=AAD)


def test_after_rotation_new_plates_use_the_new_key_and_old_ones_still_open(keyring: Keyring) -> None:
    old = PlateVault.from_keyring(keyring).seal("30A-123.45", aad=AAD)
    rotated = PlateVault.from_keyring(with_new_data_key(keyring))
    new = rotated.seal("30A-123.45", aad=AAD)
    assert (old.key_id, new.key_id) == ("k1", "k2")
    assert rotated.open(old.key_id, old.ciphertext, aad=AAD) == "30A-123.45"
    assert rotated.open(new.key_id, new.ciphertext, aad=AAD) == "30A-123.45"
    assert old.blind_index == new.blind_index  # the index key did not change


def test_the_blind_index_is_of_the_compact_plate_and_keyed(keyring: Keyring) -> None:
    vault = PlateVault.from_keyring(keyring)
    assert vault.blind_index("30A-123.45") == vault.blind_index("30a 12345") == vault.blind_index("30A12345")
    assert vault.blind_index("30A-123.45") != vault.blind_index("30A-123.46")
    assert len(vault.blind_index("30A-123.45")) == 16
    assert PlateVault.from_keyring(new_keyring()).blind_index("30A-123.45") != vault.blind_index("30A-123.45")


def test_a_new_index_key_is_searched_with_the_old_one_until_reindexing_ends(keyring: Keyring) -> None:
    before = PlateVault.from_keyring(keyring)
    after = PlateVault.from_keyring(with_new_index_key(keyring))
    assert [k.index_key_id for k in after.search_keys()] == ["i2", "i1"]
    old_key = after.search_keys()[1].index_key
    assert after.blind_index("30A-123.45", index_key=old_key) == before.blind_index("30A-123.45")
    assert after.seal("30A-123.45").index_key_id == "i2"


def test_nothing_prints_key_bytes(keyring: Keyring) -> None:
    text = repr(keyring) + repr(PlateVault.from_keyring(keyring))
    assert "k1" in text
    assert all(repr(key) not in text and key.hex() not in text for key in keyring.keys.values())


def _pass(plate: str = "30A-123.45") -> PlatePassEvent:
    return PlatePassEvent(
        agent_id="agent-1", source_id="cam-1", time=TIME, plate=plate, plate_confidence=0.9, track_id=4
    )


def test_writer_rows_carry_no_plate_text_and_refuse_to_store_one_without_a_vault(keyring: Keyring) -> None:
    vault = PlateVault.from_keyring(keyring)
    violation = ViolationEvent(
        agent_id="agent-1",
        source_id="cam-1",
        time=TIME,
        violation_type="red_light",
        category="violation",
        track_id=4,
        plate="30A-123.45",
        plate_confidence=0.8,
    )
    staged = stage_rows([_pass(), violation], vault)
    for rows in staged.rows.values():
        for row in rows:
            assert not any("123" in str(value) for value in row if isinstance(value, str))
            assert not any(b"30A" in value for value in row if isinstance(value, bytes))
    (pass_row,) = staged.rows["plate_passes"]
    assert vault.open(pass_row[4], pass_row[5], aad=plate_aad("agent-1", pass_row[1])) == "30A-123.45"
    with pytest.raises(PlateVaultMissingError, match="no plate keyring"):
        stage_rows([_pass()])
    with pytest.raises(PlateVaultMissingError):
        stage_rows([violation])
    no_plate = violation.model_copy(update={"plate": None, "plate_confidence": None})
    assert len(stage_rows([no_plate]).rows["violations"]) == 1
