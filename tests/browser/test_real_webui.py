"""The panels in a running AUTOMATIC1111 WebUI 1.10 (gradio 3.41), or a WebUI Forge (gradio 4), with
this extension installed.

Skipped unless ``REGEDIT_WEBUI_URL`` points at one, e.g. a WebUI started by the end-to-end harness
with its UI, or by hand::

    cd $A1111_DIR && venv/bin/python launch.py --skip-prepare-environment --skip-install \\
        --skip-torch-cuda-test --no-half --use-cpu all --no-download-sd-model --port 7871 ...
    REGEDIT_WEBUI_URL=http://127.0.0.1:7871 python -m pytest -q tests/browser/test_real_webui.py

It checks what the stand-in page cannot: that the panels mount in the real DOM, that what they write
reaches gradio's state (the Python side reads it back), and that values Python writes redraw them.
Console errors are counted as ours when they mention this extension's files; the stock WebUI logs
some of its own (an offline CDN script; a gradio output error when the width field is typed into,
seen with no extensions installed too). A "ResizeObserver loop" error event counts as ours: the
panels are the page's ResizeObserver users.
"""

import json
import os
import re

import pytest
from browser_support import ARTIFACTS, CanvasDriver

from lib_regedit.documents import parse_drag_document, parse_region_document

URL = os.environ.get("REGEDIT_WEBUI_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set REGEDIT_WEBUI_URL to a running WebUI 1.10 with RegEdit installed")


def _is_forge() -> bool:
    import requests

    return "forge_preset" in requests.get(f"{URL}/sdapi/v1/options", timeout=60).json()


@pytest.fixture
def webui(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1400}, device_scale_factor=1)
    context.add_init_script("window.addEventListener('error', (e) => console.error('window error event: ' + e.message))")
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(f"{m.text} @ {m.location.get('url', '')}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack or ''}"))
    page.goto(URL, timeout=120_000)
    page.wait_for_selector("#regedit_canvas_txt2img", state="attached", timeout=120_000)
    page.wait_for_function("window.RegEditRegionPanels && window.RegEditRegionPanels.txt2img && "
                           "window.RegEditRegionPanels.img2img && window.RegEditDragPanels.img2img", timeout=30_000)
    page.our_errors = lambda: [e for e in errors if "regedit" in e.lower() or "ResizeObserver" in e]
    page.all_errors = errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield page
    context.close()


def field(page, elem_id):
    return page.evaluate(f"gradioApp().querySelector('#{elem_id} textarea').value")


def _open_advanced(page, tab: str):
    """RegEdit's folded expert settings, opened."""
    acc = page.locator(f"#regedit_advanced_{tab} > .label-wrap")
    acc.scroll_into_view_if_needed()
    if "open" not in (acc.get_attribute("class") or "").split():
        acc.click()


def _choose_task(page, task: str):
    """img2img's task choice, and its part shown."""
    page.locator("#regedit_task_img2img label").filter(has_text=re.compile(f"^\\s*{task}\\s*$")).click()
    part = {"Regions": "regions", "Drag": "drag_task", "LIME": "lime_task", "Edit by regions": "edit_task"}[task]
    page.locator(f"#regedit_{part}_img2img").wait_for(state="visible", timeout=30_000)


def _open_regions(page, tab: str, prompt: str, steps: int):
    """The tab's prompt, a 64x64 size and ``steps``, then the accordion opened and enabled: the canvas."""
    page.fill(f"#{tab}_prompt textarea", prompt)
    for elem, value in ((f"{tab}_width", "64"), (f"{tab}_height", "64"), (f"{tab}_steps", str(steps))):
        page.fill(f"#{elem} input[type=number]", value)
        page.keyboard.press("Tab")
    page.click(f"#regedit_{tab} .label-wrap")
    page.click(f"#regedit_enable_{tab} input")
    page.wait_for_function(f"gradioApp().querySelector('#regedit_canvas_{tab} canvas').clientWidth > 0")
    page.wait_for_timeout(600)
    page.locator(f"#regedit_canvas_{tab} canvas").scroll_into_view_if_needed()
    return CanvasDriver(page, f"#regedit_canvas_{tab} canvas")


