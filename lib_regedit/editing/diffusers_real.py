"""Region editing of a real image on diffusers (MRGD Alg. 1 with inversion): the image is inverted with
its source prompts (``lib_regedit.inversion``), then the source and the target are denoised together
from the inverted latent, z_T^T <- z_T^S = ẑ_T^R, with the inversion's unconditional contexts per step.
The source row is the reconstruction; the target is the edit.

>>> from lib_regedit.models import load_pipeline
>>> from lib_regedit.editing.diffusers_real import edit_image
>>> pipe = load_pipeline("models/shapesworld")
>>> result = edit_image(pipe, Image.open("photo.png"), {"prompt": "a red circle and a green square",
...     "regions": [{"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
...                  "target_prompt": "a blue circle"}]}, inversion="nulltext")
>>> result.target.save("edited.png")

The denoising loop is the deterministic DDIM step the inversion reversed (``inversion.ddim``), so the
reconstruction retraces it whatever scheduler the pipeline carries.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import torch
from PIL import Image

from .. import api
from ..backends.diffusers_checkpoint import DiffusersCheckpoint
from ..errors import RegEditError
from ..infotext import INFOTEXT_KEY, INVERSION_KEY, PAIR_IMAGE_KEY, parameters_text
from ..inversion import InversionCache
from ..images import check_image
from ..inversion.image_input import check_regions_cover
from ..inversion.invert import DEFAULT_FIXED_POINT, check_fixed_point, check_method
from ..inversion.null_text import NullTextOptions
from .diffusers_edit import EditResult, parse_pair
from .real_edit import edit_latents, paste_outside


def model_id(pipe) -> str:
    """The pipeline's name and a fingerprint of its UNet's first and last weights (a cache key part)."""
    unet = pipe.unet
    h = hashlib.sha256()
    for weight in (unet.conv_in.weight, unet.conv_out.weight):
        h.update(weight.detach().float().cpu().numpy().tobytes())
    return f"{getattr(pipe, 'name_or_path', '') or type(pipe).__name__}:{h.hexdigest()[:16]}"


def encode_image(pipe, image: Image.Image) -> torch.Tensor:
    """The clean latent z_0 of an RGB image (the VAE's mean, scaled)."""
    from ..regions.layout_init import image_to_tensor

    return api.clean_latent(pipe, image_to_tensor(image))


def decode(pipe, z: torch.Tensor) -> list[Image.Image]:
    vae = pipe.vae
    with torch.no_grad():
        images = vae.decode(z.to(vae.dtype) / vae.config.scaling_factor).sample.float()
    return pipe.image_processor.postprocess(images, output_type="pil")


def edit_image(pipe, image: Image.Image, document, *, inversion: str | None = None, seed: int = 0,
               steps: int = 20, guidance_scale: float = 7.5, cache: InversionCache | None = None,
               nulltext: NullTextOptions | None = None, fixed_point: int = DEFAULT_FIXED_POINT, segmenter=None,
               progress=None, cancel=None, model_name: str | None = None, allow_large: bool = False) -> EditResult:
    """Edit a real ``image`` region by region. ``document`` is an edit document (its regions' source
    prompts describe the image as it is). ``inversion``: "negative" (fast), "nulltext" (closest) or
    "ddim" (the baseline); ``None`` reads the document's ``edit.inversion`` ("negative" by default).
    A ``cache`` skips the inversion on a second edit of the same image, model,
    source prompts and settings. ``seed`` draws the noise that starts added and removed boxes.
    ``progress(done, total, phase)`` and ``cancel()`` for long runs.
    Bad input raises :class:`RegEditError` before any work."""
    doc = parse_pair(document)
    inversion = check_method(inversion or doc.edit.inversion)
    doc = replace(doc, edit=replace(doc.edit, inversion=inversion))  # the infotext names the one used
    check_fixed_point(fixed_point)
    nulltext = nulltext or NullTextOptions()
    image = check_image(image, vae_factor=pipe.vae_scale_factor, native=api.native_size(pipe),
                        allow_large=allow_large)
    width, height = image.size
    check_regions_cover(doc, width, height, pipe.vae_scale_factor)
    api.check_settings(pipe, seed=seed, steps=steps, guidance_scale=guidance_scale, width=width, height=height,
                       batch_size=1, allow_large=allow_large)
    if doc.edit.guidance.enabled and segmenter is None:
        raise RegEditError("segmenter", "multi-region guidance needs a segmenter and none was given",
                           "load one with lib_regedit.editing.segmenter.load_segmenter(folder) or turn "
                           "edit.guidance off")
    notes = []
    if doc.init == "layout":
        notes.append("the inverted image is the starting latent; layout init was not used")
    started = time.perf_counter()
    checkpoint = DiffusersCheckpoint(pipe, width, height)
    guidance = None

    def guide(built):
        if not doc.edit.guidance.enabled:
            return None
        from .diffusers_guidance import guided, vae_decoder
        from .region_guidance import RegionGuidance, guided_pair

        def with_guidance(stack, state):
            nonlocal guidance
            options = doc.edit.guidance
            guidance = RegionGuidance(guided_pair(built.documents), segmenter, vae_decoder(pipe),
                                      (options.rs, options.is_, options.ip), options.until, model=pipe.vae)
            stack.enter_context(guided(pipe.unet, guidance, built.plan, state, checkpoint.alphas, guidance_scale))
            return True
        return with_guidance

    z0 = encode_image(pipe, image).to(pipe.unet.device)
    z, result, cached, built = edit_latents(checkpoint, doc, z0, image, model_id(pipe),
                                            negative_prompt=doc.negative_prompt, steps=steps,
                                            guidance_scale=guidance_scale, seed=seed, progress=progress,
                                            cancel=cancel, cache=cache, nulltext=nulltext, fixed_point=fixed_point,
                                            guidance=guide)
    notes = list(built.notes) + notes + [result.summary(cached)]
    source, target = decode(pipe, z)
    target = paste_outside(image, target, doc)
    elapsed = time.perf_counter() - started
    params = api._params(pipe, seed, steps, guidance_scale, width, height, model_name)
    params["Sampler"] = "DDIM"
    params[INFOTEXT_KEY] = doc.to_json()
    params[INVERSION_KEY] = inversion
    texts = {role: parameters_text(prompt, doc.negative_prompt, dict(params, **{PAIR_IMAGE_KEY: role}))
             for role, prompt in (("source", built.source_prompt), ("target", built.target_prompt))}
    extras = {"notes": notes, "seconds": elapsed, "method": "regions", "inversion": result, "cached": cached,
              "source_document": built.documents.source, "target_document": built.documents.target}
    if guidance is not None:
        extras["guidance"] = guidance.summary()
        notes.append(guidance.summary())
    return EditResult([source], [target], texts["source"], texts["target"], doc, extras)
