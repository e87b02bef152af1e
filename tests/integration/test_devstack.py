"""The dev stack runs the real services: TimescaleDB, an authenticated mosquitto, a GStreamer RTSP server."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psycopg
import pytest
from paho.mqtt.client import Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devstack.mosquitto import MosquittoBroker
from devstack.postgres import PostgresCluster
from devstack.rtsp import RtspServer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
FRAMES = 30
WIDTH, HEIGHT = 128, 96


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small H.264 mp4 whose frame i is uniformly grey at level 40 + 6 i, so a reader can tell which frame it got."""
    path = tmp_path_factory.mktemp("video") / "numbered.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "10", "bf": "0"}
        for index in range(FRAMES):
            pixels = np.full((HEIGHT, WIDTH, 3), 40 + 6 * index, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        _REFERENCE_LEVELS[:] = [round(float(f.to_ndarray(format="gray").mean())) for f in container.decode(video=0)]
    assert len(_REFERENCE_LEVELS) == FRAMES
    return path


def _read_levels(url: str, limit: int) -> list[int]:
    """Grey level of each decoded frame, up to `limit` frames."""
    levels: list[int] = []
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=5) as container:
        for frame in container.decode(video=0):
            levels.append(round(float(frame.to_ndarray(format="gray").mean())))
            if len(levels) >= limit:
                break
    return levels


def _frame_index(level: int) -> int:
    """The frame whose grey level is nearest (the codec's range conversion shifts levels a little)."""
    return min(range(FRAMES), key=lambda index: abs(_REFERENCE_LEVELS[index] - level))


_REFERENCE_LEVELS: list[int] = []


# --- PostgreSQL + TimescaleDB -------------------------------------------------------------------------


