"""Export the contract as JSON Schema: ``python -m event_contract.schema_export [--check]``.

The file under ``schemas/`` is what other IOC systems read; a test fails when it
is stale, so the file and the code cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from event_contract.batch import EventBatch
from event_contract.models import SCHEMA_VERSION

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "event_batch.schema.json"


def render_schema() -> str:
    schema = EventBatch.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:ioc-edge:event-batch:{SCHEMA_VERSION}"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file on disk is stale")
    args = parser.parse_args(argv)
    current = render_schema()
    if args.check:
        on_disk = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if on_disk != current:
            print(f"{SCHEMA_PATH} is stale: run python -m event_contract.schema_export", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(current, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
