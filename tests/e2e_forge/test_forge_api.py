"""RegEdit in a real WebUI Forge, through its HTTP API: regions in both modes, layout init, keywords and
KSSA, infotext and paste, bad payloads, hygiene, samplers × batch × hires fix, img2img, and the
features that do not run in Forge refused with a message."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_webui import (FORGE_IP2P, FORGE_SD1, FORGE_SDXL, assert_rest_kept, decode_png, infotext_of, pixel_diff, pixels, plain_payload,  # noqa: E402
                       png_b64, with_regions)

SDXL = os.environ.get("REGEDIT_E2E_FORGE_SDXL") == "1"
MODELS = [FORGE_SD1] + ([FORGE_SDXL] if SDXL else [])
KEY = "RegEdit regions: "
# Prompts that the random-weight checkpoint renders (a few others decode to a black image, plain too)
DOC = {"prompt": "a landscape", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"},
    {"x": 0.5, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "a yellow house"}]}
# Forge answers a hires request without this with HTTP 500
HIRES = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.6,
         "hr_second_pass_steps": 2, "hr_additional_modules": ["Use same choices"]}


def regedit_value(infotext: str) -> str | None:
    """The RegEdit regions entry of an infotext's last line (written JSON-quoted), or None."""
    line = infotext.rsplit("\n", 1)[-1]
    if KEY not in line:
        return None
    rest = line.split(KEY, 1)[1]
    return json.JSONDecoder().raw_decode(rest)[0] if rest.startswith('"') else rest.split(",", 1)[0]


def boxes(doc: dict) -> list:
    return [(r["x"], r["y"], r["w"], r["h"], r["prompt"]) for r in doc["regions"]]


def rendered(b64: str) -> bool:
    """Not a blank image (a NaN latent decodes to black)."""
    return float(np.asarray(decode_png(b64).convert("RGB"), dtype=np.float32).std()) > 1.0


def test_script_is_registered(forge):
    scripts = forge.get("/sdapi/v1/scripts").json()
    assert "regedit" in scripts["txt2img"] and "regedit" in scripts["img2img"], scripts


@pytest.mark.parametrize("mode", ["attention", "latent"])
@pytest.mark.parametrize("model", MODELS)
def test_regions_reach_the_image_and_the_infotext(forge, forge_baseline, model, mode, assert_plain_unchanged):
    doc = dict(DOC, mode=mode)
    plain = forge.generate("txt2img", plain_payload(), model=model)
    res = forge.generate("txt2img", with_regions(plain_payload(), doc), model=model)
    assert rendered(res["images"][0])
    assert pixels(res["images"][0]) != pixels(plain["images"][0]), "the regions changed nothing"
    info = json.loads(res["info"])
    for text in (info["infotexts"][0], infotext_of(res["images"][0])):
        value = json.loads(regedit_value(text))
        assert boxes(value) == boxes(DOC) and value.get("mode", "attention") == mode
    assert_plain_unchanged(f"a {mode}-mode run on {model}")


@pytest.mark.parametrize("mode", ["attention", "latent"])
def test_regions_with_the_whole_prompt_reproduce_the_plain_image(forge, mode):
    """Forge's UNet patcher carries the fusion exactly: every region with the whole image's prompt (and
    noise, not layout init, as the start) gives the plain image back."""
    same = {"prompt": "a landscape", "mode": mode, "init": "noise", "background_prompt": "whole",
            "regions": [dict(r, prompt="a landscape") for r in DOC["regions"]]}
    plain = forge.generate("txt2img", plain_payload(batch_size=2))
    res = forge.generate("txt2img", with_regions(plain_payload(batch_size=2), same))
    for a, b in zip(plain["images"], res["images"]):
        assert pixel_diff(a, b)[0] <= 2, pixel_diff(a, b)


