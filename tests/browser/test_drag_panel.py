"""The img2img drag-region panel in a real browser: gestures write the drag document, the document
draws pairs, and the preview moves pixels from each handle onto its target."""

import json

import pytest
from browser_support import CanvasDriver

from lib_regedit.documents import parse_drag_document

PANEL = "#regedit_drag_canvas_img2img"
CANVAS = f"{PANEL} canvas"
RED, GREEN, BLUE = (230, 30, 30), (30, 200, 60), (40, 60, 200)


def doc(page):
    text = page.evaluate("fieldValue('regedit_drag_img2img')")
    return json.loads(text) if text else None


def pairs(page):
    d = doc(page)
    return d["pairs"] if d else []


def close(rgba, rgb, slack=40):
    return all(abs(a - b) <= slack for a, b in zip(rgba[:3], rgb))


def preview_pixel(page, fx, fy):
    return page.evaluate("""([fx, fy]) => {
        const c = window.RegEditDragPanels.img2img.previewCanvas;
        return Array.from(c.getContext('2d').getImageData(Math.floor(fx * c.width), Math.floor(fy * c.height), 1, 1).data);
    }""", [fx, fy])


def points_near(points, expected, tol):
    assert len(points) == len(expected)
    for p, e in zip(points, expected):
        assert p == pytest.approx(e, abs=tol), (points, expected)


@pytest.fixture
def drag_page(page):
    page.evaluate("showTab('img2img'); showTask('Drag'); setInitImage(512, 512)")
    page.wait_for_function("window.RegEditDragPanels.img2img && window.RegEditDragPanels.img2img.images.image && "
                           f"gradioApp().querySelector('{CANVAS}').clientWidth > 0", timeout=3000)
    page.locator(CANVAS).scroll_into_view_if_needed()
    return page


def test_polygon_pairs_triangle_and_quad_with_preview(drag_page, shot, tol):
    page = drag_page
    c = CanvasDriver(page, CANVAS)
    assert c.size() == (512, 512)

    # A triangle handle: three clicks and Enter. A target must be drawn the way its handle was.
    tri_h = [(0.1, 0.1), (0.3, 0.1), (0.2, 0.3)]
    tri_t = [(0.5, 0.1), (0.7, 0.1), (0.6, 0.3)]
    for p in tri_h:
        c.click(*p)
    page.keyboard.press("Enter")
    assert pairs(page) == []  # half a pair is not written
    page.click(f"{PANEL} [data-tool=brush]")
    assert page.locator(f"{PANEL} [data-tool=polygon].active").count() == 1
    for p in tri_t[:2]:
        c.click(*p)
    page.mouse.dblclick(*c.at(*tri_t[2]))  # the third vertex finishes it: the handle had three
    assert page.evaluate("window.RegEditDragPanels.img2img.pending") is None  # the double click's second click starts nothing
    [pair] = pairs(page)
    assert doc(page)["version"] == 2  # a new drag is written at the current version (drag.py's VERSION)
    assert pair["handle"]["type"] == pair["target"]["type"] == "polygon"
    points_near(pair["handle"]["points"], tri_h, tol)
    points_near(pair["target"]["points"], tri_t, tol)

    # A quad pair: the red square's corners onto a tilted quad; the fourth click finishes each.
    page.click(f"{PANEL} [data-tool=polygon]")
    quad_h = [(0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3)]
    quad_t = [(0.55, 0.45), (0.85, 0.5), (0.8, 0.8), (0.55, 0.75)]
    for p in quad_h + quad_t:
        c.click(*p)
    assert len(pairs(page)) == 2
    points_near(pairs(page)[1]["target"]["points"], quad_t, tol)

    # Esc drops a polygon being drawn.
    c.click(0.05, 0.9)
    c.click(0.1, 0.9)
    page.keyboard.press("Escape")
    assert page.evaluate("window.RegEditDragPanels.img2img.pending") is None
    assert len(pairs(page)) == 2

    document = parse_drag_document(page.evaluate("fieldValue('regedit_drag_img2img')"))
    assert [p.kind for p in document.pairs] == ["affine", "perspective"]

    # The preview: the red square's pixels now fill the target quad and the target triangle.
    assert close(preview_pixel(page, 0.7, 0.62), RED)
    assert close(preview_pixel(page, 0.6, 0.15), RED)
    assert close(preview_pixel(page, 0.5, 0.95), BLUE)  # elsewhere the image is untouched
    assert close(c.pixel(0.78, 0.52), RED)  # and it is what the canvas shows
    page.uncheck(f"{PANEL} [data-role=preview]")
    assert close(c.pixel(0.78, 0.52), BLUE, slack=60)
    page.check(f"{PANEL} [data-role=preview]")

    # Move tool: drag a vertex of the target triangle.
    page.click(f"{PANEL} [data-tool=move]")
    c.drag((0.7, 0.1), (0.75, 0.05))
    points_near(pairs(page)[0]["target"]["points"][1], (0.75, 0.05), tol)
    shot(page, "drag_panel_polygons", "#regedit_drag_canvas_img2img")
    page.errors.assert_none()


