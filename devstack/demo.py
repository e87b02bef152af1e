"""The demo behind ``./run demo``: synthetic cameras, the real stack, an agent, stored counts, alerts, police.

It renders (once, then cached) a synthetic traffic clip with exact ground truth and a junction clip
with rendered plates and a red phase (``devstack.plate_clip``), serves both in a loop from one real
RTSP server, starts the central ingest service on a private PostgreSQL + TimescaleDB (with the demo
alert rules, an MQTT ingest worker on the local mosquitto and a generated plate keyring) and an edge
agent that reads both streams: the counting camera, and the traffic-police camera (plates, a red-light
rule whose signal a simulated controller publishes over MQTT, evidence uploaded). A simulated
water-level station publishes over MQTT too. A construction site (``devstack.construction_site``) has two
cameras: one replays five generated weeks of the site in seconds (daily progress per work package against
reference images, timelapse keyframes), one loops the site as it stands (live view, hourly activity); its
approved plan is imported from a PMU's CSV through the API, and the site ends more than 10 points behind it,
so "chậm tiến độ 10%" opens. It creates a demo police user (TOTP) and a PMU user, prints the counts
stored in the database beside the ground truth, the open alerts, the violations and plate passes
stored and the project's planned vs actual progress, until Ctrl-C (or ``--duration``), then makes one
audited plate search through the API.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from devstack import construction_site
from devstack.apps import (
    API_READER,
    CentralService,
    CountKey,
    ManagedProcess,
    edge_config,
    provision_agent,
    run_central_cli,
    start_central,
    start_edge,
    write_edge_config,
    write_secret,
)
from devstack.construction_site import DemoSite
from devstack.demo_sensors import STATION_ID, SimulatedStations, demo_sensor_section
from devstack.errors import DevstackError
from devstack.plate_clip import PlateClip, render_plate_clip
from devstack.ports import LOCALHOST, accepts_connections, free_port
from devstack.scene import SceneParams, render_scene
from devstack.stack import DEFAULT_STATE_DIR, Stack, StackInfo
from devstack.traffic_site import (
    BrokerLogin,
    CentralApi,
    LampController,
    TrafficCounts,
    audit_head,
    ensure_police_user,
    read_password,
    red_light_runner,
    traffic_camera,
    traffic_counts,
    traffic_sections,
    write_password_file,
)
from edge_agent.preview.config import DEFAULT_PREVIEW_PORT

SITE_ZONE = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")

DEMO_RULES = Path(__file__).resolve().parent.parent / "configs" / "alert_rules.demo.yaml"
DEMO_BOUNDARIES = Path(__file__).resolve().parent.parent / "configs" / "boundaries.demo.geojson"
COMMUNE_OPERATOR = "op.phuhoi"
"""An operator scoped to one commune: the pages show them Phú Hội's cameras and alerts only."""
PHU_HOI = "Phường Phú Hội"
KIM_LONG = "Phường Kim Long"
AGENT_ID = "demo-agent"
CAMERA_ID = "cam-demo-01"
LINE_ID = "line-main"
TRAFFIC_CAMERA_ID = "cam-demo-junction"
POLICE_USER = "demo.police"
DEMO_CASE_NUMBER = "DEMO-01/2026"
DEMO_CASE_NOTE = "Tra cứu thử của bản demo: xe vượt đèn đỏ / demo search: the red-light runner"
TRAFFIC_MAX_FPS = 5.0
"""The junction camera is analysed at 5 frames/s: enough for its slow cars and their plates, and it leaves the
demo's two cores to the counting camera (its plate reads are dropped oldest-first when the worker is behind)."""


