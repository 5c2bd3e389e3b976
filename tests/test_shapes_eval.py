"""The shapes-against-boxes evaluation's layouts and scores (no generation: scenes drawn by the data
generator, whose objects are exactly their outlines)."""

import math

import numpy as np

from lib_regedit.evaluation import shapes_eval
from lib_regedit.shapesworld.data import COLOURS, Scene, ShapeObject, render


def scene(layout) -> Scene:
    return Scene((250, 250, 250), tuple(ShapeObject(s, c, b, COLOURS[c]) for c, s, b in layout))


def test_overlapping_layouts_cannot_be_separated_by_boxes_but_their_shapes_can():
    layouts = shapes_eval.overlapping_layouts(6)
    assert len(layouts) == 6 and layouts == shapes_eval.overlapping_layouts(6)  # deterministic
    for layout in layouts:
        (_, _, a), (_, _, b) = layout
        inter = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])) * \
            max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        assert inter >= shapes_eval.MIN_OVERLAP * min(a[2] * a[3], b[2] * b[3])
        masks = [shapes_eval._raster(s, box, 256) for _, s, box in layout]
        assert not (masks[0] & masks[1]).any()  # the shapes themselves keep apart
        assert {s for _, s, _ in layout} == {"circle", "triangle"} and layout[0][0] != layout[1][0]


def test_a_scene_drawn_as_its_layout_scores_full_marks_and_a_moved_object_does_not():
    layout = shapes_eval.overlapping_layouts(1)[0]
    scores = shapes_eval.score(render(scene(layout)), layout)
    assert all(s["found"] and s["adherence"] and s["containment"] == 1.0 for s in scores)
    i = next(i for i, (_, kind, _) in enumerate(layout) if kind == "circle")
    colour, kind, (x, y, w, h) = layout[i]
    far = (0.98 - w if x + w / 2 < 0.5 else 0.02, 0.98 - h if y + h / 2 < 0.5 else 0.02, w, h)  # the opposite corner
    scores = shapes_eval.score(render(scene([(colour, kind, far)])), layout)
    assert scores[i]["containment"] == 0.0 and not scores[i]["adherence"]


def test_a_missing_object_is_not_found_and_fails_adherence():
    layout = shapes_eval.overlapping_layouts(1)[0]
    scores = shapes_eval.score(render(scene(layout[1:])), layout)
    assert not scores[0]["found"] and math.isnan(scores[0]["containment"]) and not scores[0]["adherence"]


def test_the_documents_differ_only_in_how_the_objects_are_drawn():
    layout = shapes_eval.overlapping_layouts(1)[0]
    boxes, shapes = shapes_eval.document(layout, False), shapes_eval.document(layout, True)
    assert boxes["prompt"] == shapes["prompt"] and boxes["regions"][-1] == shapes["regions"][-1]
    assert all("shape" in r and "x" not in r for r in shapes["regions"][:-1])
    assert all("x" in r and "shape" not in r for r in boxes["regions"][:-1])
    old = shapes_eval.document(layout, **shapes_eval.VARIANTS["shapes-v6"])
    assert old == dict(shapes, version=6) and "version" not in shapes  # the same shapes, version 6's sketch
    table = shapes_eval.format_table({"rows": {"overlapping, shapes": {"objects": 4, "found": 1.0, "containment": 0.95,
                                                                      "adherence": 0.75}},
                                      "seconds": {"boxes": 2.0, "shapes": 2.1}})
    assert "| overlapping, shapes | 4 | 1.00 | 0.950 | 0.750 |" in table and "ratio_time=1.050" in table
    assert np.isfinite(shapes_eval.GAP)


def test_every_variant_runs_through_a_pipeline(sd, tmp_path):
    from lib_regedit.evaluation.cli import held_out_layouts

    layouts = {"overlapping": shapes_eval.overlapping_layouts(1), "separable": held_out_layouts(1)}
    summary = shapes_eval.evaluate(sd, layouts, [1], steps=2, cfg=7.5, image_dir=tmp_path, log=lambda m: None,
                                   variants=tuple(shapes_eval.VARIANTS))
    assert set(summary["rows"]) == {f"{g}, {v}" for g in layouts for v in shapes_eval.VARIANTS}
    assert all(r["objects"] == len(layouts[name.split(",")[0]][0]) for name, r in summary["rows"].items())
    assert len(list(tmp_path.glob("*.png"))) == 2 * len(shapes_eval.VARIANTS)
    assert "ratio_time=" in shapes_eval.format_table(summary)
