"""What the region canvas (both tabs) and the drag panel do alike, checked on each: the first shape
drawn ticks the tab's "Enable" checkbox, the hidden field hears only `input` events, a rebuilt UI
gets a fresh panel, and the scripts work whatever order they load in."""

import json

import pytest
from browser_support import CanvasDriver, page_html

TRI = [[0.1, 0.1], [0.3, 0.1], [0.2, 0.3]]
PANELS = {
    "region_txt2img": {"tab": "txt2img", "host": "#regedit_canvas_txt2img", "field": "regedit_doc_txt2img",
                       "registry": "RegEditRegionPanels", "key": "regions",
                       "loaded": {"prompt": "", "regions": [{"x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2, "prompt": "p"}]}},
    "region_img2img": {"tab": "img2img", "task": "Regions", "host": "#regedit_canvas_img2img", "field": "regedit_doc_img2img",
                       "registry": "RegEditRegionPanels", "key": "regions",
                       "loaded": {"prompt": "", "regions": [{"x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2, "prompt": "p"}]}},
    "drag_img2img": {"tab": "img2img", "task": "Drag", "host": "#regedit_drag_canvas_img2img", "field": "regedit_drag_img2img",
                     "registry": "RegEditDragPanels", "key": "pairs",
                     "loaded": {"version": 1, "pairs": [{"handle": {"type": "polygon", "points": TRI},
                                                         "target": {"type": "polygon", "points": TRI[::-1]}}]}},
}


class Panel:
    def __init__(self, page, name):
        self.page = page
        self.__dict__.update(PANELS[name])
        self.is_drag = self.key == "pairs"
        self.js = f"window.{self.registry}['{self.tab}']"
        self.canvas = CanvasDriver(page, f"{self.host} canvas")
        self.enable = page.locator(f"#regedit_enable_{self.tab} input")

    def show(self):
        self.page.evaluate(f"showTab('{self.tab}')")
        if getattr(self, "task", None):
            self.page.evaluate(f"showTask('{self.task}')")
        self.page.wait_for_function(f"{self.js} && {self.js}.ctx && "
                                    f"gradioApp().querySelector('{self.host} canvas').clientWidth > 0", timeout=3000)
        self.page.locator(f"{self.host} canvas").scroll_into_view_if_needed()

    def count(self):
        """Shapes in the document the field holds."""
        text = self.page.evaluate(f"fieldValue('{self.field}')")
        return len(json.loads(text)[self.key]) if text else 0

    def draw(self, k, half=False):
        """The k-th shape: a box, or a triangle pair (half: only its handle)."""
        x = 0.05 + 0.15 * k
        if not self.is_drag:
            self.canvas.drag((x, 0.1), (x + 0.1, 0.3))
            return
        for p in [(x, 0.1), (x + 0.1, 0.1), (x + 0.05, 0.2)]:
            self.canvas.click(*p)
        self.page.keyboard.press("Enter")
        if not half:
            for p in [(x, 0.6), (x + 0.1, 0.6), (x + 0.05, 0.7)]:  # the third vertex finishes it
                self.canvas.click(*p)

    def clear(self):
        self.page.click(f"{self.host} [data-action=clear]")


@pytest.fixture(params=list(PANELS))
def panel(request, page):
    p = Panel(page, request.param)
    p.show()
    return p


def test_the_first_shape_drawn_ticks_enable_once(panel):
    page = panel.page
    page.evaluate("""id => {
        window.fieldEventTypes = [];
        const field = gradioApp().querySelector('#' + id + ' textarea');
        for (const type of ['input', 'change']) field.addEventListener(type, () => window.fieldEventTypes.push(type));
    }""", panel.field)
    assert not panel.enable.is_checked()
    if panel.is_drag:
        panel.draw(0, half=True)  # half a pair is not in the document yet
        assert panel.count() == 0 and not panel.enable.is_checked()
        page.keyboard.press("Escape")
        panel.draw(0)
    else:
        panel.draw(0)
    assert panel.count() == 1
    assert panel.enable.is_checked()
    assert page.evaluate("window.fieldEventTypes") == ["input"]  # what gradio hears: one input event

    # Unticked by the user: the next shape leaves it so.
    panel.enable.click()
    panel.draw(1)
    assert panel.count() == 2 and not panel.enable.is_checked()

    # Cleared, the next shape is a first one again.
    panel.clear()
    assert page.evaluate(f"fieldValue('{panel.field}')") == ""
    panel.draw(2)
    assert panel.count() == 1 and panel.enable.is_checked()
    assert set(page.evaluate("window.fieldEventTypes")) == {"input"}

    # A document from the field (infotext paste, API) is not drawn: "Enable" stays as it is, then too.
    panel.enable.click()
    panel.clear()
    page.evaluate("([id, v]) => setFieldSilently(id, v)", [panel.field, json.dumps(panel.loaded)])
    page.wait_for_function(f"{panel.js}.{panel.key}.length === 1", timeout=3000)
    assert not panel.enable.is_checked()
    panel.draw(3)
    assert panel.count() == 2 and not panel.enable.is_checked()
    page.errors.assert_none()


def test_remount_after_the_ui_is_rebuilt(panel):
    """A rebuilt UI (a new host node) gets a fresh panel that draws into the same field; the old one is gone."""
    page = panel.page
    old = page.evaluate_handle(panel.js)
    page.evaluate("""sel => {
        const host = gradioApp().querySelector(sel);
        const clone = host.cloneNode(false);
        clone.appendChild(document.createElement('div'));
        host.replaceWith(clone);
    }""", panel.host)
    page.wait_for_function(f"{panel.js} && {panel.js}.root.isConnected", timeout=3000)
    assert page.evaluate("old => !old.root.isConnected", old)
    assert page.locator(f"{panel.host} .regedit-panel").count() == 1
    panel.show()
    panel.draw(0)
    assert panel.count() == 1
    page.errors.assert_none()


def test_text_controls_keep_their_keys(page):
    """Keys typed in the region form edit its text; they do not delete, nudge or undo the box. Esc
    there gives the keys back to the canvas."""
    panel = Panel(page, "region_txt2img")
    panel.show()
    panel.draw(0)
    before = page.evaluate(f"fieldValue('{panel.field}')")
    page.click(f"{panel.host} [data-key=prompt]")
    for key in ("Delete", "Backspace", "ArrowLeft", "Shift+ArrowUp", "Control+z"):
        page.keyboard.press(key)
    assert page.evaluate(f"fieldValue('{panel.field}')") == before
    page.keyboard.press("Escape")
    assert page.evaluate(f"document.activeElement === gradioApp().querySelector('{panel.host} .regedit-stage')")
    page.keyboard.press("Delete")
    assert panel.count() == 0
    page.errors.assert_none()


def test_the_scripts_load_in_any_order(page):
    """The panels' classes extend RegEditUI.Panel, yet regedit_common.js may load after them: they are
    made on the first mount."""
    html = page_html(reverse=True)
    assert html.index("regedit_common.js") > html.index("regedit_drag_panel.js")
    page.route("**/index.html", lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    page.goto(page.url)
    page.wait_for_function("window.uiLoaded === true")
    for name in ("region_txt2img", "drag_img2img"):
        panel = Panel(page, name)
        panel.show()
        panel.draw(0)
        assert panel.count() == 1
    page.errors.assert_none()
