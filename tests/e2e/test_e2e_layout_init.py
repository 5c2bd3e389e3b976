"""Layout init (``"init": "layout"``) in the real WebUI on SD1 and SDXL: it changes the start, keeps
seeds apart, survives hires fix and batches, is noted and skipped in img2img, and leaves no trace."""

from __future__ import annotations

import pytest

from e2e_webui import SD1, SDXL, decode_png, infotext_of, pixel_diff, plain_payload, png_b64, with_regions

DOC = {"prompt": "a landscape", "regions": [
    {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
    {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square"}]}


@pytest.mark.parametrize("model", [SD1, SDXL])
@pytest.mark.parametrize("sampler", ["Euler a", "DDIM", "DPM++ 2M"])
def test_layout_init_changes_the_start_and_keeps_seeds(webui, model, sampler, assert_plain_unchanged):
    payload = plain_payload(steps=4, batch_size=2, sampler_name=sampler)
    noise = webui.generate("txt2img", with_regions(payload, dict(DOC, init="noise")), model=model)
    layout = webui.generate("txt2img", with_regions(payload, dict(DOC, init="layout")), model=model)
    again = webui.generate("txt2img", with_regions(payload, dict(DOC, init="layout")), model=model)
    assert pixel_diff(layout["images"][0], noise["images"][0])[1] > 0.5
    assert pixel_diff(layout["images"][0], layout["images"][1])[1] > 0.5, "both seeds drew the same image"
    assert pixel_diff(layout["images"][0], again["images"][0])[0] == 0
    assert '\\"init\\":\\"layout\\"' in infotext_of(layout["images"][0])
    assert_plain_unchanged(f"layout init on {model} with {sampler}")


def test_layout_init_with_hires_fix_and_img2img(webui, assert_plain_unchanged):
    doc = dict(DOC, init="layout")
    hires = plain_payload(steps=3, enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.5,
                          hr_second_pass_steps=2, n_iter=2)  # two batches: the sketch is inverted once
    res = webui.generate("txt2img", with_regions(hires, doc))
    assert [decode_png(b).size for b in res["images"]] == [(128, 128)] * 2
    assert pixel_diff(res["images"][0], res["images"][1])[1] > 0.5
    init = png_b64(decode_png(res["images"][0]).resize((64, 64)))
    img2img = dict(plain_payload(steps=3), init_images=[init], denoising_strength=0.5)
    offset = webui.log_size()
    webui.generate("img2img", with_regions(img2img, doc))
    assert "RegEdit: init layout applies to txt2img" in webui.log_since(offset)
    assert_plain_unchanged("layout init with hires fix and in img2img")


def test_layout_guidance_is_noted_and_skipped(webui, assert_plain_unchanged):
    """Layout guidance runs in the Python API and the CLI; the WebUI says so once and draws the regions."""
    payload = plain_payload(steps=3, n_iter=2)
    regions = webui.generate("txt2img", with_regions(payload, DOC))
    offset = webui.log_size()
    guided = webui.generate("txt2img", with_regions(payload, dict(DOC, guidance=True)))
    assert webui.log_since(offset).count("RegEdit: layout guidance runs in the Python API") == 1
    assert pixel_diff(guided["images"][0], regions["images"][0])[0] == 0
    assert '\\"guidance\\":{\\"enabled\\":true}' in infotext_of(guided["images"][0])
    assert_plain_unchanged("a document asking for layout guidance")
