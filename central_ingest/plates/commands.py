"""``central-ingest plates ...``: make and change the keyring, rotate, retire keys (docs/plate_vault.md).

    central-ingest plates keygen [--file F]                  # a new keyring (refuses to overwrite one)
    central-ingest plates keygen --add-key [--file F]        # a new data key, made active
    central-ingest plates keygen --new-index-key [--file F]  # a new index key (the old one is still searched)
    central-ingest plates rotate [--index] [--batch-size N]  # re-seal (and re-index) rows under old keys
    central-ingest plates usage                              # rows per key
    central-ingest plates retire KEY_ID [--file F]           # drop a key that no row uses any more

``--file`` defaults to IOC_PLATE_KEYS_FILE. Key bytes are never printed, only key ids. With a KMS hook
(IOC_PLATE_KEYS_COMMAND) the keys are managed in the KMS; ``rotate`` and ``usage`` still work.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import psycopg

from central_ingest.plates.keyring import (
    KeyringError,
    new_keyring,
    read_keyring_file,
    with_new_data_key,
    with_new_index_key,
    without_key,
    write_keyring_file,
)
from central_ingest.plates.rotation import KeyUsage, key_usage, rotate
from central_ingest.plates.vault import PlateVault, vault_from_settings
from central_ingest.settings import Settings


def add_plates_parser(commands: Any) -> None:
    """Add the ``plates`` command group to the CLI's subparsers."""
    plates = commands.add_parser("plates", help="the plate vault's keys: keygen, rotate, usage, retire")
    sub = plates.add_subparsers(dest="plates_command", required=True)
    keygen = sub.add_parser("keygen", help="write a new keyring, or add a data key or an index key to one")
    keygen.add_argument("--file", type=Path, help="keyring file (default: IOC_PLATE_KEYS_FILE)")
    change = keygen.add_mutually_exclusive_group()
    change.add_argument("--add-key", action="store_true", help="add a data key and make it the active one")
    change.add_argument("--new-index-key", action="store_true", help="replace the index key (old one kept for search)")
    rotation = sub.add_parser("rotate", help="re-seal rows under old data keys (idempotent, resumable)")
    rotation.add_argument("--index", action="store_true", help="also recompute blind indexes and tokens")
    rotation.add_argument("--batch-size", type=int, default=1000, help="rows per transaction (default 1000)")
    sub.add_parser("usage", help="rows sealed or indexed under each key")
    retire = sub.add_parser("retire", help="remove a key from the keyring file once no row uses it")
    retire.add_argument("key_id")
    retire.add_argument("--file", type=Path, help="keyring file (default: IOC_PLATE_KEYS_FILE)")


def _file(settings: Settings, given: Path | None) -> Path:
    path = given or settings.plate_keys_file
    if path is None:
        raise KeyringError("name the keyring file: --file F or IOC_PLATE_KEYS_FILE")
    return path


def _vault(settings: Settings) -> PlateVault:
    vault = vault_from_settings(settings)
    if vault is None:
        raise KeyringError("no plate keyring configured: set IOC_PLATE_KEYS_FILE or IOC_PLATE_KEYS_COMMAND")
    return vault


def _keygen(settings: Settings, args: argparse.Namespace) -> int:
    path = _file(settings, args.file)
    if args.add_key or args.new_index_key:
        keyring = read_keyring_file(path)
        keyring = with_new_data_key(keyring) if args.add_key else with_new_index_key(keyring)
        write_keyring_file(path, keyring)
        what = f"data key {keyring.active!r} (active)" if args.add_key else f"index key {keyring.index_key_id!r}"
        print(f"{path}: added {what}; restart the service, then run: central-ingest plates rotate", end="")
        print(" --index" if args.new_index_key else "")
        return 0
    if path.exists():
        raise KeyringError(f"{path} exists: use --add-key or --new-index-key to change it (never overwritten)")
    keyring = new_keyring()
    write_keyring_file(path, keyring)
    print(f"{path}: new keyring, data key {keyring.active!r}, index key {keyring.index_key_id!r} (mode 0600)")
    print("keep a copy of this file somewhere safe: without it the stored plates cannot be read", file=sys.stderr)
    return 0


def _print_usage(usage: KeyUsage) -> None:
    for (table, key_id), rows in sorted(usage.rows.items()):
        print(f"{table}\t{key_id}\t{rows}")


async def _rotate(settings: Settings, args: argparse.Namespace) -> int:
    vault = _vault(settings)

    def progress(table: str, rows: int) -> None:
        print(f"{table}: {rows} row(s) rewritten", file=sys.stderr)

    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        report = await rotate(conn, vault, reindex=args.index, batch_size=args.batch_size, progress=progress)
        usage = await key_usage(conn)
    for table, rows in sorted(report.resealed.items()):
        print(f"re-sealed {table}: {rows}")
    if args.index:
        print(f"re-indexed plate_passes: {report.reindexed}")
    for table, rows in sorted(report.unreadable.items()):
        print(f"NOT OPENED {table}: {rows} row(s) sealed with a key missing from the keyring, or damaged")
    _print_usage(usage)
    return 1 if report.unreadable else 0


async def _usage(settings: Settings) -> int:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        _print_usage(await key_usage(conn))
    return 0


async def _retire(settings: Settings, args: argparse.Namespace) -> int:
    path = _file(settings, args.file)
    keyring = read_keyring_file(path)
    smaller = without_key(keyring, args.key_id)  # refuses the active key before touching the database
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        users = (await key_usage(conn)).users_of(args.key_id)
    if users:
        where = ", ".join(f"{table}: {rows}" for table, rows in sorted(users.items()))
        raise KeyringError(f"key {args.key_id!r} is still used ({where}); run central-ingest plates rotate first")
    write_keyring_file(path, smaller)
    print(f"{path}: key {args.key_id!r} retired; restart the service")
    return 0


def run_plates(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``plates`` subcommand; ``KeyringError`` and friends are reported by the CLI."""
    if args.plates_command == "keygen":
        return _keygen(settings, args)
    if args.plates_command == "rotate":
        return asyncio.run(_rotate(settings, args))
    if args.plates_command == "usage":
        return asyncio.run(_usage(settings))
    return asyncio.run(_retire(settings, args))
