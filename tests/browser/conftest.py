"""Browser fixtures: Debian's chromium driven by Playwright, on a page that mounts the panels.

Needs `pip install playwright` and `apt-get install -y chromium` (no `playwright install`: the tests
use the system browser through its executable path). Without either, the browser tests skip and say
why. The page is served from memory through Playwright's request routing, so no port is opened.
"""

from __future__ import annotations


import pytest
from browser_support import ARTIFACTS, REPO, chromium_path, page_html

ORIGIN = "http://regedit.test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright import sync_api
    except ImportError as exc:  # not installed, or installed broken
        pytest.skip(f"playwright is not usable ({exc}); pip install playwright")
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium), or set REGEDIT_CHROMIUM")
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # a browser that cannot start is an environment problem, say so
            pytest.skip(f"chromium at {path} did not start: {exc}")
        yield browser
        browser.close()


class PageErrors(list):
    def assert_none(self):
        assert not self, "console errors:\n" + "\n".join(self)


def _serve(route):
    url = route.request.url
    rel = url[len(ORIGIN):].split("?")[0].lstrip("/")
    if rel in ("", "index.html"):
        return route.fulfill(status=200, content_type="text/html", body=page_html())
    path = (REPO / rel).resolve()
    if REPO not in path.parents or not path.is_file():
        return route.fulfill(status=404, body="not found")
    types = {".js": "application/javascript", ".css": "text/css"}
    return route.fulfill(status=200, content_type=types.get(path.suffix, "application/octet-stream"),
                         body=path.read_bytes())


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 1500}, device_scale_factor=1)
    page = context.new_page()
    errors = PageErrors()
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.route(f"{ORIGIN}/**", _serve)
    page.errors = errors
    page.goto(f"{ORIGIN}/index.html")
    page.wait_for_function("window.uiLoaded === true")
    yield page
    context.close()


@pytest.fixture
def shot():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def save(page, name, selector=None):
        target = page.locator(selector).first if selector else page
        target.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    return save


@pytest.fixture
def tol():
    """Two canvas pixels of a 512-pixel canvas: the slack of a mouse gesture, in fractions."""
    return 2.5 / 512
