"""Per rule kind: which subjects it watches, which events touch which subjects, and one subject's Finding.

The glue between the rules (``rules``), the database reads (``inputs``, ``plans``) and the pure
decisions (``evaluate``). Subject keys: ``junction:<id>``, ``project:<id>`` or
``project:<id>/<package>``, ``sensor:<agent>/<source>``, ``source:<agent>/<source>``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg

from central_ingest.alerts import evaluate, inputs
from central_ingest.alerts.lifecycle import Finding
from central_ingest.alerts.messages import Subject
from central_ingest.alerts.plans import load_plan, planned_projects
from central_ingest.alerts.rules import (
    AlertRulesConfig,
    ProgressBehindRule,
    Rule,
    SensorRateRule,
    SensorThresholdRule,
    SourceRef,
    SourceSilentRule,
    ViolationIncreaseRule,
)
from central_ingest.projects.actual import actual_on, as_point, plan_shape, progress_facts
from event_contract import Event, ProgressEvent, SensorReadingEvent, ViolationEvent

Conn = psycopg.AsyncConnection[Any]


def subject_from_key(config: AlertRulesConfig, key: str) -> Subject:
    """Rebuild a subject from its key (for subjects with an open alert that no longer appear in a listing)."""
    prefix, _, rest = key.partition(":")
    if prefix == "junction":
        junction = next((j for j in config.junctions if j.id == rest), None)
        return Subject(key, junction.name_vi if junction else "", junction.name_en if junction else "")
    if prefix == "project":
        project, _, package = rest.partition("/")
        return Subject(key, project_id=project, package_id=package)
    agent, _, source = rest.partition("/")
    return Subject(key, agent_id=agent, source_id=source)


def _source_subject(prefix: str, agent_id: str, source_id: str) -> Subject:
    return Subject(f"{prefix}:{agent_id}/{source_id}", agent_id=agent_id, source_id=source_id)


def _project_subjects(rule: ProgressBehindRule, project_id: str, plan_critical: Sequence[str] = ()) -> list[Subject]:
    """The project, then its critical packages: the rule's list for it, then those its plan marks critical."""
    subjects = [Subject(f"project:{project_id}", project_id=project_id)]
    for package in dict.fromkeys([*rule.critical_packages.get(project_id, ()), *plan_critical]):
        subjects.append(Subject(f"project:{project_id}/{package}", project_id=project_id, package_id=package))
    return subjects


async def subjects(conn: Conn, config: AlertRulesConfig, rule: Rule, now: dt.datetime) -> list[Subject]:
    """Every subject the rule watches now (a full pass also adds those with an open alert)."""
    if isinstance(rule, ViolationIncreaseRule):
        return [Subject(f"junction:{j.id}", j.name_vi, j.name_en) for j in config.junctions_of(rule)]
    if isinstance(rule, ProgressBehindRule):
        projects = await planned_projects(conn) if rule.projects == "all" else list(rule.projects)
        critical = await inputs.critical_packages(conn, projects)
        return [s for project in projects for s in _project_subjects(rule, project, critical.get(project, ()))]
    if isinstance(rule, SensorThresholdRule | SensorRateRule):
        if rule.sensors is not None:
            return [_source_subject("sensor", s.agent_id, s.source_id) for s in rule.sensors]
        assert rule.sensor_kind is not None
        since = now - dt.timedelta(seconds=rule.active_within_s)
        found = await inputs.active_sensors(conn, rule.sensor_kind, rule.metric, since)
        return [_source_subject("sensor", s.agent_id, s.source_id) for s in found]
    if rule.sources is not None:
        return [_source_subject("source", s.agent_id, s.source_id) for s in rule.sources]
    heard = await inputs.last_seen(conn, heard_since=now - dt.timedelta(days=rule.seen_within_days))
    return [_source_subject("source", agent, source) for agent, source in heard]


def touched(config: AlertRulesConfig, rules: Sequence[Rule], event: Event) -> Iterable[tuple[Rule, Subject]]:
    """The (rule, subject) pairs an arriving event may change; pure and cheap (called on the event loop).

    Progress: the project, and the package when the rule lists it as critical; a package only its plan
    marks critical (which this cannot know without the database) is judged by the next full pass, within
    ``alert_evaluate_every_s``: nothing for figures that arrive once a day.
    """
    for rule in rules:
        if isinstance(rule, ViolationIncreaseRule) and isinstance(event, ViolationEvent):
            if event.category not in rule.categories:
                continue
            for junction in config.junctions_of(rule):
                if any(c.agent_id == event.agent_id and c.source_id == event.source_id for c in junction.cameras):
                    yield rule, Subject(f"junction:{junction.id}", junction.name_vi, junction.name_en)
        elif isinstance(rule, ProgressBehindRule) and isinstance(event, ProgressEvent):
            if rule.projects != "all" and event.project_id not in rule.projects:
                continue
            for subject in _project_subjects(rule, event.project_id):
                if subject.package_id in ("", event.package_id or ""):
                    yield rule, subject
        elif (
            isinstance(rule, SensorThresholdRule | SensorRateRule)
            and isinstance(event, SensorReadingEvent)
            and rule.metric in event.values
            and rule.selects(event.agent_id, event.source_id, event.sensor_kind)
        ):
            yield rule, _source_subject("sensor", event.agent_id, event.source_id)


