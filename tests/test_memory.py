"""The memory formulas of ``docs/memory.md`` (``lib_regedit/bench/memory.py``) against the objects the
features really fill, on the tiny test models: exact byte counts, no timing and no peak measurement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.attention.effects.mutual_self_attention import MutualSelfAttention
from lib_regedit.bench import memory
from tests.tiny_models import tiny_sd_pipeline, tiny_sdxl_pipeline


@pytest.fixture(scope="module")
def sd():
    return tiny_sd_pipeline()


def runner(unet, context, size=128, dtype=torch.float32, regions=2):
    return memory.Runner(memory.Arch("tiny", size, context), size, dtype, regions, unet=unet.to(dtype))


def test_the_layer_table_reads_the_unets_attention_layers(sd):
    layers = memory.attention_layers(sd.unet)
    # two levels of one transformer each, down and up (two per up level), and the mid block
    assert sorted((l.factor, l.channels) for l in layers if not l.cross) == [(1, 32)] * 3 + [(2, 64)] * 4
    assert len([l for l in layers if l.cross]) == len([l for l in layers if not l.cross])
    # S at a 16² latent: 32 channels on 256 positions three times, 64 on 64 four times
    assert memory.self_sum(layers, 16, 16) == 3 * 32 * 256 + 4 * 64 * 64
    assert memory.cross_width(layers) == 3 * 32 + 4 * 64


def test_the_full_architectures_layer_counts():
    sd15, sdxl = memory._layers_only("sd15"), memory._layers_only("sdxl")
    assert len(sd15) == 32 and len(sdxl) == 140  # 16 and 70 transformer blocks
    assert memory.self_sum(sdxl, 128, 128) == 10 * 4096 * 640 + 60 * 1024 * 1280
    # RegionDrag's store at SDXL 1024², fp16, 20 steps: 4.2 GB (the reason it is kept on the host)
    assert memory.drag_kv(sdxl, 128, 128, 20, 2) == 2 * 104_857_600 * 10 * 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_drag_store_is_the_formula(sd, dtype):
    r = runner(sd.unet, 32, dtype=dtype)
    r.drag(steps=4)()
    assert r.held == memory.drag_kv(r.layers, r.h, r.w, 4, r.b)
    sd.unet.float()


def test_a_real_drag_holds_what_the_formula_says(sd, monkeypatch):
    """The pipeline's own drag (20 steps: 10 recorded): the store's size when the denoising starts."""
    from lib_regedit.drag.diffusers_drag import drag

    seen = []
    prepare = MutualSelfAttention.prepare

    def spy(self, call):
        if self.mode == "replace" and not seen:
            seen.append(sum(k.untyped_storage().nbytes() + v.untyped_storage().nbytes()
                            for k, v in self.store.values()))
        return prepare(self, call)

    monkeypatch.setattr(MutualSelfAttention, "prepare", spy)
    image = Image.new("RGB", (64, 64), (230, 230, 230))
    square = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
    doc = {"pairs": [{"handle": {"type": "polygon", "points": square},
                      "target": {"type": "polygon", "points": [[x + 0.5, y + 0.4] for x, y in square]}}]}
    drag(sd, image, doc, prompt="a red square", seed=1, progress=False)
    layers = memory.attention_layers(sd.unet)
    h = 64 // sd.vae_scale_factor
    assert seen == [memory.drag_kv(layers, h, h, 20, 4)]


def test_the_store_stays_where_the_model_is_on_the_cpu():
    effect = MutualSelfAttention()
    t = torch.randn(1, 2, 4, 8)
    assert effect._stored(t).data_ptr() == t.data_ptr()  # no copy: the offload is for accelerators only


def test_region_projections_are_the_formula(sd):
    r = runner(sd.unet, 32, regions=3)
    r.attention()()
    assert r.held == memory.region_projections(r.layers, 3, 4)


def test_lime_features_are_the_formula(sd):
    r = runner(sd.unet, 32, size=256)  # a 32² latent: the tiny UNet's layers at / 2 hold the features
    r.lime()()
    assert r.held == memory.lime_features(r.layers, r.h, r.w) > 0


def test_sdxl_layout_of_the_formulas():
    pipe = tiny_sdxl_pipeline()
    layers = memory.attention_layers(pipe.unet)
    assert {l.factor for l in layers} == {2}  # SDXL has no attention at the latent's own resolution
    assert memory.lime_features(layers, 16, 16) == 2 * sum(64 * l.channels * 4 for l in layers)


def test_layout_cache_holds_one_float32_latent():
    from lib_regedit.regions.layout_init import LayoutCache

    cache = LayoutCache()
    cache.inverted("model", "key", lambda: (torch.randn(1, 4, 24, 16, dtype=torch.float16), 0.5))
    assert cache.nbytes == memory.layout_cache(24, 16)


def test_null_sets_are_the_formula():
    from lib_regedit.inversion.null_sets import NullSet

    steps, regions, width = 3, 2, 32
    sets = [NullSet(torch.zeros(1, 77, width), torch.zeros(1, 77, width),
                    tuple(torch.zeros(1, 77, width) for _ in range(regions))) for _ in range(steps)]
    assert sum(s.nbytes for s in sets) == memory.null_sets(steps, regions, width)


def test_saved_bytes_counts_what_autograd_keeps():
    x = torch.randn(64, 64, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(64, 64))
    # x @ w keeps x (for w's gradient) and w (for x's); the parameter is left out; tanh keeps its output
    got = memory.saved_bytes(lambda: torch.tanh(x @ w), exclude=[w])
    assert got == 2 * 64 * 64 * 4
    assert np.isclose(memory.saved_bytes(lambda: torch.tanh(x @ w)), 3 * 64 * 64 * 4)


def test_a_guidance_pass_that_stops_at_its_maps_gives_the_same_gradient(sd):
    """The capture ends the pass once the up path is finer than the map resolution: the energy and the
    latent's gradient are bit for bit those of the whole pass, and the graph kept is smaller."""
    from lib_regedit.attention.controller import Controller
    from lib_regedit.attention.effects.guidance_capture import GuidanceCapture, GuidedRegion
    from lib_regedit.backends import diffusers_backend
    from lib_regedit.regions.layout_guidance import capture_energy, run_pass

    r = runner(sd.unet, 32, size=256)  # a 32² latent: maps at 16² (the closest to 32 / 4), then 32² up blocks
    results = {}
    for early in (False, True):
        capture = GuidanceCapture([GuidedRegion(box, c, [1, 2]) for box, c in zip(r._boxes(), r._contexts())])
        capture.stop_early = early
        controller = Controller([capture], r._state(1, (0,), ()))
        z = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        ctx = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
        capture.start()
        with diffusers_backend.attached(sd.unet, controller), torch.enable_grad():
            saved = memory.saved_bytes(lambda: run_pass(lambda: sd.unet(z, 500, encoder_hidden_states=ctx)),
                                       exclude=sd.unet.parameters())
            energy = capture_energy(capture)
            (grad,) = torch.autograd.grad(energy, [z])
        results[early] = energy.detach(), grad, saved, set(capture.maps)
    assert torch.equal(results[False][0], results[True][0]) and torch.equal(results[False][1], results[True][1])
    assert results[True][2] < results[False][2]
    assert results[True][3] == {(16, 16), (32, 32)}  # the down path's maps at both resolutions are in


