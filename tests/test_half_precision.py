"""Every feature in fp16 and bf16 against float32 (issue 39, part 1), on the CPU, through the diffusers
pipelines and through AUTOMATIC1111's ``ldm`` UNet.

Each test runs one feature on a tiny model converted to the dtype, with the seeds and inputs of a float32
run of the same weights (computed once per module), and asserts that everything is finite (the latents,
every attention output the controller hands back, the maps, gradients' histories and losses it reports)
and that the feature's output is within a tolerance of float32's.

What is compared, and why. The tiny models have random weights, so their images mean nothing and their
dynamics amplify any perturbation; the comparisons are made where the feature's own arithmetic shows:

- the latent before the VAE decodes it (the decoder of a random VAE only adds its own rounding);
- the effect's own output where one exists: the keyword maps KSSA ranks, layout guidance's energies,
  multi-region guidance's first losses, the attention map LIME finds its region of interest from;
- LIME's edit is compared with the region of interest float32 found given to both runs, since the RoI
  itself is a discrete pick (k-means over the maps) that may fall either way on a near-tie in bf16;
- a picture's edit (the three inversions) is compared as a ratio: its distance from float32 against the
  distance of a float32 run whose weights are merely rounded to the dtype (a perturbation every
  half-precision model carries, with no half-precision arithmetic at all). DDIM inversion's fixed-point
  refinement multiplies any perturbation of the random UNet 2-8 times (measured), and classifier-free
  guidance at 7.5 again: weights rounded to bf16 alone move the tiny edit by 27-97 %, so an absolute
  tolerance would say nothing; the
  ratio says that computing in half precision costs no more than a small multiple of what storing the
  weights in it costs.

The metric is the relative mean absolute difference ``mean|x - x32| / mean|x32|``. Measured here (torch
2.13, CPU, one thread) for fp16 / bf16, and the tolerance asserted (about twice the larger measurement):

=========================  =================  =================  ===================
feature                    diffusers          ldm                tolerance
=========================  =================  =================  ===================
regions, attention mode    0.0026 / 0.020     0.0040 / 0.033     0.01 / 0.06
regions, latent mode       0.0024 / 0.021     0.0039 / 0.031     0.01 / 0.06
layout init                0.0043 / 0.031     0.0084 / 0.071     0.02 / 0.15
KSSA: latent               0.0026 / 0.019     0.0041 / 0.033     0.01 / 0.06
KSSA: keyword maps ranked  0.0001 / 0.0006    0.0006 / 0.0048    0.002 / 0.01
layout guidance: latent    0.0024 / 0.020     0.0039 / 0.035     0.01 / 0.06
layout guidance: energies  0.0000 / 0.0002    0.0000 / 0.0002    0.001 / 0.002
edit pair                  0.0027 / 0.021     0.0040 / 0.032     0.01 / 0.07
pair + MRGD: first losses  0.0008 / 0.0071    0.0007 / 0.027     0.002 / 0.05
pair + MRGD: latent        ratio 3.4 / 1.3    ratio 1.4 / 0.5    ratio 8
picture edit, 3 inversions ratio 2.9 / 1.8    ratio 2.7 / 1.3    ratio 8
LIME: edit tokens' map     0.0001 / 0.0009    0.0001 / 0.0009    0.001 / 0.005
LIME: edit, RoI given      0.0016 / 0.012     0.0033 / 0.026     0.01 / 0.06
RegionDrag                 0.0016 / 0.014     0.0023 / 0.018     0.005 / 0.04
=========================  =================  =================  ===================

"ratio": the distance from float32 divided by that of float32 with the weights rounded to the dtype (the
latter: 0.8-97 % for the picture edits and their inverted latents, 3-24 % for MRGD's pair). MRGD's
latent is a ratio as well: the random segmenter's gradient is chaotic in its input (a change of 10⁻⁴ in
the decoded image moves it by 5-16 %), so the guided pair amplifies any perturbation; its first losses,
before any guided step, are compared directly.

The ``ldm`` UNet runs as the WebUI runs a half-precision checkpoint without autocast (its upcast
sampling, and Forge): the weights in the dtype, the sampler's latents and conditioning float32 and cast
at the UNet's input, ``timestep_embedding`` cast to the UNet's dtype (A1111's ``sd_hijack_unet``), and
CrossAttention's forward the WebUI's SDP optimisation, since A1111 replaces ldm's stock forward. Two
things of the ``ldm`` package itself cannot run in half precision on the CPU, so the harness does what
the WebUI does instead: ``GroupNorm32`` upcasts its input to float32 and CPU ``group_norm`` refuses
mixed dtypes (the harness casts the input to the weights' dtype, as A1111's manual cast does), and the
stock CrossAttention multiplies float32 probabilities with half values (``_ATTN_PRECISION="fp32"``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit import api
from lib_regedit.attention.controller import Controller
from lib_regedit.inversion.null_text import NullTextOptions

DTYPES = [torch.float16, torch.bfloat16]
NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
MEASURE = bool(os.environ.get("REGEDIT_HALF_MEASURE"))  # print every measurement (to update the table)

# tolerances: (fp16, bf16) of the relative mean absolute difference from float32
TOL = {
    "regions": (0.01, 0.06),
    "layout_init": (0.02, 0.15),
    "keyword_maps": (0.002, 0.01),
    "energies": (0.001, 0.002),
    "pair": (0.01, 0.07),
    "guidance_losses": (0.002, 0.05),
    "lime_map": (0.001, 0.005),
    "lime_edit": (0.01, 0.06),
    "drag": (0.005, 0.04),
}
RATIO = 8.0  # at most this many times the distance that weights rounded to the dtype give (module docstring)


def tol(name: str, dtype) -> float:
    return TOL[name][DTYPES.index(dtype)]


def rel(reference: torch.Tensor, out: torch.Tensor) -> float:
    reference, out = reference.detach().float(), out.detach().float()
    return float((reference - out).abs().mean() / reference.abs().mean().clamp_min(1e-12))


def check(name: str, dtype, reference, out, limit: float) -> float:
    assert torch.isfinite(out.float()).all(), f"{name} in {NAMES[dtype]} is not finite"
    distance = rel(reference, out)
    if MEASURE:
        print(f"\nMEASURED {name} {NAMES[dtype]}: {distance:.4f} (tolerance {limit})")
    assert distance <= limit, f"{name} in {NAMES[dtype]}: {distance:.4f} from float32, tolerance {limit}"
    return distance


@pytest.fixture(autouse=True)
def finite_attention(monkeypatch):
    """Every attention output any effect computes is finite (a row of -inf logits would give NaN)."""
    seen = {"calls": 0, "bad": []}
    attend = Controller.attend

    def checked(self, call):
        out = attend(self, call)
        seen["calls"] += 1
        if not torch.isfinite(out).all():
            seen["bad"].append((call.layer, call.step, str(out.dtype)))
        return out

    monkeypatch.setattr(Controller, "attend", checked)
    yield seen
    assert not seen["bad"], f"non-finite attention outputs: {seen['bad'][:5]}"


class Memo:
    """Float32 references, computed once per module and shared by both dtypes."""

    def __init__(self):
        self.values = {}

    def get(self, key, make):
        if key not in self.values:
            self.values[key] = make()
        return self.values[key]


@pytest.fixture(scope="module")
def memo():
    return Memo()


def rounded(module: torch.nn.Module, dtype) -> torch.nn.Module:
    """``module`` with its weights rounded to ``dtype`` and kept float32: a half-precision model's weights
    computed in float32."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).float())
    return module


