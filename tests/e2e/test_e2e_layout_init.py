"""Layout init (``"init": "layout"``) in the real WebUI on SD1 and SDXL: it changes the start, keeps
seeds apart, survives hires fix and batches, is noted and skipped in img2img, and leaves no trace."""

from __future__ import annotations

import re

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


GUIDED = re.compile(r"RegEdit: layout guidance: E ([\d.]+) -> ([\d.]+) over (\d+) steps, [\d.]+ s "
                    r"\((\d+)% of sampling\)")


@pytest.mark.parametrize("model", [SD1, SDXL])
@pytest.mark.parametrize("sampler", ["Euler a", "DDIM", "DPM++ 2M", "Heun"])
def test_layout_guidance_runs_with_every_sampler(webui, model, sampler, assert_plain_unchanged):
    """Guidance moves the sampler's latent at the CFG denoiser: every sampler takes it, each sampler step
    is guided once (Heun calls the denoiser twice a step), the cost is printed, the seed reproduces."""
    payload = plain_payload(steps=4, batch_size=2, sampler_name=sampler)
    doc = dict(DOC, guidance={"until": 0.5})
    regions = webui.generate("txt2img", with_regions(payload, DOC), model=model)
    offset = webui.log_size()
    guided = webui.generate("txt2img", with_regions(payload, doc), model=model)
    found = GUIDED.findall(webui.log_since(offset))
    assert len(found) == 1 and found[0][2] == "2", found  # until 0.5 of 4 steps
    again = webui.generate("txt2img", with_regions(payload, doc), model=model)
    for i in range(2):
        assert pixel_diff(guided["images"][i], regions["images"][i])[1] > 0.1, f"image {i}: guidance changed nothing"
        assert pixel_diff(guided["images"][i], again["images"][i])[0] == 0
    assert '\\"until\\":0.5' in infotext_of(guided["images"][0])
    assert_plain_unchanged(f"layout guidance on {model} with {sampler}")


def test_layout_guidance_guides_the_first_pass_only_and_says_where_it_does_not_run(webui, assert_plain_unchanged):
    doc = dict(DOC, guidance=True)
    hires = plain_payload(steps=4, enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.5,
                          hr_second_pass_steps=4, n_iter=2)
    offset = webui.log_size()
    res = webui.generate("txt2img", with_regions(hires, doc))
    found = GUIDED.findall(webui.log_since(offset))
    assert [f[2] for f in found] == ["1", "1"], found  # each batch's first pass, 0.2 of 4 steps; not hires fix
    assert [decode_png(b).size for b in res["images"]] == [(128, 128)] * 2
    offset = webui.log_size()
    webui.generate("txt2img", with_regions(plain_payload(steps=3), dict(doc, mode="latent")))
    init = png_b64(decode_png(res["images"][0]).resize((64, 64)))
    webui.generate("img2img", with_regions(dict(plain_payload(steps=3), init_images=[init], denoising_strength=0.5),
                                           doc))
    log = webui.log_since(offset)
    assert "RegEdit: layout guidance runs in attention mode only" in log
    assert "RegEdit: layout guidance applies to txt2img" in log
    assert not GUIDED.search(log)
    assert_plain_unchanged("layout guidance with hires fix, latent mode and img2img")
