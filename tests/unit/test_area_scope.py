"""Area scope: paths, segment-prefix matching, and the SQL condition routes filter with."""

from __future__ import annotations

import unicodedata

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from central_ingest.access.principal import Principal
from central_ingest.access.scope import (
    AreaError,
    AreaScope,
    parse_area_path,
    require_in_visible,
    site_area_path,
    source_condition,
)
from central_ingest.sites.config import SiteConfig


def test_paths_are_normalised_and_bad_ones_refused() -> None:
    assert parse_area_path(" Huế / Phú Xuân /Phú Hội ") == "Huế/Phú Xuân/Phú Hội"
    for bad in ("", "  ", "Huế//Phú Hội", "a/b/c/d", "Huế/"):
        with pytest.raises(AreaError):
            parse_area_path(bad)


def test_site_paths_skip_a_missing_district_and_need_a_province() -> None:
    assert site_area_path("Huế", None, "Phú Hội") == "Huế/Phú Hội"
    assert site_area_path("Huế", "Phú Xuân", "Phú Hội") == "Huế/Phú Xuân/Phú Hội"
    assert site_area_path(None, None, "Phú Hội") is None


def test_a_scope_allows_whole_segments_only() -> None:
    scope = AreaScope(("Huế/Phú Xuân",))
    assert scope.allows("Huế/Phú Xuân/Phú Hội")
    assert scope.allows("huế/phú xuân")  # case does not matter, spelling does
    assert not scope.allows("Huế/Phú Xuân Mới/Phú Hội")
    assert not scope.allows("Huế")  # a commune user does not see the province's other sites
    assert not scope.allows(None)  # a site without a place: only the whole province
    assert AreaScope().allows(None)
    assert AreaScope().unrestricted
    assert AreaScope(()).allows("Huế") is False  # an empty list is no area at all, not everything


def test_names_typed_decomposed_match_composed_ones() -> None:
    decomposed = unicodedata.normalize("NFD", "Huế/Phú Hội")
    assert decomposed != "Huế/Phú Hội"
    assert AreaScope((decomposed,)).allows("Huế/Phú Hội")
    assert AreaScope(("Huế/Phú Hội",)).allows(site_area_path(unicodedata.normalize("NFD", "Huế"), None, "Phú Hội"))
    assert parse_area_path(decomposed) == "Huế/Phú Hội"


@given(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3), st.integers(1, 3))
def test_every_site_under_an_allowed_path_is_allowed(site: list[str], depth: int) -> None:
    path = "/".join(site)
    assert AreaScope(("/".join(site[:depth]),)).allows(path)


def test_the_principal_carries_its_scope() -> None:
    principal = Principal(1, "u", frozenset({"operator"}), "s", ("Huế/Phú Hội",))
    assert principal.scope == AreaScope(("Huế/Phú Hội",))
    assert Principal(1, "u", frozenset({"operator"}), "s").scope.unrestricted


def test_source_condition_is_true_when_unrestricted_and_pairs_otherwise() -> None:
    condition, params = source_condition(None, "agent_id", "source_id")
    assert condition.as_string(None) == "TRUE"
    assert params == ()
    condition, params = source_condition(frozenset({("a2", "c"), ("a1", "d")}), "t.agent_id", "source_id")
    assert condition.as_string(None).startswith('("t"."agent_id", "source_id") IN (SELECT')
    assert params == (["a1", "a2"], ["d", "c"])


def test_the_sites_file_takes_places_from_the_top() -> None:
    site = SiteConfig(id="c", agent_id="a", name="n", lat=16.0, lon=107.0, province="Huế", commune="Phú Hội")
    assert (site.province, site.district, site.commune) == ("Huế", None, "Phú Hội")
    with pytest.raises(ValidationError, match="need a province"):
        SiteConfig(id="c", agent_id="a", name="n", lat=16.0, lon=107.0, commune="Phú Hội")
    with pytest.raises(ValidationError):
        SiteConfig(id="c", agent_id="a", name="n", lat=16.0, lon=107.0, province="Huế/Phú Hội")


def test_a_source_outside_the_visible_set_is_the_answer_for_a_missing_one() -> None:
    require_in_visible(None, "a", "c")  # the whole province
    require_in_visible(frozenset({("a", "c")}), "a", "c")
    with pytest.raises(HTTPException) as refused:
        require_in_visible(frozenset({("a", "c")}), "b", "c")  # the same camera id under another agent
    assert refused.value.status_code == 404
