"""Which TimescaleDB edition the database runs, and so which retention and rollup path the service takes.

The Debian-built TimescaleDB is the Apache edition: hypertables, ``time_bucket`` and
``drop_chunks`` work, but continuous aggregates, background policies (retention,
refresh) and compression are features of the Timescale licence. ``SHOW
timescaledb.license`` says which one is loaded: ``apache`` or ``timescale``
(anything else, e.g. a future value, is treated as the Apache set: the service then
maintains its own rollup tables and drops chunks itself, which works everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

TIMESCALE_LICENSE = "timescale"


@dataclass(frozen=True)
class TimescaleFeatures:
    """What the loaded edition can do; chooses between the service-maintained and the policy path."""

    license: str
    continuous_aggregates: bool
    policies: bool
    compression: bool

    @property
    def uses_policies(self) -> bool:
        """True: rollups are continuous aggregates and retention is a TimescaleDB job (the Timescale path)."""
        return self.continuous_aggregates and self.policies


def features_for_license(license_name: str) -> TimescaleFeatures:
    """The features of a ``timescaledb.license`` value; pure."""
    licensed = license_name.strip().lower() == TIMESCALE_LICENSE
    return TimescaleFeatures(
        license=license_name, continuous_aggregates=licensed, policies=licensed, compression=licensed
    )


async def detect_features(conn: psycopg.AsyncConnection[Any]) -> TimescaleFeatures:
    """Ask the database which edition is loaded."""
    cursor = await conn.execute(b"SHOW timescaledb.license")
    row = await cursor.fetchone()
    if row is None:  # SHOW always answers one row; keep mypy and a strange server honest
        raise RuntimeError("SHOW timescaledb.license returned no row")
    return features_for_license(str(row[0]))
