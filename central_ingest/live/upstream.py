"""Where central reads a camera's live records: the site's ``live_url``, else derived from its ``preview_url``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREVIEW_SUFFIX = "/preview.mjpg"
LIVE_SUFFIX = "/live"


def upstream_url(site: Mapping[str, Any]) -> str | None:
    """The agent's ``.../cameras/{id}/live`` address of a registered camera site, or None when none is known.

    ``live_url`` wins; otherwise a ``preview_url`` ending in ``/preview.mjpg`` (the agent's MJPEG preview)
    has that suffix replaced by ``/live``. Only http(s) addresses are used.
    """
    if site.get("kind", "camera") != "camera":
        return None
    live = site.get("live_url")
    if not live:
        preview = site.get("preview_url") or ""
        live = preview[: -len(PREVIEW_SUFFIX)] + LIVE_SUFFIX if preview.endswith(PREVIEW_SUFFIX) else None
    if live is None or not str(live).lower().startswith(("http://", "https://")):
        return None
    return str(live)
