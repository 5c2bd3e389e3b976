"""The drag document written by the img2img drag panel: parsing, round trip, and every rejection."""

import copy
import json
import math

import pytest

from lib_regedit.documents.drag import (MAX_PAIRS, MAX_STROKE_POINTS, MAX_STROKES, MAX_TOTAL_POINTS, DragDocument,
                                        MaskRegion, PolygonRegion, parse_drag_document)
from lib_regedit.errors import RegEditError

TRI_A = [[0.1, 0.1], [0.3, 0.1], [0.2, 0.3]]
TRI_B = [[0.5, 0.1], [0.7, 0.1], [0.6, 0.3]]
QUAD_A = [[0.1, 0.5], [0.3, 0.5], [0.3, 0.7], [0.1, 0.7]]
QUAD_B = [[0.5, 0.5], [0.8, 0.55], [0.75, 0.9], [0.55, 0.8]]


def poly(points):
    return {"type": "polygon", "points": copy.deepcopy(points)}


def mask(*strokes, radius=0.03):
    return {"type": "mask", "strokes": [{"points": [list(p) for p in s], "radius": radius} for s in strokes]}


def doc(*pairs):
    return {"version": 1, "pairs": [{"handle": h, "target": t} for h, t in pairs]}


GOOD = doc((poly(TRI_A), poly(TRI_B)),
           (poly(QUAD_A), poly(QUAD_B)),
           (mask([[0.2, 0.6], [0.3, 0.65]]), mask([[0.6, 0.6], [0.75, 0.7], [0.8, 0.72]], [[0.9, 0.9]])))


def error_of(value, field="drag"):
    with pytest.raises(RegEditError) as info:
        parse_drag_document(value, field=field)
    return info.value


def test_empty_values_mean_no_drag():
    assert parse_drag_document(None) is None
    assert parse_drag_document("") is None
    assert parse_drag_document("   ") is None


def test_parses_all_region_kinds():
    parsed = parse_drag_document(json.dumps(GOOD))
    assert isinstance(parsed, DragDocument)
    assert [p.kind for p in parsed.pairs] == ["affine", "perspective", "scale"]
    assert isinstance(parsed.pairs[0].handle, PolygonRegion)
    assert parsed.pairs[1].target.points[1] == (0.8, 0.55)
    target = parsed.pairs[2].target
    assert isinstance(target, MaskRegion)
    assert len(target.strokes) == 2 and target.strokes[0].radius == 0.03
    assert parsed.pairs[0].handle.bbox() == (0.1, 0.1, 0.3, 0.3)


def test_round_trip_is_stable():
    parsed = parse_drag_document(GOOD)
    again = parse_drag_document(parsed.to_json())
    assert again == parsed
    assert json.loads(parsed.to_json()) == GOOD


def test_empty_pair_list_is_allowed():
    assert parse_drag_document({"pairs": []}).pairs == ()


def test_mask_bbox_accounts_for_radius_and_aspect():
    region = parse_drag_document(doc((mask([[0.5, 0.5]], radius=0.1), mask([[0.5, 0.5]], radius=0.1)))).pairs[0].handle
    x0, y0, x1, y1 = region.bbox(aspect=2.0)  # an image twice as wide as high: the brush is 0.2 of the height
    assert (x0, x1) == pytest.approx((0.4, 0.6))
    assert (y0, y1) == pytest.approx((0.3, 0.7))
    assert region.bbox(aspect=10.0) == pytest.approx((0.4, 0.0, 0.6, 1.0))


def test_frozen():
    parsed = parse_drag_document(GOOD)
    with pytest.raises(Exception):
        parsed.pairs = ()


