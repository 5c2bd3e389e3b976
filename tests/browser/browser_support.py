"""Helpers for the browser tests (a module with its own name: tests/ has several conftest modules)."""

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
PAGE = Path(__file__).with_name("page.html")


def chromium_path() -> str | None:
    """REGEDIT_CHROMIUM when set (and only it), else Debian's chromium (the browser tests here and the
    ComfyUI page tests)."""
    if os.environ.get("REGEDIT_CHROMIUM"):
        path = os.environ["REGEDIT_CHROMIUM"]
        return path if os.path.exists(path) else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def page_html(reverse=False) -> str:
    """The stand-in page with a <script> tag for each javascript/*.js file, in the WebUI's sorted order
    (or the reverse)."""
    scripts = "\n".join(f'<script src="/javascript/{p.name}"></script>'
                        for p in sorted((REPO / "javascript").glob("*.js"), reverse=reverse))
    return PAGE.read_text(encoding="utf-8").replace("<!-- REGEDIT_SCRIPTS -->", scripts)


class CanvasDriver:
    """Mouse and keyboard on one panel canvas, in fractions of the canvas (= of the image)."""

    def __init__(self, page, selector):
        self.page = page
        self.selector = selector

    @property
    def box(self):
        box = self.page.locator(self.selector).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, f"{self.selector} is not laid out"
        return box

    def at(self, fx, fy):
        b = self.box
        return b["x"] + fx * b["width"], b["y"] + fy * b["height"]

    def drag(self, a, b, steps=6):
        mouse = self.page.mouse
        mouse.move(*self.at(*a))
        mouse.down()
        mouse.move(*self.at(*b), steps=steps)
        mouse.up()

    def click(self, fx, fy):
        self.page.mouse.click(*self.at(fx, fy))

    def pixel(self, fx, fy):
        """RGBA of the drawn canvas at a fraction of its size."""
        return self.page.evaluate(
            """([sel, fx, fy]) => {
                const c = gradioApp().querySelector(sel);
                const x = Math.min(c.width - 1, Math.floor(fx * c.width));
                const y = Math.min(c.height - 1, Math.floor(fy * c.height));
                return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
            }""", [self.selector, fx, fy])

    def size(self):
        b = self.box
        return b["width"], b["height"]
