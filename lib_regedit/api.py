"""Python API on diffusers: region generation with a StableDiffusionPipeline or StableDiffusionXLPipeline.

>>> from lib_regedit.models import load_pipeline
>>> from lib_regedit.api import generate
>>> pipe = load_pipeline("models/shapesworld")
>>> result = generate(pipe, {"prompt": "a red circle and a blue square", "regions": [
...     {"x": 0.0, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a red circle"},
...     {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square"}]}, seed=1)
>>> result.image.save("out.png", pnginfo=result.pnginfo())

A region may be a shape instead of a box, ``{"shape": {"type": "polygon", "points": [[x, y], ...]}}`` or
brush strokes, or a colour of a mask picture: ``{"mask_image": PIL image, base64 PNG or data URL,
"regions": [{"colour": "#ff0000", "prompt": ...}]}`` (docs/documents.md, *Regions of any shape*).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass, field

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from . import generation_limits as limits
from . import progress
from .inversion import ddim
from .regions import layout_init
from .regions.layout_guidance import LayoutGuidance, document_guidance
from .attention.controller import Controller, GenerationState
from .attention.effects.map_capture import MapCapture
from .backends import diffusers_backend
from .backends.checkpoint import empty_prompt_eps
from .backends.diffusers_checkpoint import (DiffusersCheckpoint, added_conditioning, encode_prompt,
                                           pipeline_words)
from .documents import RegionDocument, parse_region_document
from .documents.region import check_one_image
from .errors import RegEditError
from .infotext import INFOTEXT_KEY, KEYWORDS_KEY, parameters_text
from .regions.prompting import build_effects


@dataclass
class GenerationResult:
    images: list[Image.Image]
    parameters: str
    document: RegionDocument | None
    maps: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)

    @property
    def image(self) -> Image.Image:
        return self.images[0]

    def pnginfo(self) -> PngInfo:
        info = PngInfo()
        info.add_text("parameters", self.parameters)
        return info


def encode(pipe, prompt: str, negative_prompt: str | None = None):
    """(cond, uncond, pooled, negative_pooled) embeddings; pooled ones only for SDXL."""
    return encode_prompt(pipe, prompt, negative_prompt)


def _context(pipe, prompt: str) -> torch.Tensor:
    return encode(pipe, prompt)[0]


def tokenize(pipe, prompt: str) -> list[tuple[int, str]]:
    """Word tokens of ``prompt`` as (position in the encoded context, text): no BOS, EOS or padding."""
    return pipeline_words(pipe, prompt)


def native_size(pipe) -> int:
    return pipe.unet.config.sample_size * pipe.vae_scale_factor


def check_settings(pipe, *, seed, steps, guidance_scale, width, height, batch_size, allow_large=False):
    """Every generation setting checked before any work starts (``lib_regedit.generation_limits``).
    Returns the width and height (the model's native size where ``None``)."""
    limits.check_seed(seed)
    limits.check_steps(steps, pipe.scheduler.config.num_train_timesteps)
    limits.check_guidance_scale(guidance_scale, "guidance_scale")
    limits.check_batch_size(batch_size)
    return limits.check_size(width, height, vae_factor=pipe.vae_scale_factor, native=native_size(pipe),
                             allow_large=allow_large)


def generate(pipe, document, *, seed: int = 0, steps: int = 20, guidance_scale: float = 7.5,
             width: int | None = None, height: int | None = None, mode: str | None = None,
             batch_size: int = 1, capture_maps: bool = False, model_name: str | None = None,
             allow_large: bool = False, loras=None) -> GenerationResult:
    """Generate with region prompts. ``document`` is a region document (dict, JSON string or parsed).
    Bad settings raise :class:`RegEditError` before any work; sizes beyond 4x the model's native area
    need ``allow_large``. ``loras`` (a folder of ``.safetensors``, or a dict name -> file) lets a region's
    ``<lora:NAME:WEIGHT>`` apply to that region (``lib_regedit/regions/loras.py``)."""
    doc = document if isinstance(document, RegionDocument) else parse_region_document(document)
    if doc is None:
        raise RegEditError("regedit", "the region document is empty", 'give {"prompt": "...", "regions": [...]}')
    check_one_image(doc, "make the pair with lib_regedit.editing.edit_pair(pipe, document), or remove the region's "
                         "\"edit\" (and \"target_prompt\") to generate one image")
    mode = mode or doc.mode
    if mode not in ("attention", "latent"):
        raise RegEditError("mode", f"{mode!r} is not a mode", "use attention or latent")
    width, height = check_settings(pipe, seed=seed, steps=steps, guidance_scale=guidance_scale, width=width,
                                   height=height, batch_size=batch_size, allow_large=allow_large)
    cond, uncond, pooled, negative_pooled = encode(pipe, doc.prompt, doc.negative_prompt)
    built = build_effects(doc, lambda prompt: _context(pipe, prompt), lambda prompt: tokenize(pipe, prompt), mode,
                          loras=lora_support(pipe, loras))
    built.notes[:0] = doc.notes(width, height)  # a mask picture's unnamed colours, its scaling to the image
    if not doc.regions:
        built.notes.insert(0, "regions: the list is empty, so this is the prompt alone, as without RegEdit (add a "
                              "region, x, y, w, h and its prompt, to place something)")
    fusion = built.fusion
    state = GenerationState(total_steps=steps, cond_reference=cond, uncond_reference=uncond, cond_first=False)
    built.install(state)
    effects = list(built.effects)
    capture = MapCapture() if capture_maps else None
    if capture:
        effects.append(capture)
    guidance = None
    if doc.guidance.enabled:
        if mode == "attention":
            guidance = _layout_guidance(pipe, doc, steps, [r.context for r in fusion.regions])
            effects.append(guidance.capture)
        else:
            built.notes.append("layout guidance runs in attention mode only; it was skipped in latent mode")
    controller = Controller(effects, state)
    unet = pipe.unet
    with contextlib.ExitStack() as stack:
        latents = None
        if doc.uses_layout_init():  # before any hook is attached: the inversion is the plain model's
            latents = _layout_latents(pipe, doc, seed=seed, steps=steps, width=width, height=height,
                                      batch_size=batch_size)
        if mode == "latent":
            stack.enter_context(diffusers_backend.latent_attached(unet, controller, fusion))
            if capture:
                stack.enter_context(diffusers_backend.attached(unet, controller))
        else:
            stack.enter_context(diffusers_backend.attached(unet, controller))
        step_hook = None
        if guidance is not None:
            forward = _cond_forward(pipe, cond, pooled, width, height)
            latents = _guide_start(pipe, guidance, forward, steps, latents if latents is not None else
                                   _seed_noise(pipe, seed, batch_size, width, height))
            step_hook = _guide_step(guidance, forward)
        images = _run(pipe, state, cond, uncond, pooled, negative_pooled, seed=seed, steps=steps,
                      guidance_scale=guidance_scale, width=width, height=height, batch_size=batch_size,
                      latents=latents, step_hook=step_hook)
    params = _params(pipe, seed, steps, guidance_scale, width, height, model_name)
    params[INFOTEXT_KEY] = doc.to_json()
    extras = {"notes": built.notes}
    if guidance is not None:
        extras["guidance"] = guidance.history
        built.notes.append(f"layout guidance: {guidance.summary()}")
    if built.selection is not None:
        params[KEYWORDS_KEY] = built.selection.summary()
        extras["keywords"] = [r.selected_words() for r in built.selection.regions]
        extras["keyword_maps"] = built.selection.keyword_maps()
    return GenerationResult(images, parameters_text(doc.prompt, doc.negative_prompt, params), doc,
                            capture.maps() if capture and capture.sums else None, extras)


def generate_plain(pipe, prompt: str, negative_prompt: str = "", *, seed: int = 0, steps: int = 20,
                   guidance_scale: float = 7.5, width: int | None = None, height: int | None = None,
                   batch_size: int = 1, model_name: str | None = None, allow_large: bool = False) -> GenerationResult:
    """The same sampling with no extension attached: the baseline for benchmarks and evaluation."""
    width, height = check_settings(pipe, seed=seed, steps=steps, guidance_scale=guidance_scale, width=width,
                                   height=height, batch_size=batch_size, allow_large=allow_large)
    cond, uncond, pooled, negative_pooled = encode(pipe, prompt, negative_prompt)
    state = GenerationState(total_steps=steps)
    images = _run(pipe, state, cond, uncond, pooled, negative_pooled, seed=seed, steps=steps,
                  guidance_scale=guidance_scale, width=width, height=height, batch_size=batch_size)
    params = _params(pipe, seed, steps, guidance_scale, width, height, model_name)
    return GenerationResult(images, parameters_text(prompt, negative_prompt, params), None)


def lora_support(pipe, loras):
    """The LoRA per region support for ``loras`` (None, a folder, a dict name -> file, or a support)."""
    from .regions.lora_files import DiffusersLoras
    from .regions.loras import LoraSupport

    if loras is None or isinstance(loras, LoraSupport):
        return loras
    if isinstance(loras, dict):
        return DiffusersLoras(pipe, loras)
    return DiffusersLoras.from_folder(pipe, loras, field="loras")


def _params(pipe, seed, steps, guidance_scale, width, height, model_name) -> dict:
    return {"Steps": steps, "Sampler": type(pipe.scheduler).__name__, "CFG scale": guidance_scale, "Seed": seed,
            "Size": f"{width}x{height}", "Model": model_name}


def _layout_latents(pipe, doc, *, seed, steps, width, height, batch_size) -> torch.Tensor:
    """Layout init (``lib_regedit.regions.layout_init.layout_start``): the document's sketch DDIM-inverted
    with the empty prompt (once per layout and model, cached), mixed with the seed's noise, as the
    pipeline's initial ``latents``."""
    checkpoint = DiffusersCheckpoint(pipe, width, height)
    empty = empty_prompt_eps(checkpoint)  # only a cache miss inverts, and needs it
    bar = functools.cache(lambda: progress.bar(pipe, "layout init", len(
        ddim.inversion_timesteps(len(pipe.scheduler.alphas_cumprod), steps, doc.init_steps))))

    def eps(z, t):
        bar().update(1)
        return empty(z, t)

    factor = pipe.vae_scale_factor
    shape = (batch_size, pipe.vae.config.latent_channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
    try:
        latents = layout_init.layout_start(doc, noise, width=width, height=height, steps=steps,
                                           encode=checkpoint.posterior_mean, eps=eps,
                                           alphas_cumprod=pipe.scheduler.alphas_cumprod, model_key=checkpoint.key)
    finally:
        if bar.cache_info().currsize:  # a cached layout ran no inversion, and showed no bar
            bar().close()
    return latents.to(pipe.unet.device, pipe.unet.dtype)


def clean_latent(pipe, pixels: torch.Tensor) -> torch.Tensor:
    """The clean latent z_0 of (1, 3, H, W) pixels in [-1, 1]: the VAE posterior's mean, scaled
    (deterministic, so an inversion of it is reproducible)."""
    return DiffusersCheckpoint(pipe, *pixels.shape[-1:-3:-1]).posterior_mean(pixels)


def _layout_guidance(pipe, doc, steps, contexts) -> LayoutGuidance:
    """The document's layout guidance on this pipeline (``layout_guidance.document_guidance``)."""
    guidance = document_guidance(doc, contexts, lambda prompt: tokenize(pipe, prompt), steps,
                                 pipe.scheduler.alphas_cumprod)
    guidance.model = pipe.unet
    return guidance


def _cond_forward(pipe, cond, pooled, width, height):
    """``forward(z, t)``: the UNet on the conditional rows, for a guidance pass."""
    unet = pipe.unet

    def forward(z, t):
        rows = z.shape[0]
        return unet(z.to(unet.dtype), t, encoder_hidden_states=cond.expand(rows, -1, -1),
                    return_dict=False, **added_conditioning(pooled, rows, width, height))
    return forward


def _seed_noise(pipe, seed, batch_size, width, height) -> torch.Tensor:
    """The initial noise the pipeline would draw for ``seed`` (unit variance), drawn here so the
    first step can be guided before sampling starts."""
    from diffusers.utils.torch_utils import randn_tensor

    factor = pipe.vae_scale_factor
    shape = (batch_size, pipe.unet.config.in_channels, height // factor, width // factor)
    return randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed), device=pipe._execution_device,
                        dtype=pipe.unet.dtype)


def _input_scale(scheduler, latents, t) -> torch.Tensor:
    """c with ``scheduler.scale_model_input(x, t) = c * x``: latents to the UNet's input (z_t)."""
    return scheduler.scale_model_input(torch.ones_like(latents[:1, :1, :1, :1]), t).reshape(())


def _guided(guidance, forward, latents, t, c):
    """Guide the UNet's input ``c * latents`` at ``t`` and bring it back to the sampler's latents."""
    return guidance.apply(latents * c, t, forward) / c


def _guide_start(pipe, guidance, forward, steps, latents):
    """Guide step 0 before sampling: the pipeline takes unit noise and scales it by its initial sigma."""
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps, device=latents.device)
    t = scheduler.timesteps[0]
    return _guided(guidance, forward, latents, t, scheduler.init_noise_sigma * _input_scale(scheduler, latents, t))


def _guide_step(guidance, forward):
    def hook(pipe, step, latents):
        if not guidance.wants(step) or step >= len(pipe.scheduler.timesteps):
            return latents
        t = pipe.scheduler.timesteps[step]
        return _guided(guidance, forward, latents, t, _input_scale(pipe.scheduler, latents, t))
    return hook


def _run(pipe, state, cond, uncond, pooled, negative_pooled, *, seed, steps, guidance_scale, width, height,
         batch_size, latents=None, step_hook=None, generator=None):
    def on_step_end(_pipe, i, _t, kwargs):
        state.step = i + 1
        if step_hook is not None:
            kwargs["latents"] = step_hook(_pipe, i + 1, kwargs["latents"])
        return kwargs

    kwargs = dict(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=steps,
                  guidance_scale=guidance_scale, width=width, height=height, num_images_per_prompt=batch_size,
                  generator=generator if generator is not None else torch.Generator("cpu").manual_seed(seed),
                  callback_on_step_end=on_step_end)
    if latents is not None:
        kwargs["latents"] = latents
    if pooled is not None:
        kwargs.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
    with torch.no_grad(), progress.named_bar(pipe, "sampling"):
        return pipe(**kwargs).images
