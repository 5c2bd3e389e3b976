"""The pixel compositing shared by RegionDrag and a picture's region edit: the harmonic membrane and
the seamless (Poisson) paste."""

import numpy as np
import pytest
from PIL import Image

from lib_regedit import compositing
from lib_regedit.compositing import harmonic_fill, paste_back, seamless_paste


def test_the_membrane_of_a_linear_ramp_is_the_ramp():
    ramp = np.tile(np.arange(12, dtype=np.float64), (10, 1))
    hole = np.zeros(ramp.shape, dtype=bool)
    hole[2:8, 3:9] = True
    spoiled = np.where(hole, 99.0, ramp)
    np.testing.assert_allclose(harmonic_fill(spoiled, hole), ramp, atol=1e-9)


def test_the_membrane_keeps_the_known_pixels_and_every_channel():
    values = np.random.default_rng(0).random((9, 9, 3))
    hole = np.zeros((9, 9), dtype=bool)
    hole[3:6, 3:6] = True
    filled = harmonic_fill(values, hole)
    assert filled.shape == values.shape
    assert np.array_equal(filled[~hole], values[~hole])
    # each filled pixel is the mean of its four neighbours (the discrete Laplace equation)
    for y, x in zip(*np.nonzero(hole)):
        around = (filled[y - 1, x] + filled[y + 1, x] + filled[y, x - 1] + filled[y, x + 1]) / 4
        np.testing.assert_allclose(filled[y, x], around, atol=1e-9)


def test_a_hole_with_no_known_border_is_left_as_it_was():
    values = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(harmonic_fill(values, np.ones((4, 4), dtype=bool)), values)
    assert np.array_equal(harmonic_fill(values, np.zeros((4, 4), dtype=bool)), values)


def test_a_large_membrane_solved_coarse_stays_close_to_the_exact_one(monkeypatch):
    y, x = np.mgrid[0:80, 0:80] / 80.0
    smooth = np.stack([40 * np.sin(3 * x) + 30 * y, 20 * x * y], -1)
    hole = np.zeros((80, 80), dtype=bool)
    hole[10:70, 15:65] = True
    exact = harmonic_fill(smooth, hole)
    monkeypatch.setattr(compositing, "DIRECT_UNKNOWNS", 500)  # 3000 unknowns: solved two levels down
    coarse = harmonic_fill(smooth, hole)
    assert np.abs(coarse - exact)[hole].mean() < 0.2 and np.abs(coarse - exact).max() < 2.0
    assert np.array_equal(coarse[~hole], smooth[~hole])


def _flat(colour, size=32):
    return Image.new("RGB", (size, size), colour)


def test_the_seamless_paste_takes_out_a_fills_tone_and_keeps_what_it_drew():
    original = _flat((250, 250, 250))
    edited = _flat((240, 241, 250))  # the pale lavender rectangle on white
    edited.paste((200, 30, 30), (12, 12, 20, 20))  # and a red square the edit drew
    mask = np.zeros((32, 32), dtype=np.float32)
    mask[6:26, 6:26] = 1
    out = np.asarray(seamless_paste(original, edited, mask), dtype=np.int16)
    plain = np.asarray(paste_back(original, edited, mask), dtype=np.int16)
    assert np.abs(plain[8, 8] - 250).max() == 10  # the feathered paste keeps the patch
    assert np.abs(out[8, 8] - 250).max() <= 1  # the seamless one does not
    assert np.abs(out[15, 15] - (210, 39, 30)).max() <= 1  # the square, lifted by the same offset
    assert np.array_equal(out[~(mask > 0)], np.asarray(original)[~(mask > 0)])  # outside: the original


def test_the_seamless_paste_with_no_mask_or_a_whole_mask_is_the_plain_paste():
    original, edited = _flat((10, 20, 30)), _flat((50, 60, 70))
    for mask in (np.zeros((32, 32)), np.ones((32, 32))):
        assert np.array_equal(np.asarray(seamless_paste(original, edited, mask)),
                              np.asarray(paste_back(original, edited, mask)))


def test_the_seamless_paste_resizes_the_original_to_the_edit():
    out = seamless_paste(_flat((200, 200, 200), 64), _flat((190, 190, 190), 32), np.pad(np.ones((16, 16)), 8))
    assert out.size == (32, 32) and np.abs(np.asarray(out, dtype=np.int16) - 200).max() <= 1


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 1)])
def test_the_seamless_paste_takes_either_mask_shape(shape):
    mask = np.zeros(shape, dtype=np.float32)
    mask[8:24, 8:24] = 1
    out = seamless_paste(_flat((100, 100, 100)), _flat((120, 120, 120)), mask)
    assert np.abs(np.asarray(out, dtype=np.int16) - 100).max() <= 1


def test_restore_unchanged_gives_back_a_faint_glow_and_keeps_what_the_edit_drew():
    """Inside the mask, pixels the edit moved by a few levels are the original's again; what it drew
    (tens of levels away) stays; outside the mask nothing changes."""
    original = np.full((32, 32, 3), 240, dtype=np.uint8)
    edited = original.copy()
    edited[8:24, 8:24] = 246  # a glow: 6 levels over the box
    edited[12:20, 12:20] = (40, 70, 220)  # what the edit drew
    edited[0:4, 0:4] = 250  # a change outside the mask is left as it is
    mask = np.zeros((32, 32), dtype=np.float32)
    mask[6:26, 6:26] = 1.0
    out = np.asarray(compositing.restore_unchanged(Image.fromarray(original), Image.fromarray(edited), mask))
    assert (out[8:11, 8:24] == 240).all()  # the glow away from the object: the picture's
    np.testing.assert_array_equal(out[13:19, 13:19], edited[13:19, 13:19])  # the object, whole
    np.testing.assert_array_equal(out[0:4, 0:4], edited[0:4, 0:4])
    lo, hi = compositing.UNCHANGED_LEVELS
    assert 0 < lo < hi < 255


def test_a_version_5_picture_edit_restores_what_it_barely_changed():
    from lib_regedit.documents import parse_region_document
    from lib_regedit.editing.real_edit import paste_outside

    picture = Image.new("RGB", (32, 32), (240, 240, 240))
    edited = np.full((32, 32, 3), 246, dtype=np.uint8)  # the model's background a few levels off everywhere
    edited[12:20, 12:20] = (40, 70, 220)
    doc = {"prompt": "a blue square", "regions": [{"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a red square",
                                                  "edit": "change", "target_prompt": "a blue square"}]}
    v5 = np.asarray(paste_outside(picture, Image.fromarray(edited), parse_region_document(doc)))
    v4 = np.asarray(paste_outside(picture, Image.fromarray(edited), parse_region_document(dict(doc, version=4))))
    box = (slice(9, 11), slice(9, 23))  # inside the edit area, beside the object
    assert np.abs(v5[box].astype(int) - 240).max() <= np.abs(v4[box].astype(int) - 240).max()
    assert (v5[box] == 240).all()
    np.testing.assert_array_equal(v5[14:18, 14:18], v4[14:18, 14:18])  # the object, as version 4 pastes it
