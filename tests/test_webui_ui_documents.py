"""The accordion's values as documents and back (``lib_regedit/webui/ui_documents.py``): pure functions,
no WebUI needed."""

import json

import pytest

from lib_regedit.documents import parse_drag_document, parse_lime_document, parse_region_document
from lib_regedit.documents.drag import SETTING_DEFAULTS as DRAG_DEFAULTS
from lib_regedit.errors import RegEditError
from lib_regedit.infotext import DRAG_INFOTEXT_KEY, INFOTEXT_KEY, LIME_INFOTEXT_KEY
from lib_regedit.webui import ui_documents as ui

SETTINGS = ("latent", 0.4, True, 0.3, True, 10, 1.8, "softmax", ["down", "up"], True, 40.0)
DOC = {"prompt": "a red circle and a blue square",
       "regions": [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "prompt": "a red circle", "feather": 0.1}]}


def test_the_settings_land_in_the_document_and_it_parses():
    obj = json.loads(ui.with_settings(DOC, *SETTINGS))
    doc = parse_region_document(obj)
    assert (doc.mode, doc.whole_prompt_start, doc.init, doc.init_noise) == ("latent", 0.4, "auto", 0.3)
    assert (doc.kssa.enabled, doc.kssa.keywords, doc.kssa.scale, doc.kssa.reweight) == (True, 10, 1.8, "softmax")
    assert list(doc.kssa.levels) == ["down", "up"] and (doc.guidance.enabled, doc.guidance.scale) == (True, 40.0)
    assert json.loads(ui.with_settings(DOC, *SETTINGS[:2], False, *SETTINGS[3:]))["init"] == "noise"


def test_the_table_round_trips_and_keeps_what_it_does_not_show():
    table = ui.doc_to_table(json.dumps(DOC))
    assert table == [["a red circle", 0.1, 0.2, 0.3, 0.4]]
    table[0][1] = 0.5
    obj = json.loads(ui.table_to_doc(table + [["", 0, 0, 0, 0]], json.dumps(DOC), *SETTINGS))
    assert obj["regions"] == [dict(DOC["regions"][0], x=0.5)]  # its feather kept, the empty row dropped
    assert ui.doc_to_table("not json") == [["", 0.0, 0.0, 0.5, 0.5]]


def test_a_document_the_page_cannot_read_is_left_for_generate_to_name():
    assert ui.settings_to_doc("{broken", *SETTINGS) == "{broken"


def test_drag_sliders_write_only_what_differs_from_the_defaults():
    text = ui.drag_settings_to_doc("", DRAG_DEFAULTS["start_t"], 0.3, DRAG_DEFAULTS["handle_noise"])
    obj = json.loads(text)
    assert obj == {"version": 2, "pairs": [], "end_t": 0.3}
    assert parse_drag_document(text, field="drag").end_t == 0.3


