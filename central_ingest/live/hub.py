"""The live hub: one agent connection per camera, fanned out to every viewer of that camera.

``LiveHub.join`` gives a viewer its ``Viewer`` mailbox on the camera's ``CameraChannel``, starting the
channel's upstream task on first use. The task reads the agent's record stream (``GET .../live``,
``ioc_common.live_records``), finds record boundaries and hands each record's exact bytes to every viewer:
nothing is re-encoded or rewritten. Each viewer holds at most ``viewer_queue_records`` records and drops the
oldest when it falls behind (counted per camera), so a slow browser shows the newest picture a little less
often instead of lagging further and further. A viewer joining a running channel gets its newest picture at
once. Status changes (connecting, live, stalled, down) go to viewers
as a latest-value slot beside the records.

A failed or ended upstream is reconnected with exponential backoff (full jitter, ceiling); after
``down_after_failures`` failures in a row viewers are told the camera is down and retries slow to
``down_retry_s``, for as long as someone watches. A connection counts as working (the failures and the
backoff start again from zero) only once a picture record came, or once it stayed up for ``stall_after_s``:
an agent that answers, sends its opening keepalive and drops the stream is a failure like a refused
connect, or it would be reconnected at the backoff's base forever and never reported down.
``idle_close_s`` after the last viewer left, the upstream is closed. The numbers of channels and viewers are
bounded; a refused viewer is counted, never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from central_ingest.live.settings import LiveSettings
from ioc_common.backoff import Backoff, retry_after_s
from ioc_common.live_records import CONTENT_TYPE, LiveRecord, LiveRecordError, RecordDecoder

log = logging.getLogger(__name__)

CameraKey = tuple[str, str]
"""(agent_id, camera_id)."""

LiveState = Literal["connecting", "live", "stalled", "down"]

Message = str | bytes
"""What a viewer is sent: a status (text JSON) or one edge record (binary)."""

STATE_TEXT: dict[LiveState, tuple[str, str]] = {
    "connecting": ("Đang kết nối tới camera", "Connecting to the camera"),
    "live": ("Đang phát trực tiếp", "Live"),
    "stalled": ("Camera không gửi hình mới", "The camera sends no new pictures"),
    "down": ("Không kết nối được tới camera, đang thử lại", "Cannot reach the camera; retrying"),
}


class LiveCapacityError(Exception):
    """A viewer refused because a bound (upstreams, viewers) is reached; ``message`` is bilingual."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what
        self.message = message


class UpstreamError(Exception):
    """The agent answered, but not with a live stream (HTTP status, content type) or ended it."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class CameraStats:
    """Counters of one camera since the service started (kept after its upstream closed)."""

    agent_id: str
    camera_id: str
    state: str = "idle"
    viewers: int = 0
    frames_relayed: int = 0
    """Picture records received from the agent and handed to the viewers."""
    keepalives_relayed: int = 0
    bytes_received: int = 0
    dropped: int = 0
    """Records a slow viewer lost (its queue was full): drop-oldest."""
    connects: int = 0
    reconnects: int = 0
    """Upstream connections that failed or ended and were retried."""
    bad_streams: int = 0
    """Upstream streams dropped for bad framing (``LiveRecordError``)."""
    last_error: str = ""


class Viewer:
    """One viewer's mailbox: a bounded queue of records (drop-oldest) and the latest status."""

    def __init__(self, capacity: int) -> None:
        self._records: deque[bytes] = deque()
        self._capacity = capacity
        self._status: str | None = None
        self._wake = asyncio.Event()

    def put_record(self, raw: bytes) -> bool:
        """Queue one record; True when the oldest queued one was dropped to make room."""
        dropped = False
        if len(self._records) >= self._capacity:
            self._records.popleft()
            dropped = True
        self._records.append(raw)
        self._wake.set()
        return dropped

    def put_status(self, text: str) -> None:
        self._status = text  # latest value: an older status is of no use
        self._wake.set()

    async def get(self, timeout_s: float) -> Message | None:
        """The next message (a pending status first), or None when nothing came within ``timeout_s``."""
        if self._status is None and not self._records:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout_s)
        if self._status is not None:
            status, self._status = self._status, None
            return status
        if self._records:
            return self._records.popleft()
        return None


