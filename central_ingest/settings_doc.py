"""Write every ``IOC_CENTRAL_*`` setting with its default and meaning to ``configs/central.example.env``.

    python -m central_ingest.settings_doc [--check]

The file is generated from ``Settings`` so it cannot drift from the code (a test runs ``--check``).
Nested settings are shown as their JSON default (pydantic-settings reads JSON for them) and their
fields as ``PARENT__FIELD`` lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from central_ingest.settings import Settings

ENV_PATH = Path(__file__).resolve().parent.parent / "configs" / "central.example.env"
PREFIX = "IOC_CENTRAL_"
EXPANDED_AS_JSON = frozenset({"alert_sinks"})
"""Nested settings with lists inside (webhooks): set them as one JSON value; see docs/alert_sinks.md."""
HEADER = """\
# Settings of the central ingest service (central-ingest serve | mqtt-worker | migrate | agent ...).
# Every line shows the DEFAULT; uncomment and change what you need, e.g. in a systemd EnvironmentFile
# or `docker run --env-file`. Generated from central_ingest/settings.py by
# `python -m central_ingest.settings_doc`: do not edit by hand.
"""


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lines(name: str, info: FieldInfo, default: Any) -> list[str]:
    comment = textwrap.wrap(info.description or "", width=100) or [""]
    lines = [f"# {line}".rstrip() for line in comment]
    lines.append(f"# {PREFIX}{name.upper()}={_value(default)}")
    return lines


def _child_default(info: FieldInfo) -> Any:
    """A field's default; one made afresh per process (a unique client id) is shown as such."""
    if info.default_factory is None:
        return info.default
    first, second = info.get_default(call_default_factory=True), info.get_default(call_default_factory=True)
    return first if first == second else "<unique per process>"


def _nested_model(info: FieldInfo) -> type[BaseModel] | None:
    """The settings model of a nested field (``X`` or ``X | None``), if any."""
    for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def render() -> str:
    defaults = Settings.model_construct()  # the code's defaults, not this shell's IOC_CENTRAL_* variables
    blocks: list[str] = [HEADER]
    for name, info in Settings.model_fields.items():
        block = _lines(name, info, getattr(defaults, name))
        nested = _nested_model(info)
        if nested is not None and name not in EXPANDED_AS_JSON:
            for child, child_info in nested.model_fields.items():
                block += _lines(f"{name}__{child}", child_info, _child_default(child_info))
        blocks.append("\n".join(block))
    return "\n\n".join(blocks) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file on disk is stale")
    args = parser.parse_args(argv)
    current = render()
    if args.check:
        if not ENV_PATH.exists() or ENV_PATH.read_text(encoding="utf-8") != current:
            print(f"{ENV_PATH} is stale: run python -m central_ingest.settings_doc", file=sys.stderr)
            return 1
        return 0
    ENV_PATH.write_text(current, encoding="utf-8")
    print(f"wrote {ENV_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
