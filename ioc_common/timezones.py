"""IANA time-zone names in configuration: checked when the file is loaded, not when a rule first needs them."""

from __future__ import annotations

import zoneinfo
from typing import Annotated

from pydantic import AfterValidator


def check_timezone(value: str) -> str:
    """``value`` if the system's zone database knows it, else a ValueError that says what to write."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Ho_Chi_Minh") from error
    return value


TimezoneName = Annotated[str, AfterValidator(check_timezone)]
"""A config field holding an IANA zone name (Asia/Ho_Chi_Minh), validated like any other field."""
