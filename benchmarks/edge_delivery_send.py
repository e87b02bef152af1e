"""Phase 3: the cost of the spool when sending to a real central over HTTP (gzip, batches of 500).

Three ways to send the same kind of events (fresh ids each run, so central stores every one):

- without spool (baseline): the agent's ``HttpTransport`` fed from a Python list, one batch at a
  time, as the sender would without a spool: serialise each event (``model_dump_json``), POST the
  gzip batch, check central's ack;
- with spool: ``Delivery.submit_many`` of each batch into a real ``Spool`` (``synchronous=full``)
  while the sender thread leases, sends through the same ``HttpTransport`` and acks, until the
  spool is empty (``Delivery.close`` returns once everything is acknowledged). This is the
  headline ``spool_overhead_pct``;
- spool drain only: the same, with the events put into the spool before the clock starts (a
  backlog after an outage): only the sender's side of the spool (lease, ack) is timed.

Wall time: from the first event handed over to the last one acknowledged by central. CPU: the
benchmark process's ``time.process_time`` over the same span, i.e. the agent's own cost per event;
central and PostgreSQL run in their own processes but on the same 2 cores (and the same disk), so
wall times include their share. The order of the ways turns each round, and a warm-up of each way
runs before the timed rounds (central's first batches create the hypertable chunks). The spool and
transport are wrapped to note the time of each call (``calls``): a perf_counter pair per call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from benchmarks.edge_delivery_common import (
    CallTimes,
    Stopwatch,
    chunks,
    make_events,
    median,
    percent_more,
    settled_heap,
)
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.dead_letters import DeadLetterConfig, DeadLetterStore
from edge_agent.delivery.http_uplink import HttpTransport
from edge_agent.delivery.sender import Delivery
from edge_agent.delivery.spool import PutResult, Spool, SpoolConfig, SpooledEvent, SpoolStats
from edge_agent.delivery.transport import Acked, SendOutcome, Transport
from event_contract import Event

Way = Literal["without_spool", "with_spool", "spool_drain_only"]
WAYS: tuple[Way, ...] = ("without_spool", "with_spool", "spool_drain_only")
TransportFactory = Callable[[UplinkConfig], Transport]
CLOSE_TIMEOUT_S = 600.0


def uplink_config(url: str, token: str, batch_size: int) -> UplinkConfig:
    """The agent's default uplink settings (gzip on) with this central, token and batch size."""
    return UplinkConfig.model_validate({"url": url, "token": token, "batch_max_events": batch_size, "timeout_s": 60})


class TimedSpool:
    """The real spool, with the time of each call the sender and the producer make noted (µs per call)."""

    def __init__(self, spool: Spool, times: CallTimes) -> None:
        self._spool = spool
        self._times = times

    def put(self, events: Sequence[Event], *, durable_only: bool = False) -> PutResult:
        with self._times.timing("spool_put"):
            return self._spool.put(events, durable_only=durable_only)

    def lease(self, max_events: int, max_bytes: int, live_share: float = 0.25) -> list[SpooledEvent]:
        with self._times.timing("spool_lease"):
            return self._spool.lease(max_events, max_bytes, live_share)

    def ack(self, seqs: Iterable[int]) -> None:
        with self._times.timing("spool_ack"):
            self._spool.ack(seqs)

    def release(self, seqs: Iterable[int]) -> None:
        with self._times.timing("spool_release"):
            self._spool.release(seqs)

    def pending_events(self) -> int:
        with self._times.timing("spool_pending"):
            return self._spool.pending_events()

    def stats(self) -> SpoolStats:
        with self._times.timing("spool_stats"):
            return self._spool.stats()


class TimedTransport:
    """The real transport, with the time of each send (batch body + gzip + POST + central's answer) noted."""

    def __init__(self, transport: Transport, times: CallTimes) -> None:
        self._transport = transport
        self._times = times

    def send(self, agent_id: str, payloads: Sequence[bytes]) -> SendOutcome:
        with self._times.timing("send"):
            return self._transport.send(agent_id, payloads)

    def close(self) -> None:
        self._transport.close()


