"""LIME in the real WebUI's img2img: the LIME document (the ``regedit`` script's fifth argument) on
the ShapesWorld instruct model (an instruct-pix2pix checkpoint) and on ordinary SD1 and SDXL
checkpoints; the RoI preview, the infotext and its paste; the sampler's noise replayed so the edit is
the seed's generation; an inpaint mask as the RoI; bad input; no hook left behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from e2e_webui import SD1, SDXL, decode_png, infotext_of, pixels, plain_payload, png_b64

from lib_regedit.evaluation.detector import detect
from lib_regedit.shapesworld.data import Scene, ShapeObject, render


def scene():
    return render(Scene((235, 235, 230), (ShapeObject("circle", "red", (0.1, 0.1, 0.35, 0.35), (220, 40, 40)),
                                          ShapeObject("square", "green", (0.55, 0.55, 0.35, 0.35), (40, 180, 60)))))


def lime_payload(image, lime, **over) -> dict:
    payload = dict(plain_payload(**{"steps": 8, **over}), init_images=[png_b64(image)])
    payload.setdefault("denoising_strength", 0.75)
    payload["alwayson_scripts"] = {"regedit": {"args": ["", False, over.pop("preview", False), "", lime]}}
    return payload


@pytest.fixture(scope="module")
def instruct(webui, shapesworld_installed):
    from lib_regedit.shapesworld.webui_install import install

    install(webui.work / "models" / "Stable-diffusion", name="shapesworld_instruct")
    r = webui.post("/sdapi/v1/refresh-checkpoints", {})
    assert r.status_code == 200, r.text
    yield "shapesworld_instruct"
    webui.use_model(SD1)


def test_lime_on_the_shapesworld_instruct_model(webui, instruct, assert_plain_unchanged):
    over = dict(prompt="make the red circle blue", steps=20, denoising_strength=1.0, image_cfg_scale=1.5,
                cfg_scale=7.5, sampler_name="Euler a", batch_size=2, seed=3)
    res = webui.generate("img2img", lime_payload(scene(), True, preview=True, **over), model=instruct)
    assert len(res["images"]) == 3  # the two edits, then the RoI preview
    text = json.loads(res["info"])["infotexts"][0]
    default = 'RegEdit LIME: "{\\"version\\": 4}"'
    assert default in text and default in infotext_of(res["images"][0])
    preview = np.asarray(decode_png(res["images"][2]).convert("RGB"), dtype=np.int16)
    assert preview.shape == (64, 64, 3)
    # the found region snapped to the object: the preview tints boxes (outside them: the source darkened)
    darkened = (np.asarray(scene().convert("RGB"), dtype=np.float32) * 0.6).round()
    tinted = np.abs(preview - darkened).max(-1) > 1
    parts, count = ndimage.label(tinted, structure=np.ones((3, 3)))
    assert count >= 1 and all(tinted[box].all() for box in ndimage.find_objects(parts)), tinted.astype(int)
    edits = [detect(decode_png(b).convert("RGB")) for b in res["images"][:2]]
    print("LIME in the WebUI, ShapesWorld instruct:", [[(d.colour, d.shape) for d in e] for e in edits])
    again = webui.generate("img2img", lime_payload(scene(), True, preview=True, **over), model=instruct)
    assert [pixels(b) for b in again["images"]] == [pixels(b) for b in res["images"]], "not reproducible"
    plain = webui.generate("img2img", lime_payload(scene(), None, **over), model=instruct)
    assert [pixels(b) for b in plain["images"]] != [pixels(b) for b in res["images"][:2]]
    # the WebUI's img2img API leaves the prompt and both CFG scales out of a pasted infotext: give them
    pasted = webui.generate("img2img", {"infotext": text, "prompt": over["prompt"], "init_images": [png_b64(scene())],
                                        "width": 64, "height": 64, "batch_size": 2, "denoising_strength": 1.0,
                                        "cfg_scale": 7.5, "image_cfg_scale": 1.5}, model=instruct)
    assert pixels(pasted["images"][0]) == pixels(res["images"][0]), \
        f"pasting the infotext did not redo the edit:\n{text}\n{json.loads(pasted['info'])['infotexts'][0]}"
    # an infotext written before LIME documents had versions keeps version 1's defaults (90% regularised)
    old = webui.generate("img2img", lime_payload(scene(), {"version": 1}, **over), model=instruct)
    assert pixels(old["images"][0]) != pixels(res["images"][0])
    pasted_old = webui.generate("img2img", {"infotext": text.replace(default, "RegEdit LIME: {}"),
                                            "prompt": over["prompt"], "init_images": [png_b64(scene())],
                                            "width": 64, "height": 64, "batch_size": 2, "denoising_strength": 1.0,
                                            "cfg_scale": 7.5, "image_cfg_scale": 1.5}, model=instruct)
    assert pixels(pasted_old["images"][0]) == pixels(old["images"][0]), json.loads(pasted_old["info"])["infotexts"][0]
    assert_plain_unchanged("LIME on the instruct model")


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M"])
def test_the_first_pass_leaves_the_seeds_generation_alone(webui, instruct, sampler):
    """Regularising no step at all, a run with a first pass (the RoI found) gives what a run without
    one (the RoI given) gives: the first pass's noise draws are replayed to the edit."""
    over = dict(prompt="make the red circle blue", steps=10, denoising_strength=1.0, image_cfg_scale=1.5,
                sampler_name=sampler, batch_size=2, seed=5)
    off = {"regularise_until": 0, "keep_outside": False}
    found = webui.generate("img2img", lime_payload(scene(), off, **over), model=instruct)
    given = webui.generate("img2img", lime_payload(scene(), dict(off, roi=[{"x": 0, "y": 0, "w": 0.5, "h": 0.5}]),
                                                   **over), model=instruct)
    assert [pixels(b) for b in found["images"]] == [pixels(b) for b in given["images"]]


