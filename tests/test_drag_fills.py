"""RegionDrag's fills that match their surroundings (drag document version 2): the document's versions
and settings, the handle's fill, brush handles grown to the objects they cover, and the composite;
and a picture edit's seamless paste from region document version 4."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.compositing import paste_back, seamless_paste
from lib_regedit.documents import parse_drag_document, parse_region_document
from lib_regedit.documents.drag import VERSION, DragDocument
from lib_regedit.drag import composite as composite_module
from lib_regedit.drag.fill import fill_handles, surroundings
from lib_regedit.drag.grow import grow_brush, grown_handles
from lib_regedit.drag.mapping import DenseMapping, brush_mask, dense_mapping
from lib_regedit.drag.options import DragOptions, options_for
from lib_regedit.errors import RegEditError

SQUARE = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
POLYGON_PAIR = {"handle": {"type": "polygon", "points": SQUARE},
                "target": {"type": "polygon", "points": [[x + 0.5, y + 0.5] for x, y in SQUARE]}}


def brush(x0, y0, side):
    """One horizontal stroke whose round brush spans the box (x0, y0, side, side): its corners are left out."""
    r = side / 2
    return {"type": "mask", "strokes": [{"points": [[x0 + r, y0 + r], [x0 + side - r, y0 + r]], "radius": r}]}


BRUSH_PAIR = {"handle": brush(0.25, 0.25, 0.5), "target": brush(0.45, 0.45, 0.5)}


def square_picture(size=64):
    """A red square on grey, the box (0.25, 0.25, 0.5, 0.5)."""
    image = Image.new("RGB", (size, size), (220, 220, 220))
    image.paste((200, 30, 30), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return image


# ----- the document -----

def test_a_document_without_a_version_is_the_current_one_with_both_settings_on():
    doc = parse_drag_document({"pairs": [POLYGON_PAIR]})
    assert VERSION == 2 and doc.version == 2
    assert doc.settings()["match_surroundings"] is True and doc.settings()["grow_handles"] is True
    assert options_for(doc) == DragOptions()


def test_version_1_and_a_pasted_untagged_infotext_keep_regiondrags_own_fill():
    for doc in (parse_drag_document({"version": 1, "pairs": [POLYGON_PAIR]}),
                parse_drag_document({"pairs": [POLYGON_PAIR]}, untagged_version=1)):
        assert doc.version == 1
        assert options_for(doc) == DragOptions(match_surroundings=False, grow_handles=False)


@pytest.mark.parametrize("version", [1, 2])
def test_each_setting_may_be_set_either_way_in_either_version(version):
    doc = parse_drag_document({"version": version, "pairs": [POLYGON_PAIR], "match_surroundings": version == 1,
                               "grow_handles": None})
    assert doc.settings()["match_surroundings"] is (version == 1)
    assert doc.settings()["grow_handles"] is (version == 2)  # null: the version's default


@pytest.mark.parametrize("fields,written", [
    ({}, {}),
    ({"match_surroundings": False}, {"match_surroundings": False}),
    ({"version": 1, "grow_handles": True}, {"grow_handles": True}),
])
def test_the_document_round_trips_and_writes_only_the_settings_it_was_given(fields, written):
    doc = parse_drag_document(dict({"pairs": [POLYGON_PAIR]}, **fields))
    data = json.loads(doc.to_json())
    assert data["version"] == fields.get("version", 2)
    assert {k: data[k] for k in ("match_surroundings", "grow_handles") if k in data} == written
    assert parse_drag_document(doc.to_json()) == doc
    assert parse_drag_document(doc.to_json(), untagged_version=1) == doc  # the version is always written


@pytest.mark.parametrize("name", ["match_surroundings", "grow_handles"])
def test_a_setting_that_is_not_true_or_false_is_named(name):
    with pytest.raises(RegEditError) as info:
        parse_drag_document({"pairs": [POLYGON_PAIR], name: "yes"})
    assert info.value.field == f"drag.{name}" and "true or false" in str(info.value)


# ----- the handle's fill -----

def test_the_handle_starts_from_the_membrane_of_its_surroundings():
    ramp = torch.arange(16.0).repeat(16, 1)  # (16, 16), rising left to right
    z0 = torch.stack([ramp, -ramp, ramp * 0 + 3, ramp / 2])[None]
    z0[..., 14:, 14:] = 100.0  # an object far from the handle: the ramp is the background
    handles = np.zeros((16, 16), dtype=bool)
    handles[4:10, 5:12] = True
    mapping = DenseMapping(16, 16, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), handles,
                           np.zeros((16, 16), dtype=bool))
    torch.testing.assert_close(surroundings(torch.where(torch.as_tensor(handles), 50.0, z0), handles), z0,
                               atol=1e-5, rtol=0)
    x = torch.randn(1, 4, 16, 16)
    handles = torch.as_tensor(handles)
    # alpha 1: no noise, the membrane itself; share 1: none of the inverted latent left
    out = fill_handles(x, z0, mapping, share=1.0, alpha=1.0)
    torch.testing.assert_close(out[:, :, handles], z0[:, :, handles], atol=1e-5, rtol=0)
    assert torch.equal(out[:, :, ~handles], x[:, :, ~handles])
    half = fill_handles(x, z0, mapping, share=0.6, alpha=1.0)
    torch.testing.assert_close(half[:, :, handles], 0.8 * x[:, :, handles] + 0.6 * z0[:, :, handles], atol=1e-5,
                               rtol=0)


def test_an_object_the_handle_cuts_is_not_grown_back_into_the_fill():
    z0 = torch.zeros(1, 4, 16, 16)
    z0[..., 8:13, 4:9] = 3.0  # an object whose top half the handle covers
    handles = np.zeros((16, 16), dtype=bool)
    handles[2:10, 2:11] = True
    filled = surroundings(z0, handles)
    from lib_regedit.compositing import harmonic_fill

    plain = harmonic_fill(z0[0].permute(1, 2, 0).numpy(), handles)
    assert np.abs(plain[handles]).max() > 1.0  # a plain membrane grows the object back in
    assert filled[:, :, torch.as_tensor(handles)].abs().max() < 0.25  # this one keeps to the background


# ----- brush handles grown to the object -----

def test_a_round_brush_grows_to_the_corners_of_the_square_it_covers():
    from lib_regedit.lime.superpixels import superpixels

    doc = parse_drag_document({"pairs": [BRUSH_PAIR]})
    labels = superpixels(square_picture(), (16, 16))
    painted = brush_mask(doc.pairs[0].handle, *labels.shape)
    grown = grow_brush(doc.pairs[0].handle, labels)
    square = np.zeros(labels.shape, dtype=bool)
    square[16:48, 16:48] = True
    assert not painted[square].all()  # the brush leaves the corners out
    assert grown[square].all() and (grown & ~square).sum() <= (painted & ~square).sum()  # no background added


def test_the_growth_stays_within_a_brush_radius_of_the_strokes():
    labels = np.zeros((64, 64), dtype=np.int64)
    labels[28:36, :] = 1  # a long band the brush covers half of
    stroke = {"type": "mask", "strokes": [{"points": [[0.25, 0.5], [0.75, 0.5]], "radius": 0.1}]}
    handle = parse_drag_document({"pairs": [{"handle": stroke, "target": stroke}]}).pairs[0].handle
    grown = grow_brush(handle, labels)
    assert grown[30, 10] and grown[30, 53]  # within one radius (6.4 px) of the stroke's ends
    assert not grown[30, 2] and not grown[30, 61]


def test_version_1_and_growing_off_grow_nothing_and_a_polygon_grows_to_the_object_it_cuts():
    from lib_regedit.drag.mapping import polygon_mask

    image = square_picture()
    assert grown_handles(parse_drag_document({"version": 1, "pairs": [BRUSH_PAIR]}), image, (16, 16)) == (None,)
    cut = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.6], [0.2, 0.6]]  # the square's top 70%
    pair = {"handle": {"type": "polygon", "points": cut},
            "target": {"type": "polygon", "points": [[x, y + 0.1] for x, y in cut]}}
    doc = parse_drag_document({"pairs": [BRUSH_PAIR, pair]})
    assert grown_handles(doc, image, (16, 16), enabled=False) == (None, None)
    grown = grown_handles(doc, image, (16, 16))
    assert grown[0].shape == (64, 64) and grown[1].shape == (64, 64)
    drawn = polygon_mask(cut, 64, 64)
    assert not drawn[16:48, 16:48].all() and grown[1][16:48, 16:48].all()
    assert not grown[1][60:, :].any() and not grown[1][:, :8].any()  # the grey around stays out


def test_the_grown_handle_takes_its_target_along():
    doc = parse_drag_document({"pairs": [BRUSH_PAIR]})
    grown = np.zeros((64, 64), dtype=bool)
    grown[16:48, 16:48] = True  # the whole square
    plain = dense_mapping(doc, 16, 16)
    m = dense_mapping(doc, 16, 16, grown=[grown])
    assert not plain.handles[4, 4] and m.handles[4, 4]  # the square's top-left corner cell
    assert not plain.targets[7, 7] and m.targets[7, 7]  # moved by 0.2 of the side: 3.2 cells
    source = dict(zip(m.target.tolist(), m.source.tolist()))
    assert source[7 * 16 + 7] == 4 * 16 + 4  # the target's corner copies the handle's corner
    assert np.array_equal(plain.handles, dense_mapping(doc, 16, 16, grown=[None]).handles)


# ----- the composite -----

def test_version_1_composites_with_the_feather_and_version_2_seamlessly(monkeypatch):
    original, edited = Image.new("RGB", (32, 32), (250, 250, 250)), Image.new("RGB", (32, 32), (240, 241, 250))
    for version, expected in ((1, paste_back), (2, seamless_paste)):
        doc = parse_drag_document({"version": version, "pairs": [POLYGON_PAIR]})
        out = composite_module.composite(original, edited, doc)
        assert np.array_equal(np.asarray(out),
                              np.asarray(expected(original, edited, composite_module.composite_mask(doc, 32, 32))))
    doc = parse_drag_document({"pairs": [POLYGON_PAIR]})
    assert np.array_equal(np.asarray(composite_module.composite(original, edited, doc, seamless=False)),
                          np.asarray(paste_back(original, edited, composite_module.composite_mask(doc, 32, 32))))


def test_a_brush_drag_no_longer_keeps_the_corners_the_brush_missed(sd):
    from lib_regedit.drag.diffusers_drag import drag

    image = square_picture()
    corner = (17, 17)  # inside the square, outside the round brush
    for version in (1, 2):
        out = drag(sd, image, {"version": version, "pairs": [BRUSH_PAIR]}, prompt="a red square", seed=1,
                   progress=False).image
        kept = np.array_equal(np.asarray(out)[corner], np.asarray(image)[corner])
        assert kept == (version == 1), version


# ----- a picture's region edit -----

EDIT = {"prompt": "a red circle", "regions": [{"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a red circle",
                                              "edit": "change", "target_prompt": "a blue circle"}]}


@pytest.mark.parametrize("version,paste", [(3, paste_back), (4, seamless_paste)])
def test_a_picture_edit_pastes_seamlessly_from_version_4(version, paste):
    from lib_regedit.editing.real_edit import edit_area, harmonises, paste_outside

    doc = parse_region_document(dict(EDIT, version=version))
    picture, edited = Image.new("RGB", (64, 64), (250, 250, 250)), Image.new("RGB", (64, 64), (240, 241, 250))
    out = paste_outside(picture, edited, doc)
    assert harmonises(doc) is (version >= 4)
    assert np.array_equal(np.asarray(out), np.asarray(paste(picture, edited, edit_area(doc, 64, 64).numpy())))
    off = parse_region_document(dict(EDIT, version=version, edit={"paste_outside": False}))
    assert paste_outside(picture, edited, off) is edited