def test_brush_pair_move_nudge_delete_undo(drag_page, shot, tol):
    page = drag_page
    c = CanvasDriver(page, CANVAS)
    page.click(f"{PANEL} [data-tool=brush]")
    c.drag((0.2, 0.7), (0.3, 0.7))  # across the green disc
    page.keyboard.press("Enter")
    c.drag((0.6, 0.3), (0.7, 0.3))
    c.drag((0.6, 0.35), (0.7, 0.35))  # a target may take several strokes
    page.click(f"{PANEL} [data-action=finish]")
    [pair] = pairs(page)
    assert pair["handle"]["type"] == pair["target"]["type"] == "mask"
    [stroke] = pair["handle"]["strokes"]
    assert stroke["radius"] == pytest.approx(16 / 512)
    assert stroke["points"][0] == pytest.approx([0.2, 0.7], abs=tol)
    assert stroke["points"][-1] == pytest.approx([0.3, 0.7], abs=tol)
    assert len(pair["target"]["strokes"]) == 2
    assert parse_drag_document(doc(page)).pairs[0].kind == "scale"
    # Scaling between bounding boxes: the painted green lands on the target.
    assert close(preview_pixel(page, 0.65, 0.32), GREEN)
    shot(page, "drag_panel_brush", "#regedit_drag_canvas_img2img")

    # Move the target down by dragging it, then nudge it with the keyboard.
    page.click(f"{PANEL} [data-tool=move]")
    before = pairs(page)[0]["target"]["strokes"][0]["points"][0]
    c.drag((0.65, 0.3), (0.65, 0.4))
    moved = pairs(page)[0]["target"]["strokes"][0]["points"][0]
    assert moved == pytest.approx([before[0], before[1] + 0.1], abs=tol)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Shift+ArrowUp")
    nudged = pairs(page)[0]["target"]["strokes"][0]["points"][0]
    assert nudged == pytest.approx([moved[0] - 1 / 512, moved[1] - 8 / 512], abs=2e-5)
    assert pairs(page)[0]["handle"]["strokes"][0]["points"][0] == pytest.approx([0.2, 0.7], abs=tol)

    # Delete removes the selected pair; undo brings it back, redo removes it again.
    page.keyboard.press("Delete")
    assert doc(page) is None  # nothing left: the field is emptied
    page.keyboard.press("Control+z")
    assert pairs(page)[0]["target"]["strokes"][0]["points"][0] == pytest.approx(nudged, abs=2e-5)
    page.keyboard.press("Control+z")  # the nudges, one step
    assert pairs(page)[0]["target"]["strokes"][0]["points"][0] == pytest.approx(moved, abs=2e-5)
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+y")
    assert doc(page) is None
    page.click(f"{PANEL} [data-action=undo]")
    assert len(pairs(page)) == 1
    page.keyboard.press("Escape")  # deselects
    assert page.evaluate("window.RegEditDragPanels.img2img.selected") is None
    page.errors.assert_none()


def test_document_in_the_field_draws_pairs(drag_page, shot):
    page = drag_page
    document = {"version": 1, "pairs": [
        {"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]]},
         "target": {"type": "polygon", "points": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]]}},
        {"handle": {"type": "mask", "strokes": [{"points": [[0.25, 0.65], [0.25, 0.75]], "radius": 0.04}]},
         "target": {"type": "mask", "strokes": [{"points": [[0.6, 0.6], [0.6, 0.8]], "radius": 0.05}]}},
    ]}
    page.evaluate("v => setFieldSilently('regedit_drag_img2img', v)", json.dumps(document))
    page.wait_for_function("window.RegEditDragPanels.img2img.pairs.length === 2", timeout=3000)
    assert page.locator(f"{PANEL} .regedit-pair").count() == 2
    assert "perspective" in page.locator(f"{PANEL} .regedit-pair").first.inner_text()
    assert close(preview_pixel(page, 0.75, 0.25), RED)  # the square scaled 1.5x onto the target
    assert close(preview_pixel(page, 0.6, 0.7), GREEN)

    # Editing keeps the document's shape: nudge the first target after selecting it in Move mode.
    c = CanvasDriver(page, CANVAS)
    page.click(f"{PANEL} [data-tool=move]")
    c.click(0.85, 0.35)
    page.keyboard.press("ArrowRight")
    d = doc(page)
    assert d["pairs"][0]["target"]["points"][0] == pytest.approx([0.6 + 1 / 512, 0.1], abs=2e-5)
    assert d["pairs"][1] == document["pairs"][1]
    assert len(parse_drag_document(d).pairs) == 2

    # A pair that cannot be drawn is left out and reported; broken JSON is reported, not overwritten.
    bad = {"pairs": [document["pairs"][0], {"handle": document["pairs"][0]["handle"],
                                            "target": document["pairs"][1]["target"]}]}
    page.evaluate("v => setFieldSilently('regedit_drag_img2img', v)", json.dumps(bad))
    page.wait_for_function(f"gradioApp().querySelector('{PANEL} .regedit-status').textContent.includes('left out')")
    assert page.evaluate("window.RegEditDragPanels.img2img.pairs.length") == 1
    page.evaluate("setFieldSilently('regedit_drag_img2img', '[1,')")
    page.wait_for_function(f"gradioApp().querySelector('{PANEL} .regedit-status').textContent.includes('valid JSON')")
    assert page.evaluate("fieldValue('regedit_drag_img2img')") == "[1,"
    shot(page, "drag_panel_from_field", "#regedit_drag_canvas_img2img")
    page.errors.assert_none()