@pytest.mark.parametrize("value, field, words", [
    ("{not json", "drag", "not valid JSON"),
    ("[1, 2]", "drag", "expected a JSON object"),
    ({"pairs": [], "extra": 1}, "drag.extra", "unknown field"),
    ({"version": 3, "pairs": []}, "drag.version", "out of range"),
    ({"version": 1.5, "pairs": []}, "drag.version", "not a whole number"),
    ({}, "drag.pairs", "missing"),
    ({"pairs": {}}, "drag.pairs", "expected a list"),
    ({"pairs": [1]}, "drag.pairs[0]", "expected an object"),
    ({"pairs": [{"handle": poly(TRI_A)}]}, "drag.pairs[0].target", "missing"),
    ({"pairs": [{"handle": poly(TRI_A), "target": poly(TRI_B), "speed": 3}]}, "drag.pairs[0].speed", "unknown"),
    ({"pairs": [{"handle": "triangle", "target": poly(TRI_B)}]}, "drag.pairs[0].handle", "expected an object"),
    ({"pairs": [{"handle": {"points": TRI_A}, "target": poly(TRI_B)}]}, "drag.pairs[0].handle.type", "missing"),
    ({"pairs": [{"handle": {"type": "circle"}, "target": poly(TRI_B)}]}, "drag.pairs[0].handle.type",
     "not allowed"),
])
def test_structure_errors(value, field, words):
    err = error_of(value)
    assert err.field == field
    assert words in str(err)
    assert err.fix


def test_field_name_is_configurable():
    assert error_of({"pairs": [1]}, field="regedit_drag").field == "regedit_drag.pairs[0]"
    assert error_of({"pairs": [1]}, field="").field == "pairs[0]"


@pytest.mark.parametrize("bad", [
    [0.1, 0.2],
    [[0.1, 0.1], [0.2, 0.2]],
    [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2], [0.1, 0.2], [0.15, 0.25]],
])
def test_polygon_needs_three_or_four_points(bad):
    err = error_of(doc((poly(bad), poly(TRI_B))))
    assert err.field.startswith("drag.pairs[0].handle.points")
    assert "3" in err.fix and "4" in err.fix or "[x, y]" in err.fix


@pytest.mark.parametrize("point, words", [
    ([0.5], "of length 1"),
    ([0.5, 0.5, 0.5], "of length 3"),
    ({"x": 0.5, "y": 0.5}, "an object"),
    (["0.5", 0.5], "a string"),
    ([True, 0.5], "a boolean"),
    ([None, 0.5], "null"),
    ([float("nan"), 0.5], "not a finite number"),
    ([0.5, float("inf")], "not a finite number"),
    ([1.2, 0.5], "outside the image"),
    ([0.5, -0.01], "outside the image"),
])
def test_bad_points(point, words):
    points = copy.deepcopy(TRI_B)
    points[2] = point
    err = error_of(doc((poly(TRI_A), poly(points))))
    assert err.field == "drag.pairs[0].target.points[2]"
    assert words in str(err)


def test_nan_in_a_json_string_is_rejected():
    text = json.dumps(doc((poly(TRI_A), poly(TRI_B)))).replace("0.6, 0.3", "NaN, 0.3")
    assert "NaN" in text
    assert error_of(text).field == "drag.pairs[0].target.points[2]"


def test_type_mismatch_between_handle_and_target():
    err = error_of(doc((poly(TRI_A), mask([[0.5, 0.5]]))))
    assert err.field == "drag.pairs[0].target.type"
    assert "the same way" in err.fix
    err = error_of(doc((mask([[0.5, 0.5]]), poly(TRI_A))))
    assert err.field == "drag.pairs[0].target.type"


def test_point_count_mismatch_between_handle_and_target():
    err = error_of(doc((poly(TRI_A), poly(QUAD_B))))
    assert err.field == "drag.pairs[0].target.points"
    assert "3 points" in str(err) and "4" in str(err)


def test_degenerate_polygons():
    err = error_of(doc((poly([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]), poly(TRI_B))))
    assert "no area" in str(err)
    err = error_of(doc((poly(QUAD_A), poly([[0.5, 0.5], [0.6, 0.5], [0.7, 0.5], [0.6, 0.8]]))))
    assert err.field == "drag.pairs[0].target.points" and "one line" in str(err)


