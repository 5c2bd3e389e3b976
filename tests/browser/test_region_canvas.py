"""The region canvas in a real browser: gestures write the region document, the document draws boxes."""

import json

import pytest
from browser_support import CanvasDriver

from lib_regedit.documents import parse_region_document

T2I = "#regedit_canvas_txt2img"
I2I = "#regedit_canvas_img2img"


def doc(page, tab="txt2img"):
    text = page.evaluate(f"fieldValue('regedit_doc_{tab}')")
    return json.loads(text) if text else None


def regions(page, tab="txt2img"):
    d = doc(page, tab)
    return d["regions"] if d else []


def box_of(r):
    return r["x"], r["y"], r["w"], r["h"]


def panel_count(page, tab):
    return page.evaluate(f"(window.RegEditRegionPanels['{tab}'] || {{regions: []}}).regions.length")


def wait_regions(page, tab, n):
    page.wait_for_function(f"window.RegEditRegionPanels['{tab}'] && "
                           f"window.RegEditRegionPanels['{tab}'].regions.length === {n}", timeout=3000)


def near(actual, expected, tol):
    return all(abs(a - e) <= tol for a, e in zip(actual, expected))


def test_draw_edit_move_resize_delete_undo_nudge(page, shot, tol):
    c = CanvasDriver(page, f"{T2I} canvas")
    assert c.size() == (512, 512)  # 512x512 sliders, a square canvas
    enable = page.locator("#regedit_enable_txt2img input")
    assert not enable.is_checked()

    c.drag((0.1, 0.1), (0.5, 0.4))
    assert enable.is_checked()  # the first box drawn ticks "Enable region prompts"
    [r] = regions(page)
    assert near(box_of(r), (0.1, 0.1, 0.4, 0.3), tol), r
    assert r["prompt"] == "" and r["weight"] == 1 and r["feather"] == 0.03 and r["role"] == "object"
    assert page.evaluate("window.fieldEvents['regedit_doc_txt2img']") >= 1  # gradio hears an input event

    # The form beside the canvas edits the selected box.
    page.fill(f"{T2I} [data-key=prompt]", "a red circle")
    page.fill(f"{T2I} [data-key=negative_prompt]", "blurry")
    page.fill(f"{T2I} [data-key=weight]", "2.5")
    page.fill(f"{T2I} [data-key=feather]", "0.1")
    page.fill(f"{T2I} [data-key=keywords]", "red, circle")
    [r] = regions(page)
    assert (r["prompt"], r["negative_prompt"], r["weight"], r["feather"], r["keywords"]) == \
        ("a red circle", "blurry", 2.5, 0.1, ["red", "circle"])
    page.fill(f"{T2I} [data-key=weight]", "-3")  # rejected: the box keeps its weight
    assert regions(page)[0]["weight"] == 2.5
    assert page.locator(f"{T2I} [data-key=weight].regedit-invalid").count() == 1
    page.fill(f"{T2I} [data-key=weight]", "2.5")

    # Move by dragging the inside, resize by a corner and by an edge.
    c.drag((0.3, 0.25), (0.5, 0.35))
    assert near(box_of(regions(page)[0]), (0.3, 0.2, 0.4, 0.3), tol)
    c.drag((0.7, 0.5), (0.8, 0.6))
    assert near(box_of(regions(page)[0]), (0.3, 0.2, 0.5, 0.4), tol)
    c.drag((0.3, 0.4), (0.2, 0.45))  # the left edge, halfway down
    assert near(box_of(regions(page)[0]), (0.2, 0.2, 0.6, 0.4), tol)

    # A second box: its prompt field takes the keys; Esc gives them back to the canvas, where Delete
    # deletes it; then undo / redo by keys and buttons.
    c.drag((0.05, 0.7), (0.25, 0.9))
    assert len(regions(page)) == 2
    assert page.evaluate(f"document.activeElement === gradioApp().querySelector('{T2I} [data-key=prompt]')")
    page.keyboard.press("Escape")
    page.keyboard.press("Delete")
    assert len(regions(page)) == 1
    page.keyboard.press("Control+z")
    assert len(regions(page)) == 2
    page.keyboard.press("Control+y")
    assert len(regions(page)) == 1
    page.click(f"{T2I} [data-action=undo]")
    assert len(regions(page)) == 2
    page.keyboard.press("Control+Shift+Z")
    assert len(regions(page)) == 1

    # Select by clicking, nudge by arrow keys (1 px, Shift: 8 px of the 512-px image).
    c.click(0.5, 0.4)
    before = box_of(regions(page)[0])
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    after = box_of(regions(page)[0])
    assert after[0] == pytest.approx(before[0] + 1 / 512, abs=2e-5)
    assert after[1] == pytest.approx(before[1] + 8 / 512, abs=2e-5)
    page.keyboard.press("Control+z")  # quick nudges of one box are one undo step
    assert box_of(regions(page)[0]) == pytest.approx(before, abs=2e-5)

    # Esc deselects: the form goes away.
    assert page.locator(f"{T2I} .regedit-form").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator(f"{T2I} .regedit-form").is_visible()

    document = parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')"))
    assert [r.prompt for r in document.regions] == ["a red circle"]
    assert document.regions[0].weight == 2.5

    c.click(0.5, 0.4)
    shot(page, "region_canvas_txt2img", "#regedit_txt2img")
    page.errors.assert_none()


