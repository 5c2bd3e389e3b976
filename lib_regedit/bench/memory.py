"""``python -m lib_regedit.bench memory``: the extra memory each feature holds, as a formula in the image
size, the steps and the number of regions, beside a measured peak (``docs/memory.md``).

The formulas read the UNet's attention layers (:func:`attention_layers`): for each, whether it is self-
or cross-attention, how many times smaller than the latent its grid is (``f``), and its width ``C`` (heads
× head size). With the latent ``h × w`` (the image / 8), a layer has ``N = (h/f)(w/f)`` positions, and

- ``S = Σ_self N·C`` is what one self-attention pass writes as keys (or values) over the whole UNet,
- ``X = Σ_cross C`` is the width of all cross-attention projections together.

``b`` is the bytes of the model's dtype (4 float32, 2 fp16/bf16); the engine's float32 side tensors
(maps, features, caches) count 4. Each formula is one function here; ``tests/test_memory.py`` pins those
of the objects a feature fills (RegionDrag's store, the region projections, LIME's features, the keyword
maps, the layout cache, the null sets) against the real object on the tiny test models, byte for byte.

Measured: one process builds the full-architecture UNet (diffusers, random weights, SD 1.5 or SDXL) and
runs, per feature, the UNet calls the feature makes with and without it; Linux's peak resident memory
(``VmHWM``, reset through ``/proc/self/clear_refs`` before each run) minus the resident memory at its
start gives each run's peak, and the feature's extra is the difference. On a CPU this is the same memory
a GPU would hold in its own; where a feature keeps something on the host instead, the table says so.

The activations a backward pass keeps (layout guidance, null-text inversion, multi-region guidance's
decoder) are not a closed formula of the architecture: their per-latent-pixel constant is counted once
with autograd's saved-tensor hooks at a small size (:func:`saved_bytes`) and scaled by ``h·w``; the
measured column checks the scaling.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from ..backward import lean

MB = 1 << 20
GB = 1 << 30
TOKENS = 77  # one prompt chunk
LIME_DOWNSCALES = (2, 4, 8)  # LimeOptions.feature_downscales
DRAG_START = 0.5  # DragOptions.start_t


# ---- the architecture ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    name: str
    cross: bool
    factor: int  # the latent is ``factor`` times larger on a side
    channels: int  # heads × head size


def attention_layers(unet) -> list[Layer]:
    """Every transformer attention layer of a diffusers ``UNet2DConditionModel``, in call order."""
    n_down = len(unet.down_blocks)
    layers = []
    for name, module in unet.named_modules():
        if not name.endswith((".attn1", ".attn2")):
            continue
        if name.startswith("down_blocks."):
            factor = 2 ** int(name.split(".")[1])
        elif name.startswith("mid_block."):
            factor = 2 ** (n_down - 1)
        else:
            factor = 2 ** (len(unet.up_blocks) - 1 - int(name.split(".")[1]))
        layers.append(Layer(name, name.endswith("attn2"), factor, module.to_q.out_features))
    return layers


def positions(layer: Layer, h: int, w: int) -> int:
    return max(1, h // layer.factor) * max(1, w // layer.factor)


def self_sum(layers, h, w) -> int:
    """S: Σ over self-attention layers of N·C (one pass's keys, or values, in elements)."""
    return sum(positions(l, h, w) * l.channels for l in layers if not l.cross)


def cross_width(layers) -> int:
    """X: Σ over cross-attention layers of C."""
    return sum(l.channels for l in layers if l.cross)


# ---- the formulas (bytes) -----------------------------------------------------------------------

def drag_kv(layers, h, w, steps: int, b: int, start_t: float = DRAG_START) -> int:
    """RegionDrag's mutual self-attention store: keys and values of every self-attention layer at every
    inversion step, one row: ``2 · S · n_inv · b``, ``n_inv = round(steps · start_t)``."""
    return 2 * self_sum(layers, h, w) * max(1, round(steps * start_t)) * b


def region_projections(layers, regions: int, b: int, tokens: int = TOKENS) -> int:
    """Region fusion (attention mode): each region's prompt through every cross-attention layer's key and
    value projections, kept for the generation (``GenerationState.projected``): ``2 · R · T · X · b``."""
    return 2 * regions * tokens * cross_width(layers) * b


def latent_mode_eps(h, w, regions: int, rows: int, b: int, channels: int = 4) -> int:
    """Latent mode: the regions' noise predictions of one step, ``(R + 1) · rows · 4 · h · w · b`` (the
    passes run one after another at the conditional rows, so no pass's activations add up)."""
    return (regions + 1) * rows * channels * h * w * b


def lime_features(layers, h, w, rows_kinds: int = 2, downscales=LIME_DOWNSCALES) -> int:
    """LIME's RoI features: the output of every attention layer (self and cross) whose grid is the latent
    / 2, / 4 or / 8, as float32 ``(C, h/f, w/f)``, for the image-only and the conditional branch, kept on
    the host until the RoI is found: ``2 · Σ_{f ∈ {2,4,8}} N·C · 4``."""
    return rows_kinds * sum(positions(l, h, w) * l.channels * 4 for l in layers if l.factor in downscales)


def keyword_maps(h, w, regions: int, downscale: int = 4, tokens: int = TOKENS) -> int:
    """Keyword selection (KSSA's keywords): each region's token maps at latent / 4, float32 on the host,
    summed between refreshes and the last refresh's kept: ``2 · R · T · (h/4)(w/4) · 4``."""
    return 2 * regions * tokens * -(-h // downscale) * -(-w // downscale) * 4


def layout_cache(h, w, channels: int = 4) -> int:
    """Layout init: one inverted sketch latent per layout, float32 on the host (``LayoutCache``)."""
    return channels * h * w * 4


def null_sets(steps: int, regions: int, context_width: int, tokens: int = TOKENS) -> int:
    """Null-text inversion's optimised null sets: per step, the whole prompt's, the background's and each
    region's (1, T, C_ctx) float32: ``steps · (R + 2) · T · C_ctx · 4``."""
    return steps * (regions + 2) * tokens * context_width * 4


def inversion_path(h, w, steps: int, b: int, channels: int = 4) -> int:
    """DDIM and negative-prompt inversion: the trajectory's latents, ``(steps + 1) · 4 · h · w · b``."""
    return (steps + 1) * channels * h * w * b


def self_map_injection(layers, h, w, downscale: int = 4) -> int:
    """An edit pair's self-attention maps: the source's and the target's (heads, N, N) float32 and their
    blend, in the largest self-attention layer at most latent / ``downscale`` (transient, per layer)."""
    sizes = [positions(l, h, w) for l in layers if not l.cross and positions(l, h, w) * downscale ** 2 <= h * w]
    if not sizes:
        return 0
    n = max(sizes)
    heads = max(l.channels for l in layers if not l.cross and positions(l, h, w) == n) // 64 or 1
    return 3 * heads * n * n * 4


# ---- building the full architectures -------------------------------------------------------------

SDXL_UNET = dict(
    sample_size=128, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(320, 640, 1280),
    layers_per_block=2, transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)


@dataclass
class Arch:
    name: str
    size: int  # the image side the table uses
    context: int  # text context width

    def build(self, dtype: torch.dtype):
        """The UNet with random weights, made directly in ``dtype`` (no float32 copy on the way)."""
        from diffusers import UNet2DConditionModel

        torch.manual_seed(0)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            config = SDXL_UNET if self.name == "sdxl" else dict(sample_size=64, cross_attention_dim=768)
            return UNet2DConditionModel(**config).eval()
        finally:
            torch.set_default_dtype(previous)

    def inputs(self, unet, rows: int, h: int, w: int, dtype):
        g = torch.Generator().manual_seed(1)
        z = torch.randn(rows, 4, h, w, generator=g).to(dtype)
        ctx = torch.randn(rows, TOKENS, self.context, generator=g).to(dtype)
        extra = {}
        if self.name == "sdxl":
            extra["added_cond_kwargs"] = {"text_embeds": torch.randn(rows, 1280, generator=g).to(dtype),
                                          "time_ids": torch.tensor([[8 * h, 8 * w, 0, 0, 8 * h, 8 * w]] * rows,
                                                                   dtype=dtype)}
        return z, ctx, extra


ARCHS = {"sd15": Arch("sd15", 512, 768), "sdxl": Arch("sdxl", 1024, 2048)}


# ---- measuring ----------------------------------------------------------------------------------

def _status() -> dict:
    text = open("/proc/self/status").read()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def peak_of(run) -> int:
    """The peak resident memory ``run()`` adds over what the process held when it started (bytes)."""
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current VmRSS
    base = _status()["VmRSS"]
    run()
    return _status()["VmHWM"] - base


def saved_bytes(run, exclude=()) -> int:
    """Bytes autograd keeps for the backward of what ``run()`` computes: unique storages of the tensors
    saved for backward, parameters (``exclude``) left out."""
    seen: dict[int, int] = {}
    skip = {p.untyped_storage().data_ptr() for p in exclude}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())


class Runner:
    """The UNet and one function per feature that runs the UNet calls that feature makes (``on``) or the
    same calls without it (``on=False``)."""

    def __init__(self, arch: Arch, size: int, dtype: torch.dtype, regions: int = 2, unet=None):
        self.arch, self.dtype = arch, dtype
        self.unet = arch.build(dtype) if unet is None else unet
        self.h = self.w = size // 8
        self.regions = regions
        self.layers = attention_layers(self.unet)
        self.b = torch.finfo(dtype).bits // 8

    def _state(self, rows: int, cond_rows: tuple, uncond_rows: tuple, steps: int = 1):
        from ..attention.call import RowLayout
        from ..attention.controller import GenerationState

        state = GenerationState(total_steps=steps, latent_hw=(self.h, self.w))
        state.fixed_rows = RowLayout(cond_rows, uncond_rows)
        return state

    def _contexts(self):
        g = torch.Generator().manual_seed(2)
        return [torch.randn(1, TOKENS, self.arch.context, generator=g).to(self.dtype) for _ in range(self.regions)]

    def _boxes(self):
        return [(i / self.regions, 0.0, 1.0 / self.regions, 1.0) for i in range(self.regions)]

    def call(self, rows: int, controller=None, latent_fusion=None, grad: bool = False, ctx_grad: bool = False):
        from ..backends import diffusers_backend

        z, ctx, extra = self.arch.inputs(self.unet, rows, self.h, self.w, self.dtype)
        if controller is None:
            attach = contextlib.nullcontext()
        elif latent_fusion is not None:
            attach = diffusers_backend.latent_attached(self.unet, controller, latent_fusion)
        else:
            attach = diffusers_backend.attached(self.unet, controller)
        if grad:
            z.requires_grad_(True)
        if ctx_grad:
            ctx.requires_grad_(True)
        with attach, torch.set_grad_enabled(grad or ctx_grad):
            self.inputs = (z, ctx)
            return self.unet(z, 500, encoder_hidden_states=ctx, return_dict=False, **extra)[0]

    # -- features: each returns a callable for peak_of, and the held object's bytes after it ran
    def plain(self, rows=2):
        return lambda: self.call(rows)

    def attention(self, on=True):
        from ..attention.controller import Controller
        from ..attention.effects.region_fusion import RegionFusion, RegionPrompt

        if not on:
            return self.plain()
        regions = [RegionPrompt(*box, feather=0.03, weight=1.0, context=c)
                   for box, c in zip(self._boxes(), self._contexts())]
        state = self._state(2, (1,), (0,))
        controller = Controller([RegionFusion(regions, whole_start=0.3)], state)

        def run():
            self.call(2, controller)
            self.held = sum(k.numel() * k.element_size() + v.numel() * v.element_size()
                            for _, (k, v) in state.projections.values())
        return run

    def kssa(self, on=True):
        """Regions with keyword selection and KSSA (the bench's ``kssa`` set-up: 12 words a region, N = 15,
        maps at latent / 4) against regions alone."""
        from ..attention.controller import Controller
        from ..attention.effects.keyword_selection import KeywordSelection, RegionKeywords
        from ..attention.effects.kssa import KeywordSelfAttention
        from ..attention.effects.region_fusion import RegionFusion, RegionPrompt

        contexts = self._contexts()
        regions = [RegionPrompt(*box, feather=0.03, weight=1.0, context=c) for box, c in zip(self._boxes(), contexts)]
        words = [(i + 1, f"w{i}") for i in range(12)]
        selection = KeywordSelection([RegionKeywords(i, box, c, words)
                                      for i, (box, c) in enumerate(zip(self._boxes(), contexts))],
                                     n=15, refresh_every=5, downscale=4)
        effects = [KeywordSelfAttention(selection, scale=1.5, levels=("down",)), RegionFusion(regions, whole_start=0.3),
                   selection] if on else [RegionFusion(regions, whole_start=0.3)]
        controller = Controller(effects, self._state(2, (1,), (0,)))

        def run():
            self.call(2, controller)
            self.held = 2 * sum(m.numel() * m.element_size() for m in selection.sums.values())  # and last_maps
        return run

    def latent(self, on=True):
        from ..attention.controller import Controller
        from ..attention.effects.region_fusion import RegionPrompt
        from ..regions.latent_fusion import LatentFusion

        if not on:
            return self.plain()
        regions = [RegionPrompt(*box, feather=0.03, weight=1.0, context=c)
                   for box, c in zip(self._boxes(), self._contexts())]
        controller = Controller([], self._state(2, (1,), (0,)))
        return lambda: self.call(2, controller, latent_fusion=LatentFusion(regions, whole_start=0.3))

    def drag(self, on=True, steps=2):
        """``round(steps · 0.5)`` recording calls (the inversion branch) and one replacing call, batch 1."""
        from ..attention.controller import Controller
        from ..attention.effects.mutual_self_attention import MutualSelfAttention

        n_inv = max(1, round(steps * DRAG_START))
        effect = MutualSelfAttention()
        state = self._state(1, (0,), (), steps=n_inv)
        controller = Controller([effect] if on else [], state)

        def run():
            effect.mode = "record"
            for j in range(n_inv):
                state.step = j
                self.call(1, controller)
            self.held = sum(k.untyped_storage().nbytes() + v.untyped_storage().nbytes()
                            for k, v in effect.store.values())
            effect.mode = "replace"
            state.step = 0
            self.call(1, controller)
            effect.store.clear()
        return run

    def lime(self, on=True):
        """The first pass's feature step: one CFG call with the RoI capture (features to the host)."""
        from ..attention.controller import Controller
        from ..attention.effects.roi_capture import RoiCapture

        capture = RoiCapture(0.0, [1, 2, 3])
        controller = Controller([capture] if on else [], self._state(2, (1,), (0,)))

        def run():
            self.call(2, controller)
            self.held = sum(f.numel() * f.element_size() for f in capture.uncond_features + capture.cond_features)
        return run

    def guidance(self, on=True, bounded=True):
        """One layout-guidance iteration: the conditional row forward with the differentiable capture,
        the energy's gradient to the latent, the UNet made lean as the hosts do (``bounded``; else with
        its weights trainable, as loaded, and nothing recomputed). Off: the same forward without gradients."""
        from ..attention.controller import Controller
        from ..attention.effects.guidance_capture import GuidanceCapture, GuidedRegion
        from ..regions.layout_guidance import capture_energy, run_pass

        regions = [GuidedRegion(box, c, [1, 2]) for box, c in zip(self._boxes(), self._contexts())]
        capture = GuidanceCapture(regions)
        capture.stop_early = bounded
        controller = Controller([capture], self._state(1, (0,), ()))

        def run():
            if not on:
                with torch.no_grad():
                    self.call(1, controller)
                return
            with lean(self.unet) if bounded else contextlib.nullcontext():
                capture.start()
                z_holder = {}

                def forward():
                    run_pass(lambda: self.call(1, controller, grad=True))  # ends where the maps are in
                    return capture_energy(capture)
                self.held = saved_bytes(lambda: z_holder.__setitem__("e", forward()), exclude=self.unet.parameters())
                torch.autograd.grad(z_holder["e"], [self.inputs[0]])  # as descend(): the latent's only
                capture.stop()
        return run

    def nulltext(self, on=True, bounded=True):
        """One null-text optimisation step: the unconditional row's forward with its context requiring
        gradients, weights frozen and residual blocks checkpointed (``lib_regedit.backward.lean``, as
        null-text runs), backward to the context."""
        def run():
            if not on:
                with torch.no_grad():
                    self.call(1)
                return
            with lean(self.unet, checkpointed=bounded):
                holder = {}
                self.held = saved_bytes(lambda: holder.__setitem__("out", self.call(1, ctx_grad=True)),
                                        exclude=self.unet.parameters())
                torch.autograd.grad(holder["out"].float().pow(2).mean(), [self.inputs[1]])
        return run

    def mrgd(self, on=True, bounded=True):
        """Multi-region guidance's decode: the pair's two predicted latents through the VAE decoder with
        gradients (``region_guidance.RegionGuidance.gradient``), lean as shipped (``bounded``) or not. Off:
        the same decode without gradients (what a generation's own decode costs)."""
        vae = self._vae()
        g = torch.Generator().manual_seed(3)
        z = torch.randn(2, 4, self.h, self.w, generator=g).to(self.dtype)

        def run():
            if not on:
                with torch.no_grad():
                    vae.decode(z[:1]).sample
                return
            zz = z.detach().float().requires_grad_(True)
            if not bounded:  # both images' decoder graphs at once, everything kept
                holder = {}
                self.held = saved_bytes(lambda: holder.__setitem__("img", vae.decode(zz.to(self.dtype)).sample.float()),
                                        exclude=vae.parameters())
                torch.autograd.grad(holder["img"].mean(), [zz])
                return
            with torch.no_grad():  # as RegionGuidance.gradient: both decoded without a graph, then one at a time
                images = vae.decode(zz.to(self.dtype)).sample.float()
            self.held = 0
            with lean(vae):
                for row in range(2):
                    x, holder = zz[row:row + 1].detach().requires_grad_(True), {}
                    saved = saved_bytes(lambda: holder.__setitem__("img", vae.decode(x.to(self.dtype)).sample.float()),
                                        exclude=vae.parameters())
                    torch.autograd.grad(holder["img"], [x], torch.ones_like(images[row:row + 1]) / images.numel())
                    self.held = max(self.held, saved)
        return run

    def _vae(self):
        if getattr(self, "vae", None) is None:
            from diffusers import AutoencoderKL

            torch.manual_seed(0)
            previous = torch.get_default_dtype()
            torch.set_default_dtype(self.dtype)
            try:  # SD's (and SDXL's) VAE: four levels, 128 to 512 channels
                self.vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4,
                                         up_block_types=("UpDecoderBlock2D",) * 4,
                                         block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                         latent_channels=4).eval()
            finally:
                torch.set_default_dtype(previous)
        return self.vae

    def pair(self, on=True):
        """An edit pair's CFG call: two images (source and target rows) instead of one. Measured as the
        plain call at 4 rows against 2 (PairFusion's own maps are the transient :func:`self_map_injection`)."""
        return self.plain(4 if on else 2)


