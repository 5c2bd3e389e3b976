"""RegEdit through the real WebUI's HTTP API: regions, infotext, paste, hook hygiene, the matrix."""

from __future__ import annotations

import json
import os

import pytest

from e2e_webui import (SD1, SDXL, decode_png, infotext_of, pixel_diff, pixels, plain_payload, png_b64,
                       with_regions)

INFOTEXT_PREFIX = "RegEdit"

DOC = {
    "prompt": "a landscape",
    "negative_prompt": "",
    "regions": [
        {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
        {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square, sharp edges"},
    ],
}

SAMPLERS = ["Euler a", "DPM++ 2M", "DDIM", "UniPC"]
MODELS = [SD1, SDXL]
HIRES = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.6,
         "hr_second_pass_steps": 2}


def regedit_value(infotext: str) -> str | None:
    """The value of the RegEdit infotext entry (the WebUI writes it JSON-quoted), or None."""
    from_index = infotext.rfind("\n")
    line = infotext[from_index + 1:]
    i = line.find(INFOTEXT_PREFIX)
    if i < 0:
        return None
    key_end = line.index(":", i)
    rest = line[key_end + 1:].lstrip()
    if rest.startswith('"'):
        value, _ = json.JSONDecoder().raw_decode(rest)
        return value
    return rest.split(",", 1)[0]


def boxes(doc: dict) -> list:
    return [(r["x"], r["y"], r["w"], r["h"], r["prompt"]) for r in doc["regions"]]


def test_script_is_registered(webui):
    scripts = webui.get("/sdapi/v1/scripts").json()
    assert "regedit" in scripts["txt2img"], scripts
    assert "regedit" in scripts["img2img"], scripts
    info = webui.get("/sdapi/v1/script-info").json()
    ours = [s for s in info if s["name"] == "regedit"]
    assert len(ours) == 2 and all(s["is_alwayson"] for s in ours), ours


def test_plain_generation_is_deterministic(webui, baseline):
    again = webui.generate("txt2img", plain_payload())
    assert [pixels(b) for b in again["images"]] == baseline["sd1"]


@pytest.mark.parametrize("as_string", [False, True], ids=["object", "json-string"])
def test_regions_reach_the_image_and_the_infotext(webui, baseline, as_string, assert_plain_unchanged):
    doc = json.dumps(DOC) if as_string else DOC
    res = webui.generate("txt2img", with_regions(plain_payload(), doc))
    assert len(res["images"]) == 1
    assert pixels(res["images"][0]) != baseline["sd1"][0], "the regions changed nothing in the image"
    info = json.loads(res["info"])
    # The API's info and the PNG's own infotext (written before postprocess) both carry the regions.
    for text in (info["infotexts"][0], infotext_of(res["images"][0])):
        value = regedit_value(text)
        assert value, f"no {INFOTEXT_PREFIX} entry in the infotext:\n{text}"
        assert boxes(json.loads(value)) == boxes(DOC)
    assert_plain_unchanged("a regions run")


def test_png_info_parses_the_regions(webui):
    res = webui.generate("txt2img", with_regions(plain_payload(), DOC))
    parsed = webui.post("/sdapi/v1/png-info", {"image": res["images"][0]}).json()
    keys = [k for k in parsed["parameters"] if str(k).startswith(INFOTEXT_PREFIX)]
    assert keys, parsed["parameters"]
    value = parsed["parameters"][keys[0]]
    assert boxes(json.loads(value) if isinstance(value, str) else value) == boxes(DOC)


@pytest.mark.parametrize("model", MODELS)
def test_pasting_the_infotext_restores_the_regions(webui, model):
    """The API's ``infotext`` field is the WebUI's paste: it must bring the regions back by itself."""
    first = webui.generate("txt2img", with_regions(plain_payload(), DOC), model=model)
    text = json.loads(first["info"])["infotexts"][0]
    pasted = webui.generate("txt2img", {"infotext": text, "width": 64, "height": 64}, model=model)
    again_text = json.loads(pasted["info"])["infotexts"][0]
    assert regedit_value(again_text), f"pasting lost the regions:\n{again_text}"
    assert boxes(json.loads(regedit_value(again_text))) == boxes(DOC)
    assert pixels(pasted["images"][0]) == pixels(first["images"][0]), "pasting did not reproduce the image"


def test_an_infotext_from_before_versions_pastes_to_the_old_defaults(webui):
    """Infotexts written before document version 2 carry no version: pasting one brings back the old
    defaults (the whole prompt outside the boxes, noise init) and reproduces its image."""
    old = webui.generate("txt2img", with_regions(plain_payload(), dict(DOC, version=1)))
    new = webui.generate("txt2img", with_regions(plain_payload(), DOC))
    assert pixels(old["images"][0]) != pixels(new["images"][0]), "the defaults did not change"
    text = json.loads(old["info"])["infotexts"][0]
    assert '\\"version\\":1,' in text, text
    untagged = text.replace('\\"version\\":1,', "")  # as the extension wrote it before versions
    pasted = webui.generate("txt2img", {"infotext": untagged, "width": 64, "height": 64})
    assert pixels(pasted["images"][0]) == pixels(old["images"][0]), "the old infotext did not reproduce its image"
    assert json.loads(regedit_value(json.loads(pasted["info"])["infotexts"][0]))["version"] == 1


def test_bad_document_fails_clearly_and_leaves_no_trace(webui, assert_plain_unchanged):
    bad = {"prompt": "x", "regions": [{"x": 0.5, "y": 0.0, "w": 0.8, "h": 0.5, "prompt": "too wide"}]}
    r = webui.post("/sdapi/v1/txt2img", with_regions(plain_payload(), bad))
    assert r.status_code >= 400, f"a box past the right edge was accepted: {r.status_code}"
    assert "regions[0].w" in r.text and "RegEdit" in r.text, r.text[:1000]
    assert_plain_unchanged("a failing regions run")


@pytest.mark.parametrize("phase", ["first-pass", "hires-pass"])
def test_interrupted_run_leaves_no_trace(webui, assert_plain_unchanged, phase):
    payload = with_regions(plain_payload(steps=60 if phase == "first-pass" else 4), DOC)
    if phase == "hires-pass":
        payload.update(HIRES, hr_second_pass_steps=60)
    # 60 steps is the pass to interrupt (the first pass, or the hires pass after a 4-step first pass).
    response, interrupted = webui.post_and_interrupt("/sdapi/v1/txt2img", payload, sampling_steps=60, at_step=2,
                                                     poll=0.05)
    assert interrupted, "the generation ended before it could be interrupted"
    assert response.status_code == 200, response.text[:1000]
    assert_plain_unchanged(f"a regions run interrupted in the {phase}")


# ---- the matrix ----------------------------------------------------------------------------------

MATRIX = [(m, s, b, h) for m in MODELS for s in SAMPLERS for b in (1, 3) for h in (False, True)]


@pytest.mark.parametrize("model,sampler,batch,hires", MATRIX,
                         ids=[f"{m.split('-')[-1]}-{s.replace(' ', '').replace('+', 'p')}-b{b}-{'hr' if h else 'nohr'}"
                              for m, s, b, h in MATRIX])
def test_matrix(webui, model, sampler, batch, hires):
    over = dict(sampler_name=sampler, batch_size=batch, seed=77)
    if hires:
        over.update(HIRES)
    if sampler == "UniPC":  # the WebUI asserts UniPC's order (3) < steps, hires pass included
        over.update(steps=4, **({"hr_second_pass_steps": 6} if hires else {}))
    plain = webui.generate("txt2img", plain_payload(**over), model=model)
    plain_px = [pixels(b) for b in plain["images"]]
    res = webui.generate("txt2img", with_regions(plain_payload(**over), DOC), model=model)
    assert len(res["images"]) == batch
    size = 128 if hires else 64
    for i, b64 in enumerate(res["images"]):
        img = decode_png(b64)
        assert img.size == (size, size)
        assert pixels(b64) != plain_px[i], f"image {i} of the batch is the same as without regions"
        value = regedit_value(infotext_of(b64))
        assert value and boxes(json.loads(value)) == boxes(DOC), f"image {i}: infotext lacks the regions"
    again = webui.generate("txt2img", plain_payload(**over), model=model)
    assert [pixels(b) for b in again["images"]] == plain_px, "the plain run changed after the regions run"


# ---- img2img, inpainting, latent mode, long prompts --------------------------------------------------

# The WebUI samples the VAE posterior with the unseeded global RNG when it encodes an init image, so
# plain img2img is not bit-reproducible in the WebUI itself. The test checkpoints squeeze that
# posterior to std ~3e-7 (make_models.quiet_vae_posterior): repeats then differ by at most a level
# in a few pixels, while a regions run (or a hook left behind) changes the image by tens of levels.
SAME_IMG2IMG = (2, 0.01)  # max and mean absolute difference, 8-bit levels


def assert_img2img_same(a: str, b: str, what: str):
    mx, mean = pixel_diff(a, b)
    assert mx <= SAME_IMG2IMG[0] and mean <= SAME_IMG2IMG[1], f"{what}: differs by max {mx}, mean {mean:.4f}"


def assert_img2img_differs(a: str, b: str, what: str):
    mx, mean = pixel_diff(a, b)
    assert mean > 0.5, f"{what}: the regions changed the image by a mean of only {mean:.4f} levels"


def _init_image() -> str:
    from PIL import Image

    img = Image.new("RGB", (64, 64), (40, 90, 160))
    for x in range(16, 48):
        for y in range(20, 44):
            img.putpixel((x, y), (220, 60, 30))
    return png_b64(img)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("batch", [1, 3])
def test_img2img(webui, model, batch, assert_plain_unchanged):
    payload = plain_payload(init_images=[_init_image()], denoising_strength=0.6, batch_size=batch, steps=4)
    plain = webui.generate("img2img", payload, model=model)
    res = webui.generate("img2img", with_regions(payload, DOC), model=model)
    assert len(res["images"]) == batch
    for i, b64 in enumerate(res["images"]):
        assert_img2img_differs(b64, plain["images"][i], f"image {i}")
        assert regedit_value(infotext_of(b64))
    again = webui.generate("img2img", payload, model=model)
    assert len(again["images"]) == batch
    for i, (a, b) in enumerate(zip(again["images"], plain["images"])):
        assert_img2img_same(a, b, f"plain img2img image {i} after the regions run")


def test_inpaint(webui):
    from PIL import Image

    mask = Image.new("L", (64, 64), 0)
    for x in range(32, 64):
        for y in range(0, 64):
            mask.putpixel((x, y), 255)
    payload = plain_payload(init_images=[_init_image()], mask=png_b64(mask), denoising_strength=0.75,
                            inpainting_fill=1, inpaint_full_res=False, steps=4)
    plain = webui.generate("img2img", payload)
    res = webui.generate("img2img", with_regions(payload, DOC))
    assert_img2img_differs(res["images"][0], plain["images"][0], "inpaint")
    assert regedit_value(infotext_of(res["images"][0]))
    # Outside the mask (and its blur, which reaches column ~23) the WebUI pastes the original back.
    left_res = decode_png(res["images"][0]).crop((0, 0, 16, 64))
    left_plain = decode_png(plain["images"][0]).crop((0, 0, 16, 64))
    assert pixel_diff(png_b64(left_res), png_b64(left_plain))[0] == 0
    again = webui.generate("img2img", payload)
    assert_img2img_same(again["images"][0], plain["images"][0], "plain inpaint after the regions run")


@pytest.mark.parametrize("model", MODELS)
def test_latent_mode(webui, model):
    doc = dict(DOC, mode="latent")
    over = dict(batch_size=3, sampler_name="DPM++ 2M")
    plain = webui.generate("txt2img", plain_payload(**over), model=model)
    res = webui.generate("txt2img", with_regions(plain_payload(**over), doc), model=model)
    assert len(res["images"]) == 3
    assert all(pixels(a) != pixels(b) for a, b in zip(res["images"], plain["images"]))
    assert json.loads(regedit_value(infotext_of(res["images"][0])))["mode"] == "latent"


@pytest.mark.parametrize("model", MODELS)
def test_prompts_over_75_tokens(webui, model):
    long_text = ", ".join(f"detail number {i}" for i in range(60))  # ~180 tokens: three 77-token chunks
    doc = {"prompt": long_text, "regions": [
        {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": long_text + ", red"},
        {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "blue"},
    ]}
    payload = plain_payload(prompt=long_text, negative_prompt="blurry, " * 50)
    res = webui.generate("txt2img", with_regions(payload, doc), model=model)
    plain = webui.generate("txt2img", payload, model=model)
    assert pixels(res["images"][0]) != pixels(plain["images"][0])


def test_empty_document_is_a_plain_run(webui, baseline):
    for empty in ("", None):
        res = webui.generate("txt2img", with_regions(plain_payload(), empty))
        assert [pixels(b) for b in res["images"]] == baseline["sd1"]
        assert regedit_value(json.loads(res["info"])["infotexts"][0]) is None


# ---- how the sampler calls the UNet: cond/uncond layouts ---------------------------------------------

LAYOUTS = {
    # uncond rows dropped on every step (NGMS on all steps; sigma is always under 100)
    "no-uncond": {"s_min_uncond": 100.0, "s_min_uncond_all": True},
    # uncond rows dropped on the first half of the steps
    "skip-early-cond": {"skip_early_cond": 0.5},
    # cond and uncond in separate UNet calls, batch_size rows each
    "separate-calls": {"batch_cond_uncond": False},
    # a long prompt against a short negative: cond and uncond of different lengths, padded
    "padded": {"pad_cond_uncond": True},
}


LAYOUT_INFOTEXT = {"no-uncond": "NGMS all steps: True", "skip-early-cond": "Skip Early CFG: 0.5",
                   "separate-calls": "", "padded": "Pad conds: True"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cond_uncond_layouts(webui, model, layout, assert_plain_unchanged):
    long_prompt = ", ".join(f"detail {i}" for i in range(40))
    over = dict(batch_size=3, n_iter=2, sampler_name="DPM++ 2M", steps=4, override_settings=LAYOUTS[layout],
                prompt=long_prompt if layout == "padded" else "a landscape")
    plain = webui.generate("txt2img", plain_payload(**over), model=model)
    res = webui.generate("txt2img", with_regions(plain_payload(**over), DOC), model=model)
    assert len(res["images"]) == 6  # batch 3 x batch count 2
    assert LAYOUT_INFOTEXT[layout] in json.loads(res["info"])["infotexts"][0], "the layout was not in effect"
    for i, (a, b) in enumerate(zip(res["images"], plain["images"])):
        assert pixels(a) != pixels(b), f"image {i}: the regions changed nothing"
        assert regedit_value(infotext_of(a)), f"image {i}: no regions in the infotext"
    again = webui.generate("txt2img", plain_payload(**over), model=model)
    assert [pixels(b) for b in again["images"]] == [pixels(b) for b in plain["images"]]
    assert_plain_unchanged(f"regions with the {layout} layout")  # and the settings were restored


def test_cfg_scale_one(webui):
    over = dict(cfg_scale=1.0, batch_size=2)
    plain = webui.generate("txt2img", plain_payload(**over))
    res = webui.generate("txt2img", with_regions(plain_payload(**over), DOC))
    assert all(pixels(a) != pixels(b) for a, b in zip(res["images"], plain["images"]))


def test_layout_preview_image(webui):
    payload = plain_payload(batch_size=2)
    payload["alwayson_scripts"] = {"regedit": {"args": [DOC, True, True]}}  # document, enabled, preview
    res = webui.generate("txt2img", payload)
    assert len(res["images"]) == 3, "two images and the layout preview"
    # a 64x64 image is enlarged 4x, pixel for pixel, so the labels stay legible
    assert decode_png(res["images"][2]).size == tuple(4 * side for side in decode_png(res["images"][0]).size)


# ---- opt-in: the full SD 1.5 architecture (REGEDIT_E2E_FULL_SD15=1) ---------------------------------

@pytest.mark.skipif(os.environ.get("REGEDIT_E2E_FULL_SD15") != "1",
                    reason="set REGEDIT_E2E_FULL_SD15=1 to run regions on the full SD 1.5 architecture (~2 GB)")
@pytest.mark.parametrize("sampler,batch,hires", [("Euler a", 1, False), ("DPM++ 2M", 2, True)])
def test_full_sd15_architecture(webui, sampler, batch, hires):
    from e2e_webui import SD15_FULL

    over = dict(sampler_name=sampler, batch_size=batch, steps=2)
    if hires:
        over.update(HIRES)
    plain = webui.generate("txt2img", plain_payload(**over), model=SD15_FULL)
    res = webui.generate("txt2img", with_regions(plain_payload(**over), DOC), model=SD15_FULL)
    assert len(res["images"]) == batch
    for i, b64 in enumerate(res["images"]):
        assert pixels(b64) != pixels(plain["images"][i])
        assert regedit_value(infotext_of(b64))
    again = webui.generate("txt2img", plain_payload(**over), model=SD15_FULL)
    assert [pixels(b) for b in again["images"]] == [pixels(b) for b in plain["images"]]


def test_settings_section(webui):
    """Settings → RegEdit: the accordion's starting values, and previews read when a generation starts."""
    page = webui.get("/config").text  # the Settings page's components (the options API lists only the values
    # in opts.data, which lacks every extension's defaults when the ControlNet extension is installed too)
    for key in ("regedit_default_mode", "regedit_default_whole_start", "regedit_default_layout_init",
                "regedit_default_init_noise", "regedit_default_kssa", "regedit_always_preview", "regedit_segmenter",
                "regedit_inversion_cache_mb"):
        assert f'"setting_{key}"' in page, key
    options = webui.get("/sdapi/v1/options").json()
    assert options.get("regedit_default_layout_init", True) is True
    assert options.get("regedit_always_preview", False) is False
    plain = webui.generate("txt2img", with_regions(plain_payload(), DOC))
    assert len(plain["images"]) == 1
    assert webui.post("/sdapi/v1/options", {"regedit_always_preview": True}).status_code == 200
    try:
        shown = webui.generate("txt2img", with_regions(plain_payload(), DOC))
        assert len(shown["images"]) == 2  # the image and its layout preview
    finally:
        webui.post("/sdapi/v1/options", {"regedit_always_preview": False})