def test_txt2img_canvas_round_trips_through_gradio(webui):
    page = webui
    assert not page.locator("#regedit_doc_txt2img").is_visible()  # the JSON field is hidden
    assert page.evaluate("gradioApp().querySelector('#regedit_canvas_txt2img canvas').clientWidth") == 0
    page.click("#regedit_txt2img .label-wrap")  # the accordion starts closed
    page.wait_for_function("gradioApp().querySelector('#regedit_canvas_txt2img canvas').clientWidth > 0")
    page.locator("#regedit_canvas_txt2img canvas").scroll_into_view_if_needed()
    c = CanvasDriver(page, "#regedit_canvas_txt2img canvas")
    c.drag((0.1, 0.1), (0.5, 0.6))
    page.fill("#regedit_canvas_txt2img [data-key=prompt]", "a red ball")
    c.drag((0.6, 0.2), (0.9, 0.9))
    page.fill("#regedit_canvas_txt2img [data-key=prompt]", "a blue cube")
    page.keyboard.press("Escape")
    doc = parse_region_document(field(page, "regedit_doc_txt2img"))
    assert [r.prompt for r in doc.regions] == ["a red ball", "a blue cube"]

    # Gradio has the value: a Python callback reads the document into the table (under Advanced).
    _open_advanced(page, "txt2img")
    page.click("#regedit_txt2img >> text=Regions as a table")
    page.click("#regedit_load_txt2img")
    page.wait_for_function("gradioApp().querySelector('#regedit_table_txt2img').innerText.includes('a blue cube')",
                           timeout=20_000)
    # And a value written by Python (the fusion-mode radio rewrites the document) redraws the canvas
    # and survives the next edit.
    page.click("#regedit_txt2img label:has-text('latent')")
    page.wait_for_function("window.RegEditRegionPanels.txt2img.base.mode === 'latent'", timeout=20_000)
    c.click(0.3, 0.3)
    page.keyboard.press("ArrowRight")
    after = json.loads(field(page, "regedit_doc_txt2img"))
    assert after["mode"] == "latent" and after["regions"][0]["prompt"] == "a red ball"
    page.locator("#regedit_txt2img").screenshot(path=str(ARTIFACTS / "real_webui_txt2img.png"))
    assert page.our_errors() == []


def test_img2img_panels_over_an_uploaded_init_image(webui, tmp_path):
    from PIL import Image, ImageDraw

    init = Image.new("RGB", (640, 448), (40, 60, 200))
    draw = ImageDraw.Draw(init)
    draw.rectangle([64, 45, 192, 134], fill=(230, 30, 30))
    draw.ellipse([120, 260, 200, 340], fill=(30, 200, 60))
    init.save(tmp_path / "init.png")

    page = webui
    page.click("#tabs button:has-text('img2img')")
    page.set_input_files("#img2img_image input[type=file]", str(tmp_path / "init.png"))
    page.click("#regedit_img2img .label-wrap")  # the Regions task: its canvas over the picture at once
    page.wait_for_function("window.RegEditRegionPanels.img2img.images.image && "
                           "gradioApp().querySelector('#regedit_canvas_img2img canvas').clientWidth > 0",
                           timeout=20_000)
    page.wait_for_timeout(600)  # one poll: the region canvas takes the image's shape
    region = CanvasDriver(page, "#regedit_canvas_img2img canvas")
    page.locator("#regedit_canvas_img2img canvas").scroll_into_view_if_needed()
    w, h = region.size()
    assert w / h == pytest.approx(640 / 448, abs=0.02)
    red = region.pixel(0.2, 0.2)
    assert red[0] > 180 and red[2] < 90, red  # the init image shows under the boxes
    region.drag((0.55, 0.1), (0.95, 0.45))
    page.fill("#regedit_canvas_img2img [data-key=prompt]", "a cat")
    assert parse_region_document(field(page, "regedit_doc_img2img")).regions[0].prompt == "a cat"

    _choose_task(page, "Drag")  # the drag canvas, over the same picture
    page.wait_for_function("window.RegEditDragPanels.img2img.images.image && "
                           "gradioApp().querySelector('#regedit_drag_canvas_img2img canvas').clientWidth > 0",
                           timeout=20_000)
    drag = CanvasDriver(page, "#regedit_drag_canvas_img2img canvas")
    page.locator("#regedit_drag_canvas_img2img canvas").scroll_into_view_if_needed()
    for p in [(0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3), (0.5, 0.5), (0.8, 0.55), (0.75, 0.85), (0.5, 0.8)]:
        drag.click(*p)
    page.click("#regedit_drag_canvas_img2img [data-tool=brush]")
    drag.drag((0.2, 0.7), (0.3, 0.72))
    page.keyboard.press("Enter")
    drag.drag((0.6, 0.2), (0.75, 0.25))
    page.keyboard.press("Enter")
    doc = parse_drag_document(field(page, "regedit_drag_img2img"))
    assert [p.kind for p in doc.pairs] == ["perspective", "scale"]
    pasted = drag.pixel(0.7, 0.62)
    assert pasted[0] > 180 and pasted[2] < 90, pasted  # the preview moved the red square
    page.locator("#regedit_img2img").screenshot(path=str(ARTIFACTS / "real_webui_img2img.png"))

    # Back and forth between tabs, and a closed-then-opened accordion, keep the canvases working.
    page.click("#tabs button:has-text('txt2img')")
    page.click("#regedit_txt2img .label-wrap")  # open (it starts closed)
    page.wait_for_function("gradioApp().querySelector('#regedit_canvas_txt2img canvas').clientWidth > 0")
    page.click("#regedit_txt2img .label-wrap")  # close
    page.wait_for_function("gradioApp().querySelector('#regedit_canvas_txt2img canvas').clientWidth === 0")
    page.click("#regedit_txt2img .label-wrap")  # and open again
    page.wait_for_function("gradioApp().querySelector('#regedit_canvas_txt2img canvas').clientWidth > 0")
    page.click("#tabs button:has-text('img2img')")
    page.wait_for_function("gradioApp().querySelector('#regedit_drag_canvas_img2img canvas').clientWidth > 0")
    assert page.our_errors() == []