def test_snapping_to_the_latent_grid(page, shot):
    c = CanvasDriver(page, f"{T2I} canvas")
    page.check(f"{T2I} [data-role=snap]")
    c.drag((0.13, 0.13), (0.47, 0.51))
    r = regions(page)[0]
    for key, size in (("x", 512), ("y", 512), ("w", 512), ("h", 512)):
        assert r[key] * size / 8 == pytest.approx(round(r[key] * size / 8), abs=1e-3), (key, r[key] * size)
    c.drag((0.3, 0.3), (0.33, 0.37))  # move by a few pixels: stays on the grid
    r = regions(page)[0]
    assert r["x"] * 64 == pytest.approx(round(r["x"] * 64), abs=1e-3)
    shot(page, "region_canvas_snap", "#regedit_txt2img")
    page.errors.assert_none()


def test_document_in_the_field_draws_boxes_and_keeps_other_fields(page, shot):
    document = {
        "prompt": "a kitchen", "negative_prompt": "", "mode": "latent", "whole_prompt_start": 0.4,
        "regions": [
            {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "prompt": "a tiled wall", "role": "background"},
            {"x": 0.1, "y": 0.5, "w": 0.3, "h": 0.4, "prompt": "a red kettle", "weight": 1.5},
            {"x": 0.6, "y": 0.2, "w": 0.3, "h": 0.3, "prompt": "a window", "feather": 0.1},
        ],
    }
    # Gradio sets a value programmatically (infotext paste, API): no event; the canvas polls.
    page.evaluate("v => setFieldSilently('regedit_doc_txt2img', v)", json.dumps(document))
    wait_regions(page, "txt2img", 3)
    assert page.locator(f"{T2I} .regedit-chip").count() == 3
    c = CanvasDriver(page, f"{T2I} canvas")
    background = c.pixel(0.95, 0.05)
    kettle = c.pixel(0.25, 0.8)
    window = c.pixel(0.75, 0.4)
    assert kettle != background and window != background and kettle != window

    # Selecting box 3 shows its values in the form; a nudge keeps the document's other fields.
    c.click(0.75, 0.4)
    assert page.input_value(f"{T2I} [data-key=prompt]") == "a window"
    assert page.input_value(f"{T2I} [data-key=feather]") == "0.1"
    page.keyboard.press("ArrowUp")
    d = doc(page)
    assert (d["prompt"], d["mode"], d["whole_prompt_start"]) == ("a kitchen", "latent", 0.4)
    assert d["regions"][2]["y"] == pytest.approx(0.2 - 1 / 512, abs=2e-5)
    assert d["regions"][0]["role"] == "background" and d["regions"][1]["weight"] == 1.5
    assert parse_region_document(json.dumps(d)).regions[2].prompt == "a window"

    # Pasting again replaces the boxes, and undo brings the drawn state back.
    page.evaluate("v => setFieldSilently('regedit_doc_txt2img', v)",
                  json.dumps({"prompt": "x", "regions": [{"x": 0.2, "y": 0.2, "w": 0.2, "h": 0.2, "prompt": "p"}]}))
    wait_regions(page, "txt2img", 1)
    page.focus(f"{T2I} .regedit-stage")
    page.keyboard.press("Control+z")
    assert len(regions(page)) == 3

    # Text that is not JSON is reported, not overwritten, and raises nothing in the console.
    page.evaluate("setFieldSilently('regedit_doc_txt2img', '{oops')")
    page.wait_for_function(f"gradioApp().querySelector('{T2I} .regedit-status').textContent.includes('not hold valid JSON')")
    assert page.evaluate("fieldValue('regedit_doc_txt2img')") == "{oops"
    shot(page, "region_canvas_from_field", "#regedit_txt2img")
    page.errors.assert_none()


