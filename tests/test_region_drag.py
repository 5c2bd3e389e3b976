"""RegionDrag: the inversion retraces exactly, end_t is honoured, mutual self-attention swaps keys
and values, and the diffusers API drags through a real pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.attention.controller import Controller, GenerationState
from lib_regedit.attention.effects.mutual_self_attention import MutualSelfAttention
from lib_regedit.backends import diffusers_backend
from lib_regedit.documents import parse_drag_document
from lib_regedit.drag.diffusers_drag import drag
from lib_regedit.drag.inversion import drag_timesteps, invert, denoise_step
from lib_regedit.drag.mapping import DenseMapping, dense_mapping
from lib_regedit.drag.region_drag import DragOptions, drag_latent, pastes_at
from lib_regedit.errors import RegEditError

SQUARE = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
DOC = {"pairs": [{"handle": {"type": "polygon", "points": SQUARE},
                  "target": {"type": "polygon", "points": [[x + 0.5, y + 0.4] for x, y in SQUARE]}}]}


def empty_mapping(h, w):
    none = np.zeros((h, w), dtype=bool)
    return DenseMapping(h, w, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), none, none)


def unet_eps(pipe, attention=None):
    context = pipe.encode_prompt("a red circle", "cpu", 1, False)[0]
    state = GenerationState(total_steps=20)

    def eps(x, t, j):
        state.step = j
        return pipe.unet(x, torch.tensor(t), encoder_hidden_states=context).sample
    return eps, state


def test_the_schedule_defaults():
    assert drag_timesteps(1000, 20, 0.5) == [451, 401, 351, 301, 251, 201, 151, 101, 51, 1]
    assert DragOptions().evaluations == 20
    opts = DragOptions()
    assert [pastes_at(opts, t, 1000) for t in drag_timesteps(1000, 20, 0.5)] == [True] * 6 + [False] * 4  # 451 ... 201 are above 200
    every = DragOptions(copy_paste_every_step=True)
    assert all(pastes_at(every, t, 1000) for t in drag_timesteps(1000, 20, 0.5))


def test_the_schedule_is_the_ddim_sampling_schedule():
    """One schedule for every caller (issue 34): the drag's timesteps are the tail of DDIM's, so they
    never pass the last trained timestep either (1000 steps of 1000 used to ask for timestep 1000)."""
    from lib_regedit.inversion.ddim import inversion_timesteps

    for steps in (1, 7, 20, 50):
        assert drag_timesteps(1000, steps, 1.0) == inversion_timesteps(1000, steps)[::-1]
    assert drag_timesteps(1000, 1000, 1.0)[0] == 999


def test_with_nothing_dragged_the_denoise_branch_gives_back_the_input(sd):
    z0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    attention = MutualSelfAttention()
    eps, state = unet_eps(sd)
    with torch.no_grad(), diffusers_backend.attached(sd.unet, Controller([attention], state)):
        out = drag_latent(eps, z0, empty_mapping(16, 16), sd.scheduler.alphas_cumprod, DragOptions(),
                          torch.Generator().manual_seed(0), attention)
    torch.testing.assert_close(out, z0, atol=2e-5, rtol=1e-5)
    assert attention.replaced > 0 and attention.mode == "off" and not attention.store


def test_the_inversion_stores_the_noise_that_lands_on_each_latent(sd):
    z0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    eps, _ = unet_eps(sd)
    timesteps = drag_timesteps(1000, 10, 0.6)
    with torch.no_grad():
        cache = invert(eps, z0, sd.scheduler.alphas_cumprod, timesteps, torch.Generator().manual_seed(0))
        for j in range(len(timesteps)):
            following = cache.latents[j + 1] if j + 1 < len(timesteps) else z0
            stepped = denoise_step(cache, cache.latents[j], eps(cache.latents[j], timesteps[j], j), j)
            torch.testing.assert_close(stepped, following, atol=2e-5, rtol=1e-5)


def test_end_t_decides_how_often_the_targets_are_pasted(sd):
    """With end_t honoured, the copy-paste stops at end_t; the reference's behaviour pastes at every step."""
    pasted_steps = {}
    mapping = dense_mapping(parse_drag_document(DOC), 16, 16)
    z0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    import lib_regedit.drag.region_drag as rd

    for name, options in (("ours", DragOptions(end_t=0.2)), ("reference", DragOptions(copy_paste_every_step=True))):
        calls = []
        real = rd.paste

        def counting(x, source, m, calls=calls, real=real):
            calls.append(1)
            return real(x, source, m)
        rd.paste = counting
        try:
            eps, _ = unet_eps(sd)
            with torch.no_grad():
                drag_latent(eps, z0, mapping, sd.scheduler.alphas_cumprod, options, torch.Generator().manual_seed(0))
        finally:
            rd.paste = real
        pasted_steps[name] = len(calls)
    # each step drags the stored noise (one paste); the first step and those above end_t paste the latents
    assert pasted_steps == {"ours": 10 + 6, "reference": 10 + 10}


def test_mutual_self_attention_swaps_keys_and_values_only_in_self_attention(sd):
    attention = MutualSelfAttention()
    eps, state = unet_eps(sd)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad(), diffusers_backend.attached(sd.unet, Controller([attention], state)):
        attention.mode = "record"
        source = eps(x, 451, 0)
        attention.mode = "replace"
        other = torch.randn_like(x)
        swapped = eps(other, 451, 0)
        attention.mode = "off"
        plain = eps(other, 451, 0)
    assert {layer.split(".attn")[0] for layer, _ in attention.store} and all(
        ".attn1" in layer for layer, _ in attention.store)  # self-attention layers only
    assert not torch.allclose(swapped, plain) and not torch.allclose(swapped, source)


def test_drag_through_a_real_pipeline(sd):
    image = Image.new("RGB", (64, 64), (230, 230, 230))
    image.paste((200, 30, 30), (6, 6, 26, 26))
    result = drag(sd, image, DOC, prompt="a red square", seed=1, progress=False)
    assert result.image.size == (64, 64)
    out = np.asarray(result.image, dtype=np.int16)
    src = np.asarray(image, dtype=np.int16)
    # outside the handles and targets (and the feather) the original comes back exactly
    assert np.array_equal(out[:, 50:][:20], src[:, 50:][:20]) and np.array_equal(out[56:, :20], src[56:, :20])
    assert "RegEdit drag: " in result.parameters and "start_t=0.5" in result.parameters
    again = drag(sd, image, DOC, prompt="a red square", seed=1, progress=False)
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))


@pytest.mark.parametrize("kwargs,field", [
    ({"image": Image.new("RGB", (60, 64))}, "image"),
    ({"image": Image.new("F", (64, 64))}, "image"),
    ({"options": DragOptions(steps=0)}, "steps"),
    ({"options": DragOptions(start_t=0)}, "start_t"),
    ({"options": DragOptions(end_t=1.5)}, "end_t"),
    ({"options": DragOptions(start_t=0.5, end_t=0.5)}, "end_t"),  # the copy-paste would stop after one step
    ({"document": {"pairs": []}}, "drag"),
    ({"seed": -1}, "seed"),
])
def test_bad_input_is_named_before_any_work(sd, monkeypatch, kwargs, field):
    monkeypatch.setattr(type(sd.vae), "encode", lambda *a, **k: pytest.fail("encoded with bad input"))
    args = dict(image=Image.new("RGB", (64, 64)), document=DOC, seed=0, options=DragOptions())
    args.update(kwargs)
    with pytest.raises(RegEditError) as info:
        drag(sd, args.pop("image"), args.pop("document"), progress=False, **args)
    assert info.value.field == field