@pytest.mark.parametrize("model", MODELS)
def test_layout_init_starts_from_the_boxes(forge, model):
    same = {"prompt": "a landscape", "background_prompt": "whole",
            "regions": [dict(r, prompt="a landscape") for r in DOC["regions"]]}
    before = forge.log_size()
    noise = forge.generate("txt2img", with_regions(plain_payload(), dict(same, init="noise")), model=model)
    layout = forge.generate("txt2img", with_regions(plain_payload(), dict(same, init="layout")), model=model)
    again = forge.generate("txt2img", with_regions(plain_payload(), dict(same, init="layout")), model=model)
    assert "init layout skipped" not in forge.log_since(before)
    assert pixel_diff(noise["images"][0], layout["images"][0])[1] > 1.0, "layout init changed nothing"
    assert pixels(layout["images"][0]) == pixels(again["images"][0]), "layout init is not reproducible"


def test_png_info_parses_the_regions(forge):
    res = forge.generate("txt2img", with_regions(plain_payload(seed=7), DOC))
    parsed = forge.post("/sdapi/v1/png-info", {"image": res["images"][0]}).json()
    value = parsed["parameters"][KEY.rstrip(": ")]
    assert boxes(json.loads(value) if isinstance(value, str) else value) == boxes(DOC)


def test_pasting_the_infotext_restores_the_regions(forge):
    first = forge.generate("txt2img", with_regions(plain_payload(seed=7), DOC))
    text = json.loads(first["info"])["infotexts"][0]
    r = forge.post("/sdapi/v1/txt2img", {"infotext": text, "width": 64, "height": 64})
    if r.status_code == 500 and "parameterized generic" in r.text:
        pytest.skip("this Forge's API fails every infotext paste (modules/api/api.py applies isinstance to "
                    "list[str]), RegEdit or not; the browser test pastes through the page instead")
    assert r.status_code == 200, r.text[:1000]
    pasted = r.json()
    assert boxes(json.loads(regedit_value(json.loads(pasted["info"])["infotexts"][0]))) == boxes(DOC)
    assert pixels(pasted["images"][0]) == pixels(first["images"][0]), "the pasted infotext gave another image"


def test_keywords_and_kssa(forge, assert_plain_unchanged):
    doc = {"prompt": "a landscape", "kssa": {"enabled": True, "keywords": 3, "refresh": 1, "levels": ["down", "up"]},
           "regions": [{"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "masterpiece, best quality, a red circle",
                        "keywords": ["circle"]},
                       {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "highly detailed, a blue square"}]}
    res = forge.generate("txt2img", with_regions(plain_payload(steps=4), doc))
    line = infotext_of(res["images"][0]).rsplit("\n", 1)[-1]
    assert "RegEdit keywords: " in line and "circle" in line.split("RegEdit keywords: ", 1)[1].split(";")[0], line
    off = forge.generate("txt2img", with_regions(plain_payload(steps=4), dict(doc, kssa={"enabled": False})))
    assert pixel_diff(res["images"][0], off["images"][0])[0] > 0, "KSSA changed nothing"
    previews = dict(plain_payload(steps=3), alwayson_scripts={"regedit": {"args": [doc, True, True]}})
    assert len(forge.generate("txt2img", previews)["images"]) == 3, "the image, the layout, the keyword maps"
    assert_plain_unchanged("KSSA")


def test_bad_document_fails_clearly_and_leaves_no_trace(forge, assert_plain_unchanged):
    bad = {"prompt": "x", "regions": [{"x": 0.5, "y": 0.0, "w": 0.8, "h": 0.5, "prompt": "too wide"}]}
    r = forge.post("/sdapi/v1/txt2img", with_regions(plain_payload(), bad))
    assert r.status_code == 422 and "regions[0].w" in r.text and "RegEdit" in r.text, r.text[:1000]
    r = forge.post("/sdapi/v1/txt2img", with_regions(plain_payload(), "{not json"))
    assert r.status_code == 422 and "RegEdit" in r.text, r.text[:1000]
    assert_plain_unchanged("failing documents")


def test_interrupted_run_leaves_no_trace(forge, assert_plain_unchanged):
    response, interrupted = forge.post_and_interrupt("/sdapi/v1/txt2img", with_regions(plain_payload(steps=60), DOC),
                                                     sampling_steps=60, at_step=2, poll=0.05)
    assert interrupted, "the generation ended before it could be interrupted"
    assert response.status_code == 200, response.text[:1000]
    assert_plain_unchanged("an interrupted regions run")


MATRIX = [(m, s, b, h) for m in MODELS for s in ("Euler a", "DPM++ 2M") for b in (1, 3) for h in (False, True)]