def test_cluster_runs_timescaledb_hypertables(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as connection:
        license_name = connection.execute("SELECT current_setting('timescaledb.license')").fetchone()
        assert license_name is not None
        assert license_name[0] in {"apache", "timescale"}
        connection.execute("CREATE TABLE readings (time timestamptz NOT NULL, value double precision)")
        connection.execute("SELECT create_hypertable('readings', 'time')")
        connection.execute(
            "INSERT INTO readings SELECT t, 1.0 FROM generate_series("
            "'2025-01-01'::timestamptz, '2025-01-20'::timestamptz, interval '1 hour') AS t"
        )
        chunks = connection.execute("SELECT count(*) FROM show_chunks('readings')").fetchone()
        assert chunks is not None
        assert chunks[0] >= 2


def test_databases_are_created_and_dropped(pg_cluster: PostgresCluster) -> None:
    dsn = pg_cluster.create_database("devstack_scratch")
    assert pg_cluster.create_database("devstack_scratch") == dsn  # idempotent
    with psycopg.connect(dsn) as connection:
        assert connection.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    pg_cluster.drop_database("devstack_scratch")
    with psycopg.connect(pg_cluster.dsn()) as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = 'devstack_scratch'").fetchone() is None
    with pytest.raises(ValueError, match="database name"):
        pg_cluster.create_database('bad"name')


def test_cluster_start_reuses_the_running_server(pg_cluster: PostgresCluster) -> None:
    port = pg_cluster.port
    pg_cluster.start()
    assert pg_cluster.is_running()
    assert pg_cluster.port == port


# --- mosquitto ----------------------------------------------------------------------------------------


def _connect(broker: MosquittoBroker, password: str) -> tuple[Client, queue.Queue[ReasonCode]]:
    client = Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-{os.getpid()}-{password[:4]}")
    client.username_pw_set(broker.username, password)
    outcomes: queue.Queue[ReasonCode] = queue.Queue()

    def on_connect(
        _client: Client, _data: object, _flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        outcomes.put(reason)

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    return client, outcomes


def test_mosquitto_rejects_a_wrong_password(mqtt_broker: MosquittoBroker) -> None:
    client, outcomes = _connect(mqtt_broker, "not-the-password")
    try:
        assert outcomes.get(timeout=10).is_failure
    finally:
        client.loop_stop()
        client.disconnect()


def test_mosquitto_round_trip_with_the_generated_credentials(mqtt_broker: MosquittoBroker) -> None:
    client, outcomes = _connect(mqtt_broker, mqtt_broker.password)
    received: queue.Queue[MQTTMessage] = queue.Queue()
    client.on_message = lambda _client, _data, message: received.put(message)
    try:
        assert not outcomes.get(timeout=10).is_failure
        result, _mid = client.subscribe("ioc/test/devstack", qos=1)
        assert result == MQTTErrorCode.MQTT_ERR_SUCCESS
        # Publishing until the subscription is active on the broker avoids a race without sleeping blindly.
        message = None
        for _attempt in range(20):
            client.publish("ioc/test/devstack", b"xin chao", qos=1)
            try:
                message = received.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        assert message is not None
        assert message.payload == b"xin chao"
    finally:
        client.loop_stop()
        client.disconnect()


# --- RTSP -----------------------------------------------------------------------------------------------


def test_rtsp_serves_the_file_from_its_first_frame_to_its_end(
    rtsp_server_factory: Callable[..., str], numbered_video: Path
) -> None:
    url = rtsp_server_factory(numbered_video)
    for _client in range(2):  # every client gets its own media, from frame 0
        levels = _read_levels(url, limit=FRAMES + 10)
        indexes = [_frame_index(level) for level in levels]
        assert indexes[0] == 0
        assert indexes == sorted(indexes)
        assert len(levels) >= FRAMES - 2
        assert indexes[-1] == FRAMES - 1


def test_rtsp_loop_repeats_the_file(rtsp_server_factory: Callable[..., str], numbered_video: Path) -> None:
    url = rtsp_server_factory(numbered_video, loop=True)
    indexes = [_frame_index(level) for level in _read_levels(url, limit=FRAMES + 10)]
    assert indexes[0] == 0
    assert len(indexes) == FRAMES + 10
    assert indexes[FRAMES] == 0  # the second repetition starts over


def test_killing_the_rtsp_server_breaks_the_reader_and_a_restart_serves_again(
    tmp_path: Path, numbered_video: Path
) -> None:
    server = RtspServer(tmp_path / "state", {"cam": numbered_video}, loop=True)
    server.start()
    try:
        url = server.url("cam")
        container = av.open(url, options={"rtsp_transport": "tcp"}, timeout=5)
        frames_after_kill = 0
        try:
            frames = container.decode(video=0)
            next(frames)
            server.kill()
            assert not server.is_running()
            # The looping server would stream forever: the reader must end (error or end of stream).
            for _frame in frames:
                frames_after_kill += 1
                if frames_after_kill >= 250:
                    break
        except av.FFmpegError:
            pass
        finally:
            container.close()
        assert frames_after_kill < 250
        server.start()
        assert server.url("cam") == url  # same port: clients reconnect to the same URL
        assert _frame_index(_read_levels(url, limit=1)[0]) == 0
    finally:
        server.stop()
    assert not server.is_running()


# --- the CLI --------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_start_status_stop_round_trip(tmp_path: Path, numbered_video: Path) -> None:
    state_dir = tmp_path / "stack"
    try:
        started = _cli("start", "--state-dir", str(state_dir), "--fast-unsafe", "--video", str(numbered_video))
        assert started.returncode == 0, started.stderr
        info = json.loads(started.stdout)
        assert info == json.loads((state_dir / "stack.json").read_text())
        assert (state_dir / "stack.json").stat().st_mode & 0o077 == 0  # it holds credentials
        with psycopg.connect(info["postgres_dsn"]) as connection:
            assert connection.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        assert _frame_index(_read_levels(info["rtsp_urls"]["numbered"], limit=1)[0]) == 0

        status = _cli("status", "--state-dir", str(state_dir))
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) | {"info": None} == {
            "state_dir": str(state_dir.resolve()),
            "postgres": True,
            "mqtt": True,
            "rtsp": True,
            "info": None,
        }

        stopped = _cli("stop", "--state-dir", str(state_dir))
        assert stopped.returncode == 0, stopped.stderr
        after = _cli("status", "--state-dir", str(state_dir))
        assert after.returncode == 3
        assert json.loads(after.stdout)["postgres"] is False
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(info["postgres_dsn"], connect_timeout=2)
    finally:
        _cli("stop", "--state-dir", str(state_dir), "--purge")
    assert not state_dir.exists()


def test_cli_stop_cleans_up_after_the_services_crashed(tmp_path: Path, numbered_video: Path) -> None:
    state_dir = tmp_path / "stack"
    try:
        started = _cli("start", "--state-dir", str(state_dir), "--fast-unsafe", "--video", str(numbered_video))
        assert started.returncode == 0, started.stderr
        postmaster_pid = int((PostgresCluster(state_dir).data_dir / "postmaster.pid").read_text().split()[0])
        pids = [postmaster_pid]
        for pid_file in ("mosquitto/mosquitto.pid.json", "rtsp/server.pid.json"):
            pids.append(json.loads((state_dir / pid_file).read_text())["pid"])
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

        stopped = _cli("stop", "--state-dir", str(state_dir))
        assert stopped.returncode == 0, stopped.stderr
        status = json.loads(_cli("status", "--state-dir", str(state_dir)).stdout)
        assert [status["postgres"], status["mqtt"], status["rtsp"]] == [False, False, False]

        restarted = _cli("start", "--state-dir", str(state_dir), "--fast-unsafe")  # over the stale pid files
        assert restarted.returncode == 0, restarted.stderr
        with psycopg.connect(json.loads(restarted.stdout)["postgres_dsn"]) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        _cli("stop", "--state-dir", str(state_dir), "--purge")
