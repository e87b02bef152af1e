"""Each sensor's last accepted reading time, kept across restarts.

After a restart the broker re-sends readings the agent stored but had not acknowledged, and a station
may replay its buffer; with the last times restored, those come back as ``duplicate_time`` or
``out_of_order`` dead letters instead of being sent again. (Were the file lost, nothing breaks: sensor
event ids are derived from sensor and time, so central drops the resend as a duplicate.)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from ioc_common.atomic_files import replace_text

log = logging.getLogger(__name__)

FILE_NAME = "sensor_last_times.json"


def load_last_times(path: Path) -> dict[str, dt.datetime]:
    """The saved times; empty (logged) when the file is missing or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(sensor): dt.datetime.fromisoformat(str(time)) for sensor, time in dict(raw).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError) as error:
        log.warning("cannot read %s (%s): sensors start without their last reading times", path, error)
        return {}


def save_last_times(path: Path, times: Mapping[str, dt.datetime]) -> None:
    """Atomic rewrite (a reader never sees half a file); a failure is logged, never raised."""
    try:
        replace_text(path, json.dumps({s: t.isoformat() for s, t in sorted(times.items())}))
    except OSError as error:
        log.warning("cannot save sensor last times to %s: %s", path, error)
