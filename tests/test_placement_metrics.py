"""The placement figures a user sees (``lib_regedit/evaluation/placement.py``): seed variety, and the
ceiling that holding objects in their boxes puts on it in ShapesWorld's own data."""

import numpy as np
from PIL import Image

from lib_regedit.evaluation import placement


def test_seed_variety_is_the_mean_pixel_difference_over_pairs():
    black, white = Image.new("RGB", (8, 8), (0, 0, 0)), Image.new("RGB", (8, 8), (255, 255, 255))
    assert placement.seed_variety([black, black, black]) == 0.0
    assert placement.seed_variety([black, white]) == 1.0
    assert abs(placement.seed_variety([black, white, white]) - 2 / 3) < 1e-9  # pairs: 1, 1, 0


def test_user_layouts_are_reproducible_loose_boxes_side_by_side():
    layouts = placement.user_layouts(6)
    assert layouts == placement.user_layouts(6)
    for (_, _, a), (_, _, b) in layouts:
        for x, y, w, h in (a, b):
            assert 0 <= x and x + w <= 1 and 0 <= y and y + h <= 1 and min(w, h) >= 0.2
        assert a[0] + a[2] <= b[0] or a[1] + a[3] <= b[1]  # no overlap


def test_the_variety_ceiling_of_placed_objects_is_about_half_of_free_ones():
    """ShapesWorld's generator with two objects inside loose boxes keeps about half the variety it has
    with the objects anywhere: the reason seed variety is read against this ceiling (docs/placement.md)."""
    layouts = placement.user_layouts(3)
    ceiling = placement.variety_ceiling(layouts, seeds=4, repeats=4)
    assert 0 < ceiling["placed"] < ceiling["free"]
    assert 0.35 < ceiling["ratio"] < 0.75, ceiling
    assert ceiling == placement.variety_ceiling(layouts, seeds=4, repeats=4)  # seeded
    tight = [[(c, s, (x, y, 0.2, 0.2)) for c, s, (x, y, _, _) in layout] for layout in layouts]
    assert placement.variety_ceiling(tight, seeds=4, repeats=4)["placed"] < ceiling["placed"]  # less room, less variety
    assert np.isfinite(ceiling["ratio"])
