"""Evaluation: the classical detector on rendered scenes, and the metrics on hand-made inputs."""

import math

import numpy as np
import torch

from lib_regedit.evaluation import metrics
from lib_regedit.evaluation.cli import LAYOUTS, edited, format_table, held_out_layouts, region_document, summarise
from lib_regedit.evaluation.detector import detect
from lib_regedit.shapesworld.data import Scene, ShapeObject, render, scene_for


def test_detector_reads_rendered_scenes():
    right = 0
    for i in range(60):
        s = scene_for(11, i)
        found = sorted((d.colour, d.shape) for d in detect(render(s)))
        right += found == sorted((o.colour, o.shape) for o in s.objects)
    assert right >= 57


def _scene(*objs, bg=(250, 250, 250)):
    from lib_regedit.shapesworld.data import COLOURS
    return Scene(bg, tuple(ShapeObject(s, c, b, COLOURS[c]) for c, s, b in objs))


def test_adherence_and_centroid():
    box = (0.05, 0.3, 0.4, 0.4)
    img = render(_scene(("red", "circle", box), ("blue", "square", (0.6, 0.3, 0.35, 0.35))))
    assert metrics.box_adherence(img, box, "red", "circle")
    assert not metrics.box_adherence(img, box, "red", "square")
    assert not metrics.box_adherence(img, box, "blue", "square")
    assert metrics.centroid_distance(img, box, "red", "circle") < 0.03
    far = metrics.centroid_distance(img, box, "blue", "square")
    assert 0.4 < far < 0.7
    assert math.isnan(metrics.centroid_distance(img, box, "green"))


def test_localisation_ratio():
    mask = np.zeros((64, 64), dtype=bool)
    mask[:16, :16] = True  # 1/16 of the image
    uniform = torch.ones(8, 8)
    assert abs(metrics.localisation_ratio(uniform, mask) - 1.0) < 1e-6
    peaked = torch.zeros(8, 8)
    peaked[:2, :2] = 1.0
    assert abs(metrics.localisation_ratio(peaked, mask) - 16.0) < 1e-4


def test_ssim_inside_outside():
    a = render(scene_for(2, 0))
    arr = np.asarray(a).copy()
    arr[:20, :20] = 0
    from PIL import Image
    b = Image.fromarray(arr)
    assert metrics.ssim(a, a) > 0.999
    box = (0.0, 0.0, 20 / 64, 20 / 64)
    inside, outside = metrics.region_ssim(a, b, box)
    assert inside < 0.5 < outside


def test_documents_and_table():
    doc = region_document(LAYOUTS[0])
    assert doc["prompt"] == "a red circle and a blue square"
    assert doc["regions"][0]["prompt"] == "a red circle" and doc["regions"][1]["x"] == 0.55
    assert doc["regions"][-1]["role"] == "background"
    from lib_regedit.documents.region import parse_region_document
    assert parse_region_document(doc) is not None
    assert edited(LAYOUTS[0])[0][0] != LAYOUTS[0][0][0]
    rows = {"plain": {"adherence": [True, False], "centroid": [0.1, float("nan")], "ssim_in": [0.2], "ssim_out": [0.3]},
            "regions": {"adherence": [True, True], "centroid": [0.02, 0.04], "ssim_in": [0.3], "ssim_out": [0.9]}}
    s = summarise(rows, {("down_blocks.1", "colour"): [3.0, 4.0]})
    assert s["modes"]["regions"]["adherence"] == 1.0 and s["modes"]["plain"]["objects_found"] == 0.5
    table = format_table(s)
    assert "+0.500" in table and "3.50" in table


def test_evaluate_runs_every_column_on_a_real_pipeline(tmp_path):
    from lib_regedit.evaluation.cli import evaluate
    from tiny_models import tiny_sd_pipeline

    pipe = tiny_sd_pipeline()
    pipe.set_progress_bar_config(disable=True)
    summary = evaluate(pipe, seeds=(0,), steps=2, layouts=LAYOUTS[:1], image_dir=tmp_path, log=lambda m: None,
                       defaults_rows=True)
    assert list(summary["modes"]) == ["plain", "defaults", "old defaults", "regions", "regions+layout"]
    assert all(m["boxes"] == 2 for m in summary["modes"].values())
    assert len(list(tmp_path.glob("*.png"))) == 10  # each column's image and its edit
    # the defaults row is a document with only regions; the old one the same at version 1
    assert not (tmp_path / "layout0_seed0_defaults.png").read_bytes() == \
        (tmp_path / "layout0_seed0_old_defaults.png").read_bytes()
    table = format_table(summary)
    assert "regions+layout" in table and "adherence gain (regions+layout - plain)" in table
    guided = evaluate(pipe, seeds=(0,), steps=2, layouts=LAYOUTS[:1], inits=("noise",), log=lambda m: None,
                      guidance={"scale": 30, "iterations": 1})
    assert list(guided["modes"]) == ["plain", "regions+guidance"]