def test_canvas_follows_the_size_sliders(page):
    c = CanvasDriver(page, f"{T2I} canvas")
    page.evaluate("setSlider('txt2img_width', 768)")
    page.wait_for_function(f"Math.abs(gradioApp().querySelector('{T2I} canvas').clientWidth / "
                           f"gradioApp().querySelector('{T2I} canvas').clientHeight - 1.5) < 0.01", timeout=3000)
    page.evaluate("setSlider('txt2img_width', 512); setSlider('txt2img_height', 1024)")
    page.wait_for_function(f"gradioApp().querySelector('{T2I} canvas').clientHeight === 512 && "
                           f"gradioApp().querySelector('{T2I} canvas').clientWidth === 256", timeout=3000)
    c.drag((0.25, 0.25), (0.75, 0.5))
    r = regions(page)[0]
    assert r["w"] == pytest.approx(0.5, abs=0.01) and r["h"] == pytest.approx(0.25, abs=0.01)
    # Nudges are in pixels of the output: one pixel of a 1024-pixel height.
    page.keyboard.press("Escape")  # from the new box's prompt field back to the canvas
    page.keyboard.press("ArrowDown")
    assert regions(page)[0]["y"] == pytest.approx(r["y"] + 1 / 1024, abs=2e-5)
    page.errors.assert_none()


