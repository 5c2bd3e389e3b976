"""Layout init (seed 003): the sketch, DDIM inversion maths, the noise mix, and real pipelines."""

import numpy as np
import pytest
import torch

from lib_regedit import layout_init
from lib_regedit.api import generate, generate_plain
from lib_regedit.documents import parse_region_document
from lib_regedit.errors import RegEditError
from tiny_models import pixels, tiny_sdxl_pipeline

DOC = {"prompt": "a red circle and a blue square", "init": "layout", "regions": [
    {"x": 0.0, "y": 0.1, "w": 0.45, "h": 0.8, "prompt": "a red circle"},
    {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a blue square"},
    {"prompt": "a blank background", "role": "background"}]}


def test_sketch_is_dark_inside_the_boxes_only():
    img = np.asarray(layout_init.layout_sketch([(0.0, 0.0, 0.5, 0.5)], 64, 32))
    assert img.shape == (32, 64, 3)
    assert img[8, 16].max() == layout_init.SKETCH_FILL  # the box centre
    assert img[0, 0].min() == layout_init.SKETCH_BACKGROUND  # the inset corner stays light
    assert (img[:, 33:] == layout_init.SKETCH_BACKGROUND).all() and (img[17:] == layout_init.SKETCH_BACKGROUND).all()


def test_inversion_timesteps_follow_ddim_leading_spacing():
    assert layout_init.inversion_timesteps(1000, 20) == list(range(1, 1000, 50))
    assert layout_init.inversion_timesteps(1000, 1) == [1]
    with pytest.raises(ValueError):
        layout_init.inversion_timesteps(1000, 0)


def test_ddim_inversion_is_exact_for_a_known_noise():
    """With a predictor that always answers the true noise, DDIM inversion lands on the forward
    process's value sqrt(a_T) z0 + sqrt(1 - a_T) eps, whatever the steps."""
    alphas = torch.linspace(0.999, 0.01, 1000, dtype=torch.float64)
    z0, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    ts = layout_init.inversion_timesteps(1000, 7)
    z = layout_init.ddim_invert(lambda z, t: eps, z0, alphas, ts)
    expected = alphas[ts[-1]].sqrt() * z0 + (1 - alphas[ts[-1]]).sqrt() * eps
    assert torch.allclose(z, expected.float(), atol=1e-5)


def test_noise_mix_keeps_unit_variance_and_the_ends():
    a, b = torch.randn(200_000), torch.randn(200_000)
    assert abs(layout_init.mix_noise(a, b, 0.25).std().item() - 1) < 0.01
    assert torch.equal(layout_init.mix_noise(a, b, 0.0), a) and torch.equal(layout_init.mix_noise(a, b, 1.0), b)


def test_document_fields_and_errors():
    doc = parse_region_document(DOC)
    assert doc.init == "layout" and doc.init_noise == 0.25
    assert parse_region_document(doc.to_json()) == doc and '"init":"layout"' in doc.to_json()
    assert '"init":"noise"' in parse_region_document(dict(DOC, init="noise")).to_json()  # not the default
    assert '"init"' not in parse_region_document(dict(DOC, init="auto")).to_json()
    assert '"init"' not in parse_region_document(dict(DOC, init="noise", version=1)).to_json()  # v1's default
    with pytest.raises(RegEditError, match="init: 'sketch' is not allowed"):
        parse_region_document(dict(DOC, init="sketch"))
    with pytest.raises(RegEditError, match="init_noise"):
        parse_region_document(dict(DOC, init_noise=1.5))


def test_layout_init_through_a_real_pipeline(sd):
    plain_before = generate_plain(sd, DOC["prompt"], seed=3, steps=3)
    noise = generate(sd, dict(DOC, init="noise"), seed=3, steps=3)
    layout = generate(sd, DOC, seed=3, steps=3)
    again = generate(sd, DOC, seed=3, steps=3)
    other_seed = generate(sd, DOC, seed=4, steps=3)
    assert np.array_equal(pixels(layout.image), pixels(again.image))
    assert np.abs(pixels(layout.image) - pixels(noise.image)).mean() > 0.5
    assert np.abs(pixels(layout.image) - pixels(other_seed.image)).mean() > 0.5  # the seed still matters
    assert '\\"init\\":\\"layout\\"' in layout.parameters  # quoted inside the infotext
    # all seed noise: the same start as noise init, up to the 1 / sqrt(1 - alpha_bar_T) rescaling
    all_noise = generate(sd, dict(DOC, init_noise=1.0), seed=3, steps=3)
    near = np.abs(pixels(all_noise.image) - pixels(noise.image)).mean()
    assert near < 0.25 * np.abs(pixels(layout.image) - pixels(noise.image)).mean(), near
    assert np.array_equal(pixels(generate_plain(sd, DOC["prompt"], seed=3, steps=3).image), pixels(plain_before.image))
    assert not sd.unet._forward_pre_hooks and not sd.unet._forward_hooks


def test_layout_init_on_sdxl_with_a_batch():
    pipe = tiny_sdxl_pipeline()
    result = generate(pipe, DOC, seed=1, steps=2, batch_size=2)
    assert len(result.images) == 2
    assert np.abs(pixels(result.images[0]) - pixels(result.images[1])).mean() > 0.1