def test_held_out_layouts_come_from_an_unseen_seed():
    layouts = held_out_layouts(5)
    assert layouts == held_out_layouts(5) and len(layouts) == 5
    assert all(2 <= len(layout) <= 3 for layout in layouts)
    assert layouts[0] == [(o.colour, o.shape, o.box) for o in scene_for(7, 1000).objects] or \
        len(scene_for(7, 1000).objects) < 2
    training = {tuple(o.box for o in scene_for(0, i).objects) for i in range(2000)}
    assert not any(tuple(box for _, _, box in layout) in training for layout in layouts)


def test_drag_cases_and_their_scoring():
    from lib_regedit.documents import parse_drag_document
    from lib_regedit.evaluation import drag_eval
    from lib_regedit.shapesworld.data import Scene, ShapeObject, render

    cases = drag_eval.cases(6)
    assert [c["kind"] for c in cases] == ["polygon", "mask"] * 3
    for case in cases:
        parse_drag_document(case["document"])  # every case is a valid document
        t = case["target"]
        assert 0 <= t[0] and t[0] + t[2] <= 1 and 0 <= t[1] and t[1] + t[3] <= 1
    # scoring: the object rendered at its target succeeds (in most cases: the detector reads a few
    # small squares as circles); left in place, or also left in place, it fails
    scored = []
    for case in cases:
        obj, (dx, dy) = case["object"], case["offset"]
        moved = ShapeObject(obj.shape, obj.colour, (obj.box[0] + dx, obj.box[1] + dy, obj.box[2], obj.box[3]),
                            obj.rgb)
        scored.append(drag_eval.success(render(Scene(case["scene"].background, (moved,))), case))
    assert sum(scored) >= 4, scored
    case = cases[scored.index(True)]
    obj, (dx, dy) = case["object"], case["offset"]
    moved = ShapeObject(obj.shape, obj.colour, (obj.box[0] + dx, obj.box[1] + dy, obj.box[2], obj.box[3]), obj.rgb)
    assert not drag_eval.success(render(Scene(case["scene"].background, (obj,))), case)
    assert not drag_eval.success(render(Scene(case["scene"].background, (obj, moved))), case)


def test_drag_eval_runs_every_column(sd):
    from lib_regedit.evaluation import drag_eval

    summary = drag_eval.evaluate(sd, n=1, log=lambda m: None)
    assert list(summary) == list(drag_eval.COLUMNS)
    assert all(r["cases"] == 1 and 0 <= r["ssim_outside"] <= 1 for r in summary.values())
    assert "SSIM_outside" in drag_eval.format_table(summary)


def test_lime_cases_leave_out_ambiguous_pairs_and_name_what_a_drawn_box_should_show():
    from lib_regedit.evaluation import lime_eval

    pairs = lime_eval.cases(8)
    assert all(2 <= len(p.source.objects) <= 3 and not lime_eval.ambiguous(p) for p in pairs)
    assert lime_eval.cases(3) == pairs[:3]
    for pair in pairs:  # what a user of an ordinary checkpoint writes for the box they draw
        expected = "a blank background" if pair.edit == "remove" else pair.target.objects[pair.index].phrase
        assert lime_eval.box_prompt(pair) == expected and (pair.edit == "remove" or expected.startswith("a "))


def test_lime_eval_runs_every_column_and_scores_exact_edits(sd):
    from lib_regedit.evaluation import lime_eval
    from tiny_models import tiny_instruct_pipeline

    instruct = tiny_instruct_pipeline()
    logged = []
    summary = lime_eval.evaluate(instruct, sd, n=1, skip=2, steps=3, log=logged.append)
    assert list(summary) == list(lime_eval.COLUMNS)
    assert lime_eval.cases(3)[2].instruction in logged[0]  # the third pair: two were skipped
    for entry in summary.values():
        assert entry["n"] == 1 and entry["exact"] <= min(entry["right"], entry["kept"])
    assert "exact" in lime_eval.format_table(summary)
    found_roi = {"LIME", "LIME, unsnapped", "LIME, paper", "ordinary + LIME"}  # the uncertain-region note's count
    assert {c for c, e in summary.items() if "uncertain" in e} == found_roi
    rows = {"instruct": [{"edit": "remove", "right": True, "kept": False, "exact": False, "unchanged": 0.5,
                          "ssim_out": 0.5, "seconds": 1.0},
                         {"edit": "remove", "right": True, "kept": True, "exact": True, "unchanged": 1.0,
                          "ssim_out": 1.0, "seconds": 1.0}]}
    assert lime_eval.summarise(rows)["instruct"]["exact"] == 0.5
    rows["LIME"] = [dict(r, uncertain=u) for r, u in zip(rows["instruct"], (True, False))]
    rows["LIME"][0]["right"] = False
    assert lime_eval.summarise(rows)["LIME"]["uncertain"] == "1 (1/1 wrong)"
