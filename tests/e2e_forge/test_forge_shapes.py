"""Regions of any shape in a real WebUI Forge: polygons, brush strokes and a mask picture in both
fusion modes, in txt2img and img2img, on SD 1.5 and (``REGEDIT_E2E_FORGE_SDXL=1``) SDXL, and with layout
init; the infotext and ``/sdapi/v1/png-info`` carry them (the picture as runs) and the document they give
back makes the same image; a bad shape fails with its field; plain images stay bit-identical."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_webui import (FORGE_SD1, FORGE_SDXL, decode_png, infotext_of, pixel_diff, pixels, plain_payload,  # noqa: E402
                       png_b64, with_regions)
from test_e2e_drag import red_circle_image  # noqa: E402
from test_e2e_shapes import regions_of  # noqa: E402
from test_forge_api import SDXL, rendered  # noqa: E402

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


# txt2img and img2img on SD 1.5, and both on SDXL when the suite writes its SDXL checkpoint
CASES = [(k, m) for m in [FORGE_SD1] + ([FORGE_SDXL] if SDXL else []) for k in ("txt2img", "img2img")]


def payload_for(kind: str, **over) -> dict:
    """The plain request of ``kind``: img2img repaints a ShapesWorld picture (a red circle) at 0.8."""
    if kind == "img2img":
        over = dict(init_images=[png_b64(red_circle_image())], denoising_strength=0.8, **over)
    return plain_payload(**over)


@pytest.mark.parametrize("mode", ["attention", "latent"])
@pytest.mark.parametrize("doc", [SHAPES, PICTURE], ids=["shapes", "mask-picture"])
@pytest.mark.parametrize("kind,model", CASES, ids=[f"{k}-{m}" for k, m in CASES])
def test_shapes_reach_the_image_and_the_infotext(forge, forge_baseline, kind, model, doc, mode,
                                                 assert_plain_unchanged):
    if kind == "img2img":
        # Forge's own: a batch-1 img2img right after a batch of 3 (the baseline's plain batch, which the
        # previous test ends with) or as the session's first comes out a level off from one after a
        # batch-1 run, RegEdit enabled or not; one plain img2img first, so that the check below compares
        # like with like (a plain img2img after the regions runs against one after a plain run)
        forge.generate(kind, payload_for(kind), model=model)
    plain = forge.generate(kind, payload_for(kind), model=model)
    res = forge.generate(kind, with_regions(payload_for(kind), dict(doc, mode=mode)), model=model)
    boxes = forge.generate(kind, with_regions(payload_for(kind), dict(BOXES, mode=mode)), model=model)
    assert decode_png(res["images"][0]).size == (64, 64) and rendered(res["images"][0])
    assert pixels(res["images"][0]) != pixels(plain["images"][0]), "the shapes changed nothing"
    assert pixels(res["images"][0]) != pixels(boxes["images"][0]), "the shapes drew as their boxes"
    written = regions_of(json.loads(res["info"])["infotexts"][0])
    assert regions_of(infotext_of(res["images"][0])) == written
    assert written.get("mode", "attention") == mode
    if doc is SHAPES:
        assert [r["shape"] for r in written["regions"]] == [r["shape"] for r in SHAPES["regions"]]
    else:
        assert set(written["mask_image"]) == {"width", "height", "colours", "runs"}
        assert [r["colour"] for r in written["regions"]] == ["#0000ff", "#ffff00"]
    parsed = forge.post("/sdapi/v1/png-info", {"image": res["images"][0]}).json()["parameters"][KEY]
    assert (json.loads(parsed) if isinstance(parsed, str) else parsed) == written
    again = forge.generate(kind, with_regions(payload_for(kind), written), model=model)  # the infotext's document
    assert pixels(again["images"][0]) == pixels(res["images"][0]), "the written document gave another image"
    after = forge.generate(kind, payload_for(kind), model=model)
    assert pixels(after["images"][0]) == pixels(plain["images"][0]), f"a plain {kind} on {model} changed"
    assert_plain_unchanged(f"a {mode}-mode shapes run ({kind}, {model})")


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