@pytest.mark.parametrize("model,sampler,batch,hires", MATRIX,
                         ids=[f"{m}-{s.replace(' ', '').replace('+', 'p')}-b{b}-{'hr' if h else 'nohr'}"
                              for m, s, b, h in MATRIX])
def test_matrix(forge, model, sampler, batch, hires):
    over = dict(sampler_name=sampler, batch_size=batch, seed=77, **(HIRES if hires else {}))
    plain = [pixels(b) for b in forge.generate("txt2img", plain_payload(**over), model=model)["images"]]
    res = forge.generate("txt2img", with_regions(plain_payload(**over), DOC), model=model)
    assert len(res["images"]) == batch
    for i, b64 in enumerate(res["images"]):
        assert decode_png(b64).size == ((128, 128) if hires else (64, 64))
        assert rendered(b64) and pixels(b64) != plain[i], f"image {i}: blank, or the same as without regions"
        assert boxes(json.loads(regedit_value(infotext_of(b64)))) == boxes(DOC), f"image {i}: no regions in its infotext"
    again = [pixels(b) for b in forge.generate("txt2img", plain_payload(**over), model=model)["images"]]
    assert again == plain, "the plain run changed after the regions run"


def test_img2img(forge, assert_plain_unchanged):
    source = forge.generate("txt2img", plain_payload(seed=3))["images"][0]
    payload = plain_payload(init_images=[source], denoising_strength=0.7, batch_size=2)
    plain = forge.generate("img2img", payload)
    res = forge.generate("img2img", with_regions(payload, DOC))
    assert len(res["images"]) == 2 and all(rendered(b) for b in res["images"])
    assert pixels(res["images"][0]) != pixels(plain["images"][0])
    assert regedit_value(infotext_of(res["images"][0]))
    assert_plain_unchanged("img2img regions")


def test_inpaint_keeps_the_unmasked_part(forge):
    from PIL import Image, ImageDraw

    source = forge.generate("txt2img", plain_payload(seed=3))["images"][0]
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)  # repaint the left half only
    res = forge.generate("img2img", with_regions(plain_payload(init_images=[source], mask=png_b64(mask),
                                                               denoising_strength=0.9, inpainting_fill=1), DOC))
    a = np.asarray(decode_png(source).convert("RGB"), dtype=np.int16)[:, 40:]
    b = np.asarray(decode_png(res["images"][0]).convert("RGB"), dtype=np.int16)[:, 40:]
    assert np.abs(a - b).mean() < 4.0, "inpainting with regions changed the unmasked part"
    assert regedit_value(infotext_of(res["images"][0]))


@pytest.mark.parametrize("model", MODELS)
def test_a_drag_moves_a_region_and_keeps_the_rest(forge, model, assert_plain_unchanged):
    from test_e2e_drag import DRAG, assert_dragged, drag_payload, red_circle_image

    source = red_circle_image()
    res = forge.generate("img2img", drag_payload(source, DRAG, batch_size=2), model=model)
    assert len(res["images"]) == 2
    for b64 in res["images"]:
        assert_dragged(source, b64)
    assert pixel_diff(res["images"][0], res["images"][1])[1] > 0  # each image its own seed
    assert "RegEdit drag: " in infotext_of(res["images"][0])
    again = forge.generate("img2img", drag_payload(source, DRAG, batch_size=2), model=model)
    assert [pixels(b) for b in again["images"]] == [pixels(b) for b in res["images"]], "not reproducible"
    plain_attention = dict(DRAG, mutual_self_attention=False)
    off = forge.generate("img2img", drag_payload(source, plain_attention, batch_size=2), model=model)
    assert pixel_diff(off["images"][0], res["images"][0])[1] > 0, "mutual self-attention changed nothing"
    assert_plain_unchanged(f"a drag on {model}")


def _instruct_pix2pix_runs(forge) -> bool:
    """Whether this Forge runs an SD 1.5 instruct-pix2pix checkpoint in img2img at all (dfdcbab does not:
    it hands the 8-channel UNet 9 channels, as for an inpainting model)."""
    from PIL import Image

    forge.use_model(FORGE_IP2P)
    r = forge.post("/sdapi/v1/img2img", plain_payload(init_images=[png_b64(Image.new("RGB", (64, 64)))]))
    return r.status_code == 200


