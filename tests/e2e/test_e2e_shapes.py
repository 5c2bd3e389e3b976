"""Regions of any shape in the real WebUI: polygons, brush strokes and a mask picture through
``alwayson_scripts`` in txt2img and img2img, SD1 and SDXL; the infotext carries them (the picture as
runs) and pasting it restores them and makes the same image; a bad shape fails with its field."""

from __future__ import annotations

import json

import pytest

from e2e_webui import SD1, SDXL, decode_png, infotext_of, pixels, plain_payload, png_b64, with_regions

SHAPES = {
    "prompt": "a landscape",
    "regions": [
        {"shape": {"type": "polygon", "points": [[0.05, 0.1], [0.45, 0.1], [0.25, 0.9]]}, "prompt": "a red circle"},
        {"shape": {"type": "mask", "strokes": [{"points": [[0.6, 0.3], [0.8, 0.7]], "radius": 0.12}]},
         "prompt": "a blue square, sharp edges"},
    ],
}
BOXES = {"prompt": "a landscape", "regions": [  # the shapes' bounding boxes
    {"x": 0.05, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a red circle"},
    {"x": 0.48, "y": 0.18, "w": 0.44, "h": 0.64, "prompt": "a blue square, sharp edges"}]}


def mask_picture() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 64), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 8, 30, 40), fill=(255, 0, 0))
    draw.polygon([(44, 10), (60, 50), (34, 50)], fill=(0, 0, 255))
    return "data:image/png;base64," + png_b64(image)


PICTURE = {"prompt": "a landscape", "mask_image": mask_picture(), "regions": [
    {"colour": "#ff0000", "prompt": "a red circle"}, {"colour": "#0000ff", "prompt": "a blue triangle"}]}


def regions_of(infotext: str) -> dict:
    line = infotext.rsplit("\n", 1)[-1]
    rest = line[line.index("RegEdit regions:") + len("RegEdit regions:"):].lstrip()
    value, _ = json.JSONDecoder().raw_decode(rest)
    return json.loads(value)


@pytest.mark.parametrize("model", [SD1, SDXL])
@pytest.mark.parametrize("doc", [SHAPES, PICTURE], ids=["shapes", "mask-picture"])
def test_shapes_run_reach_the_infotext_and_paste_back(webui, model, doc, assert_plain_unchanged):
    res = webui.generate("txt2img", with_regions(plain_payload(), doc), model=model)
    boxes = webui.generate("txt2img", with_regions(plain_payload(), BOXES), model=model)
    assert pixels(res["images"][0]) != pixels(boxes["images"][0]), "the shapes drew as their boxes"
    text = json.loads(res["info"])["infotexts"][0]
    written = regions_of(text)
    assert regions_of(infotext_of(res["images"][0])) == written
    if doc is SHAPES:
        assert [r["shape"] for r in written["regions"]] == [r["shape"] for r in SHAPES["regions"]]
    else:
        assert set(written["mask_image"]) == {"width", "height", "colours", "runs"}
        assert [r["colour"] for r in written["regions"]] == ["#ff0000", "#0000ff"]
    pasted = webui.generate("txt2img", {"infotext": text, "width": 64, "height": 64}, model=model)
    assert regions_of(json.loads(pasted["info"])["infotexts"][0]) == written
    assert pixels(pasted["images"][0]) == pixels(res["images"][0]), "pasting did not reproduce the image"
    assert_plain_unchanged("a shapes run")


def test_a_shape_is_marked_at_its_box_centre_from_version_7(webui):
    """Layout init's sketch marks a shape at its bounding box's centre, cut to the shape, from version 7
    (before, at the largest disc inside it): the two versions start differently, and a version 6
    infotext pasted back makes its own image again."""
    new = webui.generate("txt2img", with_regions(plain_payload(), SHAPES))
    old = webui.generate("txt2img", with_regions(plain_payload(), dict(SHAPES, version=6)))
    assert pixels(new["images"][0]) != pixels(old["images"][0]), "version 7 marked the shapes as version 6 did"
    new_text, old_text = (json.loads(r["info"])["infotexts"][0] for r in (new, old))
    assert (regions_of(new_text)["version"], regions_of(old_text)["version"]) == (7, 6)
    pasted = webui.generate("txt2img", {"infotext": old_text, "width": 64, "height": 64})
    assert pixels(pasted["images"][0]) == pixels(old["images"][0]), "a version 6 infotext lost its start"


def test_shapes_in_img2img(webui):
    from PIL import Image

    init = png_b64(Image.new("RGB", (64, 64), (200, 180, 160)))
    payload = with_regions(dict(plain_payload(), init_images=[init], denoising_strength=0.8), SHAPES)
    res = webui.generate("img2img", payload)
    assert decode_png(res["images"][0]).size == (64, 64)
    written = regions_of(json.loads(res["info"])["infotexts"][0])
    assert written["regions"][0]["shape"]["type"] == "polygon"


def test_a_bad_shape_fails_with_its_field(webui, assert_plain_unchanged):
    bad = {"prompt": "x", "regions": [{"shape": {"type": "polygon", "points": [[0.1, 0.1], [0.5, 0.5]]},
                                       "prompt": "a line"}]}
    r = webui.post("/sdapi/v1/txt2img", with_regions(plain_payload(), bad))
    assert r.status_code >= 400 and "regions[0].shape.points" in r.text and "at least 3 points" in r.text, r.text[:800]
    missing = dict(PICTURE, regions=[{"colour": "#00ff00", "prompt": "a green thing"}])
    r = webui.post("/sdapi/v1/txt2img", with_regions(plain_payload(), missing))
    assert r.status_code >= 400 and "regions[0].colour" in r.text and "#00ff00" in r.text, r.text[:800]
    assert_plain_unchanged("failing shape runs")
