"""Regions of any shape in a real WebUI Forge: polygons, brush strokes and a mask picture in both
fusion modes and with layout init; the infotext and ``/sdapi/v1/png-info`` carry them (the picture as
runs); a bad shape fails with its field; plain images stay bit-identical."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_webui import decode_png, infotext_of, pixel_diff, pixels, plain_payload, png_b64, with_regions  # noqa: E402

KEY = "RegEdit regions"
# Prompts that the random-weight checkpoint renders (test_forge_api.py's)
SHAPES = {"prompt": "a landscape", "regions": [
    {"shape": {"type": "polygon", "points": [[0.0, 0.0], [0.5, 0.0], [0.25, 1.0]]}, "prompt": "a blue square"},
    {"shape": {"type": "mask", "strokes": [{"points": [[0.6, 0.3], [0.8, 0.7]], "radius": 0.15}]},
     "prompt": "a yellow house"}]}
BOXES = {"prompt": "a landscape", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"},
    {"x": 0.45, "y": 0.15, "w": 0.5, "h": 0.7, "prompt": "a yellow house"}]}


def mask_picture() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 64), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, 0), (32, 0), (16, 63)], fill=(0, 0, 255))
    draw.ellipse((36, 16, 60, 48), fill=(255, 255, 0))
    return png_b64(image)


PICTURE = {"prompt": "a landscape", "mask_image": mask_picture(), "regions": [
    {"colour": "#0000ff", "prompt": "a blue square"}, {"colour": "#ffff00", "prompt": "a yellow house"}]}


def regions_of(infotext: str) -> dict:
    line = infotext.rsplit("\n", 1)[-1]
    rest = line.split(KEY + ": ", 1)[1]
    return json.loads(json.JSONDecoder().raw_decode(rest)[0])


def rendered(b64: str) -> bool:
    return float(np.asarray(decode_png(b64).convert("RGB"), dtype=np.float32).std()) > 1.0


@pytest.mark.parametrize("mode", ["attention", "latent"])
@pytest.mark.parametrize("doc", [SHAPES, PICTURE], ids=["shapes", "mask-picture"])
def test_shapes_reach_the_image_and_the_infotext(forge, forge_baseline, doc, mode, assert_plain_unchanged):
    res = forge.generate("txt2img", with_regions(plain_payload(), dict(doc, mode=mode)))
    boxes = forge.generate("txt2img", with_regions(plain_payload(), dict(BOXES, mode=mode)))
    assert rendered(res["images"][0])
    assert pixels(res["images"][0]) != pixels(boxes["images"][0]), "the shapes drew as their boxes"
    written = regions_of(json.loads(res["info"])["infotexts"][0])
    assert regions_of(infotext_of(res["images"][0])) == written
    if doc is SHAPES:
        assert [r["shape"] for r in written["regions"]] == [r["shape"] for r in SHAPES["regions"]]
    else:
        assert set(written["mask_image"]) == {"width", "height", "colours", "runs"}
    parsed = forge.post("/sdapi/v1/png-info", {"image": res["images"][0]}).json()["parameters"][KEY]
    assert (json.loads(parsed) if isinstance(parsed, str) else parsed) == written
    again = forge.generate("txt2img", with_regions(plain_payload(), written))  # the infotext's document
    assert pixels(again["images"][0]) == pixels(res["images"][0]), "the written document gave another image"
    assert_plain_unchanged(f"a {mode}-mode shapes run")


def test_layout_init_from_shapes(forge):
    noise = forge.generate("txt2img", with_regions(plain_payload(), dict(SHAPES, init="noise")))
    layout = forge.generate("txt2img", with_regions(plain_payload(), dict(SHAPES, init="layout")))
    filled = forge.generate("txt2img", with_regions(plain_payload(), dict(SHAPES, init="layout", init_sketch="ellipse")))
    assert pixel_diff(noise["images"][0], layout["images"][0])[1] > 1.0, "layout init changed nothing"
    assert pixels(layout["images"][0]) != pixels(filled["images"][0]), "the filled sketch is the disc's"


def test_a_bad_shape_fails_with_its_field(forge, assert_plain_unchanged):
    bad = {"prompt": "x", "regions": [{"shape": {"type": "polygon", "points": [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]},
                                       "prompt": "a line"}]}
    r = forge.post("/sdapi/v1/txt2img", with_regions(plain_payload(), bad))
    assert r.status_code >= 400 and "regions[0].shape.points" in r.text and "no area" in r.text, r.text[:800]
    assert_plain_unchanged("a failing shapes run")