def test_img2img_over_the_init_image_across_tabs_and_a_closed_accordion(page, shot, tol):
    # The img2img tab starts hidden: the panel exists but has no size yet.
    assert page.evaluate("!!window.RegEditRegionPanels.img2img")
    assert page.evaluate("gradioApp().querySelector('#regedit_canvas_img2img canvas').clientWidth") == 0
    page.evaluate("v => setFieldSilently('regedit_doc_img2img', v)",
                  json.dumps({"prompt": "", "regions": [{"x": 0.5, "y": 0.5, "w": 0.4, "h": 0.4, "prompt": "a boat"}]}))
    page.evaluate("showTab('img2img'); setInitImage(640, 384)")
    page.wait_for_function(f"gradioApp().querySelector('{I2I} canvas').clientWidth > 0 && "
                           f"Math.abs(gradioApp().querySelector('{I2I} canvas').clientWidth / "
                           f"gradioApp().querySelector('{I2I} canvas').clientHeight - 640 / 384) < 0.01", timeout=3000)
    wait_regions(page, "img2img", 1)
    c = CanvasDriver(page, f"{I2I} canvas")
    page.wait_for_function(f"window.RegEditRegionPanels.img2img.images.image !== null")
    page.wait_for_timeout(100)
    red = c.pixel(0.2, 0.2)  # the init image's red square shows through
    assert red[0] > 180 and red[1] < 80 and red[2] < 80, red
    blue = c.pixel(0.4, 0.3)
    assert blue[2] > 150 and blue[0] < 100, blue

    c.drag((0.1, 0.6), (0.3, 0.9))
    assert len(regions(page, "img2img")) == 2
    assert near(box_of(regions(page, "img2img")[1]), (0.1, 0.6, 0.2, 0.3), 2.5 / c.size()[0] + 2.5 / c.size()[1])

    # Closed accordion: the document changes meanwhile; opening it shows the new boxes.
    page.evaluate("toggleAccordion('regedit_img2img', false)")
    page.evaluate("v => setFieldSilently('regedit_doc_img2img', v)",
                  json.dumps({"prompt": "", "regions": [{"x": 0.0, "y": 0.0, "w": 0.5, "h": 0.5, "prompt": "sky"}]}))
    page.wait_for_timeout(600)
    page.evaluate("toggleAccordion('regedit_img2img', true)")
    wait_regions(page, "img2img", 1)
    assert c.size()[0] > 0
    assert page.locator(f"{I2I} .regedit-chip").count() == 1

    # Back to txt2img: that canvas still works.
    page.evaluate("showTab('txt2img')")
    CanvasDriver(page, f"{T2I} canvas").drag((0.2, 0.2), (0.4, 0.4))
    assert len(regions(page, "txt2img")) == 1
    page.evaluate("showTab('img2img')")
    shot(page, "region_canvas_img2img", "#regedit_canvas_img2img")
    page.errors.assert_none()


def test_remount_after_the_ui_is_rebuilt(page):
    """A reloaded UI (new DOM) gets a fresh panel; the old one stops polling."""
    page.evaluate("""() => {
        const host = gradioApp().querySelector('#regedit_canvas_txt2img');
        const clone = host.cloneNode(false);
        clone.appendChild(document.createElement('div'));
        host.replaceWith(clone);
    }""")
    page.wait_for_function("window.RegEditRegionPanels.txt2img && "
                           "window.RegEditRegionPanels.txt2img.root.isConnected", timeout=3000)
    assert page.locator(f"{T2I} .regedit-region-panel").count() == 1
    CanvasDriver(page, f"{T2I} canvas").drag((0.2, 0.2), (0.4, 0.4))
    assert len(regions(page)) == 1
    page.errors.assert_none()


def test_small_boxes_can_still_be_moved(page, tol):
    c = CanvasDriver(page, f"{T2I} canvas")
    c.drag((0.5, 0.5), (0.53, 0.53))  # about 15 x 15 pixels
    x, y, w, h = box_of(regions(page)[0])
    c.drag((x + w / 2, y + h / 2), (x + w / 2 + 0.1, y + h / 2))
    moved = box_of(regions(page)[0])
    assert moved[0] == pytest.approx(x + 0.1, abs=tol) and moved[2] == pytest.approx(w, abs=1e-6)
    page.errors.assert_none()


