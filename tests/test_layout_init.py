"""Layout init (seed 003): the sketch, DDIM inversion maths, the noise mix, and real pipelines."""

import numpy as np
import pytest
import torch

from lib_regedit.inversion import ddim
from lib_regedit.regions import layout_init
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
    assert ddim.inversion_timesteps(1000, 20) == list(range(1, 1000, 50))
    assert ddim.inversion_timesteps(1000, 1) == [1]
    with pytest.raises(ValueError):
        ddim.inversion_timesteps(1000, 0)


def test_ddim_inversion_is_exact_for_a_known_noise():
    """With a predictor that always answers the true noise, DDIM inversion lands on the forward
    process's value sqrt(a_T) z0 + sqrt(1 - a_T) eps, whatever the steps."""
    alphas = torch.linspace(0.999, 0.01, 1000, dtype=torch.float64)
    z0, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    ts = ddim.inversion_timesteps(1000, 7)
    z = ddim.invert(lambda z, t: eps, z0, alphas, ts)[-1]
    expected = alphas[ts[-1]].sqrt() * z0 + (1 - alphas[ts[-1]]).sqrt() * eps
    assert torch.allclose(z, expected.float(), atol=1e-5)


def test_noise_mix_keeps_unit_variance_and_the_ends():
    a, b = torch.randn(200_000), torch.randn(200_000)
    assert abs(layout_init.mix_noise(a, b, 0.25).std().item() - 1) < 0.01
    assert torch.equal(layout_init.mix_noise(a, b, 0.0), a) and torch.equal(layout_init.mix_noise(a, b, 1.0), b)


def test_document_fields_and_errors():
    doc = parse_region_document(DOC)
    from lib_regedit.documents.region import VERSION, VERSION_DEFAULTS

    assert doc.init == "layout" and doc.init_noise == VERSION_DEFAULTS[VERSION]["init_noise"]
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


def test_disc_sketch_marks_the_centre_whatever_the_box_aspect():
    tall = np.asarray(layout_init.layout_sketch([(0.25, 0.0, 0.5, 1.0)], 64, 64, "disc"))
    dark = tall[..., 0] == layout_init.SKETCH_FILL
    rows, cols = np.nonzero(dark)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(height - width) <= 1  # round in a tall box; an "ellipse" sketch would be twice as tall
    assert abs(width - layout_init.DISC_SHARE * 32) <= 2 and abs(rows.mean() - 31.5) <= 1
    ellipse = np.asarray(layout_init.layout_sketch([(0.25, 0.0, 0.5, 1.0)], 64, 64, "ellipse"))[..., 0]
    rows_e = np.nonzero(ellipse == layout_init.SKETCH_FILL)[0]
    assert rows_e.max() - rows_e.min() + 1 > 1.5 * height
    with pytest.raises(ValueError):
        layout_init.layout_sketch([(0, 0, 1, 1)], 8, 8, "star")


def test_shorter_inversions_end_where_sampling_starts():
    full = ddim.inversion_timesteps(1000, 20)
    assert ddim.inversion_timesteps(1000, 20, 0) == full == ddim.inversion_timesteps(1000, 20, 20)
    four = ddim.inversion_timesteps(1000, 20, 4)
    assert len(four) == 4 and four[0] == full[0] and four[-1] == full[-1] and four == sorted(four)
    assert ddim.inversion_timesteps(1000, 20, 1) == [full[-1]]


def test_the_seed_share_outside_the_boxes():
    noise = torch.randn(2, 4, 16, 16)
    z_inv = torch.randn(1, 4, 16, 16)
    own = parse_region_document(dict(DOC, init_noise_outside=1.0))
    mask = layout_init.area_mask(own, 16, 16)
    outside, inside = mask == 0, mask == 1
    assert outside.any() and inside.any()
    start = layout_init.start_for(own, (z_inv, 0.01), noise)
    assert torch.allclose(start[..., outside], noise[..., outside] / 0.99 ** 0.5)  # the seed's own noise
    same = parse_region_document(dict(DOC, init_noise_outside=None))
    assert layout_init.area_mask(same, 16, 16) is None  # one share everywhere
    whole = layout_init.start_for(same, (z_inv, 0.01), noise)
    assert torch.allclose(start[..., inside], whole[..., inside])
    assert torch.allclose(layout_init.start_for(parse_region_document(dict(DOC, init_noise_outside=same.init_noise)),
                                                (z_inv, 0.01), noise), whole, atol=1e-6)


