"""``central-ingest user ...``: manage the people who sign in; every change is audited.

    central-ingest user add NAME --role police [--role auditor] [--display-name D] [--password-file F]
                              [--area "Huế/Phú Xuân/Phú Hội" ...]
    central-ingest user list
    central-ingest user set-areas NAME [--area "Province/District/Commune" ...]   (none: the whole province)
    central-ingest user disable NAME | enable NAME
    central-ingest user set-password NAME [--password-file F]
    central-ingest user set-roles NAME --role R [--role R ...]
    central-ingest user reset-totp NAME

A password comes from ``--password-file`` (first line) or, on a terminal, a prompt asked twice;
never from the command line, where other users of the machine could read it in the process list.
For roles that need a second factor (police, admin) ``add``, ``set-roles`` and ``reset-totp`` print
the TOTP secret and its ``otpauth://`` URI once, on stdout; they are not stored anywhere readable
by the CLI afterwards. The audit entries name the operator as ``cli:<os user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from central_ingest.access import admin
from central_ingest.access.passwords import PasswordError
from central_ingest.access.roles import ROLES, parse_roles
from central_ingest.access.scope import AreaScope
from central_ingest.access.settings import AccessSettings, access_settings
from central_ingest.access.totp import otpauth_uri, secret_base32
from central_ingest.access.users import list_users
from central_ingest.settings import Settings
from ioc_common.secret_files import read_secret_file


def add_user_parser(commands: Any) -> None:
    """Add the ``user`` command group to the CLI's subparsers."""
    user = commands.add_parser("user", help="people who sign in: add, list, disable, enable, passwords, roles, TOTP")
    sub = user.add_subparsers(dest="user_command", required=True)
    role_help = f"a role ({', '.join(ROLES)}); repeat for several"
    area_help = (
        'an area the user may see, "Province[/District]/Commune" (e.g. "Huế/Phú Xuân/Phú Hội"); repeat for several; '
        "none: the whole province"
    )
    # No abbreviations: "--password SECRET" must fail, not be read as "--password-file SECRET".
    add = sub.add_parser(
        "add", help="create a user (prints the TOTP secret once for police and admin)", allow_abbrev=False
    )
    add.add_argument("username")
    add.add_argument("--role", action="append", required=True, choices=ROLES, help=role_help)
    add.add_argument("--display-name", default="", help="full name shown on pages")
    add.add_argument("--password-file", type=Path, help="file whose first line is the password (default: prompt)")
    add.add_argument("--area", action="append", default=[], help=area_help)
    sub.add_parser("list", help="list users, their roles, state and areas")
    for name, text in (("disable", "disable a user and end their sessions"), ("enable", "enable a user again")):
        sub.add_parser(name, help=text).add_argument("username")
    password = sub.add_parser("set-password", help="set a new password (ends the user's sessions)", allow_abbrev=False)
    password.add_argument("username")
    password.add_argument("--password-file", type=Path, help="file whose first line is the password (default: prompt)")
    roles = sub.add_parser("set-roles", help="replace a user's roles")
    roles.add_argument("username")
    roles.add_argument("--role", action="append", required=True, choices=ROLES, help=role_help)
    areas = sub.add_parser("set-areas", help="replace the areas a user may see (no --area: the whole province)")
    areas.add_argument("username")
    areas.add_argument("--area", action="append", default=[], help=area_help)
    totp = sub.add_parser("reset-totp", help="issue a new TOTP secret (lost phone); ends the user's sessions")
    totp.add_argument("username")


def _read_password(path: Path | None) -> str:
    if path is not None:
        return read_secret_file(path, "password file")
    if not sys.stdin.isatty():
        raise PasswordError("no terminal to ask the password on: give --password-file FILE")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise PasswordError("the two passwords differ")
    return first


def _show(change: admin.UserChange, settings: AccessSettings, what: str) -> None:
    user = change.user
    roles, areas = ", ".join(sorted(user.roles)), AreaScope(user.areas).label()
    print(f"user {user.username!r} {what} (roles: {roles}; areas: {areas})", file=sys.stderr)
    if change.totp_secret is not None:
        print(f"TOTP secret: {secret_base32(change.totp_secret)}")
        print(otpauth_uri(change.totp_secret, user.username, settings.totp_issuer))
        print("add it to the user's authenticator app now: it is not shown again", file=sys.stderr)


async def _list(conn: psycopg.AsyncConnection[Any]) -> None:
    for user in await list_users(conn):
        state = "disabled" if user.disabled else "active"
        totp = "totp" if user.has_totp else "no-totp"
        areas = AreaScope(user.areas).label()
        print(f"{user.username}\t{','.join(sorted(user.roles))}\t{state}\t{totp}\t{user.display_name}\t{areas}")


async def _run(settings: Settings, args: argparse.Namespace) -> None:
    access = access_settings(settings)
    actor = admin.Actor(f"cli:{getpass.getuser()}", "cli", "cli")
    now = dt.datetime.now(dt.UTC)
    command: str = args.user_command
    password = _read_password(args.password_file) if command in {"add", "set-password"} else ""
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        actions: dict[str, Callable[[], Awaitable[admin.UserChange]]] = {
            "add": lambda: admin.create_user(
                conn,
                actor,
                access,
                username=args.username,
                password=password,
                roles=parse_roles(args.role),
                display_name=args.display_name,
                areas=args.area,
            ),
            "disable": lambda: admin.set_disabled(conn, actor, args.username, True, now),
            "enable": lambda: admin.set_disabled(conn, actor, args.username, False, now),
            "set-password": lambda: admin.set_password(
                conn, actor, access, username=args.username, password=password, now=now
            ),
            "set-roles": lambda: admin.set_roles(conn, actor, access, args.username, parse_roles(args.role)),
            "set-areas": lambda: admin.set_areas(conn, actor, args.username, args.area),
            "reset-totp": lambda: admin.reset_totp(conn, actor, access, args.username, now),
        }
        if command == "list":
            await _list(conn)
            return
        past = {"add": "created", "disable": "disabled", "enable": "enabled", "set-password": "given a new password"}
        _show(await actions[command](), access, past.get(command, "updated"))


def run_user(settings: Settings, args: argparse.Namespace) -> int:
    """Run a ``user`` command; 1 with a message on stderr when it cannot be done."""
    try:
        asyncio.run(_run(settings, args))
    except ValueError as error:  # UserError, PasswordError, RoleError, an unreadable password file, ...
        print(f"central-ingest: {error}", file=sys.stderr)
        return 1
    return 0
