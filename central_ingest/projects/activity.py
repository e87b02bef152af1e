"""Working hours on a construction site: the ``site_activity`` windows summed per camera, zone and local day.

A window (usually an hour) belongs to the local day its ``start`` falls in (``timezone``, the service's
setting, Asia/Ho_Chi_Minh by default). Per day:

- ``working_hours`` = sum(active_s) / 3600: the time with at least one worker, machine or truck in the zone
  (``active_s`` is that share of the analysed seconds, see ``event_contract.progress.SiteActivityEvent``);
- ``covered_hours`` = sum(covered_s) / 3600: how long the camera really watched (a camera down half the day
  shows half the covered hours, so few working hours can be told from a blind camera);
- ``activity_index`` = the covered-time weighted mean of the windows' index;
- ``mean_present`` (covered-time weighted) and ``peak_present`` (the most at once) per group.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from central_ingest.projects.views import day_bounds
from central_ingest.sites.store import sites_by_key

Conn = psycopg.AsyncConnection[Any]
GROUPS = (("worker", "workers"), ("machine", "machines"), ("truck", "trucks"))
"""(contract group, column suffix) of the three activity groups."""


def _weighted(group: str) -> str:
    column = f"mean_{group}"
    return (
        f"sum({column} * covered_s) FILTER (WHERE {column} IS NOT NULL) / "
        f"nullif(sum(covered_s) FILTER (WHERE {column} IS NOT NULL), 0)"
    )


_DAYS = f"""
SELECT agent_id, source_id, zone_id, (start AT TIME ZONE %(tz)s)::date AS day, count(*), sum(frames),
       sum(active_s), sum(covered_s), sum(activity_index * covered_s) / nullif(sum(covered_s), 0),
       {", ".join(_weighted(column) for _, column in GROUPS)},
       {", ".join(f"max(peak_{column})" for _, column in GROUPS)}
FROM site_activity
WHERE project_id = %(project)s AND start >= %(start)s AND start < %(end)s
  AND time > %(start)s AND time <= %(end)s + interval '1 day'
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""


def _hours(seconds: float | None) -> float:
    return round((seconds or 0.0) / 3600, 3)


def _groups(values: tuple[Any, ...], digits: int | None) -> dict[str, Any]:
    return {
        group: (value if digits is None else round(value, digits))
        for (group, _), value in zip(GROUPS, values, strict=True)
        if value is not None
    }


async def activity_days(conn: Conn, project_id: str, first: dt.date, last: dt.date, timezone: str) -> dict[str, Any]:
    """Per camera, zone and local day in ``[first, last]``: working hours, coverage, activity index, presence."""
    start, end = day_bounds(first, last, timezone)
    cur = await conn.execute(_DAYS, {"tz": timezone, "project": project_id, "start": start, "end": end})
    found = await cur.fetchall()
    sites = await sites_by_key(conn, ((row[0], row[1]) for row in found))
    days = []
    for agent, source, zone, day, windows, frames, active, covered, index, *presence in found:
        site = sites.get((agent, source))
        days.append(
            {
                "agent_id": agent,
                "source_id": source,
                "camera_name": None if site is None else site["name"],
                "zone_id": zone,
                "date": day.isoformat(),
                "working_hours": _hours(active),
                "covered_hours": _hours(covered),
                "activity_index": round(index or 0.0, 3),
                "windows": windows,
                "frames": frames,
                "mean_present": _groups(tuple(presence[: len(GROUPS)]), 2),
                "peak_present": _groups(tuple(presence[len(GROUPS) :]), None),
            }
        )
    return {
        "project_id": project_id,
        "timezone": timezone,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "days": days,
    }
