"""What covers the area outside the boxes: the rest of the whole prompt, and the document's
``background_prompt`` and ``version`` (the defaults a document keeps)."""

import json

import pytest
import torch

from lib_regedit.regions.background import rest_of_prompt
from lib_regedit.documents import parse_region_document
from lib_regedit.documents.region import VERSION
from lib_regedit.errors import RegEditError
from lib_regedit.regions.prompting import background_context

BOXES = [{"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle"},
         {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a blue square"}]


@pytest.mark.parametrize("prompt,regions,rest", [
    ("a red circle and a blue square", ["a red circle", "a blue square"], ""),
    ("a red circle, a green triangle and a blue square", ["a red circle", "a green triangle", "a blue square"], ""),
    ("a photo of a cat and a dog on the grass, best quality", ["a cat", "a dog"], "a photo on the grass, best quality"),
    ("a cozy living room with a red sofa and a lamp, warm light", ["red sofa, leather", "a lamp"],
     "a cozy living room, warm light"),
    ("A Red Circle and the blue square", ["a red circle", "blue square"], ""),
    ("a red circle and a blue square on a blank background", ["a red circle", "a blue square"], "a blank background"),
    ("landscape, mountains", ["a castle"], "landscape, mountains"),
    ("<lora:film:0.8> a castle on a hill, film grain", ["a castle"], "a hill, film grain"),
    # the WebUI's emphasis and BREAK: the words count, the syntax does not
    ("(a red circle:1.2) and [a blue square], (masterpiece:1.1) BREAK blank background",
     ["a red circle", "(blue square:1.3)"], "masterpiece, blank background"),
    # a region phrase not in the prompt: the words it names are still taken out
    ("two cats sleeping on a sofa", ["a sleeping cat, fluffy"], "a sofa"),
])
def test_rest_of_prompt(prompt, regions, rest):
    assert rest_of_prompt(prompt, regions) == rest


def test_background_context_by_source():
    seen = []

    def encode(text):
        seen.append(text)
        return torch.zeros(1, 2, 3)

    doc = {"prompt": "a red circle and a blue square, studio light", "negative_prompt": "blurry", "regions": BOXES}
    for source, expected in [("rest", "studio light"), ("empty", ""), ("negative", "blurry")]:
        seen.clear()
        assert background_context(parse_region_document(dict(doc, background_prompt=source)), encode) is not None
        assert seen == [expected]
    assert background_context(parse_region_document(dict(doc, background_prompt="whole")), encode) is None
    seen.clear()  # a background region wins over background_prompt
    with_bg = dict(doc, regions=BOXES + [{"prompt": "a beach", "role": "background"}], background_prompt="empty")
    background_context(parse_region_document(with_bg), encode)
    assert seen == ["a beach"]
    with pytest.raises(RegEditError, match="background_prompt: 'all' is not allowed"):
        parse_region_document(dict(doc, background_prompt="all"))


def test_versions_keep_their_defaults():
    new = parse_region_document({"regions": BOXES})
    assert (new.version, new.init, new.background_prompt) == (VERSION, "auto", "rest") and VERSION == 7
    assert new.prompt == "a red circle and a blue square"  # no prompt: the region prompts joined
    old = parse_region_document({"prompt": "p", "regions": BOXES, "version": 1})
    assert (old.init, old.background_prompt) == ("noise", "whole")
    # infotexts written before versions existed read as version 1
    untagged = parse_region_document({"prompt": "p", "regions": BOXES}, untagged_version=1)
    assert untagged == old
    # each writes what differs from its own version's defaults, and the version
    assert json.loads(old.to_json())["version"] == 1 and "init" not in json.loads(old.to_json())
    assert parse_region_document(old.to_json(), untagged_version=2) == old
    assert parse_region_document(new.to_json(), untagged_version=1) == new
    flipped = parse_region_document({"prompt": "p", "regions": BOXES, "init": "noise", "background_prompt": "whole"})
    assert json.loads(flipped.to_json())["init"] == "noise"
    v2 = parse_region_document({"prompt": "p", "regions": BOXES, "version": 2})
    assert (v2.init, v2.background_prompt, v2.init_sketch, v2.init_noise_outside) == ("auto", "rest", "ellipse", None)
    assert parse_region_document(v2.to_json()) == v2 and json.loads(v2.to_json())["version"] == 2
    with pytest.raises(RegEditError, match=f"version: {VERSION + 1} is"):
        parse_region_document({"prompt": "p", "regions": BOXES, "version": VERSION + 1})
    with pytest.raises(RegEditError, match="^RegEdit: prompt: is missing"):
        parse_region_document({"regions": [{"prompt": "a beach", "role": "background"}]})


def test_layout_init_auto_applies_where_generation_starts_from_noise():
    auto = parse_region_document({"regions": BOXES})
    assert auto.uses_layout_init() and not auto.uses_layout_init(from_image=True)
    only_background = parse_region_document({"prompt": "p", "regions": [{"prompt": "a beach", "role": "background"}]})
    assert not only_background.uses_layout_init()
    assert parse_region_document({"regions": BOXES, "init": "layout"}).uses_layout_init(from_image=True)
    assert not parse_region_document({"regions": BOXES, "init": "noise"}).uses_layout_init()


def test_extra_network_tags_in_region_prompts_are_not_encoded():
    from lib_regedit.regions.prompting import build_effects

    seen = []

    def encode(text):
        seen.append(text)
        return torch.zeros(1, 2, 3)

    doc = parse_region_document({"prompt": "a red circle", "regions": [
        {"x": 0, "y": 0, "w": 0.5, "h": 0.5, "prompt": "a red <lora:shiny:0.8> circle"}]})
    built = build_effects(doc, encode)
    assert "a red circle" in seen and not any("<" in s for s in seen)
    assert built.notes and "<lora:shiny:0.8>" in built.notes[0] and "main prompt only" in built.notes[0]
