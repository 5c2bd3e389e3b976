"""Layout guidance (seed 003's attention guidance, Chen et al. 2023): the energy, the tokens bound to a
box, the descent, the document fields, and real pipelines (SD with DDIM and Euler, SDXL)."""

import numpy as np
import pytest
import torch

from lib_regedit.regions import layout_guidance as lg
from lib_regedit.api import generate
from lib_regedit.documents import parse_region_document
from lib_regedit.errors import RegEditError
from tiny_models import pixels, tiny_sd_pipeline, tiny_sdxl_pipeline

DOC = {"prompt": "a red circle and a blue square", "guidance": {"scale": 30, "until": 0.5, "iterations": 2},
       "regions": [{"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
                   {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"}]}


def test_box_energy_is_the_squared_share_outside():
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])
    inside, outside, half = torch.tensor([[0.5, 0.5, 0, 0]]), torch.tensor([[0, 0, 0.3, 0.7]]), torch.ones(1, 4)
    assert lg.box_energy(inside, mask).item() == 0.0
    assert lg.box_energy(outside, mask).item() == pytest.approx(1.0)
    assert lg.box_energy(half, mask).item() == pytest.approx(0.25)
    assert lg.box_energy(torch.stack([inside[0], outside[0]]), mask).item() == pytest.approx(0.5)  # mean over tokens
    maps = torch.rand(3, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(lg.box_energy(maps, mask), maps)
    assert (grad[:, :2] < 0).all() and (grad[:, 2:] > 0).all()  # more inside, less outside lowers it


def test_bound_tokens_skip_function_words_and_honour_keywords():
    words = [(1, "a"), (2, "red"), (3, "circle"), (4, "with"), (5, "the"), (6, "dots"), (7, ",")]
    assert lg.bound_tokens(words) == [2, 3, 6]
    assert lg.bound_tokens(words, ["Circle"]) == [3]
    assert lg.bound_tokens(words, ["red circle"]) == [2, 3]
    assert lg.bound_tokens(words, ["unicorn"]) == [2, 3, 6]  # keywords not in the prompt: the default


def test_descend_stops_at_the_threshold_and_the_iteration_cap():
    def energy(z):
        return ((z - 3) ** 2).mean()

    z, history = lg.descend(torch.zeros(4), energy, step_size=0.5, iterations=3, threshold=0.0)
    assert len(history) == 3 and history == sorted(history, reverse=True)
    assert torch.allclose(z, torch.full((4,), 3 * (1 - (1 - 0.25) ** 3)))  # dE/dz = (z - 3) / 2
    z, history = lg.descend(torch.zeros(4), energy, step_size=0.5, iterations=50, threshold=4.0)
    assert history == [9.0, 5.0625, 2.84765625]  # below 4 after two steps: no third
    assert torch.allclose(z, torch.full((4,), 3 * (1 - 0.75 ** 2)))
    _, history = lg.descend(torch.zeros(4), lambda z: None, step_size=1.0, iterations=5, threshold=0.0)
    assert history == []


def test_guided_step_count_and_step_size():
    assert lg.guided_step_count(0.2, 50) == 10 and lg.guided_step_count(0.2, 20) == 4
    assert lg.guided_step_count(0.01, 20) == 1 and lg.guided_step_count(1.0, 7) == 7
    assert lg.sigma_squared(0.2) == pytest.approx(4.0)


def test_document_fields_and_errors():
    doc = parse_region_document(DOC)
    assert doc.guidance.enabled and doc.guidance.until == 0.5 and doc.guidance.iterations == 2
    assert doc.guidance.threshold == 0.2 and doc.guidance.levels == ("down", "up")
    assert parse_region_document(doc.to_json()) == doc
    assert parse_region_document(dict(DOC, guidance=True)).guidance.scale == 30.0
    assert "guidance" not in parse_region_document(dict(DOC, guidance=False)).to_json()
    for bad, field in (({"iterations": 2.5}, "guidance.iterations"), ({"levels": ["side"]}, "guidance.levels"),
                       ({"scale": 0}, "guidance.scale"), ({"steps": 3}, "guidance.steps"),
                       ("yes", "guidance")):
        with pytest.raises(RegEditError, match=field.replace(".", r"\.")):
            parse_region_document(dict(DOC, guidance=bad))


def test_guidance_moves_attention_into_the_boxes_on_a_real_pipeline(sd):
    """One small step along the gradient the guidance computes lowers the energy it reports."""
    guided = generate(sd, DOC, seed=2, steps=4)
    plain = generate(sd, dict(DOC, guidance=False), seed=2, steps=4)
    again = generate(sd, DOC, seed=2, steps=4)
    assert np.array_equal(pixels(guided.image), pixels(again.image))
    assert np.abs(pixels(guided.image) - pixels(plain.image)).mean() > 0.1
    history = guided.extras["guidance"]
    assert len(history) == 2  # until 0.5 of 4 steps
    assert all(len(h) == 2 for h in history)  # two iterations each (the threshold is not reached)
    assert history[0][1] < history[0][0], history
    assert any(n.startswith("layout guidance: E ") for n in guided.extras["notes"])
    assert not sd.unet._forward_pre_hooks and not sd.unet._forward_hooks
    assert all(p.grad is None for p in sd.unet.parameters())
    assert all(type(p).__name__ != "RegEditAttnProcessor" for p in sd.unet.attn_processors.values())


def test_guidance_off_leaves_the_seed_noise_path_unchanged(sd):
    """Guidance draws the seed's noise itself; with no guided step (until ~ 0) the image is the plain one."""
    plain = generate(sd, dict(DOC, guidance=False), seed=5, steps=3)
    no_steps = generate(sd, dict(DOC, guidance={"scale": 1e-9, "iterations": 1}), seed=5, steps=3)
    assert np.abs(pixels(no_steps.image) - pixels(plain.image)).max() <= 1


def test_guidance_with_euler_layout_init_and_latent_mode():
    pipe = tiny_sd_pipeline(scheduler="euler")
    result = generate(pipe, dict(DOC, init="layout"), seed=1, steps=4)
    assert len(result.extras["guidance"]) == 2 and result.extras["guidance"][0][1] < result.extras["guidance"][0][0]
    latent = generate(pipe, dict(DOC, mode="latent"), seed=1, steps=2)
    assert "guidance" not in latent.extras
    assert any("attention mode only" in n for n in latent.extras["notes"])


def test_guidance_on_sdxl_with_a_batch():
    pipe = tiny_sdxl_pipeline()
    result = generate(pipe, DOC, seed=1, steps=2, batch_size=2)
    assert len(result.images) == 2 and len(result.extras["guidance"]) == 1


def test_a_bounded_step_stays_in_the_latent_scale():
    z = torch.randn(1, 4, 8, 8)
    reference = lg.rms(z)
    huge = torch.randn(1, 4, 8, 8) * 1e4  # what eta * sigma_t^2 * grad can be at the first steps
    moved = lg.bounded_step(z, huge, max_shift=0.1, reference_rms=reference)
    assert moved is not None
    assert lg.rms(moved - z) <= 0.1 * reference * 1.0001
    assert abs(lg.rms(moved) / reference - 1) <= lg.MAX_DRIFT
    small = torch.randn(1, 4, 8, 8) * 1e-3
    assert torch.equal(lg.bounded_step(z, small, 0.1, reference), z - small)  # within bounds: untouched
    assert lg.bounded_step(z, torch.full_like(z, float("nan")), 0.1, reference) is None
    # a latent that cannot be kept in range by any halving: guidance stops
    assert lg.bounded_step(z * 3, torch.zeros_like(z), 0.1, reference) is None


def test_descend_with_a_bound_never_blows_the_latent_up():
    z0 = torch.randn(4, 16)

    def energy(z):
        return (z * 1e3).pow(2).mean()  # a gradient thousands of times the latent

    unbounded, _ = lg.descend(z0, energy, step_size=30.0, iterations=5, threshold=0.0)
    bounded, history = lg.descend(z0, energy, step_size=30.0, iterations=5, threshold=0.0, max_shift=0.1)
    assert lg.rms(unbounded) > 1e3 * lg.rms(z0)
    assert abs(lg.rms(bounded) / lg.rms(z0) - 1) <= lg.MAX_DRIFT and len(history) >= 1
    assert history == sorted(history, reverse=True)  # each bounded step still lowers the energy


def test_guidance_bound_is_a_version_3_default():
    from lib_regedit.documents.region import GUIDANCE_MAX_SHIFT

    assert parse_region_document(dict(DOC)).guidance.max_shift == GUIDANCE_MAX_SHIFT[3]
    assert parse_region_document(dict(DOC, version=2)).guidance.max_shift is None
    assert parse_region_document(dict(DOC, guidance={"max_shift": None})).guidance.max_shift is None
    doc = parse_region_document(dict(DOC, guidance={"max_shift": 0.3}))
    assert doc.guidance.max_shift == 0.3 and parse_region_document(doc.to_json()) == doc
    with pytest.raises(RegEditError, match="guidance.max_shift"):
        parse_region_document(dict(DOC, guidance={"max_shift": 0}))
