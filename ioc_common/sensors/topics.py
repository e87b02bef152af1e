"""MQTT topic filters: checking them in config and matching received topics against them (MQTT 5, 4.7).

Kept here rather than borrowed from paho so that ``ioc_common`` needs nothing but pydantic; the rules
are short: ``+`` is one whole level, ``#`` the rest (last level only), and a filter starting with a
wildcard does not match topics starting with ``$``. A shared subscription ``$share/GROUP/FILTER``
matches what FILTER matches.
"""

from __future__ import annotations

MAX_TOPIC_CHARS = 1024


def check_filter(topic_filter: str) -> str:
    """``topic_filter`` if it is a valid MQTT subscription filter; raises ValueError saying what is wrong."""
    if not topic_filter or len(topic_filter) > MAX_TOPIC_CHARS or "\x00" in topic_filter:
        raise ValueError(f"topic filter {topic_filter!r}: 1 to {MAX_TOPIC_CHARS} characters, no NUL")
    levels = _levels(topic_filter)
    if not levels:
        raise ValueError(f"topic filter {topic_filter!r}: $share/GROUP/ needs a filter after it")
    for position, level in enumerate(levels):
        if level == "#" and position != len(levels) - 1:
            raise ValueError(f"topic filter {topic_filter!r}: '#' may only be the last level")
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise ValueError(f"topic filter {topic_filter!r}: '+' and '#' must fill a whole level ({level!r})")
    return topic_filter


def _levels(topic_filter: str) -> list[str]:
    levels = topic_filter.split("/")
    if levels[0] == "$share":
        return levels[2:] if len(levels) > 2 and levels[1] else []
    return levels


def matches(topic_filter: str, topic: str) -> bool:
    """Whether a message published to ``topic`` is delivered to a subscription with ``topic_filter``."""
    pattern = _levels(topic_filter)
    levels = topic.split("/")
    if topic.startswith("$") and pattern and pattern[0] in ("+", "#"):
        return False
    for position, wanted in enumerate(pattern):
        if wanted == "#":
            return True
        if position >= len(levels) or (wanted != "+" and wanted != levels[position]):
            return False
    return len(levels) == len(pattern)


def specificity(topic_filter: str) -> tuple[int, int, int]:
    """Sort key: more specific filters first (no '#', fewer '+', more levels), for overlapping filters."""
    levels = _levels(topic_filter)
    return (int("#" in levels), levels.count("+"), -len(levels))