def test_bow_tie_quad_is_rejected():
    bow_tie = [[0.1, 0.1], [0.3, 0.3], [0.3, 0.1], [0.1, 0.3]]
    err = error_of(doc((poly(bow_tie), poly(QUAD_B))))
    assert err.field == "drag.pairs[0].handle.points"
    assert "crosses itself" in str(err)


def test_non_convex_quad_is_accepted():
    arrowhead = [[0.1, 0.1], [0.2, 0.15], [0.3, 0.1], [0.2, 0.4]]
    assert parse_drag_document(doc((poly(arrowhead), poly(QUAD_B)))).pairs[0].kind == "perspective"


@pytest.mark.parametrize("stroke, field, words", [
    ({"points": [[0.5, 0.5]]}, "drag.pairs[0].handle.strokes[0].radius", "missing"),
    ({"points": [[0.5, 0.5]], "radius": 0}, "drag.pairs[0].handle.strokes[0].radius", "out of range"),
    ({"points": [[0.5, 0.5]], "radius": 0.9}, "drag.pairs[0].handle.strokes[0].radius", "out of range"),
    ({"points": [[0.5, 0.5]], "radius": float("nan")}, "drag.pairs[0].handle.strokes[0].radius", "finite"),
    ({"points": [], "radius": 0.1}, "drag.pairs[0].handle.strokes[0].points", "is empty"),
    ({"points": [[0.5, 0.5]], "radius": 0.1, "color": "red"}, "drag.pairs[0].handle.strokes[0].color", "unknown"),
    ([[0.5, 0.5]], "drag.pairs[0].handle.strokes[0]", "expected an object"),
])
def test_bad_strokes(stroke, field, words):
    handle = {"type": "mask", "strokes": [stroke]}
    err = error_of(doc((handle, mask([[0.5, 0.5]]))))
    assert err.field == field
    assert words in str(err)


def test_mask_needs_strokes():
    err = error_of(doc(({"type": "mask", "strokes": []}, mask([[0.5, 0.5]]))))
    assert err.field == "drag.pairs[0].handle.strokes" and "is empty" in str(err)
    err = error_of(doc(({"type": "mask", "points": [[0.5, 0.5]]}, mask([[0.5, 0.5]]))))
    assert err.field == "drag.pairs[0].handle.points" and "unknown" in str(err)


def test_limits():
    too_many_pairs = doc(*[(poly(TRI_A), poly(TRI_B))] * (MAX_PAIRS + 1))
    assert error_of(too_many_pairs).field == "drag.pairs"
    assert len(parse_drag_document(doc(*[(poly(TRI_A), poly(TRI_B))] * MAX_PAIRS)).pairs) == MAX_PAIRS

    too_many_strokes = mask(*[[[0.5, 0.5]]] * (MAX_STROKES + 1))
    assert error_of(doc((too_many_strokes, mask([[0.5, 0.5]])))).field == "drag.pairs[0].handle.strokes"

    long_stroke = mask([[0.5, 0.5]] * (MAX_STROKE_POINTS + 1))
    assert error_of(doc((long_stroke, mask([[0.5, 0.5]])))).field == "drag.pairs[0].handle.strokes[0].points"

    per_region = MAX_STROKE_POINTS * 4
    big = mask(*[[[0.5, 0.5]] * MAX_STROKE_POINTS] * 4)
    pairs = [(big, big)] * (MAX_TOTAL_POINTS // (2 * per_region) + 1)
    err = error_of(doc(*pairs))
    assert f"more than {MAX_TOTAL_POINTS} points" in str(err)


def test_message_names_field_and_fix():
    err = error_of(doc((poly(TRI_A), poly(QUAD_B))))
    text = str(err)
    assert text.startswith("RegEdit: drag.pairs[0].target.points:")
    assert "Fix:" in text
    assert not math.isnan(parse_drag_document(GOOD).pairs[0].handle.points[0][0])