def predict(feature: str, layers, h: int, w: int, b: int, steps: int, regions: int, context: int,
            per_pixel: dict | None = None) -> int | None:
    """The formula's bytes for one feature at latent ``h × w`` (the device's unless said otherwise)."""
    if feature == "drag":
        return drag_kv(layers, h, w, steps, b)
    if feature == "attention":
        return region_projections(layers, regions, b)
    if feature == "latent":
        return latent_mode_eps(h, w, regions, 1, b)
    if feature == "kssa":
        return keyword_maps(h, w, regions)
    if feature == "lime":
        return lime_features(layers, h, w)
    if per_pixel and feature in per_pixel:
        return int(per_pixel[feature] * h * w)
    return None


# ---- the worker and the table -------------------------------------------------------------------

FEATURES = ("attention", "latent", "kssa", "drag", "lime", "pair", "guidance", "guidance_unbounded", "nulltext",
            "nulltext_unbounded", "mrgd", "mrgd_unbounded")
BACKWARD = ("guidance", "guidance_unbounded", "nulltext", "nulltext_unbounded", "mrgd", "mrgd_unbounded")


def _measure(arch: str, size: int, dtype: str, features: list[str], drag_steps: int, regions: int) -> dict:
    torch.set_num_threads(1)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    runner = Runner(ARCHS[arch], size, dt, regions)
    runner.call(1)  # warm-up: the allocator's first arenas and the kernels' one-off buffers
    out = {"layers": len(runner.layers), "S": self_sum(runner.layers, runner.h, runner.w),
           "X": cross_width(runner.layers), "plain_cfg": peak_of(runner.plain())}
    for feature in features:
        name, kwargs = feature, {}
        if feature.endswith("_unbounded"):
            name, kwargs = feature.removesuffix("_unbounded"), {"bounded": False}
        if feature == "drag":
            kwargs = {"steps": drag_steps}
        make = getattr(runner, name)
        runner.held = None
        started = time.perf_counter()
        with_it = peak_of(make(on=True, **kwargs))
        held = runner.held
        seconds = time.perf_counter() - started
        without = peak_of(make(on=False, **kwargs))
        out[feature] = {"extra": with_it - without, "with": with_it, "without": without, "held": held,
                        "seconds": round(seconds, 1)}
        print(json.dumps({feature: out[feature]}), file=sys.stderr, flush=True)
    return out


