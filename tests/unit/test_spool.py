"""The durable spool's contract: priorities, live share, byte cap and drop rule, duplicates, leases, restarts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.delivery.spool import DEFAULT_PRIORITIES, Spool, SpoolConfig, SpooledEvent
from event_contract import CountIntervalEvent, Event, HealthEvent, PlatePassEvent
from event_contract.models import EventBase

T0 = dt.datetime(2026, 5, 1, 7, 0, tzinfo=dt.UTC)


def health(i: int, *, pad: int = 0) -> HealthEvent:
    """Priority 0. ``pad`` makes the payload longer (the reason field)."""
    return HealthEvent(
        agent_id="a1", source_id="cam1", time=T0 + dt.timedelta(seconds=i), state="live", reason="x" * pad
    )


def count(i: int) -> CountIntervalEvent:
    """Priority 1."""
    return CountIntervalEvent(
        agent_id="a1", source_id="cam1", time=T0 + dt.timedelta(seconds=i), line_id="l1", interval_s=60
    )


def plate(i: int) -> PlatePassEvent:
    """Priority 2 (the lowest by default)."""
    return PlatePassEvent(
        agent_id="a1",
        source_id="cam1",
        time=T0 + dt.timedelta(seconds=i),
        plate="30A-123.45",
        plate_confidence=0.9,
        track_id=i,
    )


def drain(spool: Spool) -> list[SpooledEvent]:
    """Everything pending, leased and released again (the spool's content, most urgent first)."""
    events = spool.lease(1_000_000, 1 << 40, live_share=0.0)
    spool.release(e.seq for e in events)
    return events


def ids(events: Sequence[SpooledEvent | EventBase]) -> list[str]:
    return [str(e.event_id) for e in events]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(SpoolConfig(path=tmp_path / "state" / "spool.sqlite")) as opened:
        yield opened


# ----------------------------------------------------------------- config


def test_config_requires_a_priority_for_every_kind_and_rejects_unknown_ones() -> None:
    partial = {k: v for k, v in DEFAULT_PRIORITIES.items() if k != "plate_pass"}
    with pytest.raises(ValidationError, match="lacks event kinds \\['plate_pass'\\]"):
        SpoolConfig(priorities=partial)
    with pytest.raises(ValidationError, match="unknown event kinds \\['radar'\\]"):
        SpoolConfig(priorities={**DEFAULT_PRIORITIES, "radar": 1})
    with pytest.raises(ValidationError, match=r"0\.\.99"):
        SpoolConfig(priorities={**DEFAULT_PRIORITIES, "health": -1})
    with pytest.raises(ValidationError):
        SpoolConfig(max_bytes=1000)
    with pytest.raises(ValidationError):
        SpoolConfig(cap=5)  # type: ignore[call-arg]


def test_config_fields_are_documented() -> None:
    for name, info in SpoolConfig.model_fields.items():
        assert info.description, f"SpoolConfig.{name} has no description"


# ----------------------------------------------------------------- put, lease, ack, release


def test_put_then_lease_gives_the_event_json_and_metadata(tmp_path: Path, spool: Spool) -> None:
    event = count(5)
    result = spool.put([event])
    assert (result.stored, result.held, result.duplicates, result.dropped) == (1, 0, 0, 0)
    assert (tmp_path / "state" / "spool.sqlite").exists()
    [leased] = spool.lease(10, 10_000)
    assert leased.event_id == str(event.event_id)
    assert leased.kind == "count_interval"
    assert leased.priority == 1
    assert leased.time == event.time
    assert leased.payload == event.model_dump_json().encode()
    assert CountIntervalEvent.model_validate_json(leased.payload) == event


def test_more_urgent_priorities_lease_first(spool: Spool) -> None:
    spool.put([plate(1), count(2), health(3), plate(4), health(5)])
    batch = spool.lease(10, 1 << 20)
    assert [e.kind for e in batch] == ["health", "health", "count_interval", "plate_pass", "plate_pass"]
    # Priority 0 fills a small batch alone.
    spool.release(e.seq for e in batch)
    assert [e.kind for e in spool.lease(2, 1 << 20)] == ["health", "health"]


def test_live_share_takes_newest_and_oldest_of_a_backlog(spool: Spool) -> None:
    events = [count(i) for i in range(100)]
    spool.put(events)
    batch = spool.lease(10, 1 << 20, live_share=0.3)
    # floor(10 * 0.3) = 3 newest, 7 oldest.
    assert ids(batch) == ids(events[:7] + events[-3:])
    # Those are leased: the next batch continues both ends.
    batch = spool.lease(10, 1 << 20, live_share=0.3)
    assert ids(batch) == ids(events[7:14] + events[-6:-3])


def test_live_share_extremes(spool: Spool) -> None:
    events = [count(i) for i in range(20)]
    spool.put(events)
    assert ids(spool.lease(5, 1 << 20, live_share=0.0)) == ids(events[:5])
    assert ids(spool.lease(5, 1 << 20, live_share=1.0)) == ids(events[-5:])
    # When everything pending fits, there is no split: all of it, oldest first.
    assert ids(spool.lease(50, 1 << 20, live_share=1.0)) == ids(events[5:15])


def test_live_share_applies_to_the_slots_left_by_more_urgent_priorities(spool: Spool) -> None:
    counts = [count(i) for i in range(50)]
    spool.put(counts)
    urgent = [health(i) for i in range(2)]
    spool.put(urgent)
    batch = spool.lease(10, 1 << 20, live_share=0.5)
    # 2 health, then 8 slots: 4 newest and 4 oldest counts.
    assert ids(batch) == ids([*urgent, *counts[:4], *counts[-4:]])


def test_byte_budget_cuts_the_batch_but_never_returns_nothing(spool: Spool) -> None:
    events = [health(i, pad=400) for i in range(5)]
    spool.put(events)
    size = len(events[0].model_dump_json())
    assert ids(spool.lease(10, size * 2 + 10, live_share=0.0)) == ids(events[:2])
    # A budget smaller than one event still returns one event.
    assert ids(spool.lease(10, 1, live_share=0.0)) == ids(events[2:3])


def test_leased_events_are_not_leased_again_until_released(spool: Spool) -> None:
    events = [count(i) for i in range(6)]
    spool.put(events)
    first = spool.lease(4, 1 << 20, live_share=0.0)
    assert spool.stats().leased_events == 4
    second = spool.lease(10, 1 << 20, live_share=0.0)
    assert ids(second) == ids(events[4:])
    assert spool.lease(10, 1 << 20) == []
    spool.release(e.seq for e in first)
    assert ids(spool.lease(10, 1 << 20, live_share=0.0)) == ids(events[:4])


def test_ack_deletes_durably_and_acking_twice_or_unknown_seqs_is_harmless(tmp_path: Path) -> None:
    config = SpoolConfig(path=tmp_path / "spool.sqlite")
    events = [count(i) for i in range(6)]
    with Spool(config) as spool:
        spool.put(events)
        batch = spool.lease(3, 1 << 20, live_share=0.0)
        spool.ack(e.seq for e in batch)
        spool.ack(e.seq for e in batch)
        spool.ack([999_999])
        stats = spool.stats()
        assert (stats.acked_events, stats.pending_events, stats.leased_events) == (3, 3, 0)
    with Spool(config) as spool:
        assert ids(drain(spool)) == ids(events[3:])


def test_duplicate_event_ids_are_ignored_and_counted(tmp_path: Path) -> None:
    config = SpoolConfig(path=tmp_path / "spool.sqlite")
    event = health(1)
    with Spool(config) as spool:
        assert spool.put([event, event]).duplicates == 1
        result = spool.put([event, health(2)])
        assert (result.stored, result.duplicates) == (1, 1)
        assert spool.stats().duplicate_puts == 2
    with Spool(config) as spool:
        assert spool.put([event]).duplicates == 1
        assert len(drain(spool)) == 2


def test_restart_keeps_pending_order_and_leases_become_pending_again(tmp_path: Path) -> None:
    config = SpoolConfig(path=tmp_path / "spool.sqlite")
    events: list[Event] = [plate(0), count(1), health(2), count(3)]
    with Spool(config) as spool:
        spool.put(events)
        spool.lease(2, 1 << 20)  # in flight when the agent stops: sent again after the restart
    with Spool(config) as spool:
        stats = spool.stats()
        assert (stats.pending_events, stats.leased_events) == (4, 0)
        assert stats.pending_by_priority == {"0": 1, "1": 2, "2": 1}
        assert stats.oldest_pending_time == "2026-05-01T07:00:00Z"
        assert ids(drain(spool)) == ids([events[2], events[1], events[3], events[0]])
        # New events after the restart go after the old ones.
        later = count(9)
        spool.put([later])
        counts = [e for e in spool.lease(10, 1 << 20, live_share=0.0) if e.kind == "count_interval"]
        assert ids(counts) == ids([events[1], events[3], later])


def test_stats_are_json_and_count_pending_bytes(spool: Spool) -> None:
    events = [count(i) for i in range(3)]
    spool.put(events)
    spool.lease(1, 1 << 20, live_share=0.0)
    stats = spool.stats()
    assert stats.pending_events == 2
    assert stats.pending_bytes == sum(len(e.model_dump_json()) for e in events[1:])
    assert stats.oldest_pending_time == "2026-05-01T07:00:01Z"
    assert stats.state == "ok"
    assert json.loads(json.dumps(dataclasses.asdict(stats)))["pending_by_priority"] == {"1": 2}


def test_closed_spool_refuses_use(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite"))
    spool.close()
    spool.close()
    with pytest.raises(RuntimeError, match="closed"):
        spool.put([health(1)])


# ----------------------------------------------------------------- byte cap and drop rule

CAP = 64 * 1024


def test_cap_drops_lowest_priority_oldest_first_and_counts_persist(tmp_path: Path) -> None:
    config = SpoolConfig(path=tmp_path / "spool.sqlite", max_bytes=CAP)
    plates = [plate(i) for i in range(100)]
    urgent = [health(1000 + i, pad=150) for i in range(120)]
    sizes = [len(e.model_dump_json()) for e in (*plates, *urgent)]
    assert sum(sizes[100:]) < CAP < sum(sizes)
    with Spool(config) as spool:
        spool.put(plates)
        result = spool.put(urgent)
        assert result.stored == len(urgent)
        stats = spool.stats()
        assert stats.pending_bytes <= CAP
        dropped = stats.dropped_by_kind["plate_pass"]
        assert 0 < dropped < len(plates)
        assert result.evicted == dropped
        kept = drain(spool)
        # The oldest plate passes went; the newest stayed, behind every health event.
        assert ids(kept) == ids([*urgent, *plates[dropped:]])
        assert stats.dropped_first_time == "2026-05-01T07:00:00Z"
        assert stats.dropped_last_time == (T0 + dt.timedelta(seconds=dropped - 1)).isoformat().replace("+00:00", "Z")
    with Spool(config) as spool:
        after = spool.stats()
        assert after.dropped_events == dropped
        assert after.dropped_by_kind == {"plate_pass": dropped}
        assert after.dropped_first_time == stats.dropped_first_time
        assert after.dropped_last_time == stats.dropped_last_time


def test_incoming_lowest_priority_events_are_dropped_when_everything_stored_is_more_urgent(tmp_path: Path) -> None:
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite", max_bytes=CAP)) as spool:
        urgent = [health(i, pad=450) for i in range(200)]
        spool.put(urgent)
        kept_urgent = len(drain(spool))
        late = [plate(500 + i) for i in range(10)]
        result = spool.put(late)
        stats = spool.stats()
        assert stats.pending_bytes <= CAP
        # No health event was pushed out by a plate pass: the incoming plates went (some or all).
        assert len([e for e in drain(spool) if e.kind == "health"]) == kept_urgent
        assert result.dropped + result.stored == len(late)
        assert result.dropped > 0
        assert stats.dropped_by_kind.get("plate_pass") == result.dropped


def test_leased_events_are_never_evicted_and_their_ack_still_works(tmp_path: Path) -> None:
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite", max_bytes=CAP)) as spool:
        plates = [plate(i) for i in range(100)]
        spool.put(plates)
        in_flight = spool.lease(5, 1 << 20, live_share=0.0)
        assert ids(in_flight) == ids(plates[:5])
        spool.put([health(1000 + i, pad=150) for i in range(120)])
        assert spool.stats().dropped_events > 0
        remaining = ids(drain(spool))
        assert not set(ids(in_flight)) & set(remaining)
        spool.ack(e.seq for e in in_flight)
        assert spool.stats().acked_events == 5


def test_an_event_larger_than_the_whole_spool_is_dropped_and_counted(tmp_path: Path) -> None:
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite", max_bytes=CAP)) as spool:
        spool.put([count(1)])
        giant = HealthEvent.model_construct(**{**health(2).model_dump(), "reason": "y" * (CAP + 1)})
        result = spool.put([giant])
        assert (result.stored, result.dropped) == (0, 1)
        assert spool.stats().dropped_by_kind == {"health": 1}
        assert len(drain(spool)) == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from(["health", "count", "plate"]), st.integers(1, 60), st.integers(0, 479)),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_drop_rule_property(batches: list[list[tuple[str, int, int]]]) -> None:
    """After every put: stored bytes <= cap, and every dropped event ranks below every kept one that was there.

    Each generated batch is a few runs of (kind, how many, padding of health events), so most examples
    overflow the 64 KiB cap several times.
    """
    rank: dict[str, tuple[int, int]] = {}  # event id -> (priority, arrival)
    arrival = 0
    total_dropped = 0
    with (
        tempfile.TemporaryDirectory() as folder,
        Spool(SpoolConfig(path=Path(folder) / "s.sqlite", max_bytes=CAP)) as spool,
    ):
        before: set[str] = set()
        for batch in batches:
            events: list[Event] = []
            for kind, how_many, pad in batch:
                for _ in range(how_many):
                    i = arrival + len(events)
                    events.append(health(i, pad=pad) if kind == "health" else count(i) if kind == "count" else plate(i))
            for event in events:
                rank[str(event.event_id)] = (DEFAULT_PRIORITIES[event.kind], arrival)
                arrival += 1
            spool.put(events)
            after = set(ids(drain(spool)))
            assert spool.stats().pending_bytes <= CAP
            gone = (before | set(ids(events))) - after
            total_dropped += len(gone)
            for lost in gone:
                p_lost, a_lost = rank[lost]
                for kept in after:
                    p_kept, a_kept = rank[kept]
                    assert p_kept < p_lost or (p_kept == p_lost and a_kept > a_lost), (lost, kept)
            before = after
        assert spool.stats().dropped_events == total_dropped


# ----------------------------------------------------------------- threads


def test_threads_putting_while_one_leases_and_acks_lose_and_repeat_nothing(spool: Spool) -> None:
    per_thread, batch = 1000, 50
    produced: list[list[str]] = [[] for _ in range(4)]
    delivered: list[str] = []
    producers_done = threading.Event()

    def produce(slot: int) -> None:
        for start in range(0, per_thread, batch):
            events = [health(slot * per_thread + start + i) for i in range(batch)]
            spool.put(events)
            produced[slot].extend(ids(events))

    def consume() -> None:
        while True:
            leased = spool.lease(64, 1 << 20)
            if not leased and producers_done.is_set():
                leased = spool.lease(64, 1 << 20)
                if not leased:
                    return
            delivered.extend(e.event_id for e in leased)
            spool.ack(e.seq for e in leased)

    producers = [threading.Thread(target=produce, args=(slot,)) for slot in range(4)]
    consumer = threading.Thread(target=consume)
    consumer.start()
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    producers_done.set()
    consumer.join(timeout=60)
    assert not consumer.is_alive()
    assert len(delivered) == len(set(delivered)) == 4 * per_thread
    assert set(delivered) == {i for ids_ in produced for i in ids_}
    stats = spool.stats()
    assert (stats.pending_events, stats.put_events, stats.acked_events) == (0, 4000, 4000)