def test_edit_roles_and_the_target_prompt_make_a_pair_document(page, shot, tol):
    c = CanvasDriver(page, f"{T2I} canvas")
    c.drag((0.05, 0.3), (0.45, 0.7))
    page.fill(f"{T2I} [data-key=prompt]", "a red circle")
    target = page.locator(f"{T2I} [data-key=target_prompt]")
    assert not target.is_visible()  # only a changed box has a target prompt
    page.select_option(f"{T2I} [data-key=edit]", "change")
    assert target.is_visible()
    assert "needs a target prompt: box 1" in page.inner_text(f"{T2I} .regedit-status")
    page.fill(f"{T2I} [data-key=target_prompt]", "a blue circle")
    c.drag((0.55, 0.3), (0.95, 0.7))
    page.fill(f"{T2I} [data-key=prompt]", "a green square")
    page.select_option(f"{T2I} [data-key=edit]", "remove")
    rs = regions(page)
    assert (rs[0]["edit"], rs[0]["target_prompt"]) == ("change", "a blue circle")
    assert rs[1]["edit"] == "remove" and "target_prompt" not in rs[1]
    document = parse_region_document(page.evaluate("fieldValue('regedit_doc_txt2img')"))
    assert document.is_pair and [r.edit for r in document.regions] == ["change", "remove"]
    assert "edit pair" in page.inner_text(f"{T2I} .regedit-status")
    chips = page.locator(f"{T2I} .regedit-chip-number").all_inner_texts()
    assert chips == ["1 \u2192", "2 \u2212"]
    # back to "keep": the role and the stale target prompt leave the document
    c.click(0.2, 0.5)
    page.select_option(f"{T2I} [data-key=edit]", "inherent")
    rs = regions(page)
    assert "edit" not in rs[0] and "target_prompt" not in rs[0]
    shot(page, "region_canvas_edit_roles", "#regedit_txt2img")
    page.errors.assert_none()


def bright_in_the_middle(page, selector):
    """How many near-white pixels the middle band of a canvas holds (the hint's text)."""
    return page.evaluate("""sel => {
        const c = gradioApp().querySelector(sel);
        const d = c.getContext('2d').getImageData(0, Math.floor(c.height * 0.4), c.width, Math.ceil(c.height * 0.2)).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 220 && d[i + 1] > 220 && d[i + 2] > 220) n++;
        return n;
    }""", selector)


def test_the_canvas_says_what_to_do_and_the_list_shows_each_prompt(page, shot):
    """An empty canvas says "Drag to draw a box" on itself; a new box's prompt field takes the keys, so
    typing names it; the list beside the canvas shows each box's prompt, and picking a row puts the
    cursor in that box's prompt."""
    c = CanvasDriver(page, f"{T2I} canvas")
    assert bright_in_the_middle(page, f"{T2I} canvas") > 50  # the hint's white text
    assert page.evaluate("window.RegEditRegionPanels.txt2img.hint(null)[0]") == "Drag to draw a box"
    shot(page, "region_canvas_empty", "#regedit_txt2img")
    c.drag((0.05, 0.05), (0.35, 0.3))
    assert bright_in_the_middle(page, f"{T2I} canvas") == 0  # a box drawn: the hint is gone
    page.keyboard.type("a red circle")  # no click: the new box's prompt field has the keys
    page.keyboard.press("Escape")
    c.drag((0.6, 0.05), (0.95, 0.3))
    page.keyboard.type("a blue square")
    assert [r["prompt"] for r in regions(page)] == ["a red circle", "a blue square"]
    rows = page.locator(f"{T2I} .regedit-chip-prompt").all_inner_texts()
    assert rows == ["a red circle", "a blue square"]
    page.locator(f"{T2I} .regedit-chip").nth(0).click()
    assert page.evaluate(f"document.activeElement === gradioApp().querySelector('{T2I} [data-key=prompt]')")
    assert page.input_value(f"{T2I} [data-key=prompt]") == "a red circle"
    page.keyboard.press("End")
    page.keyboard.type(" on grass")
    assert regions(page)[0]["prompt"] == "a red circle on grass"
    assert "a red circle on grass" in page.locator(f"{T2I} .regedit-chip").nth(0).inner_text()
    shot(page, "region_canvas_list", "#regedit_txt2img")
    page.errors.assert_none()