def bound_costs(args) -> None:
    """What the bounds cost in time: each backward feature lean and unbounded, interleaved ``--rounds``
    times in one process, the median of each (the outputs are the same: ``tests/test_memory.py``)."""
    import statistics

    torch.set_num_threads(1)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    runner = Runner(ARCHS[args.arch], args.size, dt, args.regions)
    runner.call(1)
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name in ("guidance", "nulltext", "mrgd"):
            for bounded in (True, False):
                run = getattr(runner, name)(on=True, bounded=bounded)
                started = time.perf_counter()
                run()
                times.setdefault((name, bounded), []).append(time.perf_counter() - started)
    print(f"{args.arch} {args.size}x{args.size} {args.dtype}, 1 thread, median of {args.rounds} interleaved rounds")
    print("| feature | lean s | unbounded s | ratio |")
    print("|---|---|---|---|")
    for name in ("guidance", "nulltext", "mrgd"):
        lean_s, full_s = statistics.median(times[(name, True)]), statistics.median(times[(name, False)])
        print(f"| {name} | {lean_s:.2f} | {full_s:.2f} | {lean_s / full_s:.2f} |")


def _worker(args) -> None:
    result = _measure(args.arch, args.size, args.dtype, args.features.split(","), args.drag_steps, args.regions)
    print(json.dumps(result))


