"""Keyword selection + KSSA in the real WebUI: keywords in the infotext, previews, no hooks left behind."""

from __future__ import annotations

import pytest

from e2e_webui import SD1, SDXL, infotext_of, pixel_diff, plain_payload, with_regions

DOC = {
    "prompt": "a landscape",
    "regions": [
        {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "masterpiece, best quality, a red circle",
         "keywords": ["circle"]},
        {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "highly detailed, a blue square"},
    ],
    "kssa": {"enabled": True, "keywords": 3, "refresh": 1, "levels": ["down", "up"]},
}


def keywords_of(infotext: str) -> str | None:
    line = infotext.rsplit("\n", 1)[-1]
    key = "RegEdit keywords: "
    if key not in line:
        return None
    value = line.split(key, 1)[1]
    return value[1:value.index('"', 1)] if value.startswith('"') else value.split(",", 1)[0]


@pytest.mark.parametrize("model", [SD1, SDXL])
def test_selected_keywords_reach_the_infotext(webui, model, assert_plain_unchanged):
    payload = plain_payload(steps=4, batch_size=2)
    plain = webui.generate("txt2img", payload, model=model)
    res = webui.generate("txt2img", with_regions(payload, DOC), model=model)
    assert len(res["images"]) == 2
    for image in res["images"]:
        keywords = keywords_of(infotext_of(image))
        assert keywords and keywords.startswith("1: ") and "; 2: " in keywords, keywords
        assert "circle" in keywords.split(";")[0]  # the user's keyword is always kept
    off = dict(DOC, kssa={"enabled": False})
    res_off = webui.generate("txt2img", with_regions(payload, off), model=model)
    assert keywords_of(infotext_of(res_off["images"][0])) is None
    assert pixel_diff(res["images"][0], res_off["images"][0])[0] > 0, "KSSA changed nothing"
    assert_plain_unchanged(f"after KSSA on {model}")
    again = webui.generate("txt2img", payload, model=model)
    assert pixel_diff(again["images"][0], plain["images"][0])[0] == 0


def test_keyword_map_preview_is_an_extra_image(webui):
    payload = plain_payload(steps=3)
    res = webui.generate("txt2img", _with_args(payload, [DOC, True, True]))  # [document, enabled, previews]
    assert len(res["images"]) == 3, "image, layout preview, keyword maps"


def _with_args(payload: dict, args: list) -> dict:
    out = dict(payload)
    out["alwayson_scripts"] = {"regedit": {"args": args}}
    return out