class CameraChannel:
    """One camera's upstream and its viewers."""

    def __init__(self, hub: LiveHub, key: CameraKey, url: str, stats: CameraStats) -> None:
        self._hub = hub
        self.key = key
        self.url = url
        self.stats = stats
        self.viewers: set[Viewer] = set()
        self.state: LiveState = "connecting"
        self._detail_en = ""
        self._last_frame: bytes | None = None
        """The newest picture record: a viewer who joins gets it at once instead of waiting for the next frame."""
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._backoff = Backoff(hub.settings.reconnect_backoff, random.Random())  # noqa: S311 - jitter only
        self._failures = 0

    def status_text(self) -> str:
        detail_vi, detail_en = STATE_TEXT[self.state]
        if self._detail_en:
            detail_en = f"{detail_en} ({self._detail_en})"
        return json.dumps(
            {"type": "status", "state": self.state, "detail_vi": detail_vi, "detail_en": detail_en},
            ensure_ascii=False,
        )

    def add(self, viewer: Viewer) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.viewers.add(viewer)
        self.stats.viewers = len(self.viewers)
        viewer.put_status(self.status_text())
        if self._last_frame is not None and self.state in ("live", "stalled"):
            viewer.put_record(self._last_frame)
        if self._task is None or self._task.done():
            name = f"live-upstream-{self.key[0]}-{self.key[1]}"
            self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    def remove(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        self.stats.viewers = len(self.viewers)
        if not self.viewers and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(self._hub.settings.idle_close_s, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle = None
        if not self.viewers:
            self._hub.forget(self)
            if self._task is not None:
                self._task.cancel()

    async def aclose(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.stats.state = "idle"

    def _set_state(self, state: LiveState, detail_en: str = "") -> None:
        if state == self.state and detail_en == self._detail_en:
            return
        self.state, self._detail_en = state, detail_en
        self.stats.state = state
        text = self.status_text()
        for viewer in self.viewers:
            viewer.put_status(text)

    async def _run(self) -> None:
        settings = self._hub.settings
        self._set_state("connecting" if self._failures < settings.down_after_failures else "down")
        while True:
            retry_after = 0.0
            try:
                await self._relay_once()
            except asyncio.CancelledError:
                raise
            except UpstreamError as error:
                retry_after = error.retry_after
                self._failed(str(error))
            except LiveRecordError as error:
                self.stats.bad_streams += 1
                self._failed(f"bad record stream: {error}")
            except httpx.HTTPError as error:
                self._failed(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
            except Exception as error:  # a bug must not end the relay for every viewer; it is logged and retried
                log.exception("live %s/%s: relay failed", *self.key)
                self._failed(f"internal error: {type(error).__name__}")
            if self._failures >= settings.down_after_failures:
                delay = settings.down_retry_s
            else:
                delay = self._backoff.next_delay(retry_after)
            await asyncio.sleep(delay)

    def _failed(self, reason: str) -> None:
        settings = self._hub.settings
        self._failures += 1
        self.stats.reconnects += 1
        self.stats.last_error = reason[:300]
        log.warning("live %s/%s: upstream %s: %s (failure %d)", *self.key, self.url, reason, self._failures)
        if self._failures >= settings.down_after_failures:
            self._set_state("down", reason[:120])
        else:
            self._set_state("connecting", reason[:120])

    async def _relay_once(self) -> None:
        settings = self._hub.settings
        loop = asyncio.get_running_loop()
        async with self._hub.client().stream("GET", self.url, headers={"Accept": CONTENT_TYPE}) as response:
            if response.status_code != 200:
                raise UpstreamError(
                    f"agent answered HTTP {response.status_code}", retry_after_s(response.headers.get("Retry-After"))
                )
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != CONTENT_TYPE:
                raise UpstreamError(f"agent answered {content_type or 'no content type'!r}, not {CONTENT_TYPE}")
            self.stats.connects += 1
            decoder = RecordDecoder(max_header_bytes=settings.max_header_bytes, max_jpeg_bytes=settings.max_jpeg_bytes)
            connected_at = last_frame = loop.time()
            working = False
            async for chunk in response.aiter_raw():
                self.stats.bytes_received += len(chunk)
                for record in decoder.feed(chunk):
                    now = loop.time()
                    if record.keepalive:
                        if now - last_frame >= settings.stall_after_s:
                            self._set_state("stalled")
                    else:
                        last_frame = now
                        self._set_state("live")
                    if not working and (not record.keepalive or now - connected_at >= settings.stall_after_s):
                        # Not on the first keepalive: the agent sends one as soon as it answers (see module doc).
                        working = True
                        self._failures = 0
                        self._backoff.reset()
                    self._broadcast(record)
            decoder.finish()
            raise UpstreamError("the agent ended the stream")

    def _broadcast(self, record: LiveRecord) -> None:
        if record.keepalive:
            self.stats.keepalives_relayed += 1
        else:
            self.stats.frames_relayed += 1
            self._last_frame = record.raw
        for viewer in self.viewers:
            if viewer.put_record(record.raw):
                self.stats.dropped += 1


class LiveHub:
    """Every camera channel of one service; create it on the event loop that serves the viewers."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self._channels: dict[CameraKey, CameraChannel] = {}
        self._stats: dict[CameraKey, CameraStats] = {}
        self._client: httpx.AsyncClient | None = None
        self.viewers = 0
        self.refused: Counter[str] = Counter()
        """Viewers refused, by reason: origin, unauthenticated, forbidden, not_found, upstreams, viewers."""
        self.revoked: Counter[str] = Counter()
        """Open viewers closed by a session recheck, by reason: unauthenticated, forbidden, not_found."""
        self.recheck_failures = 0
        """Session rechecks the database could not answer (the viewer kept watching)."""

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = self.settings.connect_timeout_s
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, read=self.settings.read_timeout_s),
                limits=httpx.Limits(max_connections=self.settings.max_upstreams, max_keepalive_connections=0),
                trust_env=False,  # agents sit on the province's network: no proxy from the environment
                follow_redirects=False,
            )
        return self._client

    def join(self, key: CameraKey, url: str) -> tuple[CameraChannel, Viewer]:
        """A new viewer of camera ``key`` (upstream ``url``); ``LiveCapacityError`` when a bound is reached."""
        settings = self.settings
        if self.viewers >= settings.max_viewers:
            self.refused["viewers"] += 1
            raise LiveCapacityError(
                "viewers", f"Quá nhiều người xem ({settings.max_viewers}) / too many viewers, try again later"
            )
        channel = self._channels.get(key)
        if channel is None:
            if len(self._channels) >= settings.max_upstreams:
                self.refused["upstreams"] += 1
                raise LiveCapacityError(
                    "upstreams", f"Quá nhiều camera ({settings.max_upstreams}) / too many cameras open, try later"
                )
            stats = self._stats.setdefault(key, CameraStats(*key))
            channel = self._channels[key] = CameraChannel(self, key, url, stats)
        elif len(channel.viewers) >= settings.max_viewers_per_camera:
            self.refused["viewers"] += 1
            raise LiveCapacityError(
                "viewers", f"Quá nhiều người xem camera này ({settings.max_viewers_per_camera}) / too many viewers"
            )
        channel.url = url  # the registry may have changed; the next connect uses the new address
        viewer = Viewer(settings.viewer_queue_records)
        channel.add(viewer)
        self.viewers += 1
        return channel, viewer

    def leave(self, channel: CameraChannel, viewer: Viewer) -> None:
        self.viewers -= 1
        channel.remove(viewer)

    def forget(self, channel: CameraChannel) -> None:
        """Called by an idle channel closing itself."""
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]
        channel.stats.state = "idle"

    def stats_document(self, visible: frozenset[CameraKey] | None = None) -> dict[str, Any]:
        """The counters; ``cameras`` only those in ``visible`` (None: all). The totals are the whole hub's."""
        return {
            "upstreams": len(self._channels),
            "viewers": self.viewers,
            "refused": dict(sorted(self.refused.items())),
            "revoked": dict(sorted(self.revoked.items())),
            "recheck_failures": self.recheck_failures,
            "cameras": [
                asdict(stats) for key, stats in sorted(self._stats.items()) if visible is None or key in visible
            ],
        }

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