def test_img2img_tasks_share_one_box_canvas_each_showing_its_part(page, shot):
    """img2img's region canvas follows the task shown: Regions (prompts, no edit roles), LIME (the boxes
    are its region: no prompts) and Edit by regions (edit roles); Drag shows the drag canvas instead.
    The boxes are one document whichever task draws them."""
    page.evaluate("showTab('img2img'); setInitImage(512, 384)")
    panel = "window.RegEditRegionPanels.img2img"
    page.wait_for_function(f"{panel}.ctx && {panel}.images.image", timeout=3000)
    c = CanvasDriver(page, f"{I2I} canvas")
    c.drag((0.1, 0.1), (0.4, 0.5))
    page.keyboard.type("a cat")
    page.keyboard.press("Escape")
    assert not page.locator(f"{I2I} [data-key=edit]").is_visible()  # no edit roles in the Regions task

    page.click("#regedit_task_img2img label:has-text('Edit by regions')")
    edit = "#regedit_canvas_edit_img2img"
    page.wait_for_function(f"{panel}.task === 'edit' && gradioApp().querySelector('{edit} canvas').clientWidth > 0",
                           timeout=3000)
    assert page.locator(f"{I2I} canvas").count() == 0  # moved, not copied
    page.locator(f"{edit} .regedit-chip").nth(0).click()
    page.select_option(f"{edit} [data-key=edit]", "change")
    page.fill(f"{edit} [data-key=target_prompt]", "a dog")
    assert regions(page, "img2img")[0]["edit"] == "change"
    assert "reconstruction and its edit" in page.inner_text(f"{edit} .regedit-status")
    shot(page, "region_canvas_img2img_edit", "#regedit_img2img")

    page.click("#regedit_task_img2img label:has-text('LIME')")
    lime = "#regedit_canvas_lime_img2img"
    page.wait_for_function(f"{panel}.task === 'lime' && gradioApp().querySelector('{lime} canvas').clientWidth > 0",
                           timeout=3000)
    assert not page.locator(f"{lime} .regedit-form").is_visible()  # LIME's region needs no prompt
    assert page.locator(f"{lime} .regedit-chip-prompt").all_inner_texts() == ["LIME's region"]
    CanvasDriver(page, f"{lime} canvas").drag((0.6, 0.6), (0.9, 0.9))
    assert len(regions(page, "img2img")) == 2

    page.click("#regedit_task_img2img label:has-text('Drag')")
    page.wait_for_function("gradioApp().querySelector('#regedit_drag_canvas_img2img canvas').clientWidth > 0 && "
                           f"gradioApp().querySelector('{lime} canvas').clientWidth === 0", timeout=3000)
    page.click("#regedit_task_img2img label:has-text('Regions')")
    page.wait_for_function(f"{panel}.task === 'regions' && gradioApp().querySelector('{I2I} canvas').clientWidth > 0",
                           timeout=3000)
    assert page.locator(f"{I2I} .regedit-chip-prompt").all_inner_texts() == ["a cat", "(no prompt yet)"]
    assert page.locator(f"{I2I} .regedit-chip-number").all_inner_texts() == ["1", "2"]  # no edit marks here
    page.errors.assert_none()


def test_the_init_image_of_the_img2img_tab_shown(page):
    """The canvas draws over the picture of img2img's own tab that is shown (Inpaint's, here), not only
    over the img2img tab's: an image loaded in Inpaint shows at once."""
    page.evaluate("showTab('img2img'); showImageTab('inpaint'); setInitImage(640, 320, 'img2maskimg')")
    panel = "window.RegEditRegionPanels.img2img"
    page.wait_for_function(f"{panel}.images.image && {panel}.images.image.naturalWidth === 640", timeout=3000)
    c = CanvasDriver(page, f"{I2I} canvas")
    w, h = c.size()
    assert w / h == pytest.approx(2.0, abs=0.02)
    red = c.pixel(0.2, 0.2)
    assert red[0] > 180 and red[1] < 80, red
    page.evaluate("showImageTab('img2img')")  # its own image is not loaded
    page.wait_for_function(f"{panel}.images.image === null", timeout=3000)
    assert "no init image yet" in page.inner_text(f"{I2I} .regedit-status")
    page.errors.assert_none()
