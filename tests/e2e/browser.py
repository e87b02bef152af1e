"""Browser helpers of the page tests (the ``browser`` fixture is in ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 15_000
"""How long a page test waits for an element (a loaded 2-core box needs seconds, not milliseconds)."""


def watched_page(browser: Browser, problems: list[str]) -> tuple[BrowserContext, Page]:
    """A Vietnamese-locale page whose script errors and CSP refusals land in ``problems`` (the tests assert it
    stays empty); failed resource loads are left out: 401 before sign-in and refused images are expected."""
    context = browser.new_context(
        locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    return context, page


REPO = Path(__file__).resolve().parents[2]
AXE_SCRIPT = REPO / "central_ingest" / "web" / "vendor" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "build" / "screenshots"
"""Where the page tests leave a picture of each page state (CI keeps build/ as artefacts; people look at them)."""
BLOCKING_IMPACTS = ("serious", "critical")


def assert_accessible(page: Page, context: str) -> None:
    """Run axe-core (WCAG 2 A and AA rules) on the page as it is now; fail on any serious or critical violation.

    axe-core comes from the npm registry with the pages' libraries (``./run setup``), nothing is downloaded here.
    """
    if not AXE_SCRIPT.is_file():
        raise AssertionError(f"{AXE_SCRIPT} is missing: run ./run setup (npm ci of central_ingest/web/vendor)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated by the test driver, not added as a <script>: the pages' CSP (script-src 'self') would refuse it.
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"
    )
    blocking = [v for v in result if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"{context}: accessibility violations (axe-core): " + "; ".join(
        f"{v['impact']} {v['id']} ({v['help']}) at {v['nodes']}" for v in blocking
    )


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under build/screenshots/; the path is returned so a test can name it in a message."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(  # noqa: PLR0917 (the shared helper's signature, used positionally by every page test)
    page: Page, base_url: str, path: str, username: str, password: str, totp: str | None = None
) -> None:
    """Open ``path`` and sign in through the page shell's form (``IOC.shell``); returns when ``#app`` shows."""
    page.goto(base_url + path)
    page.fill("#ioc-login-username", username)
    page.fill("#ioc-login-password", password)
    if totp is not None:
        page.fill("#ioc-login-totp", totp)
    page.click("#ioc-login-button")
    page.wait_for_selector("#app", state="visible")
