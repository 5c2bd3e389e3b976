import json
import math

import pytest

from lib_regedit.documents import parse_region_document
from lib_regedit.errors import RegEditError

MINIMAL = {"prompt": "whole-image prompt", "negative_prompt": "",
           "regions": [{"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"}]}


def test_minimal_document_is_accepted_as_is():
    doc = parse_region_document(MINIMAL)
    assert doc.prompt == "whole-image prompt"
    (region,) = doc.regions
    assert (region.x, region.y, region.w, region.h, region.prompt) == (0.0, 0.1, 0.45, 0.8, "a red circle")
    assert region.weight == 1.0 and region.role == "object" and doc.mode == "attention"


def test_json_string_and_round_trip():
    doc = parse_region_document(json.dumps(MINIMAL))
    assert parse_region_document(doc.to_json()) == doc
    assert parse_region_document(doc.to_dict()) == doc


def test_empty_means_no_document():
    assert parse_region_document("") is None
    assert parse_region_document(None) is None
    assert parse_region_document("   ") is None


def test_background_region_needs_no_box():
    doc = parse_region_document({"prompt": "p", "regions": [
        {"prompt": "a meadow", "role": "background"}, {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2, "prompt": "a dog"}]})
    assert doc.background.prompt == "a meadow"
    assert [r.prompt for r in doc.object_regions] == ["a dog"]


def _region(**kw):
    region = {"x": 0.1, "y": 0.1, "w": 0.3, "h": 0.3, "prompt": "a dog"}
    region.update(kw)
    return {"prompt": "p", "regions": [region]}


BAD = [
    ("{", "regedit"),
    ("[1, 2]", "regedit"),
    ({"regions": []}, "prompt"),
    ({"prompt": "p"}, "regions"),
    ({"prompt": 3, "regions": []}, "prompt"),
    ({"prompt": "p", "regions": {}}, "regions"),
    ({"prompt": "p", "regions": ["box"]}, "regions[0]"),
    ({"prompt": "p", "regions": [{"prompt": "a"}]}, "regions[0].x"),
    (_region(x=-0.1), "regions[0].x"),
    (_region(x=0.9, w=0.3), "regions[0].w"),
    (_region(y=0.9, h=0.3), "regions[0].h"),
    (_region(w=0), "regions[0].w"),
    (_region(h=0.0), "regions[0].h"),
    (_region(x=math.nan), "regions[0].x"),
    (_region(w=math.inf), "regions[0].w"),
    (_region(x=True), "regions[0].x"),
    (_region(x=[0.1]), "regions[0].x"),
    (_region(x="left"), "regions[0].x"),
    (_region(prompt=""), "regions[0].prompt"),
    (_region(prompt=None), "regions[0].prompt"),
    (_region(prompt="a " * 3000), "regions[0].prompt"),
    (_region(weight=0), "regions[0].weight"),
    (_region(feather=2), "regions[0].feather"),
    (_region(role="hero"), "regions[0].role"),
    (_region(colour="red"), "regions[0].colour"),
    ({"prompt": "p", "regions": [], "mode": "fast"}, "mode"),
    ({"prompt": "p", "regions": [], "whole_prompt_start": 2}, "whole_prompt_start"),
    ({"prompt": "p", "regions": [], "extra": 1}, "extra"),
    ({"prompt": "p", "regions": [{"x": 0, "y": 0, "w": 0.1, "h": 0.1, "prompt": "a"}] * 5000}, "regions"),
    ({"prompt": "p" * 5000, "regions": []}, "prompt"),
]


@pytest.mark.parametrize("value,field", BAD)
def test_bad_input_names_the_field_and_the_fix(value, field):
    with pytest.raises(RegEditError) as info:
        parse_region_document(value)
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"RegEdit: {field}:") and "Fix:" in message and len(message) < 400


def test_deeply_nested_json_is_rejected():
    with pytest.raises(RegEditError, match="nested too deeply"):
        parse_region_document("[" * 100_000 + "]" * 100_000)


def test_nan_in_json_text_is_rejected():
    with pytest.raises(RegEditError, match="finite"):
        parse_region_document('{"prompt": "p", "regions": [{"x": NaN, "y": 0, "w": 0.1, "h": 0.1, "prompt": "a"}]}')
