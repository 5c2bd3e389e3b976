"""The seam and leftover figures of lib_regedit.evaluation.traces on rendered pictures."""

import numpy as np
from PIL import Image

from lib_regedit.evaluation.metrics import box_mask
from lib_regedit.evaluation.traces import grow, leftover, ring, seam
from lib_regedit.shapesworld.data import COLOURS


def _picture(background=(250, 250, 250), patch=None, box=(0.3, 0.3, 0.4, 0.4), obj=None):
    arr = np.zeros((64, 64, 3), dtype=np.uint8) + np.array(background, dtype=np.uint8)
    fill = box_mask(box, 64, 64)
    if patch is not None:
        arr[fill] = patch
    if obj is not None:
        arr[28:36, 28:36] = COLOURS[obj]
    return Image.fromarray(arr), fill


def test_grow_and_ring():
    mask = np.zeros((10, 10), dtype=bool)
    mask[4:6, 4:6] = True
    assert grow(mask, 1).sum() == 16
    around = ring(mask, ring=0.1)
    assert around.sum() == 12 and not (around & mask).any()


def test_a_fill_that_matches_has_no_seam():
    image, fill = _picture()
    assert seam(image, fill) == 0.0


def test_a_cream_rectangle_on_white_is_a_seam():
    image, fill = _picture(background=(250, 250, 250), patch=(240, 235, 215))
    assert abs(seam(image, fill) - 35 / 255) < 1e-9


def test_an_object_in_the_fill_is_not_a_seam_but_a_leftover():
    image, fill = _picture(obj="red")
    assert seam(image, fill) == 0.0
    assert abs(leftover(image, fill, "red") - 64 / fill.sum()) < 1e-9
    assert leftover(image, fill, "blue") == 0.0


def test_the_ring_lies_beyond_what_the_edit_changed():
    image, fill = _picture(patch=(200, 200, 200))
    changed = grow(fill, 3)
    around = ring(fill, changed)
    assert around.any() and not (around & changed).any() and (around & grow(fill, 4)).any()
    assert abs(seam(image, fill, changed) - 50 / 255) < 1e-9
    everything = np.ones_like(fill)
    assert np.isnan(seam(image, fill, everything))  # nothing around to compare with