@dataclass(frozen=True)
class SceneTruth:
    """What the demo needs from a rendered scene's truth file."""

    video: Path
    duration_s: float
    line_id: str
    line: dict[str, Any]
    crossings: tuple[tuple[str, str], ...]
    """(vehicle_class, direction) of every crossing in one pass of the clip."""

    @classmethod
    def load(cls, video: Path, truth_path: Path) -> SceneTruth:
        doc = json.loads(truth_path.read_text(encoding="utf-8"))
        width, height = float(doc["width"]), float(doc["height"])
        start, end = doc["line"]["start"], doc["line"]["end"]
        line = {
            "id": LINE_ID,
            "start": [start[0] / width, start[1] / height],
            "end": [end[0] / width, end[1] / height],
            "anchor": doc["anchor"],
        }
        crossings = tuple((str(c["class"]), str(c["direction"])) for c in doc["crossings"])
        return cls(video, float(doc["frame_count"]) / float(doc["fps"]), LINE_ID, line, crossings)


class _StopRequestedError(Exception):
    """Raised from the signal handler so every ``finally`` runs on Ctrl-C."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError(signal.Signals(signum).name)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def truth_totals(truth: SceneTruth, line_id: str) -> dict[CountKey, int]:
    totals: dict[CountKey, int] = {}
    for vehicle_class, direction in truth.crossings:
        key = (line_id, vehicle_class, direction)
        totals[key] = totals.get(key, 0) + 1
    return totals


def format_table(stored: dict[CountKey, int], truth: dict[CountKey, int], passes: int) -> str:
    header = f"{'line':<10} {'class':<14} {'direction':<9} {'stored':>7} {'truth/pass':>10} {'truth x passes':>14}"
    rows = [header, "-" * len(header)]
    for key in sorted(set(stored) | set(truth)):
        line_id, vehicle_class, direction = key
        per_pass = truth.get(key, 0)
        rows.append(
            f"{line_id:<10} {vehicle_class:<14} {direction:<9} {stored.get(key, 0):>7} {per_pass:>10} "
            f"{per_pass * passes:>14}"
        )
    return "\n".join(rows)


@dataclass(frozen=True)
class DemoTraffic:
    """The traffic-police camera of the demo: its clip's truth and where its records are stored."""

    clip: PlateClip
    database_url: str
    police_password_file: Path
    police_totp_secret: str | None


