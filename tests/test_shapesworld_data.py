"""ShapesWorld data generator: deterministic, captions match objects, boxes match pixels."""

import numpy as np

from lib_regedit.shapesworld.data import (COLOURS, SHAPES, caption_for, generate_dataset, render_array,
                                          scene_for)


def test_deterministic_by_seed_and_index():
    a, ca, _ = generate_dataset(8, seed=3)
    b, cb, _ = generate_dataset(8, seed=3)
    assert np.array_equal(a, b) and ca == cb
    c, _, _ = generate_dataset(8, seed=4)
    assert not np.array_equal(a, c)
    # sample i does not depend on the samples before it
    d, cd, _ = generate_dataset(3, seed=3, start=5)
    assert np.array_equal(d, a[5:8]) and cd == ca[5:8]


def test_scenes_and_captions():
    counts = set()
    for i in range(200):
        s = scene_for(0, i)
        assert 1 <= len(s.objects) <= 3
        counts.add(len(s.objects))
        for o in s.objects:
            assert o.shape in SHAPES and o.colour in COLOURS
            x, y, w, h = o.box
            assert 0 <= x and 0 <= y and x + w <= 1 and y + h <= 1
        for o in s.objects:
            assert o.phrase in s.caption
    assert counts == {1, 2, 3}
    assert caption_for(["a red circle", "a blue square"]) == "a red circle and a blue square"
    assert caption_for(["a", "b", "c"]) == "a, b and c"


def test_boxes_hold_the_shape_pixels():
    s = scene_for(1, 7)
    img = render_array(s).astype(int)
    bg = np.array(s.background)
    for o in s.objects:
        x, y, w, h = (int(round(v * 64)) for v in o.box)
        cx, cy = x + w // 2, y + h // 2 + h // 6  # below the centre: inside all three shapes
        assert np.abs(img[cy, cx] - np.array(o.rgb)).max() < 20
    corner_is_bg = [np.abs(img[r, c] - bg).max() < 20 for r, c in ((0, 0), (0, 63), (63, 0), (63, 63))]
    assert sum(corner_is_bg) >= 2
