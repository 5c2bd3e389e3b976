"""LoRA per region in the real WebUI, through its built-in Lora extension, on LoRA files the tests
write for the test checkpoints: attention mode (the region's prompt encoding and its keys and
values), latent mode (the region's own pass with the whole LoRA), alongside a main-prompt LoRA, an
unknown name refused, and the model as it was afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from e2e_webui import SD1, SDXL, infotext_of, pixel_diff, plain_payload, with_regions

DOC = {"prompt": "a landscape", "regions": [
    {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
    {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square"}]}


def tagged(doc: dict, tag: str, mode: str = "attention") -> dict:
    regions = [dict(doc["regions"][0], prompt=f"{doc['regions'][0]['prompt']} {tag}"), doc["regions"][1]]
    return dict(doc, regions=regions, mode=mode)


def write_lora(webui, checkpoint: str, name: str, match, scale: float = 0.5, rank: int = 4) -> Path:
    """A kohya LoRA (compvis layer names, as SDXL LoRAs and many SD1 ones are written) for the layers of
    the checkpoint's UNet (``lora_unet_``) and SD1 text encoder (``lora_te_``) that ``match`` accepts."""
    path = webui.work / "models" / "Stable-diffusion" / f"{checkpoint}.safetensors"
    g = torch.Generator().manual_seed(hash(name) % 1000)
    tensors = {}
    with safe_open(str(path), "pt") as f:
        for key in f.keys():
            for prefix, lora_prefix in (("model.diffusion_model.", "lora_unet_"),
                                        ("cond_stage_model.transformer.text_model.", "lora_te_text_model_")):
                if key.startswith(prefix) and key.endswith(".weight") and match(key):
                    shape = f.get_slice(key).get_shape()
                    if len(shape) != 2:
                        continue
                    layer = lora_prefix + key[len(prefix):-len(".weight")].replace(".", "_")
                    tensors[f"{layer}.lora_down.weight"] = torch.randn(rank, shape[1], generator=g) * scale
                    tensors[f"{layer}.lora_up.weight"] = torch.randn(shape[0], rank, generator=g) * scale
                    tensors[f"{layer}.alpha"] = torch.tensor(float(rank))
    assert tensors, f"no layer of {checkpoint} matched"
    out = webui.lora_dir / f"{name}.safetensors"
    save_file(tensors, str(out))
    return out


def kv(key: str) -> bool:
    return "attn2.to_k" in key or "attn2.to_v" in key


@pytest.mark.parametrize("model", [SD1, SDXL])
def test_attention_mode_applies_a_regions_lora_to_that_region(webui, model, assert_plain_unchanged):
    write_lora(webui, model, f"kv_{model}", kv)
    write_lora(webui, model, f"zero_{model}", kv, scale=0.0)
    payload = plain_payload(steps=4, batch_size=2, sampler_name="Euler a")
    regions = webui.generate("txt2img", with_regions(payload, DOC), model=model)
    zero = webui.generate("txt2img", with_regions(payload, tagged(DOC, f"<lora:zero_{model}:1>")), model=model)
    offset = webui.log_size()
    inked = webui.generate("txt2img", with_regions(payload, tagged(DOC, f"<lora:kv_{model}:1>")), model=model)
    again = webui.generate("txt2img", with_regions(payload, tagged(DOC, f"<lora:kv_{model}:1>")), model=model)
    log = webui.log_since(offset)
    for i in range(2):
        assert pixel_diff(zero["images"][i], regions["images"][i])[0] == 0, "a LoRA that changes nothing changed the image"
        assert pixel_diff(inked["images"][i], regions["images"][i])[1] > 0.1, "the region's LoRA changed nothing"
        assert pixel_diff(inked["images"][i], again["images"][i])[0] == 0
    assert f"RegEdit: LoRA per region (its prompt's encoding and its cross-attention keys and values): 1: " \
           f"<lora:kv_{model}:1>" in log, log[-3000:]
    assert "in region prompts: extra networks apply from the main prompt only" not in log
    assert f"<lora:kv_{model}:1>" in infotext_of(inked["images"][0])
    assert_plain_unchanged(f"a region's LoRA in attention mode on {model}")


def test_latent_mode_runs_the_regions_pass_with_its_whole_lora(webui, assert_plain_unchanged):
    write_lora(webui, SD1, "whole_sd1", lambda k: "attn1" in k or ".ff." in k or "mlp" in k)
    payload = plain_payload(steps=3, sampler_name="DPM++ 2M")
    regions = webui.generate("txt2img", with_regions(payload, dict(DOC, mode="latent")))
    offset = webui.log_size()
    inked = webui.generate("txt2img", with_regions(payload, tagged(DOC, "<lora:whole_sd1:0.8>", "latent")))
    again = webui.generate("txt2img", with_regions(payload, tagged(DOC, "<lora:whole_sd1:0.8>", "latent")))
    assert pixel_diff(inked["images"][0], regions["images"][0])[1] > 0.1
    assert pixel_diff(inked["images"][0], again["images"][0])[0] == 0
    assert "RegEdit: LoRA per region (its own UNet pass): 1: <lora:whole_sd1:0.8>" in webui.log_since(offset)
    # attention mode uses only the key/value part: this LoRA has none, so its region is as without it
    attention = webui.generate("txt2img", with_regions(payload, tagged(DOC, "<lora:whole_sd1:0.8>")))
    plain_regions = webui.generate("txt2img", with_regions(payload, DOC))
    assert pixel_diff(attention["images"][0], plain_regions["images"][0])[1] > 0.1  # its text-encoder part acts
    assert_plain_unchanged("a region's LoRA in latent mode")


def test_a_main_prompt_lora_and_a_regions_lora_together(webui, assert_plain_unchanged):
    write_lora(webui, SD1, "kv_sd1", kv)
    payload = plain_payload(steps=3, prompt="a landscape <lora:kv_sd1:0.5>")
    main_only = webui.generate("txt2img", with_regions(payload, DOC))
    both = webui.generate("txt2img", with_regions(payload, tagged(DOC, "<lora:kv_sd1:1>")))
    assert pixel_diff(both["images"][0], main_only["images"][0])[1] > 0.1
    assert "Lora hashes" in json.loads(both["info"])["infotexts"][0]  # the WebUI's own LoRA still ran
    assert_plain_unchanged("a main-prompt LoRA with a region's LoRA")


def test_an_unknown_lora_is_refused_with_the_field(webui, assert_plain_unchanged):
    r = webui.post("/sdapi/v1/txt2img", with_regions(plain_payload(steps=2), tagged(DOC, "<lora:no_such_lora:1>")))
    assert r.status_code == 422, r.text[:500]
    assert "regions[0].prompt: no LoRA named 'no_such_lora'" in r.text and "models/Lora" in r.text, r.text[:800]
    assert_plain_unchanged("a region naming an unknown LoRA")