def _worker_env() -> dict:
    """Every allocation of 64 kB or more its own mapping, given back on free: the resident memory then
    follows the live tensors (glibc would otherwise keep freed heap and hide the next run's peak)."""
    import os

    return dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536", OMP_NUM_THREADS="1")


def per_pixel_constants(arch: str, size: int, dtype: str, regions: int, features: list[str]) -> dict:
    """Saved-for-backward bytes per latent pixel (guidance, null-text) and the plain call's activation
    peak per latent pixel for two more rows (pair), counted at ``size``."""
    out = subprocess.run([sys.executable, "-m", "lib_regedit.bench", "_memory_worker", arch, "--size", str(size),
                          "--dtype", dtype, "--features", ",".join(features),
                          "--regions", str(regions)], check=True, capture_output=True, text=True, env=_worker_env())
    result = json.loads(out.stdout.strip().splitlines()[-1])
    pixels = (size // 8) ** 2
    return {f: result[f]["held"] / pixels for f in features}


def run(args) -> None:
    """Measure in a worker process, then print the table: formula, predicted, held and measured."""
    features = args.features.split(",")
    constants = None
    backward = [f for f in features if f in BACKWARD]
    if backward:
        constants = per_pixel_constants(args.arch, args.constants_size, args.dtype, args.regions, backward)
    cmd = [sys.executable, "-m", "lib_regedit.bench", "_memory_worker", args.arch, "--size", str(args.size),
           "--dtype", args.dtype, "--features", ",".join(features), "--drag-steps", str(args.drag_steps),
           "--regions", str(args.regions)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_worker_env())
    result = json.loads(out.stdout.strip().splitlines()[-1])
    arch = ARCHS[args.arch]
    runner_layers = _layers_only(args.arch)
    h = w = args.size // 8
    b = 2 if args.dtype != "float32" else 4
    print(f"{args.arch} UNet (random weights, {args.dtype}), {args.size}x{args.size}, {args.regions} regions, "
          f"{len(runner_layers)} attention layers, S={result['S']:,} X={result['X']:,}; plain CFG call's peak "
          f"{result['plain_cfg'] / MB:.0f} MiB over the weights")
    if constants:
        print("per latent pixel (counted at %d²): %s" % (args.constants_size, ", ".join(
            f"{k} {v:,.0f} B" for k, v in constants.items())))
    print("| feature | predicted | held (object) | measured extra peak | run s |")
    print("|---|---|---|---|---|")
    for feature in features:
        r = result[feature]
        pred = predict(feature, runner_layers, h, w, b, args.drag_steps, args.regions, arch.context, constants)
        if feature == "pair":  # a second image's rows: the plain CFG call's own activation peak again
            pred = result["plain_cfg"]
        held = "-" if r["held"] is None else f"{r['held'] / MB:,.0f} MiB"
        print(f"| {feature} | {'-' if pred is None else f'{pred / MB:,.0f} MiB'} | {held} | "
              f"{r['extra'] / MB:,.0f} MiB | {r['seconds']} |")


def _layers_only(arch: str) -> list[Layer]:
    """The attention layers without the weights: the UNet built on the meta device."""
    with torch.device("meta"):
        from diffusers import UNet2DConditionModel

        config = SDXL_UNET if arch == "sdxl" else dict(sample_size=64, cross_attention_dim=768)
        return attention_layers(UNet2DConditionModel(**config))


def add_parsers(sub) -> None:
    p = sub.add_parser("memory", help="each feature's extra memory: formula against a measured peak")
    p.add_argument("--arch", choices=sorted(ARCHS), default="sd15")
    p.add_argument("--size", type=int, default=None, help="image side (default: 512 for sd15, 1024 for sdxl)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--features", default=",".join(FEATURES))
    p.add_argument("--drag-steps", type=int, default=2, help="drag steps measured (the formula scales to 20)")
    p.add_argument("--regions", type=int, default=2)
    p.add_argument("--constants-size", type=int, default=256,
                   help="image side where the per-pixel constants are counted")
    c = sub.add_parser("memory_cost", help="what the memory bounds cost in time (lean against unbounded)")
    c.add_argument("--arch", choices=sorted(ARCHS), default="sd15")
    c.add_argument("--size", type=int, default=256)
    c.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--regions", type=int, default=2)
    w = sub.add_parser("_memory_worker")
    w.add_argument("arch")
    w.add_argument("--size", type=int, required=True)
    w.add_argument("--dtype", default="float32")
    w.add_argument("--features", default=",".join(FEATURES))
    w.add_argument("--drag-steps", type=int, default=2)
    w.add_argument("--regions", type=int, default=2)


def dispatch(args) -> bool:
    if args.bench == "memory":
        if args.size is None:
            args.size = ARCHS[args.arch].size
        run(args)
        return True
    if args.bench == "_memory_worker":
        _worker(args)
        return True
    if args.bench == "memory_cost":
        bound_costs(args)
        return True
    return False