@pytest.mark.parametrize("model", [FORGE_SD1, FORGE_IP2P])
def test_lime(forge, model, assert_plain_unchanged):
    """LIME on an ordinary checkpoint (a localised prompt edit) and an instruct-pix2pix one: the RoI found
    in a first pass, its preview, the infotext, the same edit twice; a given box skips the first pass."""
    from test_e2e_lime import lime_payload, scene

    if model == FORGE_IP2P and not _instruct_pix2pix_runs(forge):
        pytest.skip("this Forge cannot run an SD 1.5 instruct-pix2pix checkpoint in img2img, RegEdit or not "
                    "(it gives the 8-channel UNet 9 channels)")
    over = dict(prompt="make the red circle blue", sampler_name="Euler a", batch_size=2, seed=3,
                **({"image_cfg_scale": 1.5, "denoising_strength": 1.0} if model == FORGE_IP2P else {}))
    res = forge.generate("img2img", lime_payload(scene(), True, preview=True, **over), model=model)
    assert len(res["images"]) == 3  # the two edits, then the RoI preview
    assert 'RegEdit LIME: "{\\"version\\": 4}"' in infotext_of(res["images"][0])
    assert decode_png(res["images"][2]).size == (64, 64)
    again = forge.generate("img2img", lime_payload(scene(), True, preview=True, **over), model=model)
    assert [pixels(b) for b in again["images"]] == [pixels(b) for b in res["images"]], "not reproducible"
    plain = forge.generate("img2img", lime_payload(scene(), None, **over), model=model)
    assert [pixels(b) for b in plain["images"]] != [pixels(b) for b in res["images"][:2]], "LIME changed nothing"
    before = forge.log_size()
    boxed = {"roi": [{"x": 0.1, "y": 0.1, "w": 0.35, "h": 0.35}]}
    forge.generate("img2img", lime_payload(scene(), boxed, **over), model=model)
    assert "LIME found its region" not in forge.log_since(before)  # the given box: no first pass
    assert_plain_unchanged(f"LIME on {model}")


@pytest.mark.parametrize("kind", ["add", "remove", "change"])
def test_edit_pairs(forge, kind, assert_plain_unchanged):
    """Each image becomes a (source, target) pair; the source is the source document's own generation."""
    left, right = DOC["regions"]
    regions = {"change": [dict(left, edit="change", target_prompt="a cat"), right],
               "remove": [left, dict(right, edit="remove")],
               # the random-weight checkpoint renders a plain txt2img of "a blue square and a yellow house and a
               # dog" (or "... and a green tree") black, RegEdit off: a version 3 pair's target, which draws that
               # prompt, is black with it; version 4 keeps the source outside the box and renders
               "add": [left, right, {"x": 0.3, "y": 0.0, "w": 0.4, "h": 0.3, "prompt": "a red circle", "edit": "add"}]}[kind]
    payload = with_regions(plain_payload(prompt="a blue square and a yellow house", batch_size=2, seed=5),
                           {"regions": regions})
    res = forge.generate("txt2img", payload)
    texts = json.loads(res["info"])["infotexts"]
    assert [("source" if "RegEdit pair: source" in t else "target") for t in texts] == ["source", "target"] * 2
    assert all(rendered(b) for b in res["images"]) and pixels(res["images"][0]) != pixels(res["images"][1])
    source_doc = {"regions": [{k: v for k, v in r.items() if k not in ("edit", "target_prompt")}
                              for r in regions if r.get("edit") != "add"]}
    alone = forge.generate("txt2img", with_regions(plain_payload(prompt=texts[0].splitlines()[0], batch_size=2, seed=5),
                                                   source_doc))
    for i in (0, 1):
        assert pixel_diff(alone["images"][i], res["images"][2 * i])[1] < 2.0, "the pair's source is not the source's own image"
    assert_rest_kept(regions, res["images"][0], res["images"][1])
    old = forge.generate("txt2img", with_regions(plain_payload(prompt="a blue square and a yellow house", seed=5),
                                                 {"regions": regions, "version": 3}))
    assert all(rendered(b) for b in old["images"]), "a version 3 pair (MRGD's) rendered a blank image"
    assert_rest_kept(regions, old["images"][0], old["images"][1], version=3)
    assert_plain_unchanged(f"an edit pair ({kind})")



