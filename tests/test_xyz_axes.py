"""RegEdit's X/Y/Z plot axes: values checked before a grid starts, written into the documents."""

import pytest

from lib_regedit.webui import xyz_axes
from lib_regedit.documents import parse_drag_document, parse_lime_document, parse_region_document
from lib_regedit.errors import RegEditError

AXES = {a.label: a for a in xyz_axes.AXES}
DOC = {"prompt": "p", "regions": [{"x": 0, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a"},
                                  {"x": 0.5, "y": 0, "w": 0.5, "h": 0.5, "prompt": "b"}]}


def test_every_axis_writes_a_valid_document():
    for axis in xyz_axes.AXES:
        value = axis.choices[-1] if axis.choices else (axis.lo + axis.hi) / 2
        value = int(value) if axis.type is int else value
        xyz_axes.check_values(axis, [value])
        if axis.document == "regions":
            doc = parse_region_document(xyz_axes.apply_overrides(DOC, {axis.label: value}, "regions"))
            assert doc is not None
        elif axis.document == "lime":
            lime = parse_lime_document(xyz_axes.apply_overrides({}, {axis.label: value}, "lime"))
            assert getattr(lime.options, axis.key) == (value == "on" if axis.choices == xyz_axes.ON_OFF else value)
        else:
            drag = {"pairs": [], "start_t": 0.5}
            assert parse_drag_document(xyz_axes.apply_overrides(drag, {axis.label: value}, "drag")) is not None


def test_values_reach_the_fields():
    over = {"[RegEdit] Whole prompt start": 0.6, "[RegEdit] Feather": 0.1, "[RegEdit] KSSA scale": 2.0,
            "[RegEdit] Init": "noise", "[RegEdit] Drag end": 0.4}
    doc = parse_region_document(xyz_axes.apply_overrides(DOC, over, "regions"))
    assert doc.whole_prompt_start == 0.6 and doc.init == "noise"
    assert all(r.feather == 0.1 for r in doc.regions)
    assert doc.kssa.enabled and doc.kssa.scale == 2.0
    assert '"whole_prompt_start":0.6' in doc.to_json()  # the infotext carries the axis value
    off = parse_region_document(xyz_axes.apply_overrides(dict(DOC, kssa=True), {"[RegEdit] KSSA": "off"}, "regions"))
    assert not off.kssa.enabled
    guided = parse_region_document(xyz_axes.apply_overrides(DOC, {"[RegEdit] Layout guidance scale": 5.0,
                                                                  "[RegEdit] Layout guidance until": 0.5}, "regions"))
    assert guided.guidance.enabled and (guided.guidance.scale, guided.guidance.until) == (5.0, 0.5)
    unguided = xyz_axes.apply_overrides(dict(DOC, guidance=True), {"[RegEdit] Layout guidance": "off"}, "regions")
    assert not parse_region_document(unguided).guidance.enabled
    drag = parse_drag_document(xyz_axes.apply_overrides({"pairs": []}, over, "drag"))
    assert drag.end_t == 0.4 and drag.start_t == 0.5  # only the drag's axes
    assert xyz_axes.apply_overrides(None, over, "regions") is None


def test_lime_axes_write_the_lime_document_only():
    over = {"[RegEdit] LIME clusters": 5, "[RegEdit] LIME feature step": 0.2, "[RegEdit] Feather": 0.1}
    lime = parse_lime_document(xyz_axes.apply_overrides({"points": 2}, over, "lime"))
    assert (lime.options.clusters, lime.options.feature_step, lime.options.points) == (5, 0.2, 2)
    assert '"clusters": 5' in lime.to_json()  # the infotext carries the axis value
    assert xyz_axes.apply_overrides(None, over, "lime") is None  # no LIME asked, none made
    unsnapped = parse_lime_document(xyz_axes.apply_overrides({}, {"[RegEdit] LIME snap": "off"}, "lime"))
    assert not unsnapped.options.snap and '"snap": false' in unsnapped.to_json()
    peak = parse_lime_document(xyz_axes.apply_overrides({}, {"[RegEdit] LIME pick": "peak"}, "lime"))
    assert peak.options.pick == "peak" and '"pick": "peak"' in peak.to_json()
    paper_maps = parse_lime_document(xyz_axes.apply_overrides({}, {"[RegEdit] LIME maps": "feature"}, "lime"))
    assert paper_maps.options.maps == "feature" and '"maps": "feature"' in paper_maps.to_json()


@pytest.mark.parametrize("label,values,fix", [
    ("[RegEdit] LIME clusters", [4, 2.5], "from 1 to 64"),
    ("[RegEdit] LIME clusters", [0], "from 1 to 64"),
    ("[RegEdit] Whole prompt start", [0.2, 1.5], "from 0 to 1"),
    ("[RegEdit] Fusion mode", ["attention", "both"], "use one of attention, latent"),
    ("[RegEdit] LIME pick", ["object", "middle"], "use one of object, peak"),
    ("[RegEdit] KSSA scale", [0], "from 0 to 10"),
    ("[RegEdit] Layout guidance scale", [30, 0], "from 0 to 10000"),
    ("[RegEdit] Layout guidance until", [1.5], "from 0 to 1"),
])
def test_out_of_range_values_are_refused_before_the_grid(label, values, fix):
    with pytest.raises(RegEditError, match=fix) as info:
        xyz_axes.check_values(AXES[label], values)
    assert str(info.value).startswith(f"RegEdit: {label}: ")
