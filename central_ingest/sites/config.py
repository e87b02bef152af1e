"""The sites file: where each camera and sensor stands, validated with errors at ``FILE:LINE:COL``.

One YAML file lists every site of the province (``configs/sites.example.yaml``); ``central-ingest
cameras import FILE`` loads it into the ``camera_sites`` table. A site is keyed like its events,
by ``(agent_id, id)`` where ``id`` is the ``source_id`` the agent reports, so the search page can put
each pass on the map without any other mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from event_contract.models import Identifier
from ioc_common.yaml_files import ConfigError, ConfigIssue, load_model, locate

SiteKind = Literal["camera", "sensor"]


class SiteConfig(BaseModel):
    """One camera or sensor site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier = Field(description="The source_id this site's events carry (unique within its agent).")
    agent_id: Identifier = Field(description="The edge agent that reports this source.")
    kind: SiteKind = Field(default="camera", description="camera or sensor (a field station).")
    name: str = Field(min_length=1, max_length=200, description="Place name shown on maps, e.g. 'Ngã tư Cầu Giấy'.")
    lat: float = Field(ge=-90, le=90, description="Latitude, WGS 84 degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS 84 degrees.")
    area: str | None = Field(
        default=None, min_length=1, max_length=200, description="District or ward, for grouping; optional."
    )
    preview_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://\S+$",
        description="Live view of the camera (the edge agent's MJPEG preview as the operators' browsers reach it), "
        "shown in the construction projects' meeting view; optional.",
    )
    project_id: Identifier | None = Field(
        default=None,
        description="The construction project this camera watches: it is in the project's live view from the "
        "start, before its first progress figure; optional (cameras that send figures are listed anyway).",
    )


class SitesFile(BaseModel):
    """The whole file: a list of sites."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sites: tuple[SiteConfig, ...] = Field(default=(), description="Every site; (agent_id, id) must be unique.")


def load_sites(path: Path | str) -> SitesFile:
    """Read and validate a sites file; raises ``ConfigError`` at the offending lines (duplicates included)."""
    sites = load_model(path, SitesFile)
    duplicates = _duplicate_positions(sites)
    if duplicates:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        assert root is not None  # load_model refused an empty file
        issues = []
        for index, first in duplicates:
            mark = locate(root, ("sites", index, "id")).start_mark
            site = sites.sites[index]
            message = f"site {site.agent_id}/{site.id} is listed twice (first at sites.{first})"
            issues.append(ConfigIssue(str(path), mark.line + 1, mark.column + 1, f"sites.{index}.id", message))
        raise ConfigError(issues)
    return sites


def _duplicate_positions(sites: SitesFile) -> list[tuple[int, int]]:
    """(index of a repeat, index of its first occurrence) for every repeated (agent_id, id)."""
    first_at: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, int]] = []
    for index, site in enumerate(sites.sites):
        key = (site.agent_id, site.id)
        if key in first_at:
            repeats.append((index, first_at[key]))
        else:
            first_at[key] = index
    return repeats
