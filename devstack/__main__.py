"""CLI: python -m devstack start|stop|status [--state-dir DIR] [--video FILE ... --loop]."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from devstack.errors import DevstackError
from devstack.stack import DEFAULT_DATABASE, DEFAULT_STATE_DIR, Stack


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description="Local PostgreSQL+TimescaleDB, mosquitto, RTSP."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"default: {DEFAULT_STATE_DIR}")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", parents=[common], help="start the services and print how to reach them (JSON)")
    start.add_argument("--video", type=Path, action="append", default=[], help="H.264 .mp4 to serve (repeatable)")
    start.add_argument("--loop", action="store_true", help="serve the videos in a loop, forever")
    start.add_argument("--database", default=DEFAULT_DATABASE, help=f"database to create (default: {DEFAULT_DATABASE})")
    start.add_argument("--fast-unsafe", action="store_true", help="PostgreSQL without fsync: throw-away data only")
    stop = commands.add_parser("stop", parents=[common], help="stop every service of the state dir")
    stop.add_argument("--purge", action="store_true", help="also delete the database cluster and all state")
    commands.add_parser("status", parents=[common], help="print which services run and stack.json (JSON)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "start":
            stack = Stack(args.state_dir, durable_postgres=not args.fast_unsafe)
            info = stack.start(args.video, loop=args.loop, database=args.database)
            print(json.dumps(asdict(info), indent=2))
        elif args.command == "stop":
            Stack(args.state_dir).stop(purge=args.purge)
            print(f"stopped the stack in {args.state_dir}")
        else:
            status = Stack(args.state_dir).status()
            print(json.dumps(status, indent=2))
            return 0 if status["postgres"] and status["mqtt"] else 3
    except DevstackError as error:
        print(f"devstack {args.command} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