def test_img2img_edits_a_picture_from_the_page(webui, tmp_path):
    """What a user clicks: a picture, one box with the edit role "change" and its target prompt, the
    null-text inversion (DDIM in Forge, which refuses null-text), Generate. The gallery shows the
    reconstruction and the edit, and the infotext names the inversion. Needs a checkpoint loaded (the
    e2e harness's tiny SD1 is enough)."""
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 120, 90)).save(tmp_path / "picture.png")
    page = webui
    page.click("#tabs button:has-text('img2img')")
    page.set_input_files("#img2img_image input[type=file]", str(tmp_path / "picture.png"))
    _open_regions(page, "img2img", "a red circle", steps=3)
    _choose_task(page, "Edit by regions")  # the same box canvas, with the boxes' edit roles
    edit = "#regedit_canvas_edit_img2img"
    page.wait_for_function(f"gradioApp().querySelector('{edit} canvas') && "
                           f"gradioApp().querySelector('{edit} canvas').clientWidth > 0", timeout=20_000)
    page.locator(f"{edit} canvas").scroll_into_view_if_needed()
    CanvasDriver(page, f"{edit} canvas").drag((0.1, 0.1), (0.6, 0.6))
    page.fill(f"{edit} [data-key=prompt]", "a red circle")
    page.select_option(f"{edit} [data-key=edit]", "change")
    page.fill(f"{edit} [data-key=target_prompt]", "a blue circle")
    assert parse_region_document(field(page, "regedit_doc_img2img")).regions[0].edit == "change"
    inversion = "ddim" if _is_forge() else "nulltext"
    page.click(f"#regedit_inversion_img2img label:has-text('{inversion}')")
    page.click("#img2img_generate")
    page.wait_for_function("gradioApp().querySelectorAll('#img2img_gallery .thumbnail-item').length >= 2 || "
                           "(gradioApp().querySelector('#html_info_img2img') || {}).innerText?.includes('RegEdit')",
                           timeout=300_000)
    page.wait_for_function("(gradioApp().querySelector('#html_info_img2img') || {}).innerText?.includes('RegEdit')",
                           timeout=60_000)
    info = page.evaluate("gradioApp().querySelector('#html_info_img2img').innerText")
    assert f"RegEdit inversion: {inversion}" in info and "RegEdit pair: source" in info, info
    # the reconstruction and the edit (the gallery adds the WebUI's grid of them)
    assert page.evaluate("gradioApp().querySelectorAll('#img2img_gallery .thumbnail-item').length") >= 2
    page.locator("#img2img_gallery").screenshot(path=str(ARTIFACTS / "real_webui_picture_edit.png"))
    assert page.our_errors() == []




def _draw_two_boxes(page, prompt: str, steps: int, left: tuple, right: tuple):
    """txt2img's accordion opened with ``prompt``, a box on the left and one on the right, each
    ``((x0, y0), (x1, y1), prompt)``; the last box stays selected. Returns the canvas."""
    page.click("#tabs button:has-text('txt2img')")
    c = _open_regions(page, "txt2img", prompt, steps=steps)
    for start, end, text in (left, right):
        c.drag(start, end)
        page.fill("#regedit_canvas_txt2img [data-key=prompt]", text)
    page.keyboard.press("Escape")
    return c


