"""Which alerts a user may see: an alert is visible when its subject's sources are in the user's area.

Subjects and their sources (``runners`` builds the keys):

- ``junction:<id>``: the junction's cameras in the rules file (``AlertRulesConfig.junctions``); visible when
  every one of them is (``junction_visible``, the traffic dashboard's rule too): its alert adds up all its
  cameras and links their violations, so a junction on a commune border is for users of both communes;
- ``project:<id>`` and ``project:<id>/<package>``: the project's cameras (``visible_projects``);
- ``sensor:<agent>/<source>`` and ``source:<agent>/<source>``: that one source.

``visible_subjects`` turns a scope into the set of visible subject keys once (None: unrestricted), and
``subject_visible`` / ``subject_condition`` apply it to one notice or to the SQL of a list. A project's
packages are not listed one by one: ``project:<id>`` in the set makes every ``project:<id>/<package>``
visible (project ids never contain ``/``).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from central_ingest.access.scope import AreaScope, Source, source_condition, visible_sources
from central_ingest.alerts.rules import AlertRulesConfig, Junction

PMU_AGENT = "central"
"""The agent_id of progress figures entered at central (a PMU's confirmations): not a camera."""
PROJECT_PREFIX = "project:"

_PROJECT_CAMERAS = sql.SQL(
    "SELECT project_id FROM camera_sites WHERE project_id IS NOT NULL AND {sites}"
    " UNION SELECT DISTINCT project_id FROM progress WHERE agent_id <> %s AND {progress}"
)


async def visible_projects(conn: AsyncConnection[Any], visible: frozenset[Source] | None) -> frozenset[str] | None:
    """Projects with a visible camera (None: every project, when ``visible`` is None).

    A project's cameras: the sites registered as watching it (``camera_sites.project_id``) and the cameras
    that sent its progress figures. (Site activity is left out: the same cameras send progress, and that
    table is an order of magnitude larger to scan.)
    """
    if visible is None:
        return None
    if not visible:
        return frozenset()
    sites, sites_params = source_condition(visible, "agent_id", "id")
    progress, progress_params = source_condition(visible, "agent_id", "source_id")
    cursor = await conn.execute(
        _PROJECT_CAMERAS.format(sites=sites, progress=progress), (*sites_params, PMU_AGENT, *progress_params)
    )
    return frozenset(str(project) for (project,) in await cursor.fetchall())


async def visible_subjects(
    conn: AsyncConnection[Any], scope: AreaScope, config: AlertRulesConfig
) -> frozenset[str] | None:
    """The alert subject keys ``scope`` may see (None: all); see the module doc."""
    visible = await visible_sources(conn, scope)
    if visible is None:
        return None
    subjects = {f"{prefix}:{agent}/{source}" for agent, source in visible for prefix in ("sensor", "source")}
    subjects |= {f"junction:{junction.id}" for junction in config.junctions if junction_visible(junction, visible)}
    subjects |= {f"{PROJECT_PREFIX}{project}" for project in await visible_projects(conn, visible) or ()}
    return frozenset(subjects)


def junction_visible(junction: Junction, visible: frozenset[Source] | None) -> bool:
    """Whether every camera of ``junction`` is among ``visible`` (None: all); a junction without cameras is not."""
    if visible is None:
        return True
    return bool(junction.cameras) and all((c.agent_id, c.source_id) in visible for c in junction.cameras)


def subject_visible(subject: str, visible: frozenset[str] | None) -> bool:
    """Whether an alert about ``subject`` is in ``visible`` (a set from ``visible_subjects``)."""
    if visible is None or subject in visible:
        return True
    return subject.startswith(PROJECT_PREFIX) and subject.split("/", 1)[0] in visible


def subject_condition(visible: frozenset[str] | None, column: str = "subject") -> tuple[sql.Composable, dict[str, Any]]:
    """SQL: ``column`` is a visible subject (TRUE when None), and its parameter (named ``visible_subjects``)."""
    if visible is None:
        return sql.SQL("TRUE"), {}
    condition = sql.SQL(
        "({col} = ANY(%(visible_subjects)s::text[]) OR ({col} LIKE 'project:%%'"
        " AND split_part({col}, '/', 1) = ANY(%(visible_subjects)s::text[])))"
    )
    return condition.format(col=sql.Identifier(*column.split("."))), {"visible_subjects": sorted(visible)}


def _source_listed(item: Any, visible: frozenset[str]) -> bool:
    """A ``{agent_id, source_id, ...}`` item of a rule whose source is visible."""
    return isinstance(item, dict) and f"source:{item.get('agent_id')}/{item.get('source_id')}" in visible


def scoped_rule(rule: dict[str, Any], visible: frozenset[str] | None) -> dict[str, Any]:
    """A rule's JSON (``rules_status``) with only what ``visible`` may see: its subjects, and the sources,
    junctions and projects it lists by name (a scoped user learns no camera of another commune from a rule)."""
    if visible is None:
        return rule
    scoped = dict(rule)
    scoped["subjects"] = [s for s in rule.get("subjects", []) if subject_visible(str(s.get("subject")), visible)]
    for field in ("sensors", "sources", "station_levels"):
        if isinstance(rule.get(field), list):
            scoped[field] = [item for item in rule[field] if _source_listed(item, visible)]
    if isinstance(rule.get("junctions"), list):
        scoped["junctions"] = [j for j in rule["junctions"] if f"junction:{j}" in visible]
    if isinstance(rule.get("projects"), list):
        scoped["projects"] = [p for p in rule["projects"] if f"{PROJECT_PREFIX}{p}" in visible]
    if isinstance(rule.get("critical_packages"), dict):
        scoped["critical_packages"] = {
            p: packages for p, packages in rule["critical_packages"].items() if f"{PROJECT_PREFIX}{p}" in visible
        }
    return scoped
