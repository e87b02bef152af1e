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
from pydantic import BaseModel, ConfigDict, Field, model_validator

from central_ingest.access.scope import nfc
from event_contract.models import Identifier
from ioc_common.yaml_files import ConfigError, ConfigIssue, load_model, locate

SiteKind = Literal["camera", "sensor"]
PLACE_PATTERN = r"^[^/]*[^/\s][^/]*$"
"""A place name: not blank and without "/", which separates the levels of an area path (access.scope)."""


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
        default=None,
        min_length=1,
        max_length=200,
        description="Free place label shown with the name (e.g. a ward); optional. Scoping and the map's filters "
        "use province/district/commune.",
    )
    province: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=PLACE_PATTERN,
        description="Province (tỉnh, thành phố) the site is in; optional.",
    )
    district: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=PLACE_PATTERN,
        description="District (quận, huyện, thị xã) within the province; optional (most provinces have none "
        "since 2025), needs province.",
    )
    commune: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=PLACE_PATTERN,
        description="Commune or ward (xã, phường); optional, needs province. Users scoped to an area path "
        "(Province[/District]/Commune) see only the sites under it; a site with no province is visible only to "
        "users of the whole province.",
    )
    preview_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://\S+$",
        description="Live view of the camera (the edge agent's MJPEG preview as the operators' browsers reach it), "
        "shown in the construction projects' meeting view; optional.",
    )
    live_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://\S+$",
        description="The edge agent's live record stream of this camera as central reaches it "
        "(http://AGENT:8091/cameras/ID/live); central proxies it to the live view after checking access. "
        "Default: preview_url with its trailing /preview.mjpg replaced by /live.",
    )
    project_id: Identifier | None = Field(
        default=None,
        description="The construction project this camera watches: it is in the project's live view from the "
        "start, before its first progress figure; optional (cameras that send figures are listed anyway).",
    )

    @model_validator(mode="after")
    def _levels_from_the_top(self) -> SiteConfig:
        if self.province is None and (self.district is not None or self.commune is not None):
            raise ValueError("district and commune need a province (the area path starts at the province)")
        return self


class SitesFile(BaseModel):
    """The whole file: a list of sites."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sites: tuple[SiteConfig, ...] = Field(default=(), description="Every site; (agent_id, id) must be unique.")


def load_sites(path: Path | str) -> SitesFile:
    """Read and validate a sites file; raises ``ConfigError`` at the offending lines (duplicates included)."""
    sites = load_model(path, SitesFile)
    problems = [
        (
            index,
            "id",
            f"site {sites.sites[index].agent_id}/{sites.sites[index].id} is listed twice (first at sites.{first})",
        )
        for index, first in _duplicate_positions(sites)
    ] + [
        (index, "district" if sites.sites[index].district is not None else "province", message)
        for index, message in _mixed_schemes(sites)
    ]
    if problems:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        assert root is not None  # load_model refused an empty file
        issues = []
        for index, field, message in problems:
            mark = locate(root, ("sites", index, field)).start_mark
            issues.append(ConfigIssue(str(path), mark.line + 1, mark.column + 1, f"sites.{index}.{field}", message))
        raise ConfigError(issues)
    return sites


def _mixed_schemes(sites: SitesFile) -> list[tuple[int, str]]:
    """Sites of a province that has sites both with and without a district: area paths would be ambiguous
    (``Huế/Phú Xuân`` a district in one row, a ward in another; ``access.scope``). Reported at each site of the
    minority form, naming the first site of the other form."""
    by_province: dict[str, dict[bool, list[int]]] = {}
    for index, site in enumerate(sites.sites):
        if site.province is not None:
            forms = by_province.setdefault(nfc(site.province).casefold(), {True: [], False: []})
            forms[site.district is not None].append(index)
    problems: list[tuple[int, str]] = []
    for forms in by_province.values():
        if forms[True] and forms[False]:
            minority, majority = (True, False) if len(forms[True]) <= len(forms[False]) else (False, True)
            other = forms[majority][0]
            for index in forms[minority]:
                site = sites.sites[index]
                problems.append(
                    (
                        index,
                        f"province {site.province!r} mixes sites with and without a district (sites.{other} is "
                        f"{'with' if majority else 'without'} one): use one scheme per province so area paths "
                        "are not ambiguous",
                    )
                )
    return problems


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