def _generated_info(page, before: str) -> str:
    page.click("#txt2img_generate")
    page.wait_for_function(f"(gradioApp().querySelector('#html_info_txt2img') || {{}}).innerText?.includes('RegEdit') "
                           f"&& gradioApp().querySelector('#html_info_txt2img').innerText !== {json.dumps(before)}",
                           timeout=300_000)
    return page.evaluate("gradioApp().querySelector('#html_info_txt2img').innerText")


def test_txt2img_layout_guidance_and_an_edit_pair_from_the_page(webui):
    """What a user clicks in txt2img: two boxes and *Layout guidance*, Generate (the infotext carries
    it); then the selected box set to *change* with its target prompt, Generate: the gallery shows the
    source and the target."""
    page = webui
    _draw_two_boxes(page, "a red circle and a blue square", 4, ((0.05, 0.1), (0.45, 0.9), "a red circle"),
                    ((0.55, 0.1), (0.95, 0.9), "a blue square"))
    _open_advanced(page, "txt2img")
    page.click("#regedit_guidance_txt2img input")
    page.wait_for_function("gradioApp().querySelector('#regedit_doc_txt2img textarea').value.includes('\"guidance\"')")
    assert parse_region_document(field(page, "regedit_doc_txt2img")).guidance.enabled
    info = _generated_info(page, "")
    assert '"guidance":{"enabled":true}' in info.replace("\\", ""), info
    page.locator("#txt2img_gallery").screenshot(path=str(ARTIFACTS / "real_webui_layout_guidance.png"))

    page.click("#regedit_guidance_txt2img input")  # off again
    # select the second box (Forge's page sometimes redraws the panel after a generation, deselecting it)
    page.locator("#regedit_canvas_txt2img .regedit-chip").nth(1).click()
    page.select_option("#regedit_canvas_txt2img [data-key=edit]", "change")
    page.fill("#regedit_canvas_txt2img [data-key=target_prompt]", "a green square")
    page.keyboard.press("Escape")
    edited = parse_region_document(field(page, "regedit_doc_txt2img"))
    assert [r.edit for r in edited.regions] == ["inherent", "change"], field(page, "regedit_doc_txt2img")
    info = _generated_info(page, info)
    assert "RegEdit pair: source" in info, info
    assert page.evaluate("gradioApp().querySelectorAll('#txt2img_gallery .thumbnail-item').length") >= 2
    page.locator("#txt2img_gallery").screenshot(path=str(ARTIFACTS / "real_webui_txt2img_pair.png"))
    assert page.our_errors() == []


def test_txt2img_regions_from_the_page_and_pasted_back(webui):
    """Two boxes drawn, Generate: the infotext carries them. Then a fresh page: the infotext pasted into
    the prompt and the paste button pressed brings the boxes back into the document and the canvas."""
    page = webui
    _draw_two_boxes(page, "a landscape", 3, ((0.05, 0.1), (0.45, 0.9), "a blue square"),
                    ((0.55, 0.2), (0.95, 0.8), "a yellow house"))
    drawn = parse_region_document(field(page, "regedit_doc_txt2img"))
    info = _generated_info(page, "")
    assert "RegEdit regions: " in info, info
    page.locator("#txt2img_gallery").screenshot(path=str(ARTIFACTS / "real_webui_regions_generated.png"))

    page.reload()
    page.wait_for_function("window.RegEditRegionPanels && window.RegEditRegionPanels.txt2img", timeout=60_000)
    page.fill("#txt2img_prompt textarea", info.strip())
    page.click("#txt2img_tools #paste")
    page.wait_for_function("gradioApp().querySelector('#regedit_doc_txt2img textarea').value.includes('a yellow house')",
                           timeout=30_000)
    pasted = parse_region_document(field(page, "regedit_doc_txt2img"))
    assert [(r.x, r.y, r.w, r.h, r.prompt) for r in pasted.regions] == \
        [(r.x, r.y, r.w, r.h, r.prompt) for r in drawn.regions]
    assert page.evaluate("gradioApp().querySelector('#txt2img_prompt textarea').value") == "a landscape"
    page.click("#regedit_txt2img .label-wrap")
    page.wait_for_function("gradioApp().querySelector('#regedit_canvas_txt2img canvas').clientWidth > 0")
    page.locator("#regedit_txt2img").screenshot(path=str(ARTIFACTS / "real_webui_regions_pasted.png"))
    assert page.our_errors() == []
