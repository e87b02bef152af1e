"""The static pages' files and headers, without a database: the routes serve only listed files with the
strict CSP (the live view comes through central, so ``/projects`` widens nothing), every form control of the
projects page has a label, every element id its script looks up exists, and nothing is loaded from another origin."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from central_ingest.web.police_page import router as police_router
from central_ingest.web.projects_page import router as projects_router
from central_ingest.web.static_assets import router as common_router

STATIC = resources.files("central_ingest.web").joinpath("static")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    for router in (police_router, projects_router, common_router):
        app.include_router(router)
    return TestClient(app)


def csp_of(client: TestClient, path: str) -> dict[str, str]:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.headers["x-content-type-options"] == "nosniff"
    directives = (part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    return {name: value for name, value in directives}


def test_projects_page_csp_is_as_strict_as_the_police_page(client: TestClient) -> None:
    projects = csp_of(client, "/projects")
    police = csp_of(client, "/police")
    assert projects["img-src"] == "'self' blob:"
    for name in ("default-src", "img-src", "script-src", "style-src", "connect-src", "form-action", "frame-ancestors"):
        assert projects[name] == police[name], name
    assert projects["script-src"] == "'self'"
    assert projects["connect-src"] == "'self'"


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("/projects/static/projects.js", "text/javascript"),
        ("/projects/static/projects.css", "text/css"),
        ("/common/static/ioc.js", "text/javascript"),
        ("/police/static/police.js", "text/javascript"),
    ],
)
def test_listed_files_are_served(client: TestClient, path: str, media: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/projects/static/index.html",
        "/projects/static/../police/police.js",
        "/projects/static/other.js",
        "/common/static/police.js",
        "/common/static/%2e%2e%2fpolice%2fpolice.js",
    ],
)
def test_unlisted_files_are_refused(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


class _Controls(HTMLParser):
    """Form controls, whether each sits in a <label>, every id, and every script/stylesheet address."""

    def __init__(self) -> None:
        super().__init__()
        self.label_depth = 0
        self.controls: list[tuple[str, bool]] = []
        self.ids: set[str] = set()
        self.addresses: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if named.get("id"):
            self.ids.add(str(named["id"]))
        if tag == "label":
            self.label_depth += 1
        if tag in ("input", "select", "textarea"):
            labelled = self.label_depth > 0 or bool(named.get("aria-label"))
            self.controls.append((str(named.get("id")), labelled))
        for key in ("src", "href"):
            if named.get(key):
                self.addresses.append(str(named[key]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1


def _page() -> _Controls:
    parser = _Controls()
    parser.feed(STATIC.joinpath("projects", "index.html").read_text(encoding="utf-8"))
    return parser


def test_every_control_has_a_label() -> None:
    page = _page()
    assert len(page.controls) >= 10
    assert [control for control, labelled in page.controls if not labelled] == []


def test_the_script_finds_every_element_it_looks_up() -> None:
    script = STATIC.joinpath("projects", "projects.js").read_text(encoding="utf-8")
    wanted = set(re.findall(r'\$\("([\w-]+)"\)', script))
    assert {"scurve", "packages", "confirm-form", "live-grid", "timelapse-day"} <= wanted
    assert sorted(wanted - _page().ids) == []


def test_nothing_comes_from_another_origin() -> None:
    assert all(address.startswith("/") for address in _page().addresses)
    for folder, name in (("projects", "projects.js"), ("projects", "projects.css"), ("common", "ioc.js")):
        text = STATIC.joinpath(folder, name).read_text(encoding="utf-8")
        assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text) == [], name
        assert "innerHTML" not in text, name
        assert "insertAdjacentHTML" not in text, name
