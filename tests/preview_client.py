"""A small, strict client for the agent's preview server: MJPEG parts, SSE messages, Prometheus text.

Written from the formats' specifications rather than from our server's code, so a framing
mistake on either side fails the tests.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import numpy.typing as npt

MetricKey = tuple[str, frozenset[tuple[str, str]]]

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\")(?:,[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\]|\\.)*\")*)?\})?"
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|NaN|Inf))$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def open_stream(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s)
    connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
    return connection, connection.getresponse()


@dataclass(frozen=True)
class MjpegPart:
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes


def read_mjpeg_parts(response: http.client.HTTPResponse, count: int) -> list[MjpegPart]:
    """The next ``count`` JPEG parts of a multipart/x-mixed-replace response."""
    content_type = response.getheader("Content-Type", "")
    match = re.match(r"multipart/x-mixed-replace;\s*boundary=(\S+)", content_type)
    assert match, f"not an MJPEG stream: {content_type!r}"
    boundary = b"--" + match.group(1).encode()
    parts: list[MjpegPart] = []
    while len(parts) < count:
        line = response.readline()
        if not line:
            raise EOFError(f"stream ended after {len(parts)} parts")
        if line.strip() != boundary:
            continue  # the CRLF after the previous body
        headers: dict[str, str] = {}
        while (header := response.readline().strip()) != b"":
            name, _, value = header.decode("ascii").partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers.get("content-type") == "image/jpeg", headers
        parts.append(MjpegPart(headers, response.read(int(headers["content-length"]))))
    return parts


def read_sse_messages(
    response: http.client.HTTPResponse, count: int, accept: Callable[[dict[str, Any]], bool] = lambda _m: True
) -> list[dict[str, Any]]:
    """The next ``count`` 'frame' events (JSON data) of a text/event-stream that ``accept`` takes."""
    assert (response.getheader("Content-Type") or "").startswith("text/event-stream")
    messages: list[dict[str, Any]] = []
    event, data = "message", list[str]()
    while len(messages) < count:
        raw = response.readline()
        if not raw:
            raise EOFError(f"stream ended after {len(messages)} messages")
        line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
        if line == "":
            if data and event == "frame":
                message = json.loads("\n".join(data))
                if accept(message):
                    messages.append(message)
            event, data = "message", list[str]()
        elif line.startswith(":"):
            continue  # comment (keepalive)
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    return messages


def decode_jpeg(body: bytes) -> npt.NDArray[np.uint8]:
    """The picture in a JPEG, decoded by OpenCV; fails the test when it is not one."""
    picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None, f"not a JPEG ({len(body)} bytes, starts {body[:8]!r})"
    return np.asarray(picture, dtype=np.uint8)


def parse_prometheus(text: str) -> dict[MetricKey, float]:
    """Samples of a text exposition (0.0.4); raises on any malformed line or a sample without TYPE."""
    samples: dict[MetricKey, float] = {}
    typed: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            typed.add(name)
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"line {number} is not a Prometheus sample: {line!r}")
        name = match.group("name")
        if name not in typed:
            raise ValueError(f"line {number}: {name} has no # TYPE before it")
        labels = frozenset(_LABEL.findall(match.group("labels") or ""))
        key = (name, labels)
        if key in samples:
            raise ValueError(f"line {number}: duplicate sample {line!r}")
        samples[key] = float(match.group("value"))
    return samples


def metric(samples: dict[MetricKey, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