@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("inversion", ["negative", "ddim"])
def test_img2img_edits_a_picture_through_an_inversion(forge, model, inversion, assert_plain_unchanged):
    """A picture with edit roles: the reconstruction and the edit, the inversion named, the cache."""
    from PIL import Image

    left, right = DOC["regions"]
    doc = {"regions": [dict(left, edit="change", target_prompt="a cat"), right], "edit": {"inversion": inversion}}
    payload = with_regions(plain_payload(init_images=[png_b64(Image.new("RGB", (64, 64), (200, 120, 90)))],
                                         denoising_strength=0.75, prompt="a blue square and a yellow house",
                                         steps=3), doc)
    res = forge.generate("img2img", payload, model=model)
    texts = json.loads(res["info"])["infotexts"]
    assert len(res["images"]) == 2 and "RegEdit pair: source" in texts[0] and "RegEdit pair: target" in texts[1]
    assert f"RegEdit inversion: {inversion}" in texts[1] and texts[1].splitlines()[0] == "a cat and a yellow house"
    assert pixels(res["images"][0]) != pixels(res["images"][1])
    again = forge.generate("img2img", payload, model=model)
    assert pixels(again["images"][1]) == pixels(res["images"][1]), "an edit of a picture is deterministic"
    assert "read from the cache" in forge.log_tail(4000)
    assert_plain_unchanged(f"a picture's edit through {inversion} inversion")


def test_refusals_and_notes(forge):
    """What does not run in Forge says so; a drag on an instruct-pix2pix checkpoint is refused as in A1111."""
    from test_e2e_drag import DRAG, drag_payload, red_circle_image

    from PIL import Image

    pair = dict(DOC, regions=[DOC["regions"][0], dict(DOC["regions"][1], edit="remove")])
    r = forge.post("/sdapi/v1/txt2img", with_regions(plain_payload(), dict(pair, edit={"guidance": True})))
    assert r.status_code == 422 and "RegEdit: edit.guidance" in r.text and "WebUI Forge" in r.text, r.text[:1000]
    picture = plain_payload(init_images=[png_b64(Image.new("RGB", (64, 64), (200, 120, 90)))], denoising_strength=0.75)
    r = forge.post("/sdapi/v1/img2img", with_regions(picture, dict(pair, edit={"inversion": "nulltext"})))
    assert r.status_code == 422 and "RegEdit: edit.inversion" in r.text and "Forge" in r.text, r.text[:1000]
    forge.use_model(FORGE_IP2P)
    r = forge.post("/sdapi/v1/img2img", drag_payload(red_circle_image(), DRAG))
    assert r.status_code == 422 and "instruct-pix2pix" in r.text, r.text[:1000]
    before = forge.log_size()
    res = forge.generate("txt2img", with_regions(plain_payload(), dict(DOC, guidance={"enabled": True})))
    assert rendered(res["images"][0])
    assert "layout guidance does not run in WebUI Forge" in forge.log_since(before)


def test_xyz_grid_over_regedit_axes(forge, assert_plain_unchanged):
    from test_e2e_xyz import DOC as XYZ_DOC, grid_payload

    payload = grid_payload(forge, "[RegEdit] Whole prompt start", "0, 1", y_label="[RegEdit] Init",
                           y_dropdown=("noise", "layout"))
    payload["alwayson_scripts"]["regedit"]["args"] = [dict(XYZ_DOC, regions=DOC["regions"])]
    res = forge.generate("txt2img", payload)
    cells = list(zip(res["images"], json.loads(res["info"])["infotexts"]))[-4:]  # the grid comes first
    expected = [("0.0", "noise"), ("1.0", "noise"), ("0.0", "layout"), ("1.0", "layout")]
    for (_, text), (start, init) in zip(cells, expected):
        assert f'\\"whole_prompt_start\\":{start}' in text and f'\\"init\\":\\"{init}\\"' in text, text
    assert pixel_diff(cells[0][0], cells[2][0])[1] > 0.5  # layout init moved the start
    assert_plain_unchanged("an X/Y/Z grid")
