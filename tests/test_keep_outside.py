"""An edit pair keeps the source outside its edited boxes (lib_regedit/editing/keep_outside.py): the
masks, the row blend, the seamless paste, and edit_pair with the option on and off."""

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.compositing import seamless_paste
from lib_regedit.documents import parse_region_document
from lib_regedit.editing.keep_outside import (KEEP_FEATHER, KEEP_MARGIN, edit_area, interleaved_pairs,
                                              keep_source, pair_keep_area, stacked_pairs)
from tests.tiny_models import pixels, tiny_sd_pipeline

REMOVE = {"regions": [{"x": 0.55, "y": 0.1, "w": 0.35, "h": 0.35, "prompt": "a red circle", "edit": "remove"},
                      {"x": 0.05, "y": 0.55, "w": 0.35, "h": 0.35, "prompt": "a blue square"}]}


def test_the_area_is_the_edited_boxes_grown_and_feathered():
    area = edit_area(parse_region_document(REMOVE), 64, 64)
    x0 = int((0.55 - KEEP_MARGIN) * 64)
    assert area[16, 40].item() == 1.0 and area[50, 10].item() == 0.0  # the removed box; the kept one
    assert area[16, x0 - 1].item() < 1.0 and area[16, x0 + 1].item() == 1.0
    assert area[16, int((0.55 - KEEP_MARGIN - KEEP_FEATHER) * 64) - 2].item() == 0.0
    background = dict(REMOVE, regions=REMOVE["regions"] + [{"x": 0, "y": 0, "w": 1, "h": 1, "prompt": "snow",
                                                              "role": "background", "edit": "change",
                                                              "target_prompt": "sand"}])
    assert edit_area(parse_region_document(background), 8, 8) is None  # the whole image is the edit's


def test_the_option_follows_the_document():
    assert pair_keep_area(parse_region_document(REMOVE), 8, 8) is not None
    assert pair_keep_area(parse_region_document(dict(REMOVE, version=3)), 8, 8) is None  # MRGD's pair
    assert pair_keep_area(parse_region_document(dict(REMOVE, edit={"keep_outside": False})), 8, 8) is None


def test_rows_pair_up_and_targets_take_their_sources_outside():
    assert stacked_pairs(2) == [(0, 2), (1, 3)] and interleaved_pairs(4) == [(0, 1), (2, 3)]
    x = torch.randn(4, 3, 6, 6)
    area = torch.zeros(6, 6)
    area[:, 3:] = 1.0
    area[:, 2] = 0.5
    out = keep_source(x, area, interleaved_pairs(4))
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])  # sources unchanged
    assert torch.equal(out[1][..., :2], x[0][..., :2]) and torch.equal(out[1][..., 3:], x[1][..., 3:])
    assert torch.allclose(out[3][..., 2], (x[2][..., 2] + x[3][..., 2]) / 2)
    with pytest.raises(ValueError):
        keep_source(x, torch.zeros(5, 5), [(0, 1)])


def test_a_seamless_paste_keeps_the_outside_and_removes_a_tone_shift():
    original = np.full((32, 32, 3), 240, dtype=np.uint8)
    edited = np.full((32, 32, 3), 225, dtype=np.uint8)  # the decode's tone moved everywhere
    edited[12:20, 12:20] = (200, 30, 30)  # and an object was painted
    mask = np.zeros((32, 32), dtype=np.float32)
    mask[8:24, 8:24] = 1.0
    out = np.asarray(seamless_paste(Image.fromarray(original), Image.fromarray(edited), mask)).astype(int)
    assert (out[mask == 0] == 240).all()
    assert np.abs(out[9, 9] - 240).max() <= 1  # the fill meets its surroundings
    assert np.abs(out[16, 16] - (215, 45, 45)).max() <= 1  # the object, shifted by the same tone
    plain = np.asarray(Image.fromarray(edited)).astype(int)
    assert np.abs(plain[9, 9] - 240).max() == 15  # what a plain paste-back would have left: a step


@pytest.mark.slow
def test_edit_pair_keeps_the_source_outside_and_mrgd_is_one_switch_away():
    from lib_regedit.editing.diffusers_edit import edit_pair

    pipe = tiny_sd_pipeline()
    kept = edit_pair(pipe, REMOVE, seed=3, steps=4, width=64, height=64)
    area = edit_area(parse_region_document(REMOVE), 64, 64).numpy()
    s, t = pixels(kept.source), pixels(kept.target)
    assert np.array_equal(s[area == 0], t[area == 0])
    assert not np.array_equal(s[area == 1], t[area == 1])
    mrgd = edit_pair(pipe, dict(REMOVE, edit={"keep_outside": False}), seed=3, steps=4, width=64, height=64)
    assert np.array_equal(pixels(mrgd.source), s)  # the source is the same either way
    assert not np.array_equal(pixels(mrgd.target)[area == 0], s[area == 0])
    old = edit_pair(pipe, dict(REMOVE, version=3), seed=3, steps=4, width=64, height=64)
    assert np.array_equal(pixels(old.target), pixels(mrgd.target))  # version 3 documents: as before


def test_the_margin_stops_at_a_kept_box():
    doc = parse_region_document({"regions": [
        {"x": 0.5, "y": 0.2, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change", "target_prompt": "a blue circle"},
        {"x": 0.05, "y": 0.2, "w": 0.4, "h": 0.4, "prompt": "a green square"},
        {"x": 0.45, "y": 0.3, "w": 0.1, "h": 0.1, "prompt": "a dot", "edit": "remove"}]})
    area = edit_area(doc, 100, 100)
    assert area[40, 47].item() == 1.0  # the margin between the boxes
    assert area[40, 30:45].max().item() < 1e-5  # the kept square's box stays the source's
    assert area[35, 45:55].min().item() == 1.0  # an edited box stays whole, over the kept one too
    assert area[70, 47].item() > 0.0  # below the kept box the margin goes on