def test_lime_controls_write_the_lime_document_and_keep_its_boxes():
    assert ui.lime_settings_to_doc("", False, 6, 4, 0.5, 0.8, 1, True) == ""
    text = ui.lime_settings_to_doc(json.dumps({"version": 2, "roi": [{"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}]}),
                                   True, 6, 4, 0.5, 0.8, 1, False, False)
    doc = parse_lime_document(text)
    assert (doc.options.clusters, doc.options.points, doc.options.keep_outside, doc.options.snap) == (6, 4, False, False)
    assert len(doc.roi) == 1 and doc.version == 2


def test_a_pasted_infotext_from_before_versions_keeps_version_1():
    untagged = json.dumps(DOC)
    assert json.loads(ui.pasted_document({INFOTEXT_KEY: untagged}))["version"] == 1
    tagged = json.dumps(dict(DOC, version=3))
    assert ui.pasted_document({INFOTEXT_KEY: tagged}) == tagged
    assert json.loads(ui.pasted_document({LIME_INFOTEXT_KEY: "{}"}, LIME_INFOTEXT_KEY)) == {"version": 1}


def test_a_pasted_drag_infotext_without_a_version_keeps_version_1s_fill():
    pair = {"handle": {"type": "polygon", "points": [[0, 0], [0.2, 0], [0, 0.2]]},
            "target": {"type": "polygon", "points": [[0.5, 0.5], [0.7, 0.5], [0.5, 0.7]]}}
    untagged = json.dumps({"pairs": [pair]})
    pasted = ui.pasted_document({DRAG_INFOTEXT_KEY: untagged}, DRAG_INFOTEXT_KEY)
    assert json.loads(pasted)["version"] == 1
    assert ui.PASTED[DRAG_INFOTEXT_KEY](untagged).settings()["match_surroundings"] is False
    tagged = json.dumps({"version": 2, "pairs": [pair]})
    assert ui.pasted_document({DRAG_INFOTEXT_KEY: tagged}, DRAG_INFOTEXT_KEY) == tagged


def test_drawn_boxes_are_lime_regions_and_edit_roles_are_seen():
    doc = dict(DOC, regions=DOC["regions"] + [{"x": 0.5, "y": 0.5, "w": 0.2, "h": 0.2, "prompt": "bg",
                                               "role": "background"}])
    assert len(ui.drawn_boxes(json.dumps(doc))) == 1 and ui.drawn_boxes("nonsense") == ()
    assert not ui.has_edit_roles(DOC)
    assert ui.has_edit_roles(dict(DOC, regions=[dict(DOC["regions"][0], edit="remove")]))


def test_the_img2img_task_choice_runs_its_document_and_only_it():
    boxes = json.dumps(DOC)
    edited = json.dumps(dict(DOC, regions=[dict(DOC["regions"][0], edit="change", target_prompt="a blue circle")]))
    drag = json.dumps({"version": 1, "pairs": [{"handle": {"type": "polygon", "points": [[0, 0], [0.2, 0], [0, 0.2]]},
                                               "target": {"type": "polygon", "points": [[0.5, 0.5], [0.7, 0.5], [0.5, 0.7]]}}]})
    lime = json.dumps({"version": 2})
    assert ui.task_documents("Drag", boxes, drag, lime) == ("", drag, "")
    assert ui.task_documents("LIME", boxes, drag, lime) == (boxes, "", lime)  # the boxes are LIME's region
    assert ui.task_documents("Edit by regions", edited, drag, lime) == (edited, "", "")
    regions, _, _ = ui.task_documents("Regions", edited, drag, lime)  # edit roles do not run as regions
    assert parse_region_document(regions).regions[0].edit == "inherent" and not parse_region_document(regions).is_pair
    assert ui.task_documents("Regions", boxes, drag, lime) == (boxes, "", "")
    with pytest.raises(RegEditError, match="no pair is drawn"):
        ui.task_documents("Drag", boxes, "", lime)
    with pytest.raises(RegEditError, match="no box has an edit role"):
        ui.task_documents("Edit by regions", boxes, drag, lime)


def test_each_task_shows_its_own_parts_and_a_paste_chooses_the_task():
    shown = {task: {part for part, on in zip(ui.TASK_PARTS, ui.shown_parts(task)) if on} for task in ui.TASKS}
    assert shown["Drag"] == {"drag", "drag_settings"}
    assert shown["LIME"] == {"lime", "lime_settings", "preview"}
    assert shown["Edit by regions"] == {"edit", "region_settings"}
    assert shown["Regions"] == {"regions", "region_settings", "preview"}
    edited = json.dumps(dict(DOC, regions=[dict(DOC["regions"][0], edit="remove")]))
    assert ui.task_from_infotext({DRAG_INFOTEXT_KEY: "{}", INFOTEXT_KEY: "{}"}) == "Drag"
    assert ui.task_from_infotext({LIME_INFOTEXT_KEY: "{}"}) == "LIME"
    assert ui.task_from_infotext({INFOTEXT_KEY: edited}) == "Edit by regions"
    assert ui.task_from_infotext({INFOTEXT_KEY: json.dumps(DOC)}) == "Regions"
    assert ui.task_from_infotext({"Steps": "20"}) is None
    assert "Layout init" not in ui.outside_note(True, img2img=True)


def test_the_keep_the_rest_box_writes_edit_keep_outside_for_edits_only():
    from lib_regedit.webui.ui_documents import with_settings

    settings = ("attention", 0.3, True, 0.25, False, 15, 1.5, "logit", ["down"], False, 30.0)
    pair = {"regions": [{"x": 0, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a red circle", "edit": "remove"}]}
    kept = json.loads(with_settings(pair, *settings, True))
    assert "keep_outside" not in kept.get("edit", {})  # version 4's default
    off = json.loads(with_settings(pair, *settings, False))
    assert off["edit"]["keep_outside"] is False
    assert not parse_region_document(off).keeps_outside(picture=False)
    old = json.loads(with_settings(dict(pair, version=3), *settings, True))
    assert parse_region_document(old).keeps_outside(picture=False)  # ticked on a version 3 pair: said outright
    one_image = json.loads(with_settings({"regions": [{"x": 0, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a"}]},
                                         *settings, False))
    assert "edit" not in one_image and parse_region_document(one_image) is not None
