"""Regions of any shape: the document's shapes and mask picture, their one rasteriser, and the
features that read region masks (fusion, KSSA and guidance masks, layout init, edit areas, LIME's
given region, the preview)."""

import base64
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from lib_regedit.documents import parse_lime_document, parse_region_document
from lib_regedit.documents import mask_picture
from lib_regedit.documents.region import VERSION
from lib_regedit.errors import RegEditError
from lib_regedit.masks import area_mask, fusion_weights, grown_area, region_mask
from lib_regedit.shape_masks import inner_disc, shape_mask

TRIANGLE = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]  # area 0.32
DISC = {"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0.25}]}  # area pi / 16
RESOLUTIONS = [(8, 8), (16, 16), (32, 32), (64, 64), (128, 128)]


def shape_doc(*shapes, **extra):
    return {"prompt": "shapes", **extra,
            "regions": [{"shape": s, "prompt": f"thing {i}"} for i, s in enumerate(shapes)]}


def polygon(points):
    return {"type": "polygon", "points": points}


def png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def painted(size=(64, 64)) -> Image.Image:
    """A red disc (radius 16 px at (20, 24)), a blue rectangle and a green dot on black."""
    image = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 8, 36, 40), fill=(255, 0, 0))
    draw.rectangle((40, 10, 59, 49), fill=(0, 0, 255))
    draw.point((62, 62), fill=(0, 255, 0))
    return image


def error_of(doc) -> RegEditError:
    with pytest.raises(RegEditError) as info:
        parse_region_document(doc)
    return info.value


# --- rasterisation -----------------------------------------------------------------------------


@pytest.mark.parametrize("hw", RESOLUTIONS)
def test_a_disc_and_a_triangle_cover_their_area_at_every_resolution(hw):
    doc = parse_region_document(shape_doc(DISC, polygon(TRIANGLE)))
    disc, triangle = (region_mask(r, *hw, feather=0.0) for r in doc.regions)
    cell = 1 / (hw[0] * hw[1])
    assert float(disc.mean()) == pytest.approx(math.pi * 0.25 ** 2, abs=max(0.01, 4 * hw[0] * cell))
    assert float(triangle.mean()) == pytest.approx(0.32, abs=max(0.01, 4 * hw[0] * cell))
    assert float(disc.min()) >= 0 and float(disc.max()) == 1.0
    assert disc[hw[0] // 2, hw[1] // 2] == 1 and disc[0, 0] == 0  # inside at the centre, not in a corner


def test_a_disc_stays_round_on_a_wide_image():
    """The radius is a fraction of the width, so on a 3:2 latent the disc covers pi r^2 * 3/2 of it."""
    mask = shape_mask(parse_region_document(shape_doc(DISC)).regions[0].shape, 32, 48)
    assert float(mask.mean()) == pytest.approx(math.pi * 0.25 ** 2 * 1.5, abs=0.005)
    rows, cols = np.nonzero(mask.numpy() >= 0.5)
    assert (cols.max() - cols.min()) == pytest.approx(rows.max() - rows.min(), abs=1)  # as wide as tall, in cells


def test_feathered_shape_masks_rise_across_the_outline_as_boxes_do():
    box = parse_region_document({"prompt": "p", "regions": [{"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a"}]})
    square = parse_region_document(shape_doc(polygon([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]])))
    for feather in (0.0, 0.03, 0.1):
        a = region_mask(box.regions[0], 64, 64, feather)
        b = region_mask(square.regions[0], 64, 64, feather)
        middle = slice(24, 40)  # away from the corners, where a box's ramp is a product of two
        torch.testing.assert_close(a[middle], b[middle], atol=1e-5, rtol=0)
    soft = region_mask(square.regions[0], 64, 64, 0.1)
    assert 0 < float(soft[32, 14]) < 1 and float(soft[32, 32]) == 1.0  # soft outside the edge, whole inside


