"""The roles a person can hold. Roles do not nest: an admin is not implicitly police or auditor.

Keeping roles flat is deliberate: the police search of personal data and the audit of that
search are separate duties (Decree 356/2025's purpose limitation), so the person who manages
accounts must be given the police or auditor role explicitly, and that grant is itself audited.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["operator", "police", "project_unit", "technician", "admin", "auditor"]
ROLES: tuple[Role, ...] = get_args(Role)
DEFAULT_TOTP_ROLES: tuple[Role, ...] = ("police", "admin")
"""Roles that must pass a TOTP second factor at login (the issue: admin and police)."""


class RoleError(ValueError):
    """A role name that is not one of ``ROLES``."""


def parse_role(name: str) -> Role:
    """The role called ``name``; ``RoleError`` listing the valid ones otherwise."""
    for role in ROLES:
        if role == name:
            return role
    raise RoleError(f"unknown role {name!r}; roles are: {', '.join(ROLES)}")


def parse_roles(names: list[str] | tuple[str, ...]) -> frozenset[Role]:
    roles = frozenset(parse_role(name) for name in names)
    if not roles:
        raise RoleError("give at least one role")
    return roles
