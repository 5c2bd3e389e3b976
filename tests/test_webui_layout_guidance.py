"""Layout guidance at the WebUI's CFG denoiser (``lib_regedit/webui/layout_guidance.py``): the
sampler's input is guided in place, k-diffusion's scaling and the timestep samplers' alike give
exactly the update the Python API makes on the VP latent, and a step is guided once."""

import pytest
import torch

from lib_regedit.api import _context, _cond_forward, _layout_guidance, encode, tokenize
from lib_regedit.attention.controller import Controller, GenerationState
from lib_regedit.backends import diffusers_backend
from lib_regedit.documents import parse_region_document
from lib_regedit.regions.prompting import build_effects
from lib_regedit.webui.layout_guidance import DenoiserGuidance

DOC = {"prompt": "a red circle and a blue square", "guidance": {"scale": 30, "until": 0.5, "iterations": 2},
       "regions": [{"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
                   {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"}]}
T = 801


def _guidance(pipe):
    """(layout guidance, the pipeline's conditional UNet forward, attach) for DOC."""
    doc = parse_region_document(DOC)
    cond, uncond, pooled, _ = encode(pipe, doc.prompt, doc.negative_prompt)
    built = build_effects(doc, lambda p: _context(pipe, p), lambda p: tokenize(pipe, p), "attention")
    guidance = _layout_guidance(pipe, doc, 4, [r.context for r in built.fusion.regions])
    state = GenerationState(total_steps=4, cond_reference=cond, uncond_reference=uncond, cond_first=False)
    controller = Controller([*built.effects, guidance.capture], state)
    return guidance, _cond_forward(pipe, cond, pooled, 16, 16), diffusers_backend.attached(pipe.unet, controller)


@pytest.mark.parametrize("predicts_noise", [False, True], ids=["k-diffusion", "timesteps"])
def test_the_sampler_input_gets_the_api_update_in_place(sd, predicts_noise):
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    alpha_bar = float(sd.scheduler.alphas_cumprod[T])
    sigma = ((1 - alpha_bar) / alpha_bar) ** 0.5
    api, forward, attach = _guidance(sd)
    with torch.no_grad(), attach:
        expected = api.apply(z.clone(), T, forward)
    assert (expected - z).abs().max() > 1e-3, "the API's guidance moved nothing: the comparison would be empty"

    layout, forward, attach = _guidance(sd)
    guided = DenoiserGuidance(layout, sd.scheduler.alphas_cumprod)
    scale = 1.0 if predicts_noise else (1 + sigma * sigma) ** 0.5
    x = z.clone() * scale
    sampler_state = x  # the sampler's own tensor: the denoiser writes into it
    seen = []

    def model(x_rows, rows):  # the denoiser's model on sampler inputs: VP latent at timestep T
        seen.append(rows)
        return forward(x_rows / scale, T)

    sigmas = torch.tensor([float(T) if predicts_noise else sigma])
    with torch.no_grad(), attach:
        assert guided.guide(x, sigmas, 0, predicts_noise, model)
        before = x.clone()
        assert not guided.guide(x, sigmas, 0, predicts_noise, model), "a second call in one step guided again"
    assert sampler_state is x and torch.equal(before, x)
    assert torch.allclose(x / scale, expected, atol=1e-5), (x / scale - expected).abs().max()
    assert seen and all(rows == [0] for rows in seen)
    energies = guided.energies[0][0]
    assert len(energies) == 2 and energies[1] < energies[0]
    assert guided.summary(10.0).startswith(f"layout guidance: E {energies[0]:.2f} -> {energies[1]:.2f} over 1 steps")
    assert not sd.unet._forward_pre_hooks and all(p.grad is None for p in sd.unet.parameters())


def test_steps_past_until_are_not_guided_and_each_image_is_guided_alone(sd):
    layout, forward, attach = _guidance(sd)
    guided = DenoiserGuidance(layout, sd.scheduler.alphas_cumprod)
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    rows_seen = []

    def model(x_rows, rows):
        rows_seen.append(rows)
        return forward(x_rows, T)

    with torch.no_grad(), attach:
        assert not guided.guide(x.clone(), torch.tensor([T, T]), 2, True, model)  # until 0.5 of 4 steps: 0, 1
        assert guided.guide(x, torch.tensor([T, T]), 1, True, model)
    assert {tuple(r) for r in rows_seen} == {(0,), (1,)}
    assert len(guided.energies[1]) == 2
    assert DenoiserGuidance(layout, sd.scheduler.alphas_cumprod).summary() == "layout guidance: no step was guided"
