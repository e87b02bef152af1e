"""Records of the live stream (``GET /cameras/{id}/live``): the analysed picture plus what to draw over it.

The browser draws boxes, lines, counts, zones and the violation flash itself from the header, so the
picture is sent plain (no drawings), downscaled to ``max_width``, and each camera's record is built once
per analysed frame however many clients watch (``LiveEncoder`` caches the last one). The framing is
``ioc_common.live_records`` (shared with central's proxy and the benchmark); the header fields are listed
in docs/live_view.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from edge_agent.analytics.zones import ZoneConfig
from edge_agent.overlay import overlay_message
from edge_agent.preview.feed import PreviewSample
from edge_agent.preview.jpeg import downscale, encode_jpeg
from ioc_common.live_records import encode_record

VIOLATION_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "red_light": ("Vượt đèn đỏ", "Red light"),
        "wrong_way": ("Đi ngược chiều", "Wrong way"),
        "illegal_stopping": ("Dừng, đỗ sai quy định", "Illegal stopping"),
        "lane_violation": ("Đi sai làn đường", "Wrong lane"),
        "speeding": ("Chạy quá tốc độ", "Speeding"),
        "no_helmet": ("Không đội mũ bảo hiểm", "No helmet"),
        "stopped_in_lane": ("Xe dừng trên làn đường", "Vehicle stopped in lane"),
        "queue_growth": ("Hàng xe kéo dài", "Queue growing"),
        "possible_accident": ("Nghi có tai nạn", "Possible accident"),
        "other": ("Sự việc khác", "Other"),
    }
)
"""Vietnamese and English labels of each violation type (event_contract.traffic.ViolationType)."""

PRECISION = 1
"""Decimals of box coordinates in headers (pixels)."""


def zone_documents(zones: Iterable[ZoneConfig]) -> tuple[dict[str, Any], ...]:
    """A camera's zones as header entries: id, name and the polygon's normalised points."""
    return tuple(
        {"id": zone.id, "name": zone.display_name, "points": [[x, y] for x, y in zone.polygon]} for zone in zones
    )


def violation_documents(sample: PreviewSample) -> list[dict[str, Any]]:
    """The sample's flash window as header entries, ``age_ms`` measured in source time up to this frame."""
    documents = []
    for finding in sample.findings:
        label_vi, label_en = VIOLATION_LABELS.get(finding.violation_type, VIOLATION_LABELS["other"])
        age_s = max(0.0, (sample.frame.timestamp - finding.time).total_seconds())
        documents.append(
            {
                "kind": finding.violation_type,
                "label_vi": label_vi,
                "label_en": label_en,
                "track_id": finding.track_id,
                "box": [round(float(v), PRECISION) for v in finding.box_xyxy],
                "age_ms": round(age_s * 1000),
            }
        )
    return documents


def frame_header(
    camera_id: str, sample: PreviewSample, *, image_size: tuple[int, int], zones: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """``overlay_message`` of the sample plus the live fields; ``image_size`` is the JPEG's (width, height)."""
    header = overlay_message(
        sample.overlay, camera_id=camera_id, sequence=sample.sequence, timestamp=sample.frame.timestamp
    )
    header.update(
        type="frame",
        image_width=image_size[0],
        image_height=image_size[1],
        analysed_at_ms=sample.analysed_at_ms,
        zones=[dict(zone) for zone in zones],
        violations=violation_documents(sample),
    )
    return header


class LiveEncoder:
    """Each camera's latest live record, built (picture downscaled and encoded) once per sample sequence."""

    def __init__(
        self,
        *,
        max_width: int,
        quality: int,
        zones: Mapping[str, tuple[dict[str, Any], ...]],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_width = max_width
        self.quality = quality
        self._zones = zones
        self._wall_clock = wall_clock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._cache: dict[str, tuple[int, bytes]] = {}
        self.encodes = 0
        """Pictures encoded for live records: one per camera and analysed frame watched, not per client."""

    def frame_record(self, camera_id: str, sample: PreviewSample) -> bytes:
        """The record of ``sample``; clients asking for the same sequence share one encode (they wait for it)."""
        with self._lock_of(camera_id):
            cached = self._cache.get(camera_id)
            if cached is not None and cached[0] == sample.sequence:
                return cached[1]
            picture = downscale(sample.frame.image, self.max_width)
            jpeg = encode_jpeg(picture, self.quality)
            height, width = picture.shape[:2]
            header = frame_header(camera_id, sample, image_size=(width, height), zones=self._zones.get(camera_id, ()))
            record = encode_record(header, jpeg)
            self.encodes += 1
            if cached is None or cached[0] < sample.sequence:
                self._cache[camera_id] = (sample.sequence, record)
            return record

    def keepalive_record(self, camera_id: str, last_sequence: int) -> bytes:
        """A record without picture: the stream is alive, no new frame since ``last_sequence`` (0: none yet)."""
        header = {
            "type": "keepalive",
            "camera_id": camera_id,
            "sequence": last_sequence,
            "sent_at_ms": round(self._wall_clock() * 1000),
        }
        return encode_record(header)

    def _lock_of(self, camera_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(camera_id, threading.Lock())
