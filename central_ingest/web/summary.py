"""``GET /``: a small server-rendered summary, Vietnamese first with English second.

No external assets (the centre's network may have no internet). Totals cover the
24 h up to the latest stored interval, so a site whose data stopped still shows
its last day rather than an empty table.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from central_ingest.query.params import CountFilters, TimeRange
from central_ingest.state import AppState, get_app_state
from central_ingest.store.queries import LatestInterval, count_totals, latest_interval

router = APIRouter()

WINDOW = dt.timedelta(hours=24)
# Vietnam keeps UTC+7 all year (no daylight saving), so a fixed offset needs no tz database.
VIETNAM_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")

CLASS_LABELS = {
    "motorbike": "Xe máy / Motorbike",
    "bicycle": "Xe đạp / Bicycle",
    "car": "Ô tô con / Car",
    "van": "Xe van / Van",
    "bus": "Xe buýt / Bus",
    "truck": "Xe tải / Truck",
    "three_wheeler": "Xe ba bánh / Three-wheeler",
    "other_vehicle": "Phương tiện khác / Other vehicle",
}
DIRECTION_LABELS = {"in": "Vào / In", "out": "Ra / Out"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a1a1a; }
table { border-collapse: collapse; margin-top: 1rem; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.7rem; text-align: left; }
td.count { text-align: right; font-variant-numeric: tabular-nums; }
.en { color: #555; font-weight: normal; }
"""


def _coverage(row: dict[str, Any]) -> str:
    """Share of the line's intervals really analysed; unknown for schema 1.0 agents."""
    coverage = row.get("coverage")
    if coverage is None:
        return "không rõ / unknown"
    downtime = row.get("downtime_s") or 0.0
    down = f" (mất tín hiệu / down {downtime / 60:.0f} min)" if downtime >= 60 else ""
    return f"{100 * float(coverage):.0f}%{down}"


def _when(value: dt.datetime) -> str:
    return value.astimezone(VIETNAM_TIME).strftime("%Y-%m-%d %H:%M:%S (UTC+7)")


def summary_window(latest: LatestInterval | None) -> TimeRange | None:
    """The 24 h ending with the latest stored interval; None when nothing is stored."""
    if latest is None:
        return None
    return TimeRange(start=latest.end - WINDOW, end=latest.end)


def render_summary(totals: list[dict[str, Any]], latest: LatestInterval | None, window: TimeRange | None) -> str:
    """The whole page; every value from the database is HTML-escaped."""
    if latest is None or window is None:
        latest_html = "<p>Chưa có dữ liệu đếm nào. <span class='en'>/ No count data stored yet.</span></p>"
    else:
        latest_html = (
            f"<p>Khoảng đếm mới nhất <span class='en'>/ Latest stored interval</span>: "
            f"<strong>{escape(_when(latest.start))}</strong> → {escape(_when(latest.end))} "
            f"({escape(latest.source_id)} / {escape(latest.line_id)})</p>"
            f"<p>Tổng trong 24 giờ đến khoảng mới nhất <span class='en'>/ Totals over the 24 h up to it</span>: "
            f"{escape(_when(window.start))} → {escape(_when(window.end))}</p>"
        )
    rows = "\n".join(
        "<tr>"
        f"<td>{escape(str(row['agent_id']))}</td><td>{escape(str(row['source_id']))}</td>"
        f"<td>{escape(str(row['line_id']))}</td>"
        f"<td>{escape(CLASS_LABELS.get(str(row['vehicle_class']), str(row['vehicle_class'] or '—')))}</td>"
        f"<td>{escape(DIRECTION_LABELS.get(str(row['direction']), str(row['direction'] or '—')))}</td>"
        f"<td class='count'>{int(row['count'])}</td>"
        f"<td class='count'>{escape(_coverage(row))}</td>"
        "</tr>"
        for row in totals
    )
    table = (
        "<table><thead><tr>"
        "<th>Thiết bị <span class='en'>/ Agent</span></th><th>Camera</th>"
        "<th>Vạch đếm <span class='en'>/ Line</span></th><th>Loại xe <span class='en'>/ Class</span></th>"
        "<th>Hướng <span class='en'>/ Direction</span></th><th>Số lượt <span class='en'>/ Count</span></th>"
        "<th>Độ phủ phân tích <span class='en'>/ Coverage</span></th>"
        f"</tr></thead><tbody>\n{rows}\n</tbody></table>"
        if totals
        else "<p>Không có lượt xe nào trong khoảng này. <span class='en'>/ No crossings in this range.</span></p>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='vi'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Tổng lượt xe qua vạch đếm / Vehicle counts by line</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Tổng lượt xe qua vạch đếm <span class='en'>/ Vehicle counts by line</span></h1>"
        f"{latest_html}{table}"
        "<p><a href='/docs'>API</a></p></body></html>\n"
    )


@router.get("/", response_class=HTMLResponse, summary="Summary page (Vietnamese / English)")
async def summary_page(app: Annotated[AppState, Depends(get_app_state)]) -> HTMLResponse:
    async with app.pool.connection() as conn:
        latest = await latest_interval(conn)
        window = summary_window(latest)
        totals = await count_totals(conn, window, CountFilters()) if window is not None else []
    return HTMLResponse(render_summary(totals, latest, window))