def print_summary(
    central: CentralService,
    truth: SceneTruth,
    started: dt.datetime,
    elapsed_s: float,
    traffic: DemoTraffic,
    *,
    pmu: DemoPmu,
) -> None:
    line_id = truth.line_id
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    stored = central.totals(agent_id=AGENT_ID, source_id=CAMERA_ID, start=started.isoformat(), end=end.isoformat())
    passes = int(elapsed_s // truth.duration_s)
    print(
        f"\n[demo] {elapsed_s:5.0f} s running, {passes} full pass(es) of the {truth.duration_s:.0f} s clip. "
        "Stored counts (closed intervals) / Số lượt xe đã lưu:"
    )
    print(format_table(stored, truth_totals(truth, line_id), passes))
    print(format_alerts(central))
    counts = traffic_counts(traffic.database_url, AGENT_ID, TRAFFIC_CAMERA_ID, started)
    print(format_traffic(counts, traffic.clip, elapsed_s))
    print(construction_site.format_projects(CentralApi(central.url), pmu.token))
    sys.stdout.flush()


def format_traffic(counts: TrafficCounts, clip: PlateClip, elapsed_s: float) -> str:
    """Violations by type and plate passes stored for the junction camera, beside its clip's truth."""
    passes = int(elapsed_s // clip.duration_s)
    truth = {"red_light": sum(vehicle.runs_red for vehicle in clip.vehicles)}
    header = f"{'':<42} {'stored':>7} {'truth/pass':>10} {'truth x passes':>14}"
    lines = [
        f"[demo] Camera giao thông / traffic camera {TRAFFIC_CAMERA_ID}: {passes} full pass(es) of the "
        f"{clip.duration_s:.0f} s junction clip. Vi phạm và lượt xe đã lưu / violations and plate passes stored:",
        header,
        "-" * len(header),
    ]
    for kind in sorted(set(counts.violations) | set(truth)):
        per_pass = truth.get(kind, 0)
        label = f"vi phạm / violation {kind}"
        lines.append(f"{label:<42} {counts.violations.get(kind, 0):>7} {per_pass:>10} {per_pass * passes:>14}")
    per_pass = len(clip.vehicles)
    label = "lượt xe có biển số / plate passes"
    lines.append(f"{label:<42} {counts.plate_passes:>7} {per_pass:>10} {per_pass * passes:>14}")
    label = "ảnh bằng chứng / evidence images"
    lines.append(
        f"{label:<42} {counts.evidence_uploaded:>7}   uploaded, of {counts.evidence_referenced} distinct referenced"
    )
    return "\n".join(lines)


def format_alerts(central: CentralService) -> str:
    """Open alerts, Vietnamese message first."""
    alerts = central.alerts(status="open")
    if not alerts:
        return "[demo] Cảnh báo đang mở / open alerts: none"
    lines = [f"[demo] Cảnh báo đang mở / open alerts: {len(alerts)}"]
    lines += [f"  [{a['severity']}] {a['message_vi']} / {a['message_en']}" for a in alerts]
    return "\n".join(lines)


def _central_env(info: StackInfo) -> dict[str, str]:
    """The demo's central service: demo alert rules, and an MQTT ingest worker on the local broker."""
    return {
        # The demo serves plain HTTP on 127.0.0.1: session cookies without Secure, so any browser keeps them.
        "IOC_CENTRAL_ACCESS__COOKIE_SECURE": "false",
        "IOC_CENTRAL_ALERT_RULES_PATH": str(DEMO_RULES),
        # No tile server in the demo (the map needs none): illustrative boundaries drawn on a plain background.
        "IOC_CENTRAL_MAP_BOUNDARIES_PATH": str(DEMO_BOUNDARIES),
        "IOC_CENTRAL_SERVE_MQTT_WORKER": "true",
        "IOC_CENTRAL_MQTT_INGEST__HOST": info.mqtt_host,
        "IOC_CENTRAL_MQTT_INGEST__PORT": str(info.mqtt_port),
        "IOC_CENTRAL_MQTT_INGEST__USERNAME": info.mqtt_username,
        "IOC_CENTRAL_MQTT_INGEST__PASSWORD": info.mqtt_password,
    }


def run_demo(state_dir: Path, duration_s: float, interval_s: int, report_every_s: float) -> int:
    demo_dir = state_dir / "demo"
    print("[demo] rendering the synthetic camera clip (cached after the first run) ...", flush=True)
    truth = SceneTruth.load(*render_scene(SceneParams(), demo_dir / "scene"))
    print(f"[demo] clip: {truth.video} ({truth.duration_s:.0f} s, {len(truth.crossings)} line crossings per pass)")
    plates = render_plate_clip(demo_dir / "junction")
    print(
        f"[demo] junction clip: {plates.path} ({plates.duration_s:.0f} s, {len(plates.vehicles)} plates per pass, "
        f"red light runner {red_light_runner(plates).plate})"
    )
    site = construction_site.prepare_site(demo_dir / "site", dt.datetime.now(SITE_ZONE).date())
    print(
        f"[demo] construction site: {site.scenario.days} days replayed from {site.scenario.start} "
        f"({site.video}), plan {site.plan_csv}"
    )

    stack = Stack(state_dir / "stack")
    with ExitStack() as cleanup, _stop_on_signals():
        try:
            print("[demo] starting PostgreSQL+TimescaleDB, mosquitto and the RTSP server ...", flush=True)
            cleanup.callback(stack.stop)
            info = stack.start([truth.video, plates.path, site.live_clip], loop=True)
            camera_url = info.rtsp_urls[truth.video.stem]
            junction_url = info.rtsp_urls[plates.path.stem]
            site_live_url = info.rtsp_urls[site.live_clip.stem]
            token = provision_agent(info.postgres_dsn, AGENT_ID)
            token_file = write_secret(demo_dir / "agent.token", token)
            traffic = _police_user(info.postgres_dsn, demo_dir, plates)
            broker = BrokerLogin(info.mqtt_host, info.mqtt_port, info.mqtt_username, info.mqtt_password)

            central = start_central(info.postgres_dsn, demo_dir / "logs" / "central.log", env=_central_env(info))
            preview_port = (
                DEFAULT_PREVIEW_PORT if not accepts_connections(LOCALHOST, DEFAULT_PREVIEW_PORT) else free_port()
            )
            preview = f"http://{LOCALHOST}:{preview_port}"
            cleanup.callback(central.process.stop)
            pmu = _pmu_session(central, info.postgres_dsn, demo_dir, site, preview)
            config = edge_config(
                agent_id=AGENT_ID,
                central_url=central.url,
                token_file=token_file,
                camera_id=CAMERA_ID,
                camera_url=camera_url,
                lines=[truth.line],
                interval_s=interval_s,
                on_end="reconnect",
                preview_port=preview_port,
                state_dir=demo_dir / "agent-state",
                sensors=demo_sensor_section(info.mqtt_host, info.mqtt_port, info.mqtt_username, info.mqtt_password),
                extra_cameras=[
                    traffic_camera(
                        plates,
                        camera_id=TRAFFIC_CAMERA_ID,
                        camera_url=junction_url,
                        on_end="reconnect",
                        max_fps=TRAFFIC_MAX_FPS,
                    ),
                    *construction_site.site_cameras(site, site_live_url),
                ],
                sections=traffic_sections(broker, upload="all"),
            )
            config_path = write_edge_config(demo_dir / "edge.yaml", config)
            started = dt.datetime.now(dt.UTC)
            edge = start_edge(config_path, demo_dir / "logs" / "edge.log", status_file=demo_dir / "status.json")
            cleanup.callback(_stop_edge, edge)
            # A water-level station logger publishing to the site broker; the agent reads it like its cameras.
            station = SimulatedStations(info.mqtt_host, info.mqtt_port, info.mqtt_username, info.mqtt_password)
            station.start()
            cleanup.callback(station.stop)
            # The junction's signal controller, in step with the looping clip the agent sees (traffic_site.py).
            controller = LampController(broker, preview, TRAFFIC_CAMERA_ID)
            controller.start()
            cleanup.callback(controller.stop)

            central.reader_token()  # the read APIs need a session: make the demo's operator account now
            operator_password = _commune_operator(info.postgres_dsn, demo_dir)
            print(
                f"\n[demo] running. Camera (RTSP): {camera_url}\n"
                f"[demo] API docs: {central.url}/docs\n"
                f"[demo] counts API: {central.url}/api/v1/counts?group_by=vehicle_class,direction&bucket=1m\n"
                f"[demo] cảnh báo / alerts: {central.url}/api/v1/alerts   live: {central.url}/api/v1/alerts/stream "
                f"(a simulated station publishes to the site broker, the agent reads it; rules: {DEMO_RULES.name})\n"
                f"[demo]   API: đăng nhập / sign in first (POST /api/v1/auth/login, then Authorization: Bearer TOKEN) "
                f"as {API_READER}, mật khẩu / password in {central.workdir}/reader.pw\n"
                f"[demo] xem trực tiếp / live preview: {preview}/cameras/{CAMERA_ID}/preview.mjpg   "
                f"metrics: {preview}/metrics\n"
                f"[demo] edge config: {config_path}   logs: {demo_dir / 'logs'}\n"
                f"[demo] counts are stored per {interval_s} s interval; press Ctrl-C to stop.",
                flush=True,
            )
            print(format_pages(central, operator_password), flush=True)
            print(format_police_access(central, traffic, junction_url, preview), flush=True)
            print(format_pmu_access(central, pmu, preview), flush=True)
            elapsed_s = _watch(
                edge,
                central,
                truth,
                traffic,
                pmu,
                started=started,
                duration_s=duration_s,
                report_every_s=report_every_s,
            )
            _stop_edge(edge)  # flushes the open interval to central before the final summary
            print_summary(central, truth, started, elapsed_s, traffic, pmu=pmu)
            audited_search(central, traffic, started)
        except _StopRequestedError as stop:
            print(f"\n[demo] {stop} received during start-up: stopping ...", flush=True)
    print("[demo] stopped: agent, central service and stack are down.")
    return 0


def _police_user(database_url: str, demo_dir: Path, clip: PlateClip) -> DemoTraffic:
    """The demo police user (created, or on a later run given a new TOTP secret), its password in a 0600 file."""
    password_file = demo_dir / "police.password"
    if not password_file.exists():
        write_password_file(password_file)
    secret = ensure_police_user(database_url, POLICE_USER, password_file)
    return DemoTraffic(clip, database_url, password_file, secret)


@dataclass(frozen=True)
class DemoPmu:
    """The demo project management unit's user and its API session."""

    password_file: Path
    token: str
    project_id: str
    plan_version: int


def _pmu_session(central: CentralService, database_url: str, demo_dir: Path, site: DemoSite, preview: str) -> DemoPmu:
    """Create the PMU user, sign in, approve the site's plan from its CSV and register the site cameras."""
    password_file = demo_dir / "pmu.password"
    if not password_file.exists():
        write_password_file(password_file)
    ensure_police_user(database_url, construction_site.PMU_USER, password_file, role="project_unit")
    token = CentralApi(central.url).login(construction_site.PMU_USER, read_password(password_file))
    version = construction_site.import_plan(CentralApi(central.url), token, site)
    entries = [*demo_site_entries(preview), *construction_site.site_entries(AGENT_ID, preview, site.project_id)]
    sites = construction_site.write_sites_file(demo_dir / "site" / "sites.yaml", entries)
    run_central_cli(database_url, "cameras", "import", str(sites), "--prune")
    return DemoPmu(password_file, token, site.project_id, version)


def demo_site_entries(preview: str) -> list[dict[str, object]]:
    """The registry entries of the demo's counting and junction cameras and its water-level station: where they
    stand (the map, the users' area scope) and the cameras' live view through central."""

    def site(  # noqa: PLR0917 (a table of literal rows below)
        source_id: str, name: str, lat: float, lon: float, commune: str, kind: str = "camera"
    ) -> dict[str, object]:
        entry: dict[str, object] = {
            "id": source_id,
            "agent_id": AGENT_ID,
            "kind": kind,
            "name": name,
            "lat": lat,
            "lon": lon,
            "area": commune,
            "province": construction_site.DEMO_PROVINCE,
            "commune": commune,
        }
        if kind == "camera":
            entry["preview_url"] = f"{preview}/cameras/{source_id}/preview.mjpg"
        return entry

    return [
        site(CAMERA_ID, "Cầu Trường Tiền - đầu Lê Lợi", 16.4685, 107.5857, PHU_HOI),
        site(TRAFFIC_CAMERA_ID, "Ngã tư Hùng Vương - Bà Triệu", 16.4622, 107.5963, PHU_HOI),
        site(STATION_ID, "Trạm mực nước Kim Long - sông Hương", 16.4641, 107.5545, KIM_LONG, kind="sensor"),
    ]


def _commune_operator(database_url: str, demo_dir: Path) -> Path:
    """The demo operator of one commune (created, or its password renewed), scoped to Phú Hội."""
    password_file = demo_dir / "operator.password"
    if not password_file.exists():
        write_password_file(password_file)
    ensure_police_user(database_url, COMMUNE_OPERATOR, password_file, role="operator")
    area = f"{construction_site.DEMO_PROVINCE}/{PHU_HOI}"
    run_central_cli(database_url, "user", "set-areas", COMMUNE_OPERATOR, "--area", area)
    return password_file


def format_pages(central: CentralService, operator_password: Path) -> str:
    """Where the operators' pages are and who can sign in to them."""
    pages = "  ".join(
        f"{name}: {central.url}{path}"
        for name, path in (
            ("tổng quan / overview", "/"),
            ("bản đồ / map", "/map"),
            ("trực tiếp / live", "/live"),
            ("cảnh báo / alerts", "/alerts"),
            ("giao thông / traffic", "/traffic"),
            ("cảm biến / sensors", "/sensors"),
            ("thiết bị / health", "/health"),
        )
    )
    return (
        f"[demo] trang vận hành / operator pages: {pages}\n"
        f"[demo]   toàn tỉnh / whole province: {API_READER}, mật khẩu / password in {central.workdir}/reader.pw\n"
        f"[demo]   một phường / one commune ({PHU_HOI}): {COMMUNE_OPERATOR}, "
        f"mật khẩu / password in {operator_password}"
    )


def format_pmu_access(central: CentralService, pmu: DemoPmu, preview: str) -> str:
    return (
        f"[demo] công trường / construction site: plan version {pmu.plan_version} of project {pmu.project_id} "
        f"imported from CSV; live: {preview}/cameras/{construction_site.LIVE_CAMERA_ID}/preview.mjpg\n"
        f"[demo] tiến độ dự án / project progress page: {central.url}/projects\n"
        f"[demo]   người dùng / username: {construction_site.PMU_USER}   mật khẩu / password: in {pmu.password_file}"
    )


def format_police_access(central: CentralService, traffic: DemoTraffic, junction_url: str, preview: str) -> str:
    return (
        f"[demo] camera giao thông / traffic camera (RTSP): {junction_url}   "
        f"xem trực tiếp / preview: {preview}/cameras/{TRAFFIC_CAMERA_ID}/preview.mjpg\n"
        f"[demo] tra cứu biển số / police plate search: {central.url}/police\n"
        f"[demo]   người dùng / username: {POLICE_USER}   mật khẩu / password: in {traffic.police_password_file}\n"
        f"[demo]   mã TOTP / TOTP secret (add to an authenticator app): {traffic.police_totp_secret}"
    )


def audited_search(central: CentralService, traffic: DemoTraffic, started: dt.datetime) -> None:
    """One police search through the API, as the demo police user: the red-light runner's plate since start."""
    plate = red_light_runner(traffic.clip).plate
    api = CentralApi(central.url)
    token = api.login(POLICE_USER, read_password(traffic.police_password_file), traffic.police_totp_secret)
    answer = api.search(
        token,
        plate=plate,
        since=started - dt.timedelta(minutes=1),
        until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
        case_number=DEMO_CASE_NUMBER,
        note=DEMO_CASE_NOTE,
    )
    if answer.status != 200:
        raise DevstackError(f"the demo plate search failed: {answer.status} {answer.body[:300]!r}")
    found = answer.json()
    print(
        f"[demo] tra cứu có kiểm toán / audited search (API, as {POLICE_USER}, case {DEMO_CASE_NUMBER}): "
        f"plate {plate}: {len(found['records'])} pass(es), audit record {found['search_id']}\n"
        f"[demo] chuỗi kiểm toán / audit chain verified, head {audit_head(traffic.database_url)}",
        flush=True,
    )


def _watch(
    edge: ManagedProcess,
    central: CentralService,
    truth: SceneTruth,
    traffic: DemoTraffic,
    pmu: DemoPmu,
    *,
    started: dt.datetime,
    duration_s: float,
    report_every_s: float,
) -> float:
    """Print summaries until the duration passes or Ctrl-C; fail if a process dies. Returns seconds watched."""
    t0 = time.monotonic()
    next_report = t0 + report_every_s
    try:
        while duration_s <= 0 or time.monotonic() - t0 < duration_s:
            for process in (edge, central.process):
                if not process.running():
                    raise DevstackError(f"{process.name} stopped unexpectedly:\n{process.log_tail()}")
            if time.monotonic() >= next_report:
                print_summary(central, truth, started, time.monotonic() - t0, traffic, pmu=pmu)
                next_report += report_every_s
            time.sleep(0.5)
        print("\n[demo] duration reached: stopping ...", flush=True)
    except _StopRequestedError as stop:
        print(f"\n[demo] {stop} received: stopping cleanly ...", flush=True)
    return time.monotonic() - t0


def _stop_edge(edge: ManagedProcess) -> None:
    if edge.running():
        edge.stop(first_signal=signal.SIGINT, timeout_s=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run demo", description=__doc__)
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    parser.add_argument("--interval-s", type=int, default=10, help="count interval of the demo agent (default 10)")
    parser.add_argument("--report-every", type=float, default=15, help="seconds between printed summaries")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR.parent, help="where state and logs go")
    args = parser.parse_args(argv)
    try:
        return run_demo(args.state_dir.resolve(), args.duration, args.interval_s, args.report_every)
    except DevstackError as error:
        print(f"[demo] error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
