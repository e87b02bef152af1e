"""Who is making a request: the signed-in user behind a valid session."""

from __future__ import annotations

from dataclasses import dataclass

from central_ingest.access.roles import Role
from central_ingest.access.scope import AreaScope


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    roles: frozenset[Role]
    session_id: str
    """The session's public id (not its token): what audit entries and logs may name."""
    areas: tuple[str, ...] | None = None
    """The area paths this user may see; None is the whole province (``access.scope``)."""

    @property
    def scope(self) -> AreaScope:
        return AreaScope(self.areas)

    def has_any(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def acting_role(self, *roles: Role) -> str:
        """The role an audit entry names: the first of ``roles`` held, else all roles held, comma-joined."""
        for role in roles:
            if role in self.roles:
                return role
        return ",".join(sorted(self.roles))
