"""Region fusion through real diffusers pipelines (tiny random-weight models built in-process)."""

import numpy as np
import pytest
import torch

from lib_regedit.api import generate, generate_plain
from lib_regedit.attention.call import AttentionCall, RowLayout
from lib_regedit.attention.controller import GenerationState
from lib_regedit.attention.effects.region_fusion import RegionFusion, RegionPrompt
from tiny_models import pixels, tiny_sdxl_pipeline

PROMPT = "a red circle and a blue square"
DOC = {"prompt": PROMPT, "negative_prompt": "blurry", "regions": [
    {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
    {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square", "negative_prompt": "green"}]}


def test_plain_run_is_bit_identical_before_and_after_regions(sd):
    before = generate_plain(sd, PROMPT, "blurry", seed=3, steps=3)
    processors = {k: type(v) for k, v in sd.unet.attn_processors.items()}
    generate(sd, DOC, seed=3, steps=3)
    generate(sd, DOC, seed=3, steps=3, mode="latent")
    with pytest.raises(Exception):
        generate(sd, DOC, seed=3, steps=3, width=33)
    after = generate_plain(sd, PROMPT, "blurry", seed=3, steps=3)
    assert np.array_equal(pixels(before.image), pixels(after.image))
    assert {k: type(v) for k, v in sd.unet.attn_processors.items()} == processors
    assert not sd.unet._forward_pre_hooks and not sd.unet._forward_hooks


@pytest.mark.parametrize("mode", ["attention", "latent"])
def test_regions_that_repeat_the_whole_prompt_change_nothing(sd, mode):
    # the identity holds where every source says the whole prompt: the background too, from noise
    doc = {"prompt": PROMPT, "negative_prompt": "blurry", "background_prompt": "whole", "init": "noise", "regions": [
        {"x": 0.0, "y": 0.0, "w": 0.6, "h": 0.6, "prompt": PROMPT},
        {"x": 0.3, "y": 0.3, "w": 0.7, "h": 0.7, "prompt": PROMPT, "weight": 2.5}]}
    plain = generate_plain(sd, PROMPT, "blurry", seed=5, steps=3)
    fused = generate(sd, doc, seed=5, steps=3, mode=mode)
    assert np.abs(pixels(plain.image) - pixels(fused.image)).max() <= 2


@pytest.mark.parametrize("mode", ["attention", "latent"])
def test_region_prompts_change_the_image(sd, mode):
    plain = generate_plain(sd, PROMPT, "blurry", seed=5, steps=3)
    fused = generate(sd, DOC, seed=5, steps=3, mode=mode)
    assert np.abs(pixels(plain.image) - pixels(fused.image)).mean() > 1


def test_attention_and_latent_modes_agree_in_kind(sd):
    a = pixels(generate(sd, DOC, seed=2, steps=3).image)
    b = pixels(generate(sd, DOC, seed=2, steps=3, mode="latent").image)
    plain = pixels(generate_plain(sd, PROMPT, "blurry", seed=2, steps=3).image)
    assert np.abs(a - b).mean() < np.abs(a - plain).mean() + np.abs(b - plain).mean()


def test_parameters_text_carries_the_document(sd):
    result = generate(sd, DOC, seed=1, steps=2, batch_size=2)
    assert len(result.images) == 2
    assert "RegEdit regions: " in result.parameters and "Seed: 1" in result.parameters
    assert result.parameters.startswith(PROMPT + "\nNegative prompt: blurry\n")


def test_sdxl_pipeline_with_regions_and_batch():
    pipe = tiny_sdxl_pipeline()
    plain = generate_plain(pipe, PROMPT, "blurry", seed=1, steps=2)
    for mode in ("attention", "latent"):
        result = generate(pipe, DOC, seed=1, steps=2, batch_size=2, mode=mode)
        assert len(result.images) == 2 and result.image.size == plain.image.size
        assert np.abs(pixels(plain.image) - pixels(result.image)).mean() > 0.5
    again = generate_plain(pipe, PROMPT, "blurry", seed=1, steps=2)
    assert np.array_equal(pixels(plain.image), pixels(again.image))


def _call(q, k, v, rows, step=0, total=10, hw=(2, 2)):
    proj = {}

    def project(ctx):
        return proj[id(ctx)]

    return AttentionCall(q=q, k=k, v=v, is_cross=True, layer="down.attn2", hw=hw, rows=rows, step=step,
                         total_steps=total, latent_hw=hw, project_context=project), proj


def test_fusion_uses_the_region_prompt_inside_its_box_only():
    torch.manual_seed(0)
    q = torch.randn(2, 1, 4, 8)
    k_own, v_own = torch.randn(2, 1, 5, 8), torch.randn(2, 1, 5, 8)
    ctx = torch.zeros(1, 5, 8)
    k_r, v_r = torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    region = RegionPrompt(0.0, 0.0, 0.5, 1.0, feather=0.0, weight=1.0, context=ctx)
    fusion = RegionFusion([region], background_weight=1.0, whole_start=1.0, whole_weight=0.0)
    call, proj = _call(q, k_own, v_own, RowLayout(cond=(1,), uncond=(0,)))
    proj[id(ctx)] = (k_r, v_r)
    out = fusion.compute(call)
    own = torch.nn.functional.scaled_dot_product_attention(q, k_own, v_own)
    region_out = torch.nn.functional.scaled_dot_product_attention(q[1:], k_r, v_r)
    torch.testing.assert_close(out[0], own[0])  # uncond row untouched (no negative prompts)
    left = torch.tensor([0, 2])  # positions (row, col) = (0, 0) and (1, 0): inside the left-half box
    torch.testing.assert_close(out[1, :, left], region_out[0, :, left], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(out[1, :, [1, 3]], own[1, :, [1, 3]], atol=1e-3, rtol=1e-3)


def test_row_classification_reads_the_context():
    cond, uncond = torch.randn(2, 77, 8), torch.randn(2, 77, 8)
    state = GenerationState(cond_reference=cond, uncond_reference=uncond, cond_first=True)
    assert state.classify_rows(torch.cat([cond, uncond]), 4) == RowLayout((0, 1), (2, 3))
    assert state.classify_rows(uncond, 2) == RowLayout((), (0, 1))  # a separate uncond call
    assert state.classify_rows(cond, 2) == RowLayout((0, 1), ())  # uncond skipped
    assert state.classify_rows(torch.cat([uncond[:1], cond[:1]]), 2) == RowLayout((1,), (0,))
    same = GenerationState(cond_reference=cond[:1], uncond_reference=cond[:1], cond_first=False)
    assert same.classify_rows(torch.cat([cond[:1], cond[:1]]), 2) == RowLayout((1,), (0,))
    # the WebUI pads to a common length by repeating chunks: compare the common prefix
    assert state.classify_rows(torch.cat([cond, cond], 1), 2) == RowLayout((0, 1), ())


def test_rows_are_read_from_a_half_precision_context():
    """A half-precision UNet is handed the sampler's float32 conditioning cast to its dtype; rows are
    still read (compared in the coarser dtype), and a full batch that matches neither falls back to the
    sampler's order."""
    cond, uncond = torch.randn(1, 77, 8), torch.randn(1, 77, 8)
    state = GenerationState(cond_reference=cond, uncond_reference=uncond, cond_first=True)
    for dtype in (torch.float16, torch.bfloat16):
        assert state.classify_rows(uncond.to(dtype), 1) == RowLayout((), (0,))
        assert state.classify_rows(torch.cat([cond, uncond]).to(dtype), 2) == RowLayout((0,), (1,))
    assert state.classify_rows(torch.randn(2, 77, 8), 2) == RowLayout((0,), (1,))
    assert GenerationState(cond_reference=cond, uncond_reference=uncond, cond_first=False).classify_rows(
        torch.randn(2, 77, 8), 2) == RowLayout((1,), (0,))
