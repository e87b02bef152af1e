"""Camera URLs in messages: credentials never reach logs, stats or health events."""

from __future__ import annotations

import re
import urllib.parse

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s]*@")


def redact_url(url: str) -> str:
    """``rtsp://admin:secret@10.0.0.5/stream`` -> ``rtsp://***@10.0.0.5/stream``; other text unchanged."""
    return _USERINFO.sub(lambda match: f"{match['scheme']}***@", url)


def describe_error(error: BaseException, url: str) -> str:
    """``Type: message`` with the URL (as given, or percent-decoded by FFmpeg) redacted."""
    text = f"{type(error).__name__}: {error}"
    for form in {url, urllib.parse.unquote(url)}:
        text = text.replace(form, redact_url(form))
    return redact_url(text)


def short_name(url: str) -> str:
    """A file-name-friendly name for a source: host and last path part, or the file's stem."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme and parsed.hostname and "://" in url:
        last = parsed.path.rstrip("/").rsplit("/", 1)[-1]
        raw = f"{parsed.hostname}-{last}" if last else parsed.hostname
    else:
        raw = url.removeprefix("file://").rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._") or "camera"
