"""Shape regions through real diffusers pipelines (tiny random-weight models built in-process): a
shape changes the image where it lies, a rectangle drawn as a polygon is its box, a mask picture is
its painted shapes, and every feature that takes a box takes a shape."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lib_regedit.api import generate
from lib_regedit.documents import parse_region_document
from lib_regedit.editing.keep_outside import edit_area
from lib_regedit.masks import region_mask
from tests.test_region_shapes import png_data_url
from tests.tiny_models import pixels

PROMPT = "a red circle and a blue square"
BASE = {"prompt": PROMPT, "background_prompt": "whole", "init": "noise"}
LEFT_TRIANGLE = [[0.0, 0.0], [0.5, 0.0], [0.0, 1.0]]


def with_region(area: dict, **extra) -> dict:
    return {**BASE, **extra, "regions": [{**area, "prompt": "a green triangle"}]}


def polygon(points):
    return {"shape": {"type": "polygon", "points": points}}


@pytest.fixture(scope="module")
def images(sd):
    docs = {"box": with_region({"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0}),
            "rectangle": with_region(polygon([[0, 0], [0.5, 0], [0.5, 1], [0, 1]])),
            "triangle": with_region(polygon(LEFT_TRIANGLE)),
            "plain": {**BASE, "regions": []}}
    return {name: pixels(generate(sd, doc, seed=4, steps=4).image) for name, doc in docs.items()}


def test_a_rectangle_drawn_as_a_polygon_is_its_box(images):
    assert np.abs(images["rectangle"] - images["box"]).max() <= 1


def test_a_shape_changes_the_image_where_it_lies(images):
    height, width = images["plain"].shape[:2]
    doc = parse_region_document(with_region(polygon(LEFT_TRIANGLE)))
    inside = region_mask(doc.regions[0], height, width, feather=0.0).numpy() >= 0.5
    right = np.zeros((height, width), bool)
    right[:, width // 2 + 2:] = True  # outside the triangle's bounding box
    corner = ~inside & ~right  # in the box, outside the triangle
    from_plain = np.abs(images["triangle"] - images["plain"]).mean(-1)
    assert from_plain[inside].mean() > 1.5 * from_plain[right].mean()
    # against its bounding box drawn as a box: they differ most where the box covers and the shape does not
    from_box = np.abs(images["triangle"] - images["box"]).mean(-1)
    assert from_box[corner].mean() > 1.5 * from_box[inside].mean()
    assert from_box[corner].mean() > 1.5 * from_box[right].mean()


def test_a_mask_picture_is_the_shapes_painted_in_it(sd, images):
    height, width = images["plain"].shape[:2]
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(picture).polygon([(x * width, y * height) for x, y in LEFT_TRIANGLE], fill=(0, 200, 0))
    doc = {**BASE, "mask_image": png_data_url(picture), "regions": [{"colour": "#00c800", "prompt": "a green triangle"}]}
    result = generate(sd, doc, seed=4, steps=4)
    painted = pixels(result.image)
    assert np.abs(painted - images["triangle"]).mean() < 0.5 * np.abs(images["box"] - images["triangle"]).mean()
    assert any("colours no region names" in n and "#ffffff" in n for n in result.extras["notes"])
    # the infotext carries the picture as runs: pasting it makes the image again
    from lib_regedit.infotext import regions_entry

    again = generate(sd, parse_region_document(regions_entry(result.parameters), untagged_version=1), seed=4, steps=4)
    assert np.array_equal(pixels(again.image), painted)


def test_a_mask_picture_of_another_size_is_scaled_with_a_note(sd):
    picture = Image.new("RGB", (48, 64), (0, 0, 0))
    ImageDraw.Draw(picture).ellipse((4, 4, 30, 40), fill=(255, 0, 0))
    doc = {**BASE, "mask_image": png_data_url(picture), "regions": [{"colour": "#ff0000", "prompt": "a red circle"}]}
    notes = generate(sd, doc, seed=1, steps=2).extras["notes"]
    assert any("the picture is 48x64 and the image 32x32" in n and "stretched" in n for n in notes)


@pytest.mark.parametrize("extra", [{"mode": "latent"}, {"init": "layout"}, {"init": "layout", "init_sketch": "ellipse"},
                                   {"kssa": True}, {"guidance": {"until": 0.5, "iterations": 1}}])
def test_every_region_feature_takes_a_shape(sd, extra):
    strokes = {"shape": {"type": "mask", "strokes": [{"points": [[0.2, 0.2], [0.4, 0.8]], "radius": 0.15}]}}
    doc = {**BASE, **extra, "regions": [{**polygon(LEFT_TRIANGLE), "prompt": "a green triangle"},
                                        {**strokes, "prompt": "a blue square"}]}
    plain = pixels(generate(sd, {**BASE, **extra, "regions": []}, seed=2, steps=3).image)
    first = generate(sd, doc, seed=2, steps=3)
    assert np.abs(pixels(first.image) - plain).mean() > 0.5
    assert np.array_equal(pixels(generate(sd, doc, seed=2, steps=3).image), pixels(first.image))  # deterministic


def test_an_edit_pair_with_a_shape_keeps_the_rest(sd):
    from lib_regedit.editing.diffusers_edit import edit_pair

    doc = {"regions": [{**polygon([[0.55, 0.1], [0.95, 0.1], [0.75, 0.5]]), "prompt": "a red circle", "edit": "remove"},
                       {"x": 0.05, "y": 0.55, "w": 0.35, "h": 0.35, "prompt": "a blue square"}]}
    pair = edit_pair(sd, doc, seed=3, steps=4, width=64, height=64)
    area = edit_area(parse_region_document(doc), 64, 64).numpy()
    s, t = pixels(pair.source), pixels(pair.target)
    assert np.array_equal(s[area == 0], t[area == 0])
    assert not np.array_equal(s[area == 1], t[area == 1])
    box = region_mask(parse_region_document(doc).regions[0], 64, 64, feather=0.0).numpy()
    assert area[45, 60] == 0 and box[45, 60] == 0  # below the triangle, inside its bounding box grown: kept


def test_a_picture_edit_with_a_shape_pastes_the_rest_back(sd):
    from lib_regedit.editing.diffusers_real import edit_image

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    doc = {"prompt": PROMPT, "regions": [{**polygon(LEFT_TRIANGLE), "prompt": "a red circle", "edit": "change",
                                          "target_prompt": "a blue circle"}]}
    result = edit_image(sd, picture, doc, inversion="ddim", steps=3)
    area = edit_area(parse_region_document(doc), 32, 32).numpy()
    out, source = pixels(result.target), pixels(picture)
    assert np.array_equal(out[area == 0], source[area == 0])
    assert not np.array_equal(out[area > 0.5], source[area > 0.5])
