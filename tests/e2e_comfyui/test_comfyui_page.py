"""ComfyUI's real page (the comfyui-frontend-package frontend) in Debian's chromium, offline.

A workflow loaded into the page and queued with its Run button gives the image the API gives for the same
workflow, and the page asks nothing of any other host. The base for browser tests of RegEdit's nodes.
Skips with the reason without Playwright (``pip install playwright``) or chromium (``apt-get install -y
chromium``; ``REGEDIT_CHROMIUM`` names another binary). Screenshots go to ``$WORK/screenshots/``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import chromium_path
from comfy_client import plain_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "comfyui" / "workflows"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# the stock page asks for optional user files that a fresh user directory does not have
EXPECTED_404 = ("/api/userdata/user.css", "/user.css", "/api/userdata?dir=workflows", "/api/userdata?dir=subgraphs",
                "/api/userdata/comfy.templates.json")


@pytest.fixture(scope="module")
def comfy_page(comfy):
    try:
        from playwright import sync_api
    except ImportError as exc:
        pytest.skip(f"playwright is not usable ({exc}); pip install playwright")
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium), or set REGEDIT_CHROMIUM")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 900}, device_scale_factor=1)
        page = context.new_page()
        page.problems = []
        page.foreign = []
        page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
        page.on("response", lambda r: page.problems.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 and not any(p in r.url for p in EXPECTED_404) else None)
        page.on("request", lambda r: page.foreign.append(r.url)
                if not r.url.startswith((comfy.url, "data:", "blob:")) else None)
        # a fresh user directory opens the templates dialog over the canvas on the first visit
        comfy.post("/settings/Comfy.TutorialCompleted", True).raise_for_status()
        page.goto(comfy.url + "/", wait_until="domcontentloaded")
        page.wait_for_function("() => window.app && window.app.graph && window.app.canvas", timeout=120_000)
        yield page
        context.close()
        browser.close()


def _shot(comfy, page, name):
    folder = comfy.work / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


def test_page_runs_a_workflow_like_the_api(comfy, comfy_page):
    page = comfy_page
    wf = plain_workflow(prompt="a red circle", seed=4242)
    page.evaluate("async (wf) => { await window.app.loadApiJson(wf, 'regedit-e2e.json'); }", wf)
    types = page.evaluate("() => window.app.graph._nodes.map(n => n.type).sort()")
    assert types == sorted(n["class_type"] for n in wf.values())
    page.evaluate("() => { const c = window.app.canvas; c.ds.scale = 0.8; c.ds.offset = [20, 40];"
                  " window.app.graph.setDirtyCanvas(true, true); }")
    before = set(comfy.get("/history").json())
    try:
        page.get_by_role("button", name="Run").first.click(timeout=30_000)  # what a user clicks
    except Exception:
        _shot(comfy, page, "comfyui_page_failed.png")
        raise

    deadline, entry = time.monotonic() + 300, None
    while time.monotonic() < deadline and entry is None:
        new = {k: v for k, v in comfy.get("/history").json().items() if k not in before}
        entry = next((v for v in new.values() if (v.get("status") or {}).get("completed")), None)
        time.sleep(0.3)
    assert entry is not None, f"nothing ran after Run:\n{comfy.log_tail(3000)}"
    page.wait_for_function("() => window.app.graph._nodes.some(n => n.type === 'SaveImage' && (n.imgs || []).length)",
                           timeout=60_000)
    _shot(comfy, page, "comfyui_page.png")

    queued = entry["prompt"][2]  # [number, prompt_id, prompt, extra_data, outputs]
    ksampler = next(n for n in queued.values() if n["class_type"] == "KSampler")
    assert ksampler["inputs"]["seed"] == 4242  # the seed widget randomises after the queue, not before
    from comfy_client import to_array

    shown = [to_array(comfy.view(img)) for out in entry["outputs"].values() for img in out.get("images", [])]
    api = comfy.images(plain_workflow(prompt="a red circle", seed=4242))
    assert len(shown) == 1 and np.array_equal(shown[0], api[0]), "the page's run differs from the API's"
    assert not page.problems, "\n".join(page.problems)
    assert not page.foreign, f"the page reached outside ComfyUI: {sorted(set(page.foreign))}"


def test_draw_two_boxes_on_the_regions_node_and_run(comfy, comfy_page):
    """The region workflow opened, its boxes cleared, two boxes drawn on the Regions node's canvas with the
    mouse and their prompts typed, Run pressed: the image comes back, made from the drawn document.
    ``REGEDIT_COMFYUI_SCREENSHOT=PATH`` keeps a screenshot of the page (the README's picture)."""
    page = comfy_page
    workflow = json.loads((WORKFLOWS / "regions.json").read_text())
    workflow["10"]["inputs"]["regions"] = json.dumps({"regions": []})
    page.evaluate("async (wf) => { await window.app.loadApiJson(wf, 'regions.json'); }", workflow)
    page.wait_for_selector(".regedit-comfy-canvas", timeout=30_000)
    # the workflow laid out left to right and the view fitted to it, so the Regions node's canvas is on
    # screen (and the screenshot shows the whole workflow)
    page.evaluate("""() => {
        const at = {RegEditShapesWorldLoader: [0, 0], CLIPTextEncode: [330, 0], RegEditEmptyLatent: [330, 470],
                    RegEditRegions: [700, 0], KSampler: [1100, 0], VAEDecode: [1430, 0], SaveImage: [1430, 120]};
        let prompts = 0;
        for (const node of window.app.graph._nodes) {
            const pos = at[node.type];
            if (!pos) continue;
            node.pos = [pos[0], pos[1] + (node.type === 'CLIPTextEncode' ? 230 * prompts++ : 0)];
            if (node.type === 'SaveImage') node.size = [300, 330];
        }
        const ds = window.app.canvas.ds;
        ds.scale = 0.75;
        ds.offset[0] = 100;
        ds.offset[1] = 120;
        window.app.graph.setDirtyCanvas(true, true);
    }""")
    page.wait_for_timeout(500)
    canvas = page.locator(".regedit-comfy-canvas").first
    prompt = page.locator(".regedit-comfy-prompt").first
    bb = canvas.bounding_box()
    assert bb and bb["width"] > 50, f"the Regions node's canvas is not laid out: {bb}"

    def draw(a, b, text):
        page.mouse.move(bb["x"] + a[0] * bb["width"], bb["y"] + a[1] * bb["height"])
        page.mouse.down()
        page.mouse.move(bb["x"] + b[0] * bb["width"], bb["y"] + b[1] * bb["height"], steps=8)
        page.mouse.up()
        prompt.fill(text)

    draw((0.05, 0.1), (0.45, 0.9), "a red circle")
    draw((0.55, 0.1), (0.95, 0.9), "a blue square")
    document = page.evaluate("""() => window.app.graph._nodes.find((n) => n.type === 'RegEditRegions')
        .widgets.find((w) => w.name === 'regions').value""")
    regions = json.loads(document)["regions"]
    assert [r["prompt"] for r in regions] == ["a red circle", "a blue square"], document
    assert abs(regions[0]["x"] - 0.05) < 0.02 and abs(regions[1]["w"] - 0.4) < 0.02, document

    before = set(comfy.get("/history").json())
    page.get_by_role("button", name="Run").first.click(timeout=30_000)
    deadline, new = time.monotonic() + 300, set()
    while time.monotonic() < deadline and not new:
        time.sleep(0.5)
        new = set(comfy.get("/history").json()) - before
    assert new, f"nothing ran after Run:\n{comfy.log_tail(3000)}"
    entry = comfy.wait(next(iter(new)))
    assert (entry.get("status") or {}).get("status_str") == "success", entry.get("status")
    sent = next(n for n in entry["prompt"][2].values() if n["class_type"] == "RegEditRegions")["inputs"]["regions"]
    assert [r["prompt"] for r in json.loads(sent)["regions"]] == ["a red circle", "a blue square"]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images, entry["outputs"]
    from comfy_client import to_array

    picture = to_array(comfy.view(images[0]))
    assert picture.shape == (64, 64, 3) and picture.std() > 5
    page.wait_for_function("() => window.app.graph._nodes.some(n => n.type === 'SaveImage' && (n.imgs || []).length)",
                           timeout=60_000)
    _shot(comfy, page, "comfyui_regions.png")
    if os.environ.get("REGEDIT_COMFYUI_SCREENSHOT"):
        page.screenshot(path=os.environ["REGEDIT_COMFYUI_SCREENSHOT"])
    assert not page.problems, "\n".join(page.problems)
