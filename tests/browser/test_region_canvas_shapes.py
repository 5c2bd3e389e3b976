"""The region canvas's polygon and brush tools (the drag panel's, javascript/regedit_shapes.js) and
its mask picture, in a real browser: gestures write shapes into the region document, which the engine
reads; a pasted document with shapes and a mask picture draws and comes back unchanged; undo works."""

import base64
import io
import json

import pytest
from browser_support import CanvasDriver
from PIL import Image, ImageDraw

from lib_regedit.documents import parse_region_document

T2I = "#regedit_canvas_txt2img"


def doc(page):
    text = page.evaluate("fieldValue('regedit_doc_txt2img')")
    return json.loads(text) if text else None


def regions(page):
    d = doc(page)
    return d["regions"] if d else []


def near(actual, expected, tol):
    return all(abs(a - e) <= tol for a, e in zip(actual, expected))


def wait_regions(page, n):
    page.wait_for_function(f"window.RegEditRegionPanels['txt2img'] && "
                           f"window.RegEditRegionPanels['txt2img'].regions.length === {n}", timeout=3000)


def test_polygon_tool_draws_moves_and_undoes(page, shot, tol):
    c = CanvasDriver(page, f"{T2I} canvas")
    page.click(f"{T2I} [data-tool=polygon]")
    for point in [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5)]:
        c.click(*point)
    assert regions(page) == []  # not finished yet
    c.click(0.1, 0.1)  # the first vertex closes it
    [r] = regions(page)
    assert set(r) >= {"shape", "prompt"} and not {"x", "y", "w", "h"} & set(r)
    assert r["shape"]["type"] == "polygon" and len(r["shape"]["points"]) == 4
    assert near(r["shape"]["points"][2], (0.5, 0.5), tol)
    assert page.input_value(f"{T2I} [data-key=prompt]") == ""  # its prompt is next
    page.fill(f"{T2I} [data-key=prompt]", "a red square")
    document = parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')"))
    assert document.regions[0].box == pytest.approx((0.1, 0.1, 0.4, 0.4), abs=2 * tol)

    # A triangle finished with Enter; Esc drops a polygon half drawn.
    page.focus(f"{T2I} .regedit-stage")
    for point in [(0.6, 0.6), (0.9, 0.6), (0.75, 0.9)]:
        c.click(*point)
    page.keyboard.press("Enter")
    assert len(regions(page)) == 2 and len(regions(page)[1]["shape"]["points"]) == 3
    page.fill(f"{T2I} [data-key=prompt]", "a blue triangle")
    page.focus(f"{T2I} .regedit-stage")
    c.click(0.7, 0.1)
    c.click(0.9, 0.1)
    page.keyboard.press("Escape")
    assert len(regions(page)) == 2 and page.evaluate("window.RegEditRegionPanels['txt2img'].draft === null")

    # The box tool moves a shape by its inside (not its bounding box's empty corner), and undo brings it back.
    page.click(f"{T2I} [data-tool=box]")
    c.drag((0.3, 0.3), (0.4, 0.35))
    moved = regions(page)[0]["shape"]["points"]
    assert near(moved[0], (0.2, 0.15), 2 * tol)
    page.focus(f"{T2I} .regedit-stage")
    page.keyboard.press("Control+z")
    assert near(regions(page)[0]["shape"]["points"][0], (0.1, 0.1), tol)
    c.click(0.62, 0.88)  # inside the triangle's bounding box, outside the triangle: nothing selected
    assert page.evaluate("window.RegEditRegionPanels['txt2img'].selected") == -1
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")  # undo the triangle's prompt, then the triangle
    assert len(regions(page)) <= 2
    page.errors.assert_none()
    shot(page, "region-canvas-polygon", T2I)


