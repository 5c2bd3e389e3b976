"""The region canvas's polygon and brush tools and its mask picture in the real WebUI page: drawn,
generated, and restored by the WebUI's paste button."""

from __future__ import annotations

import json

from e2e_webui import decode_png  # noqa: F401  (the browser module's helpers need the harness on the path)
from test_e2e_browser import (browser, click_at, doc_value, drag, generate_and_read, open_accordion,  # noqa: F401
                              our_errors, page, setup_tab, LOAD_TIMEOUT_MS)


def test_shapes_drawn_on_the_page_generate_and_paste_back(page, webui, tmp_path):
    from PIL import Image, ImageDraw

    tab, canvas = "txt2img", "#regedit_canvas_txt2img canvas >> nth=0"
    setup_tab(page, tab, "a landscape")
    open_accordion(page, tab)
    page.locator(canvas).scroll_into_view_if_needed()
    page.click("#regedit_canvas_txt2img [data-tool=polygon]")
    for point in [(0.05, 0.1), (0.45, 0.1), (0.25, 0.9), (0.05, 0.1)]:
        click_at(page, canvas, point)
    page.fill("#regedit_canvas_txt2img [data-key=prompt]", "a red circle")
    page.click("#regedit_canvas_txt2img [data-tool=brush]")
    drag(page, canvas, (0.6, 0.3), (0.8, 0.7), steps=8)
    page.focus("#regedit_canvas_txt2img .regedit-stage")
    page.keyboard.press("Enter")
    page.fill("#regedit_canvas_txt2img [data-key=prompt]", "a blue square")
    doc = doc_value(page, tab)
    assert [r["shape"]["type"] for r in doc["regions"]] == ["polygon", "mask"], doc
    info, image = generate_and_read(page, webui, tab)
    infotext = image.info.get("parameters", "")
    assert '\\"shape\\":{\\"type\\":\\"polygon\\"' in infotext and '\\"strokes\\"' in infotext, infotext

    # A mask picture: one region per colour, generated, its runs in the infotext.
    picture = Image.new("RGB", (64, 64), (255, 255, 255))
    ImageDraw.Draw(picture).ellipse((4, 4, 28, 28), fill=(255, 0, 0))
    path = tmp_path / "mask.png"
    picture.save(path)
    page.locator("#regedit_canvas_txt2img [data-role=mask-image]").set_input_files(str(path))
    page.wait_for_function("window.RegEditRegionPanels.txt2img.regions.length === 3", timeout=10_000)
    page.fill("#regedit_canvas_txt2img [data-key=prompt]", "a yellow circle")
    info, image = generate_and_read(page, webui, tab)
    with_picture = image.info.get("parameters", "")
    assert '\\"runs\\"' in with_picture and '\\"colour\\":\\"#ff0000\\"' in with_picture, with_picture

    # Paste: a fresh page, the infotext in the prompt box, the WebUI's paste button.
    page.reload()
    page.wait_for_selector("#txt2img_prompt textarea", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("!!(window.RegEditRegionPanels || {}).txt2img", timeout=60_000)
    page.fill("#txt2img_prompt textarea", with_picture)
    page.click("#paste")
    page.wait_for_function("(document.querySelector('#regedit_doc_txt2img textarea').value || '').includes('runs')",
                           timeout=30_000)
    pasted = doc_value(page, tab)
    assert [("shape" in r, r.get("colour")) for r in pasted["regions"]] == \
        [(True, None), (True, None), (False, "#ff0000")], pasted
    page.locator("#regedit_txt2img > .label-wrap").click()
    page.wait_for_function("window.RegEditRegionPanels.txt2img.regions.length === 3", timeout=10_000)
    assert json.loads(json.dumps(pasted))["mask_image"]["width"] == 64
    assert not our_errors(page), our_errors(page)
