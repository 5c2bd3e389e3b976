"""RegEdit's settings as X/Y/Z plot axes in the real WebUI: a grid through the API whose cells differ
as the axis says and whose infotexts carry the values; an out-of-range value is refused."""

from __future__ import annotations

import json

from e2e_webui import pixel_diff, plain_payload, with_regions

DOC = {"prompt": "a landscape", "regions": [{"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
                                            {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square"}]}


def axis_index(webui, label: str) -> int:
    info = webui.get("/sdapi/v1/script-info").json()
    xyz = next(s for s in info if s["name"] == "x/y/z plot" and not s["is_img2img"])
    choices = next(a["choices"] for a in xyz["args"] if a["label"] == "X type")
    return choices.index(label)


def grid_payload(webui, x_label, x_values="", x_dropdown=(), y_label=None, y_dropdown=()) -> dict:
    payload = with_regions(plain_payload(steps=3), DOC)
    y_type = axis_index(webui, y_label) if y_label else 0
    payload.update(script_name="x/y/z plot", script_args=[
        axis_index(webui, x_label), x_values, list(x_dropdown), y_type, "", list(y_dropdown), 0, "", [],
        True, True, False, False, False, False, False, 0, False])
    return payload


def test_axes_are_registered_in_both_tabs(webui):
    info = webui.get("/sdapi/v1/script-info").json()
    for is_img2img in (False, True):
        xyz = next(s for s in info if s["name"] == "x/y/z plot" and s["is_img2img"] == is_img2img)
        choices = next(a["choices"] for a in xyz["args"] if a["label"] == "X type")
        ours = [c for c in choices if c.startswith("[RegEdit]")]
        assert "[RegEdit] Whole prompt start" in ours and "[RegEdit] Drag handle noise" in ours, ours


def test_a_grid_over_two_axes(webui, assert_plain_unchanged):
    res = webui.generate("txt2img", grid_payload(webui, "[RegEdit] Whole prompt start", "0, 1",
                                                 y_label="[RegEdit] Init", y_dropdown=("noise", "layout")))
    infos = json.loads(res["info"])["infotexts"]
    cells = [(b, t) for b, t in zip(res["images"], infos)][-4:]  # the grid comes first
    assert len(cells) == 4
    expected = [("0.0", "noise"), ("1.0", "noise"), ("0.0", "layout"), ("1.0", "layout")]
    for (_, text), (start, init) in zip(cells, expected):
        assert f'\\"whole_prompt_start\\":{start}' in text, text
        assert f'\\"init\\":\\"{init}\\"' in text, text
    assert pixel_diff(cells[0][0], cells[1][0])[1] > 0  # T_total changed the image
    assert pixel_diff(cells[0][0], cells[2][0])[1] > 0.5  # so did layout init
    assert_plain_unchanged("an X/Y/Z grid over RegEdit axes")


def test_a_grid_over_layout_guidance(webui, assert_plain_unchanged):
    res = webui.generate("txt2img", grid_payload(webui, "[RegEdit] Layout guidance", x_dropdown=("off", "on")))
    infos = json.loads(res["info"])["infotexts"]
    cells = list(zip(res["images"], infos))[-2:]
    assert '\\"guidance\\"' not in cells[0][1] and '\\"guidance\\":{\\"enabled\\":true}' in cells[1][1], infos
    assert pixel_diff(cells[0][0], cells[1][0])[1] > 0.1  # guidance moved the latent
    assert_plain_unchanged("an X/Y/Z grid over layout guidance")


def test_an_out_of_range_value_is_refused_before_the_grid(webui, assert_plain_unchanged):
    r = webui.post("/sdapi/v1/txt2img", grid_payload(webui, "[RegEdit] Init noise", "0.2, 1.5"))
    assert r.status_code >= 400 and "RegEdit: [RegEdit] Init noise: 1.5 is out of range" in r.text, r.text[:800]
    assert_plain_unchanged("a refused X/Y/Z grid")