def test_brush_tool_paints_a_shape(page, tol):
    c = CanvasDriver(page, f"{T2I} canvas")
    page.click(f"{T2I} [data-tool=brush]")
    c.drag((0.2, 0.6), (0.5, 0.7), steps=10)
    c.drag((0.2, 0.8), (0.4, 0.8), steps=5)
    assert regions(page) == []
    page.click(f"{T2I} [data-action=finish]")
    [r] = regions(page)
    strokes = r["shape"]["strokes"]
    assert r["shape"]["type"] == "mask" and len(strokes) == 2 and len(strokes[0]["points"]) >= 3
    assert strokes[0]["radius"] == pytest.approx(16 / 512, abs=1e-5)
    page.fill(f"{T2I} [data-key=prompt]", "a green river")
    document = parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')"))
    assert document.regions[0].shape.strokes[1].points[-1] == pytest.approx((0.4, 0.8), abs=2 * tol)
    page.errors.assert_none()


def painted_png() -> str:
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, 28, 28), fill=(255, 0, 0))
    draw.rectangle((36, 30, 60, 60), fill=(0, 0, 255))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_a_mask_picture_becomes_one_region_per_colour(page, shot, tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(painted_png())
    page.set_input_files(f"{T2I} [data-role=mask-image]", str(path))
    wait_regions(page, 2)  # the white background is the background
    colours = [r["colour"] for r in regions(page)]
    assert colours == ["#ff0000", "#0000ff"] or colours == ["#0000ff", "#ff0000"]
    assert doc(page)["mask_image"].startswith("data:image/png;base64,")
    assert "background" in page.inner_text(f"{T2I} .regedit-status")
    for i in range(2):
        page.click(f"{T2I} .regedit-chip[data-index='{i}']")
        page.fill(f"{T2I} [data-key=prompt]", f"thing {i}")
    document = parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')"))
    assert {r.shape.colour for r in document.regions} == {"#ff0000", "#0000ff"}
    assert any("colours no region names" in n for n in document.notes(64, 64))
    c = CanvasDriver(page, f"{T2I} canvas")
    assert c.pixel(0.25, 0.25)[0] > c.pixel(0.25, 0.25)[2]  # the picture shows under the canvas's drawing
    # deleting every colour region drops the picture from the document
    page.click(f"{T2I} .regedit-chip[data-index='0']")
    page.click(f"{T2I} [data-action=delete]")
    page.click(f"{T2I} .regedit-chip[data-index='0']")
    page.click(f"{T2I} [data-action=delete]")
    assert not doc(page) or "mask_image" not in doc(page)
    page.errors.assert_none()


def test_a_pasted_document_with_shapes_and_a_picture_draws_and_comes_back_unchanged(page):
    source = parse_region_document({
        "prompt": "a red circle and a blue square",
        "mask_image": "data:image/png;base64," + base64.b64encode(painted_png()).decode(),
        "regions": [
            {"shape": {"type": "polygon", "points": [[0.05, 0.6], [0.45, 0.6], [0.25, 0.95]]}, "prompt": "a triangle"},
            {"shape": {"type": "mask", "strokes": [{"points": [[0.6, 0.1], [0.9, 0.2]], "radius": 0.05}]},
             "prompt": "a river"},
            {"colour": "#ff0000", "prompt": "a red circle"},
            {"x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2, "prompt": "a box"}]})
    pasted = source.to_json()  # as the infotext carries it: the picture as runs
    page.evaluate("v => setFieldSilently('regedit_doc_txt2img', v)", pasted)
    wait_regions(page, 4)
    c = CanvasDriver(page, f"{T2I} canvas")
    c.click(0.25, 0.7)  # inside the triangle: selects it
    assert page.evaluate("window.RegEditRegionPanels['txt2img'].selected") == 0
    page.keyboard.press("ArrowRight")  # a nudge moves the shape and rewrites the document
    written = parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')"))
    assert written.regions[0].shape.points[0] == pytest.approx((0.05 + 1 / 512, 0.6), abs=2e-5)
    assert written.regions[1:] == source.regions[1:] and written.mask_picture == source.mask_picture
    page.keyboard.press("Control+z")
    assert parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')")).regions == source.regions
    assert c.pixel(0.25, 0.25) != c.pixel(0.05, 0.35)  # the picture's red disc drawn from its runs
    page.errors.assert_none()