def test_a_self_crossing_polygon_fills_by_the_nonzero_rule():
    bow_tie = shape_mask(parse_region_document(shape_doc(polygon([[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]])))
                         .regions[0].shape, 64, 64)
    assert float(bow_tie.mean()) == pytest.approx(0.32, abs=0.01)  # both triangles: its signed area is 0
    twice = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]] * 2  # the same square walked round twice
    mask = shape_mask(parse_region_document(shape_doc(polygon(twice))).regions[0].shape, 64, 64)
    assert float(mask.mean()) == pytest.approx(0.36, abs=0.01)  # winding 2: still inside, no hole (even-odd: empty)


def test_a_shape_thinner_than_a_cell_keeps_a_sliver():
    thin = parse_region_document(shape_doc({"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0.001}]}))
    mask = region_mask(thin.regions[0], 8, 8, feather=0.0)
    assert 0 < float(mask.sum()) < 1


def test_masks_are_cached_and_callers_get_their_own_copy():
    shape = parse_region_document(shape_doc(polygon(TRIANGLE))).regions[0].shape
    first = shape_mask(shape, 16, 16, 0.03)
    first.zero_()
    assert float(shape_mask(shape, 16, 16, 0.03).sum()) > 0


def test_pixel_resolution_masks_of_large_images_are_resized():
    shape = parse_region_document(shape_doc(polygon(TRIANGLE))).regions[0].shape
    assert float(shape_mask(shape, 1024, 1024).mean()) == pytest.approx(0.32, abs=0.01)


def test_fusion_weights_from_shapes_sum_to_one():
    doc = parse_region_document(shape_doc(DISC, polygon(TRIANGLE), polygon([[0.0, 0.0], [0.3, 0.0], [0.0, 0.3]])))
    for hw in RESOLUTIONS[:4]:
        masks = torch.stack([region_mask(r, *hw) for r in doc.regions])
        for whole in (0.0, 0.5):
            weights = fusion_weights(masks, [1.0, 2.0, 0.5], 1.0, whole)
            torch.testing.assert_close(weights.sum(0), torch.ones(hw), atol=1e-5, rtol=0)
        bg = fusion_weights(masks, [1.0, 2.0, 0.5], 1.0, 0.0)[-2]
        assert float(bg[-1, -1]) > 0.99 and float(bg[hw[0] // 2, hw[1] // 2]) < 0.01  # background: what no shape covers


def test_the_largest_inner_disc():
    shape = parse_region_document(shape_doc(polygon(TRIANGLE))).regions[0].shape
    x, y, r = inner_disc(shape, 128, 128)
    # the incircle: r = area / semi-perimeter, its centre on the axis of symmetry
    assert r == pytest.approx(0.32 / ((0.8 + 2 * math.hypot(0.4, 0.8)) / 2), abs=0.01)
    assert x == pytest.approx(0.5, abs=0.01) and y == pytest.approx(0.1 + r, abs=0.01)


# --- the document ------------------------------------------------------------------------------


def test_a_shape_region_has_its_bounding_box_and_round_trips():
    doc = parse_region_document(shape_doc(polygon(TRIANGLE), DISC))
    assert doc.regions[0].box == pytest.approx((0.1, 0.1, 0.8, 0.8))
    assert doc.regions[1].box == pytest.approx((0.25, 0.25, 0.5, 0.5))
    text = doc.to_json()
    data = json.loads(text)
    assert data["regions"][0] == {"shape": polygon(TRIANGLE), "prompt": "thing 0"}  # points, no box
    assert data["regions"][1]["shape"] == DISC  # strokes as strokes
    assert parse_region_document(text) == doc
    assert parse_region_document(doc.to_json(full=True)) == doc


def test_boxes_are_written_as_before():
    doc = parse_region_document({"prompt": "p", "regions": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "prompt": "a"}]})
    assert json.loads(doc.to_json())["regions"] == [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "prompt": "a"}]
    assert doc.regions[0].shape is None and doc.version == VERSION


def test_the_infotext_carries_shapes_and_pasting_restores_them():
    from lib_regedit.infotext import INFOTEXT_KEY, parameters_text, regions_entry

    doc = parse_region_document(shape_doc(polygon(TRIANGLE), DISC))
    text = parameters_text(doc.prompt, "", {"Steps": 20, INFOTEXT_KEY: doc.to_json()})
    assert parse_region_document(regions_entry(text), untagged_version=1) == doc


@pytest.mark.parametrize("doc, field, words", [
    ({"prompt": "p", "regions": [{"x": 0, "y": 0, "w": 1, "h": 1, "shape": polygon(TRIANGLE), "prompt": "a"}]},
     "regions[0]", "both a box (x, y, w, h) and a shape"),
    (shape_doc(polygon([[0.1, 0.1], [0.5, 0.5]])), "regions[0].shape.points", "at least 3 points"),
    (shape_doc(polygon([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]])), "regions[0].shape.points", "no area"),
    (shape_doc(polygon([[0.1, 0.1], [1.5, 0.5], [0.9, 0.9]])), "regions[0].shape.points[1]", "outside the image"),
    (shape_doc({"type": "circle", "points": []}), "regions[0].shape.type", "not allowed"),
    (shape_doc({"type": "mask", "strokes": []}), "regions[0].shape.strokes", "is empty"),
    (shape_doc({"type": "mask", "strokes": [{"points": [[0.5, -0.1]], "radius": 0.1}]}),
     "regions[0].shape.strokes[0].points[0]", "outside the image"),
    (shape_doc({"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0}]}),
     "regions[0].shape.strokes[0].radius", "out of range"),
    (shape_doc(polygon(TRIANGLE) | {"extra": 1}), "regions[0].shape.extra", "unknown field"),
    ({"prompt": "p", "regions": [{"role": "background", "shape": polygon(TRIANGLE), "prompt": "bg"}]},
     "regions[0].shape", "takes no shape"),
    ({"prompt": "p", "regions": [{"colour": "#ff0000", "prompt": "a"}]}, "regions[0].colour", "has none"),
    ({"prompt": "p", "mask_image": png_data_url(painted()), "regions": [{"colour": "red", "prompt": "a"}]},
     "regions[0].colour", "is not a colour"),
    ({"prompt": "p", "mask_image": png_data_url(painted()), "regions": [{"colour": "#ffff00", "prompt": "a"}]},
     "regions[0].colour", "has no #ffff00 pixels"),
    ({"prompt": "p", "mask_image": png_data_url(painted()), "regions": [
        {"colour": "#ff0000", "prompt": "a"}, {"colour": "#f00", "prompt": "b"}]}, "regions[1].colour", "already names"),
    ({"prompt": "p", "mask_image": png_data_url(painted()), "regions": [
        {"colour": "#ff0000", "x": 0, "y": 0, "w": 1, "h": 1, "prompt": "a"}]}, "regions[0]", "both a box"),
    ({"prompt": "p", "mask_image": "aGVsbG8=", "regions": [{"colour": "#ff0000", "prompt": "a"}]},
     "mask_image", "not a picture"),
    ({"prompt": "p", "mask_image": {"width": 4}, "regions": [{"colour": "#ff0000", "prompt": "a"}]},
     "mask_image.height", "missing"),
    ({"prompt": "p", "mask_image": png_data_url(painted()), "regions": [{"x": 0, "y": 0, "w": 1, "h": 1, "prompt": "a"}]},
     "mask_image", "no region names a colour"),
])
def test_bad_shapes_name_the_field_and_the_fix(doc, field, words):
    err = error_of(doc)
    assert err.field == field and words in err.problem and err.fix
    assert str(err).startswith(f"RegEdit: {field}: ") and ". Fix: " in str(err)


def test_the_drag_document_reads_the_same_shapes():
    from lib_regedit.documents import parse_drag_document
    from lib_regedit.documents.region import Region
    from lib_regedit.documents.shapes import MaskRegion, PolygonRegion

    drag = parse_drag_document({"pairs": [{"handle": polygon(TRIANGLE), "target": polygon(TRIANGLE)},
                                          {"handle": DISC, "target": DISC}]})
    region = parse_region_document(shape_doc(polygon(TRIANGLE), DISC)).regions
    assert isinstance(region[0], Region) and isinstance(region[0].shape, PolygonRegion)
    assert drag.pairs[0].handle == region[0].shape and isinstance(drag.pairs[1].handle, MaskRegion)
    assert drag.pairs[1].handle == region[1].shape


# --- the mask picture --------------------------------------------------------------------------


def picture_doc(image=None, **extra):
    return {"prompt": "a red circle and a blue square", "mask_image": png_data_url(image or painted()), **extra,
            "regions": [{"colour": "#ff0000", "prompt": "a red circle"}, {"colour": "#0000ff", "prompt": "a blue square"}]}


def test_a_mask_picture_names_its_regions_by_colour():
    doc = parse_region_document(picture_doc())
    red, blue = (region_mask(r, 64, 64, feather=0.0) for r in doc.regions)
    assert float(red.sum()) == pytest.approx(math.pi * 16.5 ** 2, rel=0.05)
    assert float(blue.sum()) == 20 * 40 and float((red * blue).sum()) == 0
    assert doc.regions[1].box == pytest.approx((40 / 64, 10 / 64, 20 / 64, 40 / 64))
    notes = doc.notes(64, 64)
    assert len(notes) == 1 and "colours no region names" in notes[0] and "#000000" in notes[0]


def test_a_mask_picture_of_another_size_is_scaled_with_a_note():
    doc = parse_region_document(picture_doc())
    notes = doc.notes(128, 96)
    assert any("64x64 and the image 128x96" in n and "stretched" in n for n in notes)
    blue = region_mask(doc.regions[1], 32, 32, feather=0.0)
    assert float(blue.sum()) == pytest.approx(20 * 40 / 4, rel=0.01)  # area-averaged to the latent
    assert not any("scaled" in n for n in doc.notes(64, 64))


def test_near_colours_count_and_transparent_pixels_are_no_region():
    image = painted().convert("RGBA")
    pixels = np.asarray(image).copy()
    pixels[12:14, 20:22, :3] = (240, 10, 12)  # a soft brush's near-red
    pixels[0:4, 40:60, 3] = 0  # transparent over black
    doc = parse_region_document(picture_doc(Image.fromarray(pixels)))
    labels = doc.mask_picture.labels
    assert (labels[12:14, 20:22] == 1).all() and (labels[0:4, 40:60] == 0).all()


def test_the_mask_picture_round_trips_as_runs():
    doc = parse_region_document(picture_doc())
    data = json.loads(doc.to_json())
    encoded = data["mask_image"]
    assert set(encoded) == {"width", "height", "colours", "runs"} and encoded["colours"] == ["#ff0000", "#0000ff"]
    assert data["regions"][0] == {"colour": "#ff0000", "prompt": "a red circle"}
    again = parse_region_document(doc.to_json())
    assert again == doc and np.array_equal(again.mask_picture.labels, doc.mask_picture.labels)
    # the run-length encoding is compact: a few runs a row here
    assert len(encoded["runs"]) < 64 * 64


def test_a_mask_picture_too_long_to_encode_is_recorded_by_its_hash(monkeypatch):
    monkeypatch.setattr(mask_picture, "MAX_RUNS_CHARS", 50)
    doc = parse_region_document(picture_doc())
    encoded = json.loads(doc.to_json())["mask_image"]
    assert "runs" not in encoded and encoded["sha256"] == doc.mask_picture.digest
    err = error_of(doc.to_json())
    assert err.field == "mask_image" and "SHA-256" in err.problem and "--mask-image" in err.fix


def test_mask_picture_runs_that_do_not_fit_are_refused():
    doc = json.loads(parse_region_document(picture_doc()).to_json())
    doc["mask_image"]["runs"] = "0*10,1*5"
    err = error_of(doc)
    assert err.field == "mask_image.runs" and "cover 15 pixels" in err.problem


# --- the features that read masks --------------------------------------------------------------


def test_layout_init_sketches_inside_the_shape():
    from lib_regedit.regions.layout_init import area_mask as init_area, document_sketch

    tri = [[0.1, 0.9], [0.9, 0.9], [0.1, 0.1]]  # its bounding box's centre (0.5, 0.5) is on its edge
    doc = parse_region_document(shape_doc(polygon(tri), init_sketch="disc"))
    sketch = document_sketch(doc, 64, 64)[0, 0].numpy()
    dark = sketch < 0
    inside = region_mask(doc.regions[0], 64, 64, feather=0.0).numpy() >= 0.5
    assert dark.any() and not (dark & ~inside).any()  # the disc sits inside the triangle
    filled = document_sketch(parse_region_document(shape_doc(polygon(tri), init_sketch="ellipse")), 64, 64)[0, 0]
    assert ((filled.numpy() < 0) == inside).mean() > 0.98  # the sketch fills the shape
    noise_area = init_area(doc, 16, 16)
    assert float(noise_area[12, 3]) == 1.0 and float(noise_area[2, 13]) < 0.5  # the seed's share follows the shape


def test_layout_init_marks_a_shape_at_its_box_centre_from_version_7():
    from lib_regedit.regions.layout_init import document_sketch, sketch_key

    tri = [[0.5, 0.2], [0.8, 0.8], [0.2, 0.8]]  # its box's centre (0.5, 0.5); its inner disc's lower
    new, old = (parse_region_document(shape_doc(polygon(tri), version=v)) for v in (7, 6))
    assert (new.shape_disc(), old.shape_disc()) == ("box", "inner")
    inside = region_mask(new.regions[0], 64, 64, feather=0.0).numpy() >= 0.5
    dark_new, dark_old = (document_sketch(d, 64, 64)[0, 0].numpy() < 0 for d in (new, old))
    assert not (dark_new & ~inside).any()  # cut to the triangle (the inner disc may graze its edge)
    rows_new, rows_old = (np.nonzero(d)[0].mean() / 64 for d in (dark_new, dark_old))
    assert abs(rows_new - 0.5) < abs(rows_old - 0.5) and rows_old > 0.55  # version 7's mark sits higher
    assert sketch_key(new, 64, 64, 10) != sketch_key(old, 64, 64, 10)


def test_a_shape_whose_box_overlaps_another_keeps_its_inner_disc():
    from lib_regedit.regions.layout_init import document_sketch

    tri = polygon([[0.5, 0.2], [0.8, 0.8], [0.2, 0.8]])
    corner = {"type": "mask", "strokes": [{"points": [[0.2, 0.2]], "radius": 0.08}]}  # in the triangle's box
    apart = {"type": "mask", "strokes": [{"points": [[0.9, 0.1]], "radius": 0.05}]}  # clear of it
    for other, same_as_v6 in ((corner, True), (apart, False)):
        new, old = (parse_region_document(shape_doc(tri, other, version=v)) for v in (7, 6))
        sketches = [document_sketch(d, 64, 64)[0, 0].numpy() for d in (new, old)]
        assert bool((sketches[0] == sketches[1]).all()) == same_as_v6


def test_a_shape_missing_its_box_centre_keeps_its_inner_disc():
    from lib_regedit.regions.layout_init import document_sketch

    ring = {"type": "mask", "strokes": [{"points": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8], [0.2, 0.2]],
                                         "radius": 0.06}]}  # a square ring: its box's centre is empty
    new, old = (parse_region_document(shape_doc(ring, version=v)) for v in (7, 6))
    sketches = [document_sketch(d, 64, 64)[0, 0].numpy() < 0 for d in (new, old)]
    assert sketches[0].any() and (sketches[0] == sketches[1]).all()


def test_layout_init_keys_differ_by_shape():
    from lib_regedit.regions.layout_init import sketch_key

    a = parse_region_document(shape_doc(polygon(TRIANGLE)))
    b = parse_region_document(shape_doc(polygon([[0.1, 0.1], [0.9, 0.1], [0.5, 0.8], [0.5, 0.9]])))
    assert a.regions[0].box == b.regions[0].box
    assert sketch_key(a, 64, 64, 10) != sketch_key(b, 64, 64, 10)


def test_an_edited_shape_is_the_edit_area():
    from lib_regedit.editing.keep_outside import edit_area

    doc = parse_region_document({"prompt": "p", "regions": [
        {"shape": polygon(TRIANGLE), "prompt": "a red circle", "edit": "change", "target_prompt": "a blue circle"}]})
    area = edit_area(doc, 64, 64, margin=0.0, feather=0.0)
    inside = region_mask(doc.regions[0], 64, 64, feather=0.0)
    assert torch.equal(area > 0, inside > 0) and bool((area >= inside).all())
    grown = edit_area(doc, 64, 64, margin=0.1, feather=0.05)
    assert float(grown[3, 32]) > 0.5 and float(grown[60, 5]) == 0  # grown past the top edge, not into the corner
    # the grown area is the shape's neighbourhood: a box grows the same way by its own rule
    box = parse_region_document({"prompt": "p", "regions": [{"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a"}]})
    square = parse_region_document(shape_doc(polygon([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]])))
    a = grown_area(box.regions[0], 64, 64, 0.1, 0.05)
    b = grown_area(square.regions[0], 64, 64, 0.1, 0.05)
    torch.testing.assert_close(a[20:44], b[20:44], atol=1e-5, rtol=0)


