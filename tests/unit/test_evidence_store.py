"""The edge evidence store: digest names, byte cap (oldest first), age limit, bounded upload list, rebuild."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from edge_agent.evidence.config import EvidenceConfig, should_upload
from edge_agent.evidence.store import INDEX_NAME, EvidenceStore

MIB = 1024 * 1024
NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def picture(seed: int, size: int = 1000) -> bytes:
    """Distinct bytes per seed (the store does not decode JPEG; it stores what it is given)."""
    return bytes([0xFF, 0xD8]) + bytes((seed + i) % 251 for i in range(size))


def open_store(directory: Path, clock: Clock | None = None, **settings: object) -> EvidenceStore:
    return EvidenceStore(EvidenceConfig.model_validate(settings), directory, wall_clock=clock or Clock())


def test_a_keyframe_is_stored_under_its_sha256_and_referenced_by_it(tmp_path: Path) -> None:
    data = picture(1)
    with open_store(tmp_path) as store:
        ref = store.put(data, time=NOW, purpose="violation")
        again = store.put(data, time=NOW, purpose="violation")
        stats = store.stats()
    assert ref is not None
    assert again == ref
    sha = hashlib.sha256(data).hexdigest()
    assert (ref.kind, ref.sha256, ref.uri, ref.time) == ("keyframe", sha, f"evidence/{sha}.jpg", NOW)
    assert (tmp_path / f"{sha}.jpg").read_bytes() == data
    assert (stats.files, stats.bytes, stats.stored) == (1, len(data), 1)


def test_over_the_byte_cap_the_oldest_files_go_first_and_are_counted(tmp_path: Path) -> None:
    clock = Clock()
    size = 400 * 1024
    with open_store(tmp_path, clock, max_bytes=MIB) as store:
        refs = []
        for seed in range(4):
            clock.now += dt.timedelta(seconds=1)
            refs.append(store.put(picture(seed, size), time=clock.now, purpose="violation"))
        stats = store.stats()
        pending = store.pending(10)
    assert all(ref is not None and ref.sha256 for ref in refs)
    shas = [ref.sha256 for ref in refs if ref is not None]
    assert stats.evicted == 2
    assert stats.files == 2
    assert stats.bytes <= MIB
    assert [p.exists() for p in (tmp_path / f"{sha}.jpg" for sha in shas)] == [False, False, True, True]
    assert pending == shas[2:], "an evicted keyframe cannot stay on the upload list"


def test_files_older_than_max_age_are_pruned_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    with open_store(tmp_path, clock, max_age_days=30) as store:
        old = store.put(picture(1), time=NOW, purpose="plate_pass")
        clock.now = NOW + dt.timedelta(days=20)
        young = store.put(picture(2), time=clock.now, purpose="plate_pass")
        assert store.prune(NOW + dt.timedelta(days=31)) == 1
        stats = store.stats()
    assert old is not None
    assert young is not None
    assert not (tmp_path / f"{old.sha256}.jpg").exists()
    assert (tmp_path / f"{young.sha256}.jpg").exists()
    assert (stats.expired, stats.files) == (1, 1)


@pytest.mark.parametrize(
    ("policy", "violation", "plate_pass"),
    [("never", False, False), ("violations", True, False), ("all", True, True)],
)
def test_the_upload_policy_decides_what_is_listed(policy: str, violation: bool, plate_pass: bool) -> None:
    config = EvidenceConfig.model_validate({"upload": policy})
    assert should_upload(config.upload, "violation") is violation
    assert should_upload(config.upload, "plate_pass") is plate_pass


def test_the_upload_list_is_bounded_dropping_the_oldest(tmp_path: Path) -> None:
    with open_store(tmp_path, pending_max=2, upload="all") as store:
        refs = [store.put(picture(seed), time=NOW, purpose="plate_pass") for seed in range(3)]
        pending = store.pending(10)
        stats = store.stats()
    assert pending == [ref.sha256 for ref in refs[1:] if ref is not None]
    assert (stats.pending, stats.pending_dropped, stats.files) == (2, 1, 3)


def test_uploaded_and_refused_leave_the_list_and_counters_survive_a_restart(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        first = store.put(picture(1), time=NOW, purpose="violation")
        second = store.put(picture(2), time=NOW, purpose="violation")
        assert first is not None
        assert second is not None
        assert first.sha256
        assert second.sha256
        store.mark_uploaded(first.sha256)
        store.mark_refused(second.sha256)
    with open_store(tmp_path) as store:
        stats = store.stats()
        assert store.pending() == []
    assert (stats.uploaded, stats.refused, stats.stored, stats.files) == (1, 1, 2, 2)


def test_a_lost_index_is_rebuilt_from_the_files(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        ref = store.put(picture(7), time=NOW, purpose="violation")
    for name in (INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    stray = picture(8)
    (tmp_path / f"{hashlib.sha256(stray).hexdigest()}.jpg").write_bytes(stray)
    with open_store(tmp_path) as store:
        stats = store.stats()
        assert ref is not None
        assert ref.sha256
        assert store.read(ref.sha256) == picture(7)
    assert (stats.files, stats.bytes) == (2, len(picture(7)) + len(stray))


def test_a_keyframe_the_disk_refuses_is_counted_and_returns_none(tmp_path: Path) -> None:
    data = picture(3)
    sha = hashlib.sha256(data).hexdigest()
    with open_store(tmp_path) as store:
        (tmp_path / f".{sha}.tmp").mkdir()  # the temporary file cannot be written
        assert store.put(data, time=NOW, purpose="violation") is None
        stats = store.stats()
    assert (stats.write_errors, stats.files) == (1, 0)
    assert stats.last_error is not None
    assert sha in stats.last_error


def test_a_bad_digest_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with open_store(tmp_path) as store, pytest.raises(ValueError, match="SHA-256"):
        store.read("../../etc/passwd")
