"""``central-ingest``: serve the API, migrate the schema, manage agent tokens.

    central-ingest migrate
    central-ingest validate-rules FILE             # check an alert rules file; errors point at FILE:LINE:COL
    central-ingest serve [--host H] [--port P]
    central-ingest mqtt-worker                     # MQTT 5 shared-subscription ingest worker (docs/mqtt_topics.md)
    central-ingest agent add AGENT_ID [--rotate]   # prints the token once
    central-ingest agent revoke AGENT_ID
    central-ingest agent list
    central-ingest plates keygen|rotate|usage|retire  # the plate vault's keys (docs/plate_vault.md)
    central-ingest cameras import FILE [--prune]   # camera/sensor sites (configs/sites.example.yaml)
    central-ingest user add|list|disable|enable|set-password|set-roles|reset-totp  # docs/access_and_audit.md
    central-ingest audit verify|export             # the hash-chained audit log (exit 1: chain broken)
    central-ingest plans import|show|versions      # approved construction plans from CSV/Excel (docs/projects.md)

The database comes from ``--database-url`` or ``IOC_CENTRAL_DATABASE_URL``; every
other setting from its ``IOC_CENTRAL_*`` variable (see ``settings.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from pydantic import ValidationError

from central_ingest.access.commands import add_user_parser, run_user
from central_ingest.alerts.rules import load_rules
from central_ingest.app import create_app
from central_ingest.audit.cli_actions import audit_cli_action
from central_ingest.audit.commands import add_audit_parser, run_audit
from central_ingest.ingest.mqtt_config import MqttIngestConfig
from central_ingest.ingest.mqtt_worker import run_worker
from central_ingest.ingest.sensor_bridge import load_site, run_bridge
from central_ingest.plates.commands import add_plates_parser, run_plates
from central_ingest.plates.keyring import KeyringError
from central_ingest.plates.legacy import LegacyPlatesError, seal_legacy_plates
from central_ingest.plates.rotation import RotationBusyError
from central_ingest.plates.vault import vault_from_settings
from central_ingest.projects.plan_commands import add_plans_parser, run_plans
from central_ingest.settings import Settings
from central_ingest.sites.config import load_sites
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import AgentError, add_agent, list_agents, revoke_agent
from central_ingest.store.migrate import MigrationError, apply_migrations
from ioc_common.yaml_files import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="central-ingest", description="IOC central ingest service.")
    parser.add_argument("--database-url", help="libpq URL; default: IOC_CENTRAL_DATABASE_URL or the settings default")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP API (applies pending migrations first)")
    serve.add_argument("--host", help="bind address (default: IOC_CENTRAL_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default: IOC_CENTRAL_PORT or 8080)")

    commands.add_parser("migrate", help="apply pending schema migrations")

    commands.add_parser(
        "mqtt-worker",
        help="ingest agents' batches from the MQTT broker (shared subscription; IOC_CENTRAL_MQTT_INGEST__*)",
    )

    bridge = commands.add_parser(
        "sensor-bridge",
        help="read field stations on a province broker directly (the agent's sensor code) into TimescaleDB",
    )
    bridge.add_argument("--config", type=Path, required=True, help="stations YAML: broker: and sensors: (as an agent)")
    bridge.add_argument("--agent-id", required=True, help="the agent_id the readings are stored under")

    validate = commands.add_parser("validate-rules", help="check an alert rules YAML file (errors point at FILE:LINE)")
    validate.add_argument("path", type=Path)

    agent = commands.add_parser("agent", help="manage edge agents' tokens")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True)
    add = agent_commands.add_parser("add", help="create an agent and print its token (shown only once)")
    add.add_argument("agent_id")
    add.add_argument("--rotate", action="store_true", help="issue a new token to an existing agent")
    revoke = agent_commands.add_parser("revoke", help="revoke an agent's token")
    revoke.add_argument("agent_id")
    agent_commands.add_parser("list", help="list agents")
    add_plates_parser(commands)
    add_user_parser(commands)
    add_audit_parser(commands)
    add_plans_parser(commands)

    cameras = commands.add_parser("cameras", help="the registry of camera and sensor sites (map positions)")
    camera_commands = cameras.add_subparsers(dest="cameras_command", required=True)
    cameras_import = camera_commands.add_parser("import", help="load a sites YAML file (errors point at FILE:LINE)")
    cameras_import.add_argument("path", type=Path)
    cameras_import.add_argument("--prune", action="store_true", help="also delete sites the file no longer lists")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("database_url", args.database_url),
            ("host", getattr(args, "host", None)),
            ("port", getattr(args, "port", None)),
        )
        if value is not None
    }
    return Settings(**overrides)


def _serve(settings: Settings) -> int:
    tls: dict[str, Any] = {}
    if settings.tls_certfile is not None:
        tls = {"ssl_certfile": str(settings.tls_certfile), "ssl_keyfile": str(settings.tls_keyfile)}
    if settings.tls_client_ca_file is not None:
        tls |= {"ssl_ca_certs": str(settings.tls_client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", **tls)
    return 0


def _mqtt_worker(settings: Settings) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, settings.mqtt_ingest or MqttIngestConfig()))
    return 0


def _sensor_bridge(settings: Settings, config: Path, agent_id: str) -> int:
    site = load_site(config)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_bridge(settings, site, agent_id))
    return 0


def _validate_rules(path: Path) -> int:
    rules = load_rules(path)
    kinds = ", ".join(sorted({rule.kind for rule in rules.rules})) or "none"
    print(f"{path}: OK, {len(rules.junctions)} junction(s), {len(rules.rules)} rule(s) ({kinds})")
    return 0


def _agent(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(settings.database_url) as conn:
        if args.agent_command == "add":
            token = add_agent(conn, args.agent_id, rotate=args.rotate)
            conn.commit()
            action = "agent_token_rotated" if args.rotate else "agent_added"
            audit_cli_action(settings.database_url, action, {"agent_id": args.agent_id})
            print(token)
            print(
                f"agent {args.agent_id!r}: keep this token now, it is not stored and cannot be shown again",
                file=sys.stderr,
            )
        elif args.agent_command == "revoke":
            revoke_agent(conn, args.agent_id)
            conn.commit()
            audit_cli_action(settings.database_url, "agent_revoked", {"agent_id": args.agent_id})
            print(f"agent {args.agent_id!r} revoked", file=sys.stderr)
        else:
            for record in list_agents(conn):
                state = f"revoked {record.revoked_at.isoformat()}" if record.revoked_at else "active"
                print(f"{record.agent_id}\tcreated {record.created_at.isoformat()}\t{state}")
    return 0


def _cameras_import(settings: Settings, path: Path, prune: bool) -> int:
    sites = load_sites(path)  # validate the whole file before touching the database
    with psycopg.connect(settings.database_url) as conn:
        counts = import_sites(conn, sites.sites, prune=prune)
    # The registry decides every user's area scope: an administrator's import is an audited action.
    target = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "prune": prune,
        "added": counts.added,
        "updated": counts.updated,
        "removed": counts.removed,
    }
    audit_cli_action(settings.database_url, "sites_imported", target)
    print(
        f"{path}: {len(sites.sites)} site(s): {counts.added} added, {counts.updated} updated, "
        f"{counts.unchanged} unchanged, {counts.removed} removed"
    )
    return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    commands: dict[str, Callable[[], int]] = {
        "serve": lambda: _serve(settings),
        "mqtt-worker": lambda: _mqtt_worker(settings),
        "sensor-bridge": lambda: _sensor_bridge(settings, args.config, args.agent_id),
        "validate-rules": lambda: _validate_rules(args.path),
        "migrate": lambda: _migrate(settings),
        "plates": lambda: run_plates(settings, args),
        "user": lambda: run_user(settings, args),
        "audit": lambda: run_audit(settings, args),
        "plans": lambda: run_plans(settings, args),
        "cameras": lambda: _cameras_import(settings, args.path, args.prune),
    }
    return commands.get(args.command, lambda: _agent(settings, args))()


def _migrate(settings: Settings) -> int:
    applied = apply_migrations(settings.database_url)
    print(f"applied migrations: {', '.join(applied)}" if applied else "schema is current")
    # Plates stored in clear before 0008 are sealed now; only then does the vault need a keyring.
    if legacy := seal_legacy_plates(settings.database_url, lambda: vault_from_settings(settings)).sealed:
        print("sealed plates stored in clear by an older version: " + ", ".join(f"{t} {n}" for t, n in legacy.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Workers (mqtt-worker, sensor-bridge) and the alert engine log through the root logger; uvicorn has its own.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args, _settings(args))
    except ValidationError as error:
        print(f"central-ingest: invalid settings:\n{error}", file=sys.stderr)
    except ConfigError as error:
        print(f"central-ingest: invalid configuration file:\n{error}", file=sys.stderr)
    except (AgentError, MigrationError, KeyringError, LegacyPlatesError, RotationBusyError) as error:
        print(f"central-ingest: {error}", file=sys.stderr)
    except psycopg.OperationalError as error:
        print(f"central-ingest: cannot reach the database: {error}".rstrip(), file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
