"""The pure parts of area scoping on the APIs: which alert subjects a visible set covers, how a rule's listing is
cut down, the SSE filter, the police search narrowing and the stored form of a user's areas."""

from __future__ import annotations

import asyncio
import datetime as dt
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central_ingest.access.admin import normalise_areas
from central_ingest.access.scope import AreaError
from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.rules import Junction, SourceRef
from central_ingest.alerts.scope import junction_visible, scoped_rule, subject_visible
from central_ingest.alerts.sinks.sse import SseBroker, StreamFilter
from central_ingest.plates.routes import NO_CAMERA, scoped_query
from central_ingest.plates.search import PassQuery

VISIBLE = frozenset({"source:a/cam-1", "sensor:a/cam-1", "junction:j-1", "project:p-1"})


def test_subjects_are_visible_by_key_and_a_project_covers_its_packages() -> None:
    assert subject_visible("source:a/cam-1", VISIBLE)
    assert subject_visible("project:p-1", VISIBLE)
    assert subject_visible("project:p-1/mong", VISIBLE)
    assert not subject_visible("project:p-10", VISIBLE)
    assert not subject_visible("project:p-2/mong", VISIBLE)
    assert not subject_visible("junction:j-2", VISIBLE)
    assert not subject_visible("source:a/cam-2", VISIBLE)
    # A source subject is never matched by its agent part (only project subjects have packages).
    assert not subject_visible("source:a/cam-1/x", frozenset({"source:a"}))
    assert subject_visible("anything:at/all", None)


@given(st.text(min_size=1, max_size=30))
def test_nothing_is_visible_in_an_empty_set(subject: str) -> None:
    assert not subject_visible(subject, frozenset())


def test_a_rule_lists_only_the_visible_sources_junctions_projects_and_subjects() -> None:
    rule = {
        "id": "r",
        "sources": [{"agent_id": "a", "source_id": "cam-1"}, {"agent_id": "b", "source_id": "cam-9"}],
        "junctions": ["j-1", "j-2"],
        "projects": ["p-1", "p-2"],
        "critical_packages": {"p-1": ["mong"], "p-2": ["tru"]},
        "subjects": [{"subject": "source:a/cam-1"}, {"subject": "source:b/cam-9"}, {"subject": "project:p-1/mong"}],
    }
    scoped = scoped_rule(rule, VISIBLE)
    assert scoped["sources"] == [{"agent_id": "a", "source_id": "cam-1"}]
    assert (scoped["junctions"], scoped["projects"]) == (["j-1"], ["p-1"])
    assert scoped["critical_packages"] == {"p-1": ["mong"]}
    assert [s["subject"] for s in scoped["subjects"]] == ["source:a/cam-1", "project:p-1/mong"]
    assert scoped_rule(rule, None) is rule
    assert scoped_rule({**rule, "junctions": "all"}, VISIBLE)["junctions"] == "all"  # a keyword, not a listing


def notice(subject: str) -> AlertNotice:
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    return AlertNotice(
        alert_id=uuid4(), rule_id="r", rule_kind="source_silent", subject=subject, status="open",
        transition="opened", severity="warning", message_vi="v", message_en="e", opened_at=now, changed_at=now,
    )  # fmt: skip


def test_the_broker_queues_only_the_subscribers_visible_notices() -> None:
    asyncio.run(_broker_scenario())


async def _broker_scenario() -> None:
    broker = SseBroker()
    scoped = broker.subscribe(StreamFilter(subjects=VISIBLE))
    everyone = broker.subscribe(StreamFilter())
    for subject in ("source:b/cam-9", "project:p-1/mong", "junction:j-2"):
        await broker.deliver(notice(subject))
    assert (scoped.queued, everyone.queued) == (1, 3)
    first = await scoped.next(0.01)
    assert first is not None
    assert first.subject == "project:p-1/mong"
    scoped.set_filter(StreamFilter(subjects=frozenset({"junction:j-2"})))  # a refreshed scope
    await broker.deliver(notice("junction:j-2"))
    await broker.deliver(notice("project:p-1"))
    assert scoped.queued == 1


def test_a_scoped_police_search_covers_only_its_cameras() -> None:
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    query = PassQuery(plate="30A-123.45", since=now - dt.timedelta(days=1), until=now)
    visible = frozenset({("a", "cam-1"), ("a", "cam-2")})
    assert scoped_query(query, None) is query
    assert scoped_query(query, visible).source_ids == ("cam-1", "cam-2")
    asked = PassQuery(plate="30A-123.45", since=query.since, until=now, source_ids=("cam-2", "cam-9"))
    assert scoped_query(asked, visible).source_ids == ("cam-2",)
    # Nothing visible: a camera list that matches nothing, never the empty list (which means every camera).
    assert scoped_query(query, frozenset()).source_ids == (NO_CAMERA,)
    assert scoped_query(asked, frozenset({("a", "cam-1")})).source_ids == (NO_CAMERA,)


def test_a_users_areas_are_normalised_and_none_is_the_whole_province() -> None:
    assert normalise_areas([]) is None
    assert normalise_areas([" Huế / Phú Xuân /Phú Hội ", "Huế/Phú Xuân/Phú Hội", "Huế/Kim Long"]) == (
        "Huế/Phú Xuân/Phú Hội",
        "Huế/Kim Long",
    )
    for bad in ("", "Huế//Phú Hội", "a/b/c/d"):
        with pytest.raises(AreaError):
            normalise_areas([bad])


def test_a_junction_is_visible_only_with_all_its_cameras() -> None:
    border = Junction(
        id="j-border",
        cameras=(SourceRef(agent_id="a", source_id="phu-hoi"), SourceRef(agent_id="b", source_id="kim-long")),
    )
    assert junction_visible(border, None)
    assert not junction_visible(border, frozenset({("a", "phu-hoi")}))  # the other commune's counts are in it
    assert junction_visible(border, frozenset({("a", "phu-hoi"), ("b", "kim-long")}))
    assert not junction_visible(Junction(id="empty"), frozenset({("a", "phu-hoi")}))
