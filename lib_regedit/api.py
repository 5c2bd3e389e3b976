"""Python API on diffusers: region generation with a StableDiffusionPipeline or StableDiffusionXLPipeline.

>>> from lib_regedit.models import load_pipeline
>>> from lib_regedit.api import generate
>>> pipe = load_pipeline("models/shapesworld")
>>> result = generate(pipe, {"prompt": "a red circle and a blue square", "regions": [
...     {"x": 0.0, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a red circle"},
...     {"x": 0.5, "y": 0.2, "w": 0.5, "h": 0.6, "prompt": "a blue square"}]}, seed=1)
>>> result.image.save("out.png", pnginfo=result.pnginfo())
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from . import layout_init
from .attention.controller import Controller, GenerationState
from .attention.effects.map_capture import MapCapture
from .backends import diffusers_backend
from .documents import RegionDocument, parse_region_document
from .errors import RegEditError
from .infotext import INFOTEXT_KEY, KEYWORDS_KEY, parameters_text
from .region_prompting import build_effects


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


def _is_sdxl(pipe) -> bool:
    return hasattr(pipe, "text_encoder_2")


def encode(pipe, prompt: str, negative_prompt: str | None = None):
    """(cond, uncond, pooled, negative_pooled) embeddings; pooled ones only for SDXL."""
    device = pipe._execution_device
    with torch.no_grad():
        if _is_sdxl(pipe):
            return pipe.encode_prompt(prompt, device=device, num_images_per_prompt=1,
                                      do_classifier_free_guidance=negative_prompt is not None,
                                      negative_prompt=negative_prompt)
        cond, uncond = pipe.encode_prompt(prompt, device, 1, negative_prompt is not None,
                                          negative_prompt=negative_prompt)
        return cond, uncond, None, None


def _context(pipe, prompt: str) -> torch.Tensor:
    return encode(pipe, prompt)[0]


def tokenize(pipe, prompt: str) -> list[tuple[int, str]]:
    """Word tokens of ``prompt`` as (position in the encoded context, text): no BOS, EOS or padding."""
    tok = pipe.tokenizer
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids
    special = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
    return [(i, tok.convert_ids_to_tokens(t).replace("</w>", "")) for i, t in enumerate(ids) if t not in special]


def _check_size(pipe, width, height):
    factor = pipe.vae_scale_factor
    native = pipe.unet.config.sample_size * factor
    width, height = width or native, height or native
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < factor or value > 8192 or value % factor:
            raise RegEditError(name, f"{value} is not a usable size", f"use a multiple of {factor} up to 8192")
    return width, height


def generate(pipe, document, *, seed: int = 0, steps: int = 20, guidance_scale: float = 7.5,
             width: int | None = None, height: int | None = None, mode: str | None = None,
             batch_size: int = 1, capture_maps: bool = False, model_name: str | None = None) -> GenerationResult:
    """Generate with region prompts. ``document`` is a region document (dict, JSON string or parsed)."""
    doc = document if isinstance(document, RegionDocument) else parse_region_document(document)
    if doc is None:
        raise RegEditError("regedit", "the region document is empty", 'give {"prompt": "...", "regions": [...]}')
    mode = mode or doc.mode
    if mode not in ("attention", "latent"):
        raise RegEditError("mode", f"{mode!r} is not a mode", "use attention or latent")
    width, height = _check_size(pipe, width, height)
    cond, uncond, pooled, negative_pooled = encode(pipe, doc.prompt, doc.negative_prompt)
    built = build_effects(doc, lambda prompt: _context(pipe, prompt), lambda prompt: tokenize(pipe, prompt), mode)
    fusion = built.fusion
    state = GenerationState(total_steps=steps, cond_reference=cond, uncond_reference=uncond, cond_first=False)
    effects = list(built.effects)
    capture = MapCapture() if capture_maps else None
    if capture:
        effects.append(capture)
    controller = Controller(effects, state)
    unet = pipe.unet
    with contextlib.ExitStack() as stack:
        latents = None
        if doc.init == "layout":  # before any hook is attached: the inversion is the plain model's
            latents = _layout_latents(pipe, doc, seed=seed, steps=steps, width=width, height=height,
                                      batch_size=batch_size)
        if mode == "latent":
            stack.enter_context(diffusers_backend.latent_attached(unet, controller, fusion))
            if capture:
                stack.enter_context(diffusers_backend.attached(unet, controller))
        else:
            stack.enter_context(diffusers_backend.attached(unet, controller))
        images = _run(pipe, state, cond, uncond, pooled, negative_pooled, seed=seed, steps=steps,
                      guidance_scale=guidance_scale, width=width, height=height, batch_size=batch_size,
                      latents=latents)
    params = _params(pipe, seed, steps, guidance_scale, width, height, model_name)
    params[INFOTEXT_KEY] = doc.to_json()
    extras = {"notes": built.notes}
    if built.selection is not None:
        params[KEYWORDS_KEY] = built.selection.summary()
        extras["keywords"] = [r.selected_words() for r in built.selection.regions]
        extras["keyword_maps"] = built.selection.keyword_maps()
    return GenerationResult(images, parameters_text(doc.prompt, doc.negative_prompt, params), doc,
                            capture.maps() if capture and capture.sums else None, extras)


def generate_plain(pipe, prompt: str, negative_prompt: str = "", *, seed: int = 0, steps: int = 20,
                   guidance_scale: float = 7.5, width: int | None = None, height: int | None = None,
                   batch_size: int = 1, model_name: str | None = None) -> GenerationResult:
    """The same sampling with no extension attached: the baseline for benchmarks and evaluation."""
    width, height = _check_size(pipe, width, height)
    cond, uncond, pooled, negative_pooled = encode(pipe, prompt, negative_prompt)
    state = GenerationState(total_steps=steps)
    images = _run(pipe, state, cond, uncond, pooled, negative_pooled, seed=seed, steps=steps,
                  guidance_scale=guidance_scale, width=width, height=height, batch_size=batch_size)
    params = _params(pipe, seed, steps, guidance_scale, width, height, model_name)
    return GenerationResult(images, parameters_text(prompt, negative_prompt, params), None)


def _params(pipe, seed, steps, guidance_scale, width, height, model_name) -> dict:
    return {"Steps": steps, "Sampler": type(pipe.scheduler).__name__, "CFG scale": guidance_scale, "Seed": seed,
            "Size": f"{width}x{height}", "Model": model_name}


def _layout_latents(pipe, doc, *, seed, steps, width, height, batch_size) -> torch.Tensor:
    """Layout init (``lib_regedit.layout_init``): the DDIM inversion of the boxes' sketch with the
    empty prompt, mixed with the seed's noise, as the pipeline's initial ``latents``."""
    vae, unet, sched = pipe.vae, pipe.unet, pipe.scheduler
    sketch = layout_init.document_sketch(doc, width, height)
    context, _, pooled, _ = encode(pipe, "")
    added = None
    if pooled is not None:  # SDXL: pooled text and size conditioning
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=pooled.dtype, device=pooled.device)
        added = {"text_embeds": pooled, "time_ids": time_ids}

    def eps(z, t):
        return unet(z.to(unet.dtype), t, encoder_hidden_states=context, added_cond_kwargs=added).sample

    with torch.no_grad():
        z0 = vae.encode(sketch.to(vae.device, vae.dtype)).latent_dist.mean.float() * vae.config.scaling_factor
    noise = torch.randn((batch_size, *z0.shape[1:]), generator=torch.Generator("cpu").manual_seed(seed))
    latents = layout_init.spatial_noise(eps, z0, sched.alphas_cumprod, steps, noise, doc.init_noise)
    return latents.to(unet.device, unet.dtype)


def _run(pipe, state, cond, uncond, pooled, negative_pooled, *, seed, steps, guidance_scale, width, height,
         batch_size, latents=None):
    def on_step_end(_pipe, i, _t, kwargs):
        state.step = i + 1
        return kwargs

    kwargs = dict(prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=steps,
                  guidance_scale=guidance_scale, width=width, height=height, num_images_per_prompt=batch_size,
                  generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=on_step_end)
    if latents is not None:
        kwargs["latents"] = latents
    if pooled is not None:
        kwargs.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
    with torch.no_grad():
        return pipe(**kwargs).images