def send_without_spool(
    agent_id: str,
    events: Sequence[Event],
    config: UplinkConfig,
    transport_factory: TransportFactory = HttpTransport,
    times: CallTimes | None = None,
) -> tuple[Stopwatch, int]:
    """Baseline: batches straight from memory through the transport; (time, events central acknowledged)."""
    times = times or CallTimes()
    transport = TimedTransport(transport_factory(config), times)
    watch = Stopwatch()
    acked = 0
    try:
        with watch.running():
            for batch in chunks(events, config.batch_max_events):
                with times.timing("serialise"):
                    payloads = [event.model_dump_json().encode() for event in batch]
                outcome = transport.send(agent_id, payloads)
                if not isinstance(outcome, Acked):
                    raise RuntimeError(f"central did not take a batch: {outcome}")
                acked += len(batch)
    finally:
        transport.close()
    return watch, acked


def send_with_spool(
    agent_id: str,
    events: Sequence[Event],
    config: UplinkConfig,
    *,
    workdir: Path,
    transport_factory: TransportFactory = HttpTransport,
    times: CallTimes | None = None,
    prefill: bool = False,
) -> tuple[Stopwatch, int]:
    """Through the spool: submit batches, the sender drains; (time until the spool is empty, events sent).

    ``prefill``: the events are put into the spool BEFORE the clock starts, so only the drain is timed
    (the sender's lease, send and ack, as after an outage); the puts are what the producer paid earlier.
    """
    times = times or CallTimes()
    workdir.mkdir(parents=True, exist_ok=True)
    spool = Spool(SpoolConfig(path=workdir / f"{agent_id}.sqlite"))
    letters = DeadLetterStore(DeadLetterConfig(path=workdir / f"{agent_id}-dead.sqlite"))
    watch = Stopwatch()
    try:
        if prefill:
            for batch in chunks(events, config.batch_max_events):
                spool.put(batch)
        timed_spool, transport = TimedSpool(spool, times), TimedTransport(transport_factory(config), times)
        with watch.running():
            delivery = Delivery(agent_id, config, timed_spool, transport, dead_letters=letters)
            if not prefill:
                for batch in chunks(events, config.batch_max_events):
                    delivery.submit_many(batch)
            stats = delivery.close(timeout=CLOSE_TIMEOUT_S)
    finally:
        spool.close()
        letters.close()
    if stats.backlog_events or stats.sent_events != len(events) or stats.retries:
        raise RuntimeError(f"the spool path did not send everything cleanly: {stats}")
    return watch, stats.sent_events


def run_way(
    way: Way,
    agent_id: str,
    count: int,
    *,
    config: UplinkConfig,
    workdir: Path,
    t0: dt.datetime,
    transport_factory: TransportFactory = HttpTransport,
) -> dict[str, Any]:
    events = make_events(agent_id, count, t0)  # fresh event ids: central stores every one
    times = CallTimes()
    with settled_heap():
        watch, sent = _send(
            way, agent_id, events, config, workdir=workdir, transport_factory=transport_factory, times=times
        )
    return {"way": way, "agent_id": agent_id, **watch.rate(sent), "calls": times.per_call_ms()}


def _send(
    way: Way,
    agent_id: str,
    events: Sequence[Event],
    config: UplinkConfig,
    *,
    workdir: Path,
    transport_factory: TransportFactory,
    times: CallTimes,
) -> tuple[Stopwatch, int]:
    if way == "without_spool":
        return send_without_spool(agent_id, events, config, transport_factory, times)
    return send_with_spool(
        agent_id,
        events,
        config,
        workdir=workdir,
        transport_factory=transport_factory,
        times=times,
        prefill=way == "spool_drain_only",
    )