def test_hidden_until_shown_and_without_an_init_image(page):
    # Mounted while its tab is hidden; document set meanwhile; no init image at all.
    assert page.evaluate("gradioApp().querySelector('#regedit_drag_canvas_img2img canvas').clientWidth") == 0
    tri = [[0.1, 0.1], [0.3, 0.1], [0.2, 0.3]]
    page.evaluate("v => setFieldSilently('regedit_drag_img2img', v)", json.dumps(
        {"pairs": [{"handle": {"type": "polygon", "points": tri}, "target": {"type": "polygon", "points": tri[::-1]}}]}))
    page.evaluate("toggleAccordion('regedit_img2img', false); showTab('img2img'); showTask('Drag')")
    page.wait_for_timeout(600)
    assert page.evaluate("gradioApp().querySelector('#regedit_drag_canvas_img2img canvas').clientWidth") == 0
    page.evaluate("toggleAccordion('regedit_img2img', true)")
    page.wait_for_function("window.RegEditDragPanels.img2img.pairs.length === 1 && "
                           f"gradioApp().querySelector('{CANVAS}').clientWidth > 0", timeout=3000)
    assert "no init image" in page.inner_text(f"{PANEL} .regedit-status")
    page.locator(CANVAS).scroll_into_view_if_needed()
    c = CanvasDriver(page, CANVAS)
    for p in [(0.5, 0.5), (0.7, 0.5), (0.7, 0.7), (0.5, 0.7), (0.6, 0.8), (0.8, 0.8), (0.8, 0.98), (0.6, 0.98)]:
        c.click(*p)
    assert len(pairs(page)) == 2
    page.errors.assert_none()


def test_dense_mapping_math(page):
    """The preview's maps send each handle vertex to its target vertex (affine: 3, perspective: 4)."""
    result = page.evaluate("""() => {
        const M = window.RegEditDragMath;
        const tri = [[10, 10], [50, 12], [30, 60]], tri2 = [[100, 40], [160, 30], [120, 110]];
        const quad = [[0, 0], [100, 0], [100, 100], [0, 100]], quad2 = [[10, 20], [90, 5], [120, 130], [0, 80]];
        const a = M.pointMap(tri, tri2), h = M.pointMap(quad, quad2);
        return {affine: tri.map(p => a(...p)), perspective: quad.map(p => h(...p)),
                singular: M.pointMap([[0, 0], [1, 1], [2, 2]], tri2) === null,
                inside: [M.insidePolygon(quad2, 50, 50), M.insidePolygon(quad2, 115, 20)],
                box: M.regionBox({type: 'mask', strokes: [{points: [[0.5, 0.5]], radius: 0.1}]}, 200, 100)};
    }""")
    points_near(result["affine"], [(100, 40), (160, 30), (120, 110)], 1e-6)
    points_near(result["perspective"], [(10, 20), (90, 5), (120, 130), (0, 80)], 1e-6)
    assert result["singular"] is True
    assert result["inside"] == [True, False]
    # The brush radius is a fraction of the width: 20 px on both axes of a 200 x 100 image.
    assert result["box"] == pytest.approx([80, 30, 120, 70])
    page.errors.assert_none()


def test_the_empty_panel_says_what_to_do_over_the_picture(drag_page, shot):
    """Over the loaded picture, before any pair, the canvas says how to draw one; the first vertex
    clicked takes the words away."""
    page = drag_page
    hint = "window.RegEditDragPanels.img2img"
    page.wait_for_timeout(600)
    middle = """() => {
        const c = gradioApp().querySelector('#regedit_drag_canvas_img2img canvas');
        const d = c.getContext('2d').getImageData(0, Math.floor(c.height * 0.4), c.width, Math.ceil(c.height * 0.2)).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 220 && d[i + 1] > 220 && d[i + 2] > 220) n++;
        return n;
    }"""
    assert page.evaluate(middle) > 50, "no words on the empty canvas"
    shot(page, "drag_panel_empty", PANEL)
    CanvasDriver(page, CANVAS).click(0.1, 0.1)
    assert page.evaluate(f"{hint}.pending !== null")
    assert page.evaluate(middle) == 0
    page.errors.assert_none()