def watched_kinds(rules: Sequence[Rule]) -> frozenset[str]:
    """Event kinds that ``touched`` may map to a subject of one of ``rules``."""
    kinds = set()
    for rule in rules:
        if isinstance(rule, ViolationIncreaseRule):
            kinds.add("violation")
        elif isinstance(rule, ProgressBehindRule):
            kinds.add("progress")
        elif isinstance(rule, SensorThresholdRule | SensorRateRule):
            kinds.add("sensor_reading")
    return frozenset(kinds)


def silent_subject(event: Event) -> Subject:
    return _source_subject("source", event.agent_id, event.source_id)


async def find(
    conn: Conn, config: AlertRulesConfig, rule: Rule, subject: Subject, *, open_rank: int, now: dt.datetime, tz: str
) -> Finding:
    """The rule's Finding for one subject now."""
    if isinstance(rule, ViolationIncreaseRule):
        return await _violation(conn, config, rule, subject, now=now, tz=tz)
    if isinstance(rule, ProgressBehindRule):
        return await _progress(conn, rule, subject, now, tz)
    source = SourceRef(agent_id=subject.agent_id or "", source_id=subject.source_id or "")
    if isinstance(rule, SourceSilentRule):
        heard = (await inputs.last_seen(conn, source=source)).get((source.agent_id, source.source_id))
        finding = evaluate.silence_finding(rule, heard[0] if heard else None, now)
        families = heard[1] if heard else ()
        family = "sensor_readings" if "sensor_readings" in families else (families[0] if families else None)
        return dataclasses.replace(finding, facts={**finding.facts, "family": family})
    since = now - dt.timedelta(seconds=rule.active_within_s)
    if isinstance(rule, SensorThresholdRule):
        readings = await inputs.recent_readings(conn, source, rule.metric, rule.min_duration_s, since)
        reported = None
        if rule.use_station_levels and rule.listed_levels(source.agent_id, source.source_id) is None:
            reported = await inputs.station_alert_levels(conn, source)
        levels = rule.levels_for(source.agent_id, source.source_id, reported)
        finding = evaluate.threshold_finding(rule, levels, readings, open_rank)
    else:
        readings = await inputs.recent_readings(conn, source, rule.metric, rule.window_s, since)
        finding = evaluate.rate_finding(rule, readings, open_rank)
    if finding.state != "breach":
        return finding
    return dataclasses.replace(finding, evidence=(readings_link(source, rule.metric, now),))


EVIDENCE_WINDOW = dt.timedelta(hours=1)
"""How much of a sensor's series an alert links to as its evidence: the hour before the evaluation."""


def readings_link(source: SourceRef, metric: str, now: dt.datetime) -> str:
    """The query-API path of the readings behind a sensor alert (the hour up to ``now``, and a minute after)."""
    query = urlencode(
        {
            "agent_id": source.agent_id,
            "source_id": source.source_id,
            "metric": metric,
            "start": (now - EVIDENCE_WINDOW).isoformat(),
            "end": (now + dt.timedelta(minutes=1)).isoformat(),
        }
    )
    return f"/api/v1/sensors/readings?{query}"


async def _violation(
    conn: Conn, config: AlertRulesConfig, rule: ViolationIncreaseRule, subject: Subject, *, now: dt.datetime, tz: str
) -> Finding:
    junction = next((j for j in config.junctions_of(rule) if f"junction:{j.id}" == subject.key), None)
    if junction is None:  # removed from the config while an alert was open: nothing left to judge
        return Finding("clear", "not_configured")
    current, history = evaluate.periods(now, tz, rule.period, rule.window_periods)
    samples = await inputs.violation_samples(conn, junction.cameras, rule.categories, [current, *history], now)
    finding = evaluate.violation_finding(rule, samples[0], samples[1:], episode=current.start.isoformat())
    if finding.state == "breach":
        evidence = await inputs.violation_evidence(conn, junction.cameras, rule.categories, current)
        finding = dataclasses.replace(finding, evidence=evidence)
    return finding


async def _progress(conn: Conn, rule: ProgressBehindRule, subject: Subject, now: dt.datetime, tz: str) -> Finding:
    """Planned vs actual today. A plan with packages: ``projects.actual`` (confirmations win and calibrate the
    cameras; the project is the weighted sum of its packages). A plan without packages: the latest row."""
    project = subject.project_id or ""
    day = now.astimezone(ZoneInfo(tz)).date()
    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), ZoneInfo(tz))
    plan = await load_plan(conn, project)
    shape = plan_shape(plan)
    points = plan.curve(subject.package_id) if plan is not None else []
    if shape.has_packages:
        wanted = [subject.package_id] if subject.package_id else [*shape.weights, ""]
        rows = await inputs.project_rows(conn, project, wanted, since=end_of_day, before=end_of_day, timezone=tz)
        actual = actual_on(rows, shape, subject.package_id, day)
    else:
        found = await inputs.latest_progress(conn, project, subject.package_id, end_of_day, tz)
        picked = evaluate.pick_actual(found, day)
        actual = None if picked is None else as_point(picked)
    finding = evaluate.progress_finding(rule, points, None if actual is None else actual.as_row(), day)
    return dataclasses.replace(finding, facts={**finding.facts, **progress_facts(shape, subject.package_id, actual)})