def test_kssa_and_guidance_read_positions_inside_the_shape():
    from lib_regedit.attention.effects.guidance_capture import GuidanceCapture, GuidedRegion

    doc = parse_region_document(shape_doc(polygon(TRIANGLE)))
    r = doc.regions[0]
    capture = GuidanceCapture([GuidedRegion(r.box, torch.zeros(1, 4, 8), [1], r.shape)])
    capture.maps, capture.latent_hw = {(16, 16): [[]]}, (64, 64)
    torch.testing.assert_close(capture.masks()[0], area_mask(r.box, r.shape, 16, 16).reshape(-1))
    assert float(capture.masks()[0].reshape(16, 16)[14, 1]) == 0  # in the box, outside the triangle


def test_lime_takes_a_shape_as_its_given_region():
    from lib_regedit.lime.given_roi import from_boxes

    lime = parse_lime_document({"roi": [{"shape": polygon(TRIANGLE)}, {"x": 0.0, "y": 0.0, "w": 0.1, "h": 0.1}]})
    assert parse_lime_document(lime.to_json()) == lime
    latent, pixels = from_boxes(lime.roi, (16, 16), (64, 64))
    assert float(pixels.mean()) == pytest.approx(0.32 + 0.01, abs=0.01)
    assert latent[1, 8] and not latent[14, 1]
    with pytest.raises(RegEditError, match=r"lime\.roi\[0\]\.shape\.points: a polygon needs at least 3 points"):
        parse_lime_document({"roi": [{"shape": polygon([[0.1, 0.1], [0.2, 0.2]])}]})


