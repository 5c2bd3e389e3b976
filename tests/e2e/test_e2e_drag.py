"""RegionDrag in the real WebUI's img2img: the drag document (the ``regedit`` script's fourth
argument) moves a region on SD1 and SDXL, with batches and seeds, the infotext and paste; bad input
gets a clear error; ShapesWorld's red circle lands on its target; no hook is left behind."""

from __future__ import annotations

import json

import pytest

from e2e_webui import SD1, SDXL, decode_png, infotext_of, log, pixel_diff, pixels, plain_payload, png_b64

from lib_regedit.evaluation.detector import detect
from lib_regedit.shapesworld.data import Scene, ShapeObject, render

SQUARE = [[0.1, 0.1], [0.45, 0.1], [0.45, 0.45], [0.1, 0.45]]
DRAG = {"pairs": [{"handle": {"type": "polygon", "points": SQUARE},
                   "target": {"type": "polygon", "points": [[x + 0.4, y + 0.4] for x, y in SQUARE]}}]}


def drag_payload(image, drag, **over) -> dict:
    payload = dict(plain_payload(**{"steps": 6, **over}), init_images=[png_b64(image)], denoising_strength=0.75)
    payload["alwayson_scripts"] = {"regedit": {"args": ["", False, False, drag]}}
    return payload


def red_circle_image():
    return render(Scene((235, 235, 230), (ShapeObject("circle", "red", (0.12, 0.12, 0.3, 0.3), (220, 40, 40)),)))


def assert_dragged(source, b64: str) -> None:
    """``DRAG`` applied to ``source``: the original outside the handle, the target and the feather
    (composited back exactly), the target changed."""
    import numpy as np

    src = np.asarray(source, dtype=np.int16)
    out = np.asarray(decode_png(b64).convert("RGB"), dtype=np.int16)
    assert np.abs(out[:, 40:][:20] - src[:, 40:][:20]).max() <= 1
    assert np.abs(out[40:, :20] - src[40:, :20]).max() <= 1
    assert np.abs(out[34:58, 34:58] - src[34:58, 34:58]).mean() > 2


@pytest.mark.parametrize("model", [SD1, SDXL])
def test_a_drag_moves_a_region_and_keeps_the_rest(webui, model, assert_plain_unchanged):
    source = red_circle_image()
    res = webui.generate("img2img", drag_payload(source, DRAG, batch_size=2, n_iter=2), model=model)
    assert len(res["images"]) == 4  # batch count 2 x batch size 2, each its own seed
    for b64 in res["images"]:
        assert_dragged(source, b64)
    for i in range(4):
        for j in range(i):
            assert pixel_diff(res["images"][i], res["images"][j])[1] > 0, (i, j)  # each image its own seed
    text = json.loads(res["info"])["infotexts"][0]
    assert "RegEdit drag: " in text and "RegEdit drag: " in infotext_of(res["images"][0])
    again = webui.generate("img2img", drag_payload(source, DRAG, batch_size=2, n_iter=2), model=model)
    assert [pixels(b) for b in again["images"]] == [pixels(b) for b in res["images"]], "not reproducible"
    # the WebUI's img2img API leaves the prompt out of a pasted infotext (txt2img's keeps it): give it
    pasted = webui.generate("img2img", {"infotext": text, "prompt": "a landscape", "init_images": [png_b64(source)],
                                        "width": 64, "height": 64, "batch_size": 2}, model=model)
    assert pixels(pasted["images"][0]) == pixels(res["images"][0]), "pasting the infotext did not redo the drag"
    assert_plain_unchanged(f"a drag on {model}")


@pytest.mark.parametrize("drag,kind,field", [
    ({"pairs": [{"handle": {"type": "polygon", "points": SQUARE}, "target": {"type": "mask", "strokes": [
        {"points": [[0.5, 0.5]], "radius": 0.1}]}}]}, "img2img", "drag.pairs[0]"),
    ({"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]},
                 "target": {"type": "polygon", "points": SQUARE[:3]}}]}, "img2img", "drag.pairs[0].handle"),
    ({"pairs": "nope"}, "img2img", "drag.pairs"),
    ({"pairs": DRAG["pairs"], "end_t": 3}, "img2img", "drag.end_t"),
    (DRAG, "txt2img", "drag: dragging moves part of an image"),
])
def test_bad_drags_fail_clearly(webui, drag, kind, field, assert_plain_unchanged):
    payload = drag_payload(red_circle_image(), drag)
    if kind == "txt2img":
        payload.pop("init_images")
    r = webui.post(f"/sdapi/v1/{kind}", payload)
    assert r.status_code >= 400 and f"RegEdit: {field}" in r.text, r.text[:800]
    assert_plain_unchanged("a failing drag")


def test_shapesworld_red_circle_lands_on_its_target(webui, shapesworld):
    res = webui.generate("img2img", drag_payload(red_circle_image(), DRAG, prompt="a red circle", steps=20,
                                                 batch_size=4, seed=1), model=shapesworld)
    hits = 0
    for b64 in res["images"]:
        found = [d for d in detect(decode_png(b64).convert("RGB")) if (d.colour, d.shape) == ("red", "circle")]
        hits += len(found) == 1 and abs(found[0].centroid[0] - 0.67) < 0.06 and abs(found[0].centroid[1] - 0.67) < 0.06
    log(f"ShapesWorld drag in the WebUI: the red circle moved to its target in {hits} of 4 seeds")
    assert hits >= 3


def test_an_interrupted_drag_returns_and_leaves_no_trace(webui, assert_plain_unchanged):
    """Interrupt, from the WebUI's progress: the drag stops, the request answers, nothing stays hooked."""
    from PIL import Image

    big = red_circle_image().resize((256, 256), Image.LANCZOS)
    payload = drag_payload(big, DRAG, steps=120, width=256, height=256)
    webui.use_model(SD1)
    response, interrupted = webui.post_and_interrupt("/sdapi/v1/img2img", payload, sampling_steps=120,
                                                     at_step=3)  # 60 + 60 evaluations
    assert interrupted, "the drag ended before it could be interrupted"
    assert response.status_code == 200, response.text[:1000]
    assert len(response.json()["images"]) == 1
    assert_plain_unchanged("an interrupted drag")