# --- inputs ---------------------------------------------------------------------------------------------

REGIONS = {"prompt": "a red circle and a blue square", "negative_prompt": "green", "init": "noise", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "masterpiece, best quality, a red circle"},
    {"x": 0.5, "y": 0.25, "w": 0.5, "h": 0.5, "prompt": "highly detailed, a blue square", "negative_prompt": "green"}]}
KSSA = {"keywords": 3, "refresh": 1, "downscale": 2, "levels": ["down", "up"]}
GUIDANCE = {"scale": 30, "until": 0.7, "iterations": 2}
CHANGE = {"prompt": "a red circle and a green square", "negative_prompt": "", "regions": [
    {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a red circle", "edit": "change", "target_prompt": "a blue circle"},
    {"x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "a green square"}]}
SQUARE = [[0.1, 0.1], [0.45, 0.1], [0.45, 0.45], [0.1, 0.45]]
DRAG = {"pairs": [{"handle": {"type": "polygon", "points": SQUARE},
                   "target": {"type": "polygon", "points": [[x + 0.5, y + 0.5] for x, y in SQUARE]}}]}
INVERSIONS = ("ddim", "negative", "nulltext")
NULLTEXT = NullTextOptions(2, 0.1)
STEPS = 3


def picture(size=32, seed=0) -> Image.Image:
    """A smooth picture (blobs of colour)."""
    rng = np.random.default_rng(seed)
    small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((size, size), Image.BICUBIC)


def pixels_of(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    """A tiny CLIPSeg in float32, as the extension loads it (``load_segmenter``'s default)."""
    from transformers import CLIPSegForImageSegmentation

    from lib_regedit.editing.segmenter import load_segmenter
    from lib_regedit.shapesworld import segmenter_train as st

    torch.manual_seed(0)
    config = st.small_config(vision_hidden=32, vision_layers=2, text_hidden=32, text_layers=1, image_size=32,
                             patch=8, extract_layers=(0, 1), reduce_dim=16)
    return load_segmenter(st.save_folder(CLIPSegForImageSegmentation(config), tmp_path_factory.mktemp("seg") / "tiny"))


@contextlib.contextmanager
def spied(module, name, record):
    """``module.name`` records its arguments and result in ``record`` for the ``with`` block."""
    real = getattr(module, name)

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        record.append((args, kwargs, out))
        return out

    setattr(module, name, spy)
    try:
        yield record
    finally:
        setattr(module, name, real)


# --- diffusers --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def sd(dtype, weights=None):
    """The tiny SD pipeline in ``dtype``; ``weights``: float32 with the weights rounded to that dtype."""
    from tiny_models import tiny_sd_pipeline

    pipe = tiny_sd_pipeline()
    if weights is not None:
        for module in (pipe.unet, pipe.vae, pipe.text_encoder):
            rounded(module, weights)
        return pipe
    return pipe.to(dtype)


@functools.lru_cache(maxsize=None)
def instruct(dtype):
    from tiny_models import tiny_instruct_pipeline

    return tiny_instruct_pipeline().to(dtype)


@contextlib.contextmanager
def decoded(pipe):
    """The latents the pipeline's VAE decodes in the ``with`` block (float32 copies), last one last; the
    decoded pixels must be finite too."""
    seen = []
    real = pipe.vae.decode

    def decode(z, *args, **kwargs):
        seen.append(z.detach().float().clone())
        out = real(z, *args, **kwargs)
        assert torch.isfinite(out[0] if isinstance(out, tuple) else out.sample).all(), "decoded pixels not finite"
        return out

    pipe.vae.decode = decode
    try:
        yield seen
    finally:
        del pipe.vae.decode


def generated(pipe, doc, steps=STEPS):
    """(final latent, result) of ``api.generate``; the keyword rankings it made, through ``select_keywords``."""
    from lib_regedit.attention.effects import keyword_selection

    rankings = []
    with decoded(pipe) as seen, spied(keyword_selection, "select_keywords", rankings):
        result = api.generate(pipe, doc, seed=1, steps=steps)
    return seen[-1], result, [(args[0], out) for args, _, out in rankings]


REGION_FEATURES = {  # the same region features on both backends
    "attention": (REGIONS, "regions"),
    "latent": (dict(REGIONS, mode="latent"), "regions"),
    "layout_init": (dict(REGIONS, init="layout"), "layout_init"),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
@pytest.mark.parametrize("feature", list(REGION_FEATURES))
def test_diffusers_regions(memo, dtype, feature, finite_attention):
    doc, name = REGION_FEATURES[feature]
    reference = memo.get(("diffusers", feature), lambda: generated(sd(torch.float32), doc)[0])
    latent, result, _ = generated(sd(dtype), doc)
    check(f"diffusers {feature}", dtype, reference, latent, tol(name, dtype))
    assert finite_attention["calls"] > 0 or feature == "latent"  # latent mode has no attention effect


def _keyword_maps(rankings):
    return [maps for maps, _ in rankings]


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_diffusers_kssa(memo, dtype):
    """KSSA's keyword selection ranks each region's token maps by entropy; the maps it ranks, and the
    latent, are compared. The picks themselves may differ on a near-tie of the 256-bin entropies."""
    doc = dict(REGIONS, kssa=KSSA)
    reference = memo.get(("diffusers", "kssa"), lambda: generated(sd(torch.float32), doc))
    latent, result, rankings = generated(sd(dtype), doc)
    check("diffusers KSSA latent", dtype, reference[0], latent, tol("regions", dtype))
    assert len(rankings) == len(reference[2]) > 0
    for ref_maps, maps in zip(_keyword_maps(reference[2]), _keyword_maps(rankings)):
        check("diffusers KSSA keyword maps", dtype, ref_maps, maps, tol("keyword_maps", dtype))
    assert all(m is not None and torch.isfinite(m).all() for m in result.extras["keyword_maps"])


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_diffusers_layout_guidance(memo, dtype):
    """Layout guidance differentiates the energy through the UNet in the dtype (at a loss scale)."""
    doc = dict(REGIONS, guidance=GUIDANCE)
    reference = memo.get(("diffusers", "guidance"), lambda: generated(sd(torch.float32), doc))
    latent, result, _ = generated(sd(dtype), doc)
    check("diffusers layout guidance", dtype, reference[0], latent, tol("regions", dtype))
    energies, ref_energies = result.extras["guidance"], reference[1].extras["guidance"]
    assert [len(h) for h in energies] == [len(h) for h in ref_energies] and all(energies)
    first = torch.tensor([h[0] for h in energies])
    check("diffusers layout guidance energies", dtype, torch.tensor([h[0] for h in ref_energies]), first,
          tol("energies", dtype))


def paired(pipe, doc, segmenter=None):
    from lib_regedit.editing import edit_pair

    with decoded(pipe) as seen:
        result = edit_pair(pipe, doc, seed=2, steps=STEPS, segmenter=segmenter)
    return seen[-1], result


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_diffusers_edit_pair(memo, dtype):
    doc = dict(CHANGE, init="noise")
    reference = memo.get(("diffusers", "pair"), lambda: paired(sd(torch.float32), doc)[0])
    latent, _ = paired(sd(dtype), doc)
    assert latent.shape[0] == 2  # the source and the target
    check("diffusers edit pair", dtype, reference, latent, tol("pair", dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_diffusers_edit_pair_with_multi_region_guidance(memo, dtype, segmenter):
    """MRGD's guidance at its default weights: the gradient through the VAE in the dtype and the
    float32 segmenter; x̂0 and the shift of ε in float32 (``diffusers_guidance.guided``)."""
    # MRGD's pair (the rest not kept): with the rest kept, fp16 lands 11x the weights' rounding from
    # float32 here (0.134 against 0.012) where MRGD's pair stays within the 8x; the kept pair is
    # checked for finite values below, and without guidance in test_diffusers_edit_pair
    doc = dict(CHANGE, init="noise", edit={"guidance": True, "keep_outside": False})
    reference = memo.get(("diffusers", "pair_guided"), lambda: paired(sd(torch.float32), doc, segmenter))
    latent, result = paired(sd(dtype), doc, segmenter)
    check_ratio("diffusers pair + guidance", dtype, reference[:1], [latent],
                paired(sd(torch.float32, weights=dtype), doc, segmenter)[:1], parts=("pair",))
    history, ref_history = result.extras["guidance_history"], reference[1].extras["guidance_history"]
    assert [h["step"] for h in history] == [h["step"] for h in ref_history] == list(range(STEPS))
    assert all(np.isfinite(h[k]) for h in history for k in ("rs", "is", "ip"))
    first = torch.tensor([history[0][k] for k in ("rs", "is", "ip")])
    check("diffusers guidance first losses", dtype, torch.tensor([ref_history[0][k] for k in ("rs", "is", "ip")]),
          first, tol("guidance_losses", dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_a_kept_pair_with_guidance_stays_finite(dtype, segmenter):
    latent, result = paired(sd(dtype), dict(CHANGE, init="noise", edit={"guidance": True}), segmenter)
    assert torch.isfinite(latent).all() and all(np.isfinite(h["ip"]) for h in result.extras["guidance_history"])


def picture_edit(pipe, method):
    """(the inverted latent, the pair's latents (reconstruction, edit)) of ``edit_image``."""
    from lib_regedit.editing.diffusers_real import edit_image

    with decoded(pipe) as seen:
        result = edit_image(pipe, picture(), CHANGE, inversion=method, steps=STEPS, nulltext=NULLTEXT)
    inversion = result.extras["inversion"]
    if method == "nulltext":
        assert len(inversion.losses) == STEPS and all(np.isfinite(inversion.losses))
        assert all(torch.isfinite(t).all() for s in inversion.null_sets for t in (s.total, s.background, *s.regions))
    return inversion.latent, torch.cat(seen)


def check_ratio(name, dtype, reference, half, weights_only, parts=("inverted latent", "edit")):
    """``half``'s distance from float32 against that of float32 with the weights rounded to the dtype."""
    for part, ref, out, base in zip(parts, reference, half, weights_only):
        assert torch.isfinite(out).all(), f"{name} {part} in {NAMES[dtype]} is not finite"
        distance, baseline = rel(ref, out), rel(ref, base)
        if MEASURE:
            print(f"\nMEASURED {name} {part} {NAMES[dtype]}: {distance:.4f}, weights rounded {baseline:.4f}, "
                  f"ratio {distance / max(baseline, 1e-12):.2f}")
        assert distance <= RATIO * baseline + 1e-3, (
            f"{name} {part} in {NAMES[dtype]}: {distance:.4f} from float32, {distance / baseline:.1f} times "
            f"what rounding the weights gives ({baseline:.4f}); tolerance {RATIO}x")


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
@pytest.mark.parametrize("method", INVERSIONS)
def test_diffusers_picture_edit(memo, dtype, method):
    reference = memo.get(("diffusers", method), lambda: picture_edit(sd(torch.float32), method))
    check_ratio(f"diffusers picture edit ({method})", dtype, reference, picture_edit(sd(dtype), method),
                picture_edit(sd(torch.float32, weights=dtype), method))


def lime_found(pipe):
    from lib_regedit.lime import lime_edit

    return lime_edit(pipe, picture(), "make the red square blue", steps=4, seed=0, progress=False)


def lime_given(pipe, roi):
    from lib_regedit.lime import lime_edit

    with decoded(pipe) as seen:
        lime_edit(pipe, picture(), "make the red square blue", steps=4, seed=0, progress=False, roi=roi)
    return seen[-1]


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_diffusers_lime(memo, dtype):
    """The edit tokens' attention LIME finds its RoI from, then the regularised edit (-inf on every other
    token inside the RoI) with float32's RoI given to both."""
    found = memo.get(("diffusers", "lime_found"), lambda: lime_found(instruct(torch.float32)).found)
    half = lime_found(instruct(dtype))
    check("diffusers LIME attention", dtype, found.attention, half.found.attention, tol("lime_map", dtype))
    assert half.roi.any()
    reference = memo.get(("diffusers", "lime_edit"), lambda: lime_given(instruct(torch.float32), found.mask))
    check("diffusers LIME edit", dtype, reference, lime_given(instruct(dtype), found.mask), tol("lime_edit", dtype))


def dragged(pipe):
    from lib_regedit.drag.diffusers_drag import drag
    from lib_regedit.drag.region_drag import DragOptions

    with decoded(pipe) as seen:
        drag(pipe, picture(), DRAG, prompt="a red square", seed=1, options=DragOptions(steps=8), progress=False)
    return seen[-1]


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_diffusers_drag(memo, dtype):
    reference = memo.get(("diffusers", "drag"), lambda: dragged(sd(torch.float32)))
    check("diffusers RegionDrag", dtype, reference, dragged(sd(dtype)), tol("drag", dtype))


# --- the WebUI's ldm UNet ------------------------------------------------------------------------------

ALPHAS = torch.cumprod(1 - torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2, 0)


def sdp_forward(self, x, context=None, mask=None, **kwargs):
    """ldm's CrossAttention as the WebUI runs it: its SDP optimisation
    (``sd_hijack_optimizations.scaled_dot_product_attention_forward``), which replaces the stock forward."""
    heads = self.heads
    context = x if context is None else context
    q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
    batch, _, inner = q.shape
    q, k, v = (t.view(batch, -1, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return self.to_out(out.transpose(1, 2).reshape(batch, -1, inner).to(q.dtype))


@pytest.fixture(scope="module")
def ldm():
    """The ldm harness: the test UNet, the WebUI's SDP attention patched in for this module."""
    pytest.importorskip("ldm.modules.diffusionmodules.openaimodel", reason="the ldm package is not installed")
    import ldm.modules.attention as attention
    import test_ldm_backend

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attention.CrossAttention, "forward", sdp_forward)
        yield test_ldm_backend


class TinyVae(torch.nn.Module):
    """ldm's AutoencoderKL, small: encoder, quant convs, decoder (the LdmCheckpoint reads these)."""

    def __init__(self):
        from ldm.modules.diffusionmodules.model import Decoder, Encoder

        super().__init__()
        torch.manual_seed(0)
        config = dict(ch=32, out_ch=3, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=[], in_channels=3,
                      resolution=32, z_channels=4, double_z=True)
        with contextlib.redirect_stdout(io.StringIO()):  # ldm prints its attention type
            self.encoder, self.decoder = Encoder(**config), Decoder(**config)
        self.quant_conv, self.post_quant_conv = torch.nn.Conv2d(8, 8, 1), torch.nn.Conv2d(4, 4, 1)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def webui_unet(ldm, dtype, weights=None):
    """The test's ldm UNet as the WebUI holds a checkpoint in ``dtype`` (module docstring)."""
    from ldm.modules.diffusionmodules.util import GroupNorm32

    unet = ldm.make_unet()
    if weights is not None:
        return rounded(unet, weights)
    if dtype == torch.float32:
        return unet
    unet.to(dtype)
    unet.dtype = dtype  # A1111: model.model.diffusion_model.dtype = devices.dtype_unet
    unet.time_embed.register_forward_pre_hook(lambda _, args: (args[0].to(dtype),))  # sd_hijack_unet
    for module in unet.modules():
        if isinstance(module, GroupNorm32):  # its input in the weights' dtype, as the WebUI's manual cast
            module.forward = functools.partial(torch.nn.GroupNorm.forward, module)
            module.register_forward_pre_hook(lambda _, args: (args[0].to(dtype),))
    return unet


def tokenize(prompt):
    """Word positions as the WebUI's tokenizer gives them (one token a word here)."""
    return [(i + 1, w) for i, w in enumerate(prompt.replace(",", " ").split())][:75]


@functools.lru_cache(maxsize=None)
def _webui_model(dtype, weights=None):
    import test_ldm_backend as ldm
    from lib_regedit.backends.ldm_checkpoint import LdmCheckpoint

    unet = webui_unet(ldm, dtype, weights)
    vae = TinyVae()
    vae = rounded(vae, weights) if weights is not None else vae.to(dtype)
    model = SimpleNamespace(model=SimpleNamespace(diffusion_model=unet), alphas_cumprod=ALPHAS, parameterization="eps",
                            first_stage_model=vae, scale_factor=0.18215,
                            apply_model=lambda x, t, cond: unet(x, t, context=cond["c_crossattn"][0]))
    checkpoint = LdmCheckpoint(model, lambda prompt, negative: ldm.ENCODE(prompt),
                               vae_dtype=next(vae.parameters()).dtype)
    checkpoint.tokenize = tokenize
    return checkpoint


def webui_model(ldm, dtype, weights=None):
    """The model interface's ldm checkpoint over the harness's UNet and VAE (the WebUI's encoder stands
    in: a fixed random context per prompt, float32 as the WebUI's conditioning is)."""
    return _webui_model(dtype, weights)


def unet_eval(unet, x, t, context):
    """The UNet as the sampler calls it: float32 latents and conditioning, cast at the UNet's input."""
    dtype = next(unet.parameters()).dtype
    return unet(x.to(dtype), torch.full((x.shape[0],), int(t)), context=context.to(dtype)).float()


def sample(ldm, unet, session, x, steps=STEPS, w=7.5, combine=None, guide=None, cond=None):
    """A WebUI timestep sampler (DDIM) over the session: per step ``on_cfg_denoiser``, then one UNet call
    with the cond rows first and the uncond rows last, classifier-free guidance, a DDIM move; float32
    latents. ``guide(x, step, t, cond)`` before the call (layout guidance at the denoiser),
    ``combine(eps, x, t, step)`` on the guided ε (multi-region guidance's ``combine_denoised``)."""
    from lib_regedit.inversion import ddim

    n = x.shape[0]
    cond = ldm.ENCODE("whole").expand(n, -1, -1) if cond is None else cond
    uncond = ldm.ENCODE("neg").expand(n, -1, -1)
    for i, (t, a, a_prev) in enumerate(ddim.denoise_schedule(ALPHAS, steps)):
        session.on_cfg_denoiser(i, steps, cond, uncond)
        if guide is not None:
            guide(x, i, t, cond)
        out = unet_eval(unet, torch.cat([x, x]), t, torch.cat([cond, uncond]))
        eps = out[n:] + w * (out[:n] - out[n:])
        if combine is not None:
            eps = combine(eps, x, t, i)
        x = ddim.move(x, eps, a, a_prev)
    return x


def noise(rows=1, seed=1):
    return torch.randn(rows, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def webui_regions(ldm, dtype, doc):
    from lib_regedit.backends import ldm_backend
    from lib_regedit.documents import parse_region_document
    from lib_regedit.regions import layout_init
    from lib_regedit.webui.session import WebUISession
    from lib_regedit.backends.checkpoint import eps_of

    checkpoint = webui_model(ldm, dtype)
    unet = checkpoint.unet
    document = parse_region_document(doc)
    start = noise()
    if document.init == "layout":  # webui/generation._start_from_layout, without the WebUI's rng
        inverted = layout_init.inverted_sketch(document, width=32, height=32, steps=STEPS,
                                               encode=checkpoint.posterior_mean,
                                               eps=eps_of(checkpoint, checkpoint.conditioning("")),
                                               alphas_cumprod=checkpoint.alphas, model_key=None, cache=None)
        start = layout_init.start_for(document, inverted, start)
    session = WebUISession(document, ldm.ENCODE, tokenize)
    rankings = []
    from lib_regedit.attention.effects import keyword_selection

    with ldm_backend.attach(unet, *session.effects()), spied(keyword_selection, "select_keywords", rankings):
        out = sample(ldm, unet, session, start)
    assert ldm_backend.remove_leftovers(unet) == 0
    return out, session, [(args[0], result) for args, _, result in rankings]


def rows_seen(ldm, dtype):
    """The row layouts the controller reads when the sampler runs the cond and the uncond rows in separate
    UNet calls."""
    from lib_regedit.backends import ldm_backend
    from lib_regedit.documents import parse_region_document
    from lib_regedit.webui.session import WebUISession

    checkpoint = webui_model(ldm, dtype)
    session = WebUISession(parse_region_document(REGIONS), ldm.ENCODE, tokenize)
    cond, uncond = ldm.ENCODE("whole"), ldm.ENCODE("neg")
    session.on_cfg_denoiser(0, STEPS, cond, uncond)
    with ldm_backend.attach(checkpoint.unet, *session.effects()):
        unet_eval(checkpoint.unet, noise(), 500, cond)  # the WebUI's separate calls: cond alone,
        first = session.state.rows
        unet_eval(checkpoint.unet, noise(), 500, uncond)  # then uncond alone
        second = session.state.rows
    return first, second


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_rows_are_read_from_a_half_precision_context(ldm, dtype):
    """The sampler's conditioning is float32 and the half UNet sees it cast: a row is still recognised as
    cond or uncond (``controller._matches`` compares in the coarser dtype)."""
    from lib_regedit.attention.call import RowLayout

    assert rows_seen(ldm, dtype) == (RowLayout((0,), ()), RowLayout((), (0,)))



@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
@pytest.mark.parametrize("feature", list(REGION_FEATURES))
def test_webui_regions(ldm, memo, dtype, feature, finite_attention):
    doc, name = REGION_FEATURES[feature]
    reference = memo.get(("ldm", feature), lambda: webui_regions(ldm, torch.float32, doc)[0])
    check(f"ldm {feature}", dtype, reference, webui_regions(ldm, dtype, doc)[0], tol(name, dtype))
    assert finite_attention["calls"] > 0 or feature == "latent"  # latent mode has no attention effect


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_kssa(ldm, memo, dtype):
    doc = dict(REGIONS, kssa=KSSA)
    reference = memo.get(("ldm", "kssa"), lambda: webui_regions(ldm, torch.float32, doc))
    latent, session, rankings = webui_regions(ldm, dtype, doc)
    check("ldm KSSA latent", dtype, reference[0], latent, tol("regions", dtype))
    assert session.built.kssa.applied > 0 and len(rankings) == len(reference[2]) > 0
    for ref_maps, maps in zip(_keyword_maps(reference[2]), _keyword_maps(rankings)):
        check("ldm KSSA keyword maps", dtype, ref_maps, maps, tol("keyword_maps", dtype))


def webui_guided(ldm, dtype):
    from lib_regedit.backends import ldm_backend
    from lib_regedit.documents import parse_region_document
    from lib_regedit.webui.session import WebUISession

    checkpoint = webui_model(ldm, dtype)
    unet = checkpoint.unet
    session = WebUISession(parse_region_document(dict(REGIONS, guidance=GUIDANCE)), ldm.ENCODE, tokenize)
    guidance = session.layout_guidance(STEPS, ALPHAS)

    def guide(x, step, t, cond):
        guidance.guide(x, torch.full((x.shape[0],), float(t)), step, True,
                       lambda rows_x, rows: unet_eval(unet, rows_x, t, cond[rows]))

    with ldm_backend.attach(unet, *session.effects()):
        out = sample(ldm, unet, session, noise(), guide=guide)
    return out, guidance.energies


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_layout_guidance(ldm, memo, dtype):
    reference = memo.get(("ldm", "guidance"), lambda: webui_guided(ldm, torch.float32))
    latent, energies = webui_guided(ldm, dtype)
    check("ldm layout guidance", dtype, reference[0], latent, tol("regions", dtype))
    assert sorted(energies) == sorted(reference[1]) and all(energies.values())
    first = torch.tensor([energies[s][0][0] for s in sorted(energies)])
    check("ldm layout guidance energies", dtype, torch.tensor([reference[1][s][0][0] for s in sorted(energies)]),
          first, tol("energies", dtype))


def webui_pair(ldm, dtype, segmenter=None, weights=None):
    from lib_regedit.backends import ldm_backend
    from lib_regedit.editing.diffusers_edit import parse_pair
    from lib_regedit.editing.webui_guidance import guide_combined
    from lib_regedit.editing.webui_pair import WebUIPairSession

    checkpoint = webui_model(ldm, dtype, weights)
    unet = checkpoint.unet
    doc = parse_pair(dict(CHANGE, init="noise", edit={"guidance": segmenter is not None}))
    session = WebUIPairSession(doc, ldm.ENCODE, tokenize, 1, source_prompt="whole", target_prompt="whole")
    combine = None
    if segmenter is not None:  # webui/generation: the checkpoint's decode, the combined result guided
        guidance = session.enable_guidance(segmenter, lambda z: ((checkpoint.decode(z) + 1) / 2).clamp(0, 1),
                                           checkpoint.alphas)

        def combine(eps, x, t, step):
            return guide_combined(guidance, eps, x, torch.full((2,), float(t)), ALPHAS, True, step)

    with ldm_backend.attach(unet, *session.effects()):
        out = sample(ldm, unet, session, noise().expand(2, -1, -1, -1).clone(), combine=combine)
    return out, session.guidance.history if segmenter is not None else None


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_edit_pair(ldm, memo, dtype):
    reference = memo.get(("ldm", "pair"), lambda: webui_pair(ldm, torch.float32)[0])
    check("ldm edit pair", dtype, reference, webui_pair(ldm, dtype)[0], tol("pair", dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_edit_pair_with_multi_region_guidance(ldm, memo, dtype, segmenter):
    reference = memo.get(("ldm", "pair_guided"), lambda: webui_pair(ldm, torch.float32, segmenter))
    latent, history = webui_pair(ldm, dtype, segmenter)
    check_ratio("ldm pair + guidance", dtype, reference[:1], [latent],
                webui_pair(ldm, torch.float32, segmenter, weights=dtype)[:1], parts=("pair",))
    assert [h["step"] for h in history] == [h["step"] for h in reference[1]] == list(range(STEPS))
    assert all(np.isfinite(h[k]) for h in history for k in ("rs", "is", "ip"))
    check("ldm guidance first losses", dtype, torch.tensor([reference[1][0][k] for k in ("rs", "is", "ip")]),
          torch.tensor([history[0][k] for k in ("rs", "is", "ip")]), tol("guidance_losses", dtype))


def webui_picture_edit(ldm, dtype, method, weights=None):
    """``edit_latents`` on the ldm checkpoint, as the WebUI's img2img runs a picture's edit."""
    from lib_regedit.editing.diffusers_edit import parse_pair
    from lib_regedit.editing.real_edit import edit_latents

    checkpoint = webui_model(ldm, dtype, weights)
    image = picture()
    z0 = checkpoint.posterior_mean(pixels_of(image))
    z, inversion, cached, _ = edit_latents(checkpoint, parse_pair(dict(CHANGE, edit={"inversion": method})), z0, image,
                                           "tiny", negative_prompt="neg", steps=STEPS, guidance_scale=7.5,
                                           nulltext=NULLTEXT)
    assert not cached
    if method == "nulltext":
        assert len(inversion.losses) == STEPS and all(np.isfinite(inversion.losses))
    return inversion.latent, z


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
@pytest.mark.parametrize("method", INVERSIONS)
def test_webui_picture_edit(ldm, memo, dtype, method):
    reference = memo.get(("ldm", method), lambda: webui_picture_edit(ldm, torch.float32, method))
    check_ratio(f"ldm picture edit ({method})", dtype, reference, webui_picture_edit(ldm, dtype, method),
                webui_picture_edit(ldm, torch.float32, method, weights=dtype))


def webui_lime(ldm, dtype, roi=None):
    """LIME's WebUI session over the sampler: the RoI found (or ``roi`` given as a mask), then the edit."""
    from test_webui_lime import TOKENS, scene

    from lib_regedit.backends import ldm_backend
    from lib_regedit.documents import parse_lime_document
    from lib_regedit.lime.webui_lime import LimeSession

    unet = webui_model(ldm, dtype).unet
    session = LimeSession(parse_lime_document(True), TOKENS, (16, 16), mask=roi, image=None if roi is not None else scene())
    out = session.run(lambda controller: ldm_backend.attached(unet, controller),
                      lambda: sample(ldm, unet, session, noise(), steps=6))
    return out, session


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_lime(ldm, memo, dtype):
    found = memo.get(("ldm", "lime_found"), lambda: webui_lime(ldm, torch.float32)[1].found)
    _, session = webui_lime(ldm, dtype)
    check("ldm LIME attention", dtype, found.attention, session.found.attention, tol("lime_map", dtype))
    reference = memo.get(("ldm", "lime_edit"), lambda: webui_lime(ldm, torch.float32, found.mask)[0])
    check("ldm LIME edit", dtype, reference, webui_lime(ldm, dtype, found.mask)[0], tol("lime_edit", dtype))


def webui_drag(ldm, dtype):
    from lib_regedit.documents import parse_drag_document
    from lib_regedit.drag import batch

    checkpoint = webui_model(ldm, dtype)
    cond = checkpoint.conditioning("a red square")
    init = checkpoint.posterior_mean(pixels_of(picture()))

    def eps_of_row(row, x, t):
        with torch.no_grad():
            return checkpoint.eps(x, t, cond)

    return batch.drag_batch(eps_of_row, init, [1], parse_drag_document(DRAG), 8, checkpoint.alphas, checkpoint.attach)


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_webui_drag(ldm, memo, dtype):
    reference = memo.get(("ldm", "drag"), lambda: webui_drag(ldm, torch.float32))
    check("ldm RegionDrag", dtype, reference, webui_drag(ldm, dtype), tol("drag", dtype))


# --- the steps taken in float32, pinned --------------------------------------------------------------------

def test_attention_maps_are_float32_where_fp16_logits_overflow():
    """``attention_probs`` (prompt-to-prompt's maps, KSSA's keyword maps, LIME's capture, self-map
    injection) in float32: here q·kᵀ is 2·10⁵, past fp16's largest number, where fp16 gives inf - inf."""
    from lib_regedit.attention.call import attention_probs

    q = torch.full((1, 1, 2, 8), 40.0, dtype=torch.float16)
    k = torch.cat([torch.full((1, 1, 1, 8), 400.0), torch.full((1, 1, 1, 8), 390.0)], 2).to(torch.float16)
    probs = attention_probs(q, k)
    assert probs.dtype == torch.float32 and torch.isfinite(probs).all()
    torch.testing.assert_close(probs, attention_probs(q.float(), k.float()))
    assert not torch.isfinite((q @ k.transpose(-1, -2)).softmax(-1)).all()  # what fp16 would have given


@pytest.mark.parametrize("dtype", DTYPES, ids=NAMES.get)
def test_region_blend_weights_sum_to_one_in_half_precision(dtype):
    """Fusion's weights are normalised per pixel; blended in float32, identical sources give the plain
    attention back (weights rounded to the dtype first summed to 1 ± 0.24 % in bf16, and the blend was
    0.02 % off in fp16, 0.14 % in bf16)."""
    from lib_regedit.attention.call import AttentionCall, RowLayout, attend
    from lib_regedit.attention.effects.region_fusion import RegionFusion, RegionPrompt

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 8, generator=g).to(dtype) for _ in range(3))
    boxes = [(0.0, 0.0, 0.6, 0.7), (0.3, 0.2, 0.7, 0.5), (0.1, 0.5, 0.5, 0.5)]
    contexts = [torch.zeros(1, 64, 8) for _ in boxes]
    fusion = RegionFusion([RegionPrompt(*box, feather=0.3, weight=w, context=c)
                           for box, w, c in zip(boxes, (1.0, 0.7, 1.3), contexts)],
                          background_weight=1.0, whole_start=0.0, whole_weight=0.5)
    call = AttentionCall(q=q, k=k, v=v, is_cross=True, layer="down.attn2", hw=(8, 8), rows=RowLayout((0,), ()),
                         step=5, total_steps=10, latent_hw=(8, 8), project_context=lambda ctx: (k, v))
    plain = attend(q, k, v)
    fused = fusion.compute(call)
    assert fused.dtype == dtype
    assert rel(plain, fused) < 1e-5


def test_the_loss_scale_keeps_fp16_gradients_that_underflow_and_float32_bit_for_bit():
    """A mean over many positions through fp16 layers: unscaled, the gradient falls below fp16's normal
    range and keeps a digit or two; at the loss scale it keeps fp16's precision. Float32: identical."""
    from lib_regedit.precision import scaled_grad

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4096, generator=g).requires_grad_(True)
    w = (torch.rand(4096, generator=g) * 1e-2)

    def loss(dtype):
        return ((x.to(dtype) * w.to(dtype)).float() ** 2).mean()

    exact = torch.autograd.grad(loss(torch.float32), x)[0]
    assert torch.equal(scaled_grad(loss(torch.float32), [x])[0], exact)
    unscaled = torch.autograd.grad(loss(torch.float16), x)[0]
    scaled = scaled_grad(loss(torch.float16), [x])[0]
    assert rel(exact, scaled) < 2e-3 < rel(exact, unscaled)