def test_the_preview_outlines_the_shape():
    from lib_regedit.preview import draw_layout, region_colour

    doc = parse_region_document(shape_doc(polygon(TRIANGLE)))
    out = np.asarray(draw_layout(Image.new("RGB", (256, 256), (128, 128, 128)), doc)).astype(int)
    colour = np.array([int(region_colour(0)[k:k + 2], 16) for k in (1, 3, 5)])
    outline = (np.abs(out - colour).sum(-1) < 30)
    assert not outline[240, 128] and outline[128, 74:80].any()  # not the bottom of the box; the triangle's left edge
    assert (out[200, 40] == 128).all()  # the box's corner outside the triangle is untouched


def test_a_picture_region_too_small_for_a_latent_cell_is_refused():
    from lib_regedit.inversion.image_input import check_regions_cover

    doc = parse_region_document(shape_doc({"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0.005}]}))
    with pytest.raises(RegEditError, match=r"regions\[0\]: the shape covers less than one latent cell"):
        check_regions_cover(doc, 64, 64, 8)


def test_the_regions_table_shows_a_shape_by_its_bounding_box_and_keeps_it():
    from lib_regedit.webui.ui_documents import doc_to_table, table_to_doc

    doc = json.dumps(shape_doc(polygon(TRIANGLE)))
    rows = doc_to_table(doc)
    assert rows == [["thing 0", 0.1, 0.1, 0.8, 0.8]]
    settings = ("attention", 0.3, True, 0.25, False, 15, 1.5, "logit", ["down"])
    rows[0][0] = "a red triangle"
    kept = json.loads(table_to_doc(rows, doc, *settings))["regions"][0]
    assert kept == {"shape": polygon(TRIANGLE), "prompt": "a red triangle"}
    rows[0][3] = 0.5  # a box typed over the shape replaces it
    replaced = json.loads(table_to_doc(rows, doc, *settings))["regions"][0]
    assert replaced == {"prompt": "a red triangle", "x": 0.1, "y": 0.1, "w": 0.5, "h": 0.8}


def test_a_parsed_document_with_a_large_picture_reparses_from_its_dict(monkeypatch):
    """``to_dict`` keeps the picture itself (the CLI's --kssa and --guidance reparse it), so only the
    infotext's JSON falls back to the hash."""
    monkeypatch.setattr(mask_picture, "MAX_RUNS_CHARS", 50)
    doc = parse_region_document(picture_doc())
    assert parse_region_document(doc.to_dict()) == doc
    reordered = dict(doc.to_dict(), regions=doc.to_dict()["regions"][::-1])
    again = parse_region_document(reordered)
    assert [r.shape.colour for r in again.regions] == ["#0000ff", "#ff0000"]
    assert np.array_equal(again.mask_picture.region("#ff0000"), doc.mask_picture.region("#ff0000"))


def test_a_large_mask_picture_is_measured_on_a_reduced_grid():
    from lib_regedit.documents.mask_picture import ColourArea, MaskPicture
    from lib_regedit.shape_masks import shape_distance

    side = 2048
    yy, xx = np.mgrid[0:side, 0:side]
    disc = ((xx + 0.5 - side / 2) ** 2 + (yy + 0.5 - side / 2) ** 2) < (side / 4) ** 2
    area = ColourArea(MaskPicture(disc.astype(np.uint8), ("#ff0000",)), "#ff0000")
    assert float(shape_mask(area, 64, 64).mean()) == pytest.approx(math.pi / 16, abs=0.005)
    distance = shape_distance(area, 64, 64)
    assert float(distance[32, 32]) == pytest.approx(0.25 - math.sqrt(2) / 128, abs=0.005)  # by the centre
    assert float(distance[0, 0]) == pytest.approx(-(math.sqrt(2) * 0.5 - 0.25), abs=0.02)
    soft = shape_mask(area, 64, 64, feather=0.1)
    assert 0 < float(soft[32, 14]) < 1 and float(soft[32, 32]) == 1.0


def test_two_edited_shapes_in_one_bounding_box_are_two_edits():
    up, down = [[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]], [[0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
    doc = parse_region_document({"prompt": "p", "regions": [
        {"shape": polygon(up), "prompt": "a red circle", "edit": "remove"},
        {"shape": polygon(down), "prompt": "a blue square", "edit": "change", "target_prompt": "a green square"}]})
    assert doc.regions[0].box == doc.regions[1].box and doc.is_pair
    err = error_of({"prompt": "p", "regions": [
        {"shape": polygon(up), "prompt": "a red circle", "edit": "remove"},
        {"shape": polygon(up), "prompt": "a blue square", "edit": "add"}]})
    assert err.field == "regions[1]" and "edits the same box" in err.problem