@pytest.mark.parametrize("model", [SD1, SDXL])
def test_lime_on_ordinary_checkpoints(webui, model, assert_plain_unchanged):
    over = dict(prompt="a blue circle", steps=6, denoising_strength=0.7, batch_size=2, n_iter=2,
                sampler_name="DPM++ 2M")
    res = webui.generate("img2img", lime_payload(scene(), {"clusters": 4}, preview=True, **over), model=model)
    assert len(res["images"]) == 5  # 2 x 2 edits and the preview of the last batch's RoI
    assert '"clusters\\": 4' in json.loads(res["info"])["infotexts"][0].replace('\\\\', '\\') or \
        "clusters" in json.loads(res["info"])["infotexts"][0]
    plain = webui.generate("img2img", lime_payload(scene(), None, **over), model=model)
    assert pixels(plain["images"][0]) != pixels(res["images"][0])
    assert_plain_unchanged(f"LIME on {model}")


def test_an_inpaint_mask_is_the_roi(webui):
    from PIL import Image

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 32))
    payload = lime_payload(scene(), True, prompt="a blue circle", steps=6, preview=True, denoising_strength=0.7)
    payload.update(mask=png_b64(mask.convert("RGB")), inpainting_fill=1, inpaint_full_res=False, mask_blur=0)
    res = webui.generate("img2img", payload, model=SD1)
    preview = np.asarray(decode_png(res["images"][-1]).convert("RGB"), dtype=np.int16)
    src = np.asarray(scene(), dtype=np.int16)
    tinted = np.abs(preview - src).mean(-1) > 0
    # inside the mask the preview is tinted red; outside it is the source darkened
    assert (preview[2:30, 2:30, 0] >= preview[2:30, 2:30, 1]).mean() > 0.95
    assert (preview[36:, 36:] <= src[36:, 36:]).all() and tinted.all()


@pytest.mark.parametrize("kind,prompt,lime,field", [
    ("txt2img", "make the red circle blue", True, "lime: LIME edits an image"),
    ("img2img", "the of , .", True, "prompt: no edit tokens"),
    ("img2img", "", True, "prompt: is empty"),
    ("img2img", "a blue circle", {"clusters": 0}, "lime.clusters"),
    ("img2img", "a blue circle", {"clusters": 999}, "lime.clusters"),
    ("img2img", "a blue circle", {"roi": [{"x": 0.9, "y": 0, "w": 0.5, "h": 0.5}]}, "lime.roi[0]"),
    ("img2img", "a blue circle", "{oops", "lime: not valid JSON"),
])
def test_bad_lime_input_fails_clearly(webui, kind, prompt, lime, field, assert_plain_unchanged):
    payload = lime_payload(scene(), lime, prompt=prompt)
    if kind == "txt2img":
        payload.pop("init_images")
    webui.use_model(SD1)
    r = webui.post(f"/sdapi/v1/{kind}", payload)
    assert r.status_code >= 400 and f"RegEdit: {field}" in r.text, r.text[:800]
    assert_plain_unchanged("a failing LIME request")


def test_outside_the_roi_the_source_is_kept(webui):
    """With keep_outside (the default) the latent outside the RoI is the source's at every step and the
    source's pixels are pasted back outside the drawn box at the end: two edit prompts leave the image
    beyond the box's feather exactly the source, where the paper's regularisation alone changes it."""
    box = {"roi": [{"x": 0.0, "y": 0.0, "w": 0.5, "h": 0.5}]}
    source = np.asarray(scene().convert("RGB"), dtype=np.int16)

    def outside_change(lime) -> float:
        outs = [np.asarray(decode_png(webui.generate("img2img", lime_payload(scene(), lime, prompt=prompt, steps=6,
                                                                             denoising_strength=0.9),
                                                     model=SD1)["images"][0]).convert("RGB"), dtype=np.int16)
                for prompt in ("a blue circle", "a yellow triangle")]
        assert outs[0].shape == source.shape
        return max(float(np.abs(out - source).max(-1)[40:, 40:].mean()) for out in outs)  # 8 px past the box

    kept, paper = outside_change(box), outside_change(dict(box, keep_outside=False))
    print(f"LIME in the WebUI, change outside the RoI: kept {kept:.2f}, paper's {paper:.2f} (of 255)")
    assert kept == 0 and paper > 1