def test_the_layout_cache_inverts_once_and_forgets_on_a_model_change():
    cache = layout_init.LayoutCache(max_bytes=3 * 4 * 4 * 8 * 8)
    calls = []

    def invert(value):
        def run():
            calls.append(value)
            return torch.full((1, 4, 8, 8), float(value)), 0.5
        return run

    first = cache.inverted("model-a", "k1", invert(1))
    again = cache.inverted("model-a", "k1", invert(99))
    assert again[0] is first[0] and calls == [1] and cache.hits == 1
    cache.inverted("model-a", "k2", invert(2))
    cache.inverted("model-a", "k3", invert(3))
    cache.inverted("model-a", "k4", invert(4))  # over the bound: the least recently used (k1) goes
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    cache.inverted("model-a", "k1", invert(5))
    assert calls[-1] == 5
    cache.inverted("model-b", "k1", invert(6))  # another model: nothing of model-a's is served
    assert calls[-1] == 6 and len(cache) == 1
    big = layout_init.LayoutCache(max_bytes=10)
    big.inverted("m", "k", invert(7))
    assert len(big) == 0  # larger than the bound: used, not kept


def test_a_cached_inversion_gives_the_same_images_as_a_fresh_one(sd):
    layout_init.LAYOUTS.clear()
    misses = layout_init.LAYOUTS.misses
    fresh = generate(sd, DOC, seed=3, steps=3)
    assert layout_init.LAYOUTS.misses == misses + 1
    hits = layout_init.LAYOUTS.hits
    cached = generate(sd, DOC, seed=3, steps=3)
    other_seed = generate(sd, DOC, seed=4, steps=3, batch_size=2)
    assert layout_init.LAYOUTS.hits == hits + 2  # one inversion for every seed and batch of the layout
    assert np.array_equal(pixels(fresh.image), pixels(cached.image))
    layout_init.LAYOUTS.clear()
    assert np.array_equal(pixels(generate(sd, DOC, seed=4, steps=3, batch_size=2).images[1]),
                          pixels(other_seed.images[1]))


def test_version_2_documents_keep_their_layout_init():
    v2 = parse_region_document(dict(DOC, version=2))
    assert (v2.init_sketch, v2.init_noise_outside, v2.init_steps, v2.init_noise) == ("ellipse", None, 0, 0.25)
    assert v2.guidance.max_shift is None
    assert parse_region_document(v2.to_json()) == v2
    v3 = parse_region_document(DOC)
    assert v3.version >= 3 and v3.guidance.max_shift is not None
    for name in ("init_sketch", "init_noise_outside", "init_steps", "init_noise"):
        assert f'"{name}"' not in v3.to_json()  # at the version's defaults
        assert f'"{name}"' not in v2.to_json()
    old_look = parse_region_document(dict(DOC, init_sketch="ellipse", init_noise_outside=None, init_steps=0,
                                          init_noise=0.25))
    assert (old_look.init_sketch, old_look.init_noise_outside) == ("ellipse", None)
    assert parse_region_document(parse_region_document(dict(DOC, init_noise_outside=0.9)).to_json()).init_noise_outside == 0.9
    for field, bad in (("init_sketch", "star"), ("init_noise_outside", 1.5), ("init_noise_outside", "all"),
                       ("init_steps", 2.5), ("init_steps", -1)):
        with pytest.raises(RegEditError, match=field):
            parse_region_document(dict(DOC, **{field: bad}))


def test_a_version_2_document_draws_what_its_fields_spell_out(sd):
    """Version 2's layout init is the ellipse with one share everywhere: a version 3 document that
    spells those fields out draws the same pixels, and the version 3 defaults draw others."""
    v2 = generate(sd, dict(DOC, version=2), seed=5, steps=3, batch_size=2)
    spelled = generate(sd, dict(DOC, init_sketch="ellipse", init_noise=0.25, init_noise_outside=None),
                       seed=5, steps=3, batch_size=2)
    v3 = generate(sd, DOC, seed=5, steps=3, batch_size=2)
    for a, b in zip(v2.images, spelled.images):
        assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(v3.image) - pixels(v2.image)).mean() > 0.1
    assert '\\"version\\":2' in v2.parameters  # the infotext keeps the version, so a paste reproduces it