def test_keyword_maps_are_the_formula(sd):
    r = runner(sd.unet, 32, size=256)
    r.kssa()()
    # a 32² latent: latent / 4 = 8² is not a resolution of the tiny UNet, its closest is 16² (latent / 2)
    assert r.held == memory.keyword_maps(r.h, r.w, 2, downscale=2) > 0


@pytest.mark.parametrize("part", ["unet", "vae"])
def test_lean_gives_the_same_gradient_and_keeps_less(sd, part):
    """``backward.lean`` (weights frozen, residual blocks recomputed): the input's gradient bit for bit,
    fewer bytes kept for the backward pass, and every flag and forward given back."""
    import contextlib

    from lib_regedit.backward import lean, residual_blocks

    model = sd.unet if part == "unet" else sd.vae
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 16, 16, generator=g)
    ctx = torch.randn(1, 77, 32, generator=g)

    def run(zz):
        return (sd.unet(zz, 500, encoder_hidden_states=ctx).sample if part == "unet" else sd.vae.decode(zz).sample)

    out = {}
    for bounded in (False, True):
        zz = z.clone().requires_grad_(True)
        with lean(model) if bounded else contextlib.nullcontext(), torch.enable_grad():
            holder = {}
            saved = memory.saved_bytes(lambda: holder.__setitem__("y", run(zz)), exclude=model.parameters())
            (grad,) = torch.autograd.grad(holder["y"].square().mean(), [zz])
        out[bounded] = grad, saved
    assert torch.equal(out[False][0], out[True][0])
    assert out[True][1] < out[False][1]
    assert all(p.requires_grad for p in model.parameters())
    assert residual_blocks(model) and not any("forward" in m.__dict__ for m in residual_blocks(model))


def test_lean_turns_off_ldms_own_checkpointing_so_maps_inside_keep_their_graph():
    """ldm/sgm blocks built with ``use_checkpoint`` (SDXL's yaml; WebUI v1.10 clears it at load, other
    loaders may not) run their forward without a graph: attention maps taken inside could not be
    differentiated. ``lean`` turns that off while it holds."""
    attention = pytest.importorskip("ldm.modules.attention", reason="needs the ldm package")
    from lib_regedit.backward import lean

    block = attention.BasicTransformerBlock(dim=64, n_heads=2, d_head=32, context_dim=32, checkpoint=True)
    seen = {}
    block.attn2.register_forward_hook(lambda module, args, out: seen.__setitem__("out", out))
    x, ctx = torch.randn(1, 16, 64, requires_grad=True), torch.randn(1, 5, 32)
    block(x, context=ctx)
    assert seen["out"].grad_fn is None  # the host's checkpointing: no graph inside the block
    with lean(block):
        block(x, context=ctx)
        assert seen["out"].grad_fn is not None
    assert block.checkpoint is True