def measure_send(
    url: str,
    tokens: dict[str, str],
    *,
    events: int,
    batch_size: int,
    rounds: int,
    warmup_events: int,
    workdir: Path,
    t0: dt.datetime,
    transport_factory: TransportFactory = HttpTransport,
) -> dict[str, Any]:
    """Warm-up, then ``rounds`` of every way (the order turns each round); medians and the spool's overhead
    (the median over rounds of each round's with-spool time over its baseline time).

    ``tokens`` maps each agent id of ``agent_ids(rounds)`` to its central token.
    """
    for way in WAYS:
        agent = warmup_agent(way)
        config = uplink_config(url, tokens[agent], batch_size)
        run_way(way, agent, warmup_events, config=config, workdir=workdir, t0=t0, transport_factory=transport_factory)
    runs: list[dict[str, Any]] = []
    for number in range(rounds):
        turn = number % len(WAYS)
        order = WAYS[turn:] + WAYS[:turn]
        for way in order:
            agent = round_agent(way, number)
            config = uplink_config(url, tokens[agent], batch_size)
            run = run_way(
                way, agent, events, config=config, workdir=workdir, t0=t0, transport_factory=transport_factory
            )
            run["round"] = number
            runs.append(run)
            print(
                f"  send round {number} {way}: {run['events_per_s']} events/s ({run['cpu_us_per_event']} us CPU/event)",
                flush=True,
            )
    by_way = {way: [r for r in runs if r["way"] == way] for way in WAYS}
    seconds = {way: median([r["seconds"] for r in by_way[way]], 3) for way in WAYS}
    cpu = {way: median([r["cpu_us_per_event"] for r in by_way[way]]) for way in WAYS}
    per_round = {way: _overhead_per_round(by_way[way], by_way["without_spool"]) for way in WAYS[1:]}
    base = seconds["without_spool"]
    return {
        "events": events,
        "batch_size": batch_size,
        "gzip": True,
        "rounds": rounds,
        "warmup_events": warmup_events,
        "calls_over_rounds": {way: _calls_over(by_way[way]) for way in WAYS},
        "runs": runs,
        "summary": {
            "send_events_per_s_with_spool": round(events / seconds["with_spool"]),
            "send_events_per_s_without_spool": round(events / seconds["without_spool"]),
            "send_events_per_s_spool_drain_only": round(events / seconds["spool_drain_only"]),
            "spool_overhead_pct": median(per_round["with_spool"]),
            "spool_drain_only_overhead_pct": median(per_round["spool_drain_only"]),
            "spool_overhead_pct_per_round": per_round["with_spool"],
            "spool_drain_only_overhead_pct_per_round": per_round["spool_drain_only"],
            "spool_overhead_pct_of_median_times": percent_more(seconds["with_spool"], base),
            "agent_cpu_us_per_event_with_spool": cpu["with_spool"],
            "agent_cpu_us_per_event_without_spool": cpu["without_spool"],
            "agent_cpu_us_per_event_spool_drain_only": cpu["spool_drain_only"],
            "agent_cpu_overhead_pct": percent_more(cpu["with_spool"], cpu["without_spool"]),
        },
    }


def _overhead_per_round(runs: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> list[float]:
    """Per round, how much longer (%) a way took than the baseline run of the SAME round.

    The ways of one round run back to back, so pairing them cancels the slow drift between rounds
    (central's tables grow by every round, other processes come and go); the headline is the median.
    """
    base = {r["round"]: r["seconds"] for r in baseline}
    return [percent_more(r["seconds"], base[r["round"]]) for r in runs]


def _calls_over(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each named call's time over several runs: calls, ms per call, total seconds."""
    calls: dict[str, int] = {}
    total: dict[str, float] = {}
    for run in runs:
        for name, timing in run["calls"].items():
            calls[name] = calls.get(name, 0) + int(timing["calls"])
            total[name] = total.get(name, 0.0) + float(timing["total_s"])
    return {
        name: {"calls": calls[name], "ms_per_call": round(1000 * total[name] / calls[name], 3)}
        for name in sorted(calls)
    }


def warmup_agent(way: Way) -> str:
    return f"bench-warmup-{way.replace('_', '-')}"


def round_agent(way: Way, number: int) -> str:
    return f"bench-{way.replace('_', '-')}-{number}"


def agent_ids(rounds: int) -> list[str]:
    """Every agent id ``measure_send`` uses (one per way and round, plus the warm-ups): provision these."""
    return [warmup_agent(way) for way in WAYS] + [round_agent(way, n) for n in range(rounds) for way in WAYS]
