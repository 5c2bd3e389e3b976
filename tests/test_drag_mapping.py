"""RegionDrag's dense mapping: transforms, rasterised regions, no holes, later pairs win."""

import numpy as np
import pytest

from lib_regedit.documents import parse_drag_document
from lib_regedit.drag.mapping import (affine_transform, apply_transform, brush_mask, dense_mapping,
                                      perspective_transform, polygon_mask)
from lib_regedit.errors import RegEditError


def test_affine_and_perspective_pass_through_their_points():
    src = [(0.1, 0.1), (0.4, 0.15), (0.2, 0.5)]
    dst = [(0.6, 0.2), (0.9, 0.3), (0.65, 0.7)]
    a = affine_transform(src, dst)
    x, y = apply_transform(a, np.array([p[0] for p in src]), np.array([p[1] for p in src]))
    np.testing.assert_allclose(np.stack([x, y], 1), dst, atol=1e-12)
    quad_src = [(0.1, 0.1), (0.4, 0.1), (0.45, 0.5), (0.05, 0.4)]
    quad_dst = [(0.5, 0.5), (0.9, 0.55), (0.8, 0.95), (0.55, 0.9)]
    h = perspective_transform(quad_src, quad_dst)
    x, y = apply_transform(h, np.array([p[0] for p in quad_src]), np.array([p[1] for p in quad_src]))
    np.testing.assert_allclose(np.stack([x, y], 1), quad_dst, atol=1e-12)
    # a perspective through a parallelogram's corners is that parallelogram's affine map
    para = [(0.1, 0.1), (0.5, 0.1), (0.6, 0.4), (0.2, 0.4)]
    moved = [(x + 0.3, y + 0.2) for x, y in para]
    np.testing.assert_allclose(perspective_transform(para, moved), affine_transform(para[:3], moved[:3]), atol=1e-12)


def test_polygon_and_brush_masks():
    square = polygon_mask([(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)], 8, 8)
    assert square.sum() == 16 and square[2:6, 2:6].all()
    doc = parse_drag_document({"pairs": [{"handle": {"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0.2}]},
                                          "target": {"type": "mask", "strokes": [{"points": [[0.5, 0.5]], "radius": 0.2}]}}]})
    disc = brush_mask(doc.pairs[0].handle, 20, 20)
    assert disc[10, 10] and not disc[0, 0] and abs(disc.sum() - np.pi * 16) < 8  # radius 4 cells


def translate_doc(dx, dy, kind="polygon"):
    if kind == "polygon":
        pts = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
        return {"pairs": [{"handle": {"type": "polygon", "points": pts},
                           "target": {"type": "polygon", "points": [[x + dx, y + dy] for x, y in pts]}}]}
    stroke = lambda x, y: {"type": "mask", "strokes": [{"points": [[x, y], [x + 0.1, y]], "radius": 0.1}]}  # noqa: E731
    return {"pairs": [{"handle": stroke(0.2, 0.3), "target": stroke(0.2 + dx, 0.3 + dy)}]}


@pytest.mark.parametrize("kind", ["polygon", "mask"])
def test_a_translation_copies_each_cell_from_its_shifted_place(kind):
    m = dense_mapping(parse_drag_document(translate_doc(0.5, 0.25, kind)), 16, 16)
    assert len(m.target) == m.targets.sum() > 0
    tr, tc = np.divmod(m.target, 16)
    sr, sc = np.divmod(m.source, 16)
    assert (tc - sc == 8).all() and (tr - sr == 4).all()  # 0.5 of 16 columns, 0.25 of 16 rows
    assert m.handles.sum() == m.targets.sum()


def test_the_target_has_no_holes_when_it_is_larger():
    pts = [[0.1, 0.1], [0.3, 0.1], [0.1, 0.3]]
    big = [[0.3, 0.3], [0.9, 0.3], [0.3, 0.9]]
    m = dense_mapping(parse_drag_document({"pairs": [{"handle": {"type": "polygon", "points": pts},
                                                      "target": {"type": "polygon", "points": big}}]}), 32, 32)
    target = polygon_mask(big, 32, 32)
    assert np.array_equal(m.targets, target)  # every target cell has a source
    assert polygon_mask(pts, 32, 32).reshape(-1)[m.source].mean() > 0.9  # and it lies in the handle


def test_later_pairs_win_where_targets_overlap():
    a = [[0.0, 0.0], [0.25, 0.0], [0.25, 0.25], [0.0, 0.25]]
    b = [[0.75, 0.75], [1.0, 0.75], [1.0, 1.0], [0.75, 1.0]]
    t = [[0.4, 0.4], [0.65, 0.4], [0.65, 0.65], [0.4, 0.65]]
    doc = parse_drag_document({"pairs": [{"handle": {"type": "polygon", "points": a}, "target": {"type": "polygon", "points": t}},
                                         {"handle": {"type": "polygon", "points": b}, "target": {"type": "polygon", "points": t}}]})
    m = dense_mapping(doc, 16, 16)
    sr, _ = np.divmod(m.source, 16)
    assert (sr >= 12).all()  # all from the second handle


def test_a_degenerate_quad_is_refused_by_the_document():
    handle = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
    line = [[0.5, 0.5], [0.6, 0.6], [0.7, 0.7], [0.5, 0.9]]  # three on one line
    with pytest.raises(RegEditError, match=r"pairs\[0\]\.target\.points: vertices 0, 1 and 2 lie on one line"):
        parse_drag_document({"pairs": [{"handle": {"type": "polygon", "points": handle},
                                        "target": {"type": "polygon", "points": line}}]})
