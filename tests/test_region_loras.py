"""LoRA per region (``lib_regedit/regions/loras.py``, ``lib_regedit/regions/lora_files.py``): the tag syntax, the
files, the key/value terms in attention mode, the whole LoRA per pass in latent mode, the text
encoder's part, the weights restored, and bad names refused before any work."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lib_regedit.api import generate
from lib_regedit.errors import RegEditError
from lib_regedit.regions.lora_files import DiffusersLoras, random_lora, read_lora
from lib_regedit.regions.loras import LoraTag, lora_tags
from tiny_models import pixels

BOX = {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0}


def doc(tag: str = "", mode: str = "attention") -> dict:
    return {"prompt": "a red circle and a blue square", "mode": mode, "init": "noise",
            "regions": [dict(BOX, prompt=f"a red circle {tag}".strip()),
                        {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"}]}


def write_lora(path, model, part_prefix: str, match, rank: int = 4, scale: float = 1.0, seed: int = 0, peft=False):
    """A LoRA in kohya form (or PEFT's) for the Linear layers of ``model`` whose path ``match`` accepts."""
    save_file(random_lora(model, part_prefix, match, torch.Generator().manual_seed(seed), rank=rank, scale=scale,
                          peft=peft), str(path))
    return path


def kv_only(name: str) -> bool:
    return "attn2.to_k" in name or "attn2.to_v" in name


def test_tags_follow_the_webui_syntax():
    assert lora_tags("a cat <lora:ink> <lora:oil:0.5> <LORA:pen:0.3:1.2> <lora:x:te=0.2:unet=0.7>") == [
        LoraTag("ink"), LoraTag("oil", 0.5, 0.5), LoraTag("pen", 0.3, 1.2), LoraTag("x", 0.2, 0.7)]
    assert lora_tags("<hypernet:h:1> plain") == []
    for bad in ("<lora::1>", "<lora:a:heavy>"):
        with pytest.raises(RegEditError, match=r"regions\[1\]\.prompt.*<lora:NAME:WEIGHT>"):
            lora_tags(bad, "regions[1].prompt")


def test_files_in_kohya_and_peft_form_give_the_same_update(sd, tmp_path):
    kohya = write_lora(tmp_path / "k.safetensors", sd.unet, "lora_unet_", kv_only)
    peft = write_lora(tmp_path / "p.safetensors", sd.unet, "unet.", kv_only, peft=True)
    loras = DiffusersLoras(sd, {"k": kohya, "p": peft})
    linear = sd.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k
    ctx = torch.randn(1, 77, linear.in_features)
    k = loras.projection([LoraTag("k", 1.0, 0.5)])(linear, ctx)
    p = loras.projection([LoraTag("p", 1.0, 0.5)])(linear, ctx)
    assert torch.allclose(k, p, atol=1e-5)  # alpha = rank: scale 1 in both
    layer = read_lora(kohya)["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"]
    merged = torch.nn.functional.linear(ctx, linear.weight + 0.5 * layer.up @ layer.down, linear.bias)
    assert torch.allclose(linear(ctx) + k, merged, atol=1e-4)
    assert loras.projection([LoraTag("k")])(sd.unet.down_blocks[0].attentions[0].proj_in, ctx[..., :32]) is None


def test_attention_mode_a_regions_lora_changes_its_box(sd, tmp_path):
    write_lora(tmp_path / "ink.safetensors", sd.unet, "lora_unet_", kv_only, scale=0.5)
    write_lora(tmp_path / "zero.safetensors", sd.unet, "lora_unet_", kv_only, scale=0.0)
    before = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    plain = pixels(generate(sd, doc(), seed=3, steps=4).image).astype(float)
    zero = generate(sd, doc("<lora:zero:1>"), seed=3, steps=4, loras=tmp_path)
    inked = generate(sd, doc("<lora:ink:1>"), seed=3, steps=4, loras=tmp_path)
    assert np.array_equal(pixels(zero.image), plain)  # a LoRA that changes nothing changes nothing
    assert np.abs(pixels(inked.image).astype(float) - plain).mean() > 1.0
    assert any(n.startswith("LoRA per region (its prompt's encoding and its cross-attention keys") and
               "1: <lora:ink:1>" in n for n in inked.extras["notes"])
    assert "<lora:ink:1>" in json.loads(inked.document.to_json())["regions"][0]["prompt"]  # infotext keeps the tag
    assert all(torch.equal(v, sd.unet.state_dict()[k]) for k, v in before.items())


def test_attention_mode_the_lora_reaches_only_the_queries_in_its_box(sd, tmp_path):
    """The first cross-attention layer sees the same input with and without the LoRA: its fused
    output differs exactly at the positions of the region's box (feather 0)."""
    from lib_regedit.api import _context, encode, tokenize
    from lib_regedit.attention.controller import Controller, Effect, GenerationState
    from lib_regedit.backends import diffusers_backend
    from lib_regedit.documents import parse_region_document
    from lib_regedit.regions.prompting import build_effects

    write_lora(tmp_path / "ink.safetensors", sd.unet, "lora_unet_", kv_only, scale=0.5)

    class First(Effect):
        cross, self_ = True, False
        out = None

        def observe(self, call, out):
            if self.out is None and call.is_cross:
                self.out, self.hw = out.detach().clone(), call.hw

    outs = []
    for tag in ("", "<lora:ink:1>"):
        document = parse_region_document(dict(doc(tag), regions=[dict(r, feather=0) for r in doc(tag)["regions"]]))
        cond, uncond, _, _ = encode(sd, document.prompt, "")
        built = build_effects(document, lambda p: _context(sd, p), lambda p: tokenize(sd, p), "attention",
                              loras=DiffusersLoras.from_folder(sd, tmp_path))
        state = GenerationState(total_steps=4, cond_reference=cond, uncond_reference=uncond, cond_first=False)
        built.install(state)
        first = First()
        z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
        with torch.no_grad(), diffusers_backend.attached(sd.unet, Controller([*built.effects, first], state)):
            sd.unet(torch.cat([z, z]), 500, encoder_hidden_states=torch.cat([uncond, cond]))
        outs.append(first)
    h, w = outs[0].hw
    diff = (outs[1].out - outs[0].out).abs().amax(dim=(0, 1, 3)).reshape(h, w)  # over rows, heads, channels
    assert (diff[:, : w // 2] > 1e-4).all() and (diff[:, w // 2:] == 0).all(), diff


def test_latent_mode_runs_each_regions_pass_with_its_whole_lora_and_restores(sd, tmp_path):
    write_lora(tmp_path / "ink.safetensors", sd.unet, "lora_unet_", lambda n: "attn1" in n or "ff" in n, scale=0.3)
    before = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    plain = generate(sd, doc(mode="latent"), seed=3, steps=3)
    inked = generate(sd, doc("<lora:ink:0.8>", mode="latent"), seed=3, steps=3, loras=tmp_path)
    again = generate(sd, doc("<lora:ink:0.8>", mode="latent"), seed=3, steps=3, loras=tmp_path)
    assert np.abs(pixels(inked.image).astype(float) - pixels(plain.image)).mean() > 1.0
    assert np.array_equal(pixels(inked.image), pixels(again.image))
    assert any("its own UNet pass" in n for n in inked.extras["notes"])
    assert all(torch.equal(v, sd.unet.state_dict()[k]) for k, v in before.items())
    # attention mode does not use these layers (self-attention and feed-forward are shared by all regions)
    attention = generate(sd, doc("<lora:ink:0.8>"), seed=3, steps=3, loras=tmp_path)
    assert np.array_equal(pixels(attention.image), pixels(generate(sd, doc(), seed=3, steps=3).image))


def test_the_text_encoders_part_encodes_the_regions_prompt(sd, tmp_path):
    write_lora(tmp_path / "te.safetensors", sd.text_encoder, "lora_te_", lambda n: "mlp" in n, scale=0.5)
    before = {k: v.clone() for k, v in sd.text_encoder.state_dict().items()}
    plain = generate(sd, doc(), seed=3, steps=3)
    te = generate(sd, doc("<lora:te:1>"), seed=3, steps=3, loras={"te": tmp_path / "te.safetensors"})
    assert np.abs(pixels(te.image).astype(float) - pixels(plain.image)).mean() > 0.5
    assert all(torch.equal(v, sd.text_encoder.state_dict()[k]) for k, v in before.items())


def test_bad_names_and_files_are_refused_before_any_work(sd, tmp_path, monkeypatch):
    write_lora(tmp_path / "ink.safetensors", sd.unet, "lora_unet_", kv_only)
    save_file({"something.weight": torch.zeros(2)}, str(tmp_path / "odd.safetensors"))
    save_file({"lora_unet_nowhere.lora_down.weight": torch.zeros(1, 2), "lora_unet_nowhere.lora_up.weight":
               torch.zeros(2, 1)}, str(tmp_path / "other.safetensors"))
    monkeypatch.setattr(sd, "__call__", lambda *a, **k: pytest.fail("sampling started"))
    for tag, message in (("<lora:missing:1>", r"regions\[0\]\.prompt: no LoRA named 'missing' \(known: ink, odd, other\)"),
                         ("<lora:odd>", "odd.safetensors holds no LoRA layers"),
                         ("<lora:other>", "none of the layers of LoRA 'other' match this model")):
        with pytest.raises(RegEditError, match=message):
            generate(sd, doc(tag), seed=0, steps=2, loras=tmp_path)
    with pytest.raises(RegEditError, match="loras: .* is not a folder"):
        generate(sd, doc("<lora:ink>"), loras=tmp_path / "nope")


def test_without_lora_support_the_tags_are_noted_as_before(sd):
    result = generate(sd, doc("<lora:ink:1>"), seed=0, steps=2)
    assert any("<lora:ink:1> in region prompts: extra networks apply from the main prompt only" in n
               for n in result.extras["notes"])


def test_layout_guidance_binds_the_regions_words_not_its_lora_tag(sd):
    from lib_regedit.api import _layout_guidance
    from lib_regedit.documents import parse_region_document

    contexts = [torch.zeros(1, 77, 32)] * 2
    tagged = _layout_guidance(sd, parse_region_document(doc("<lora:ink:0.8>")), 4, contexts)
    plain = _layout_guidance(sd, parse_region_document(doc()), 4, contexts)
    assert [r.tokens for r in tagged.capture.regions] == [r.tokens for r in plain.capture.regions]
