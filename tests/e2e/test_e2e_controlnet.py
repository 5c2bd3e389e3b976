"""ControlNet alongside RegEdit in the real WebUI: with the sd-webui-controlnet extension installed and
a unit active, the regions still apply, the control still applies, and both extensions' hooks come
off afterwards (plain and region-only generations bit-identical to before).

Skipped unless the extension is installed in the WebUI under test (``extensions/sd-webui-controlnet``)
and the full SD 1.5 architecture is written (``REGEDIT_E2E_FULL_SD15=1``): the extension builds every
SD 1.x ControlNet with SD 1.5's fixed configuration (320 channels), so it cannot pair with the
small test checkpoint. The ControlNet is written here: diffusers' ``ControlNetModel`` (SD 1.5's
ControlNet architecture) with random weights, its zero convolutions made non-zero so that it acts.
"""

from __future__ import annotations

import os

import pytest

from e2e_webui import SD15_FULL, pixel_diff, plain_payload, png_b64, with_regions

DOC = {"prompt": "a landscape", "regions": [
    {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
    {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square"}]}
NAME = "regedit_e2e_control"

pytestmark = pytest.mark.skipif(os.environ.get("REGEDIT_E2E_FULL_SD15") != "1",
                                reason="needs REGEDIT_E2E_FULL_SD15=1 (ControlNet pairs only with SD 1.5's channels)")


@pytest.fixture(scope="module")
def control(webui):
    """The ControlNet's name as the extension lists it, and a hint image."""
    if not webui.has_controlnet:
        pytest.skip("the sd-webui-controlnet extension is not installed in this WebUI")
    import torch
    from diffusers import ControlNetModel
    from PIL import Image, ImageDraw

    path = webui.controlnet_dir / f"{NAME}.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        model = ControlNetModel(cross_attention_dim=768)  # SD 1.5's ControlNet: 320/640/1280/1280
        with torch.no_grad():
            for name, p in model.named_parameters():  # zero convolutions: made to act
                if name.startswith(("controlnet_down_blocks", "controlnet_mid_block",
                                    "controlnet_cond_embedding.conv_out")):
                    p.normal_(0.0, 0.05)
        from safetensors.torch import save_file

        save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
    names = webui.get("/controlnet/model_list?update=true").json()["model_list"]
    listed = next((n for n in names if n.startswith(NAME)), None)
    assert listed, names
    hint = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(hint).ellipse((16, 16, 48, 48), fill="white")
    return listed, png_b64(hint)


def with_control(payload: dict, control) -> dict:
    name, hint = control
    scripts = dict(payload.get("alwayson_scripts", {}))
    scripts["controlnet"] = {"args": [{"enabled": True, "module": "none", "model": name, "image": hint,
                                       "weight": 1.0, "resize_mode": "Crop and Resize", "processor_res": 64,
                                       "control_mode": "Balanced", "pixel_perfect": False}]}
    return dict(payload, alwayson_scripts=scripts)


@pytest.mark.parametrize("mode,sampler", [("attention", "Euler a"), ("latent", "DPM++ 2M")])
def test_regions_and_a_controlnet_unit_in_one_generation(webui, control, mode, sampler):
    payload = plain_payload(steps=3, sampler_name=sampler)
    doc = dict(DOC, mode=mode)
    plain = webui.generate("txt2img", payload, model=SD15_FULL)
    regions = webui.generate("txt2img", with_regions(payload, doc), model=SD15_FULL)
    offset = webui.log_size()
    controlled = webui.generate("txt2img", with_control(payload, control), model=SD15_FULL)
    both = webui.generate("txt2img", with_control(with_regions(payload, doc), control), model=SD15_FULL)
    log = webui.log_since(offset)
    assert "Traceback" not in log and "Error" not in log, log[-3000:]
    assert pixel_diff(controlled["images"][0], plain["images"][0])[1] > 0.1, "the ControlNet did not act"
    assert pixel_diff(both["images"][0], controlled["images"][0])[1] > 0.1, "the regions did not apply with it"
    assert pixel_diff(both["images"][0], regions["images"][0])[1] > 0.1, "the ControlNet did not apply with regions"
    assert "RegEdit regions" in both["info"] and "ControlNet 0" in both["info"]
    # both extensions' hooks came off: plain and region-only generations are as before
    assert pixel_diff(webui.generate("txt2img", payload, model=SD15_FULL)["images"][0], plain["images"][0])[0] == 0
    again = webui.generate("txt2img", with_regions(payload, doc), model=SD15_FULL)
    assert pixel_diff(again["images"][0], regions["images"][0])[0] == 0


def test_layout_guidance_a_regions_lora_and_a_controlnet_unit_together(webui, control):
    """The README's API example: all three in one generation, each reported, nothing left behind."""
    from test_e2e_loras import kv, write_lora

    write_lora(webui, SD15_FULL, "kv_sd15", kv)
    payload = plain_payload(steps=3, sampler_name="Euler a")
    doc = dict(DOC, guidance={"until": 0.5}, regions=[dict(DOC["regions"][0], prompt="a red circle <lora:kv_sd15:0.8>"),
                                                       DOC["regions"][1]])
    plain = webui.generate("txt2img", payload, model=SD15_FULL)
    offset = webui.log_size()
    both = webui.generate("txt2img", with_control(with_regions(payload, doc), control), model=SD15_FULL)
    log = webui.log_since(offset)
    assert "Traceback" not in log, log[-3000:]
    assert "RegEdit: layout guidance: E" in log and "RegEdit: LoRA per region" in log, log[-3000:]
    assert "ControlNet 0" in both["info"] and "<lora:kv_sd15:0.8>" in both["info"]
    assert pixel_diff(webui.generate("txt2img", payload, model=SD15_FULL)["images"][0], plain["images"][0])[0] == 0
