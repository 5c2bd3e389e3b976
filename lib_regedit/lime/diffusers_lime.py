"""LIME on diffusers pipelines (the Python API): an instruction edit that stays inside an
automatically found region of interest (LIME, Simsar et al. 2025).

>>> from lib_regedit.lime import lime_edit
>>> result = lime_edit(pipe, Image.open("in.png"), "make the red circle blue", seed=0)
>>> result.image.save("out.png", pnginfo=result.pnginfo())

Two kinds of model:

- an instruct-pix2pix model (8-channel UNet; ``StableDiffusionInstructPix2PixPipeline``, Brooks et al.
  2023): the instruction edits the image, guided by the text and the image scales;
- an ordinary text-to-image model: a localised prompt edit, where ``instruction`` is the edit prompt
  (what the image should show) and the edit denoises from the img2img start set by ``strength``.

With ``lime=True`` a first pass stops at the feature step, the RoI is found from its features
(:mod:`lib_regedit.lime.roi`) unless ``roi`` gives one, and the edit runs again from the same seed with
the cross-attention regularised inside the RoI (:mod:`lib_regedit.attention.effects.lime_regularisation`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import generation_limits as limits
from ..attention.controller import Controller, GenerationState
from ..attention.effects.lime_regularisation import LimeRegularisation
from ..attention.effects.roi_capture import FeatureStepReached, RoiCapture
from ..backends import diffusers_backend
from ..errors import RegEditError
from ..infotext import LIME_INFOTEXT_KEY, parameters_text
from ..progress import bar as progress_bar, named_bar
from .edit_tokens import check_instruction, edit_positions, object_positions
from ..documents.lime import LimeOptions
from . import given_roi
from .preview import paste_outside_roi, roi_preview
from .locate import locate_roi
from .roi import Roi, uncertainty_note


@dataclass
class LimeResult:
    image: Image.Image
    parameters: str
    roi: torch.Tensor | None = None  # bool (h, w) at the latent's resolution; None without LIME
    preview: Image.Image | None = None  # the source image with the RoI tinted
    timings: dict = field(default_factory=dict)  # seconds: first_pass, clustering, edit
    found: Roi | None = None  # the RoI LIME found (k-means labels, edit-token map); None when one was given

    @property
    def notes(self) -> list[str]:
        """What the user should know about this edit: an uncertain found RoI."""
        note = uncertainty_note(self.found, API_FIX) if self.found is not None else None
        return [note] if note else []

    def pnginfo(self) -> PngInfo:
        info = PngInfo()
        info.add_text("parameters", self.parameters)
        return info


def is_instruct(pipe) -> bool:
    return getattr(pipe.unet.config, "in_channels", 4) == 8


def edit_pipeline(pipe):
    """The pipeline that runs the edit: instruct-pix2pix for an 8-channel UNet, img2img otherwise."""
    from diffusers import (AutoPipelineForImage2Image, StableDiffusionInstructPix2PixPipeline,
                           StableDiffusionXLInstructPix2PixPipeline)

    if is_instruct(pipe):
        if isinstance(pipe, (StableDiffusionInstructPix2PixPipeline, StableDiffusionXLInstructPix2PixPipeline)):
            return pipe
        if hasattr(pipe, "text_encoder_2"):
            return StableDiffusionXLInstructPix2PixPipeline(**_components(pipe, StableDiffusionXLInstructPix2PixPipeline))
        return StableDiffusionInstructPix2PixPipeline(**_components(pipe, StableDiffusionInstructPix2PixPipeline))
    return AutoPipelineForImage2Image.from_pipe(pipe)


def _components(pipe, cls) -> dict:
    import inspect

    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    parts = {k: v for k, v in pipe.components.items() if k in names}
    if "requires_safety_checker" in names:
        parts["requires_safety_checker"] = False
    return parts


def lime_positions(tokens: list[tuple[int, str]], field_name: str = "instruction") -> tuple[list[int], list[int]]:
    """(edit token positions, object token positions), or a clear error when no edit token is left."""
    edit = edit_positions(tokens)
    if not edit:
        words = " ".join(t for _, t in tokens) or "(nothing)"
        raise RegEditError(field_name, f"no edit tokens are left after stop words and punctuation ({words})",
                           "name the object and the change, e.g. 'make the red circle blue'")
    return edit, object_positions(tokens)


def lime_edit(pipe, image, instruction: str, *, lime=True, seed: int = 0, steps: int = 20,
              guidance_scale: float = 7.5, image_guidance_scale: float = 1.5, strength: float = 0.75,
              negative_prompt: str = "", options: LimeOptions | None = None, roi=None, progress: bool = True,
              model_name: str | None = None) -> LimeResult:
    """Edit ``image`` as ``instruction`` says. ``lime``: ``True``/``False``, or a LIME document (a dict,
    JSON or :class:`~lib_regedit.documents.lime.LimeDocument`: settings and optional RoI boxes);
    ``options`` overrides the document's settings; ``roi`` (a bool mask tensor, or a mask image, white
    inside) replaces the RoI LIME would find. ``result.notes`` says when the found RoI is uncertain
    (:func:`lib_regedit.lime.roi.second_peak`)."""
    from ..api import native_size, tokenize
    from ..documents.lime import LimeDocument, parse_lime_document
    from ..images import check_image
    from .preview import mask_from_image

    document = lime if isinstance(lime, LimeDocument) else parse_lime_document(lime)
    lime = document is not None
    document = document or LimeDocument()
    options = (options or document.options).checked()
    instruction = check_instruction(instruction, lime=lime)
    if image is None:
        raise RegEditError("image", "is missing", "give the image to edit (an instruct-pix2pix model edits an "
                                                  "image; it does not generate one)")
    limits.check_seed(seed)
    limits.check_steps(steps, pipe.scheduler.config.num_train_timesteps)
    limits.check_guidance_scale(guidance_scale, "guidance_scale")
    limits.check_guidance_scale(image_guidance_scale, "image_guidance_scale")
    instruct = is_instruct(pipe)
    if not instruct and (isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1):
        raise RegEditError("strength", f"{strength!r} is out of range", "use a denoising strength in (0, 1]")
    image = check_image(image, vae_factor=pipe.vae_scale_factor, native=native_size(pipe))
    width, height = image.size
    latent_hw = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    positions, objects = lime_positions(tokenize(pipe, instruction)) if lime else ([], [])
    pixel_roi = None  # the user's region at the image's size, for the paste at the end
    if lime and roi is None and document.roi:
        roi, pixel_roi = given_roi.from_boxes(document.roi, latent_hw, (height, width))
    elif lime and roi is not None:
        roi, pixel_roi = given_roi.from_mask(mask_from_image(roi) if isinstance(roi, Image.Image) else roi,
                                             latent_hw, (height, width))

    runner = edit_pipeline(pipe)
    runner.set_progress_bar_config(disable=not progress)
    cond, uncond, pooled, negative_pooled = _encode(pipe, instruction, negative_prompt)
    executed = steps if instruct else min(int(steps * strength), steps)
    if executed < 1:
        raise RegEditError("strength", f"{strength} of {steps} steps runs no step", "raise the strength or the steps")

    def run(effects, keep: torch.Tensor | None = None, bar=None) -> Image.Image | None:
        """One pass of the edit; ``bar``: the first pass's own progress bar (it stops at the feature step,
        so the pipeline's, counting to the last step, would not tell its length)."""
        state = GenerationState(total_steps=executed, cond_reference=cond, uncond_reference=uncond)
        controller = Controller(effects, state)
        blend = _outside_blend(runner, image, keep, seed, steps - executed) if keep is not None else None

        def on_step_end(_pipe, i, _t, kwargs):
            state.step = i + 1
            if bar is not None:
                bar.update(1)
            if blend is not None:
                kwargs["latents"] = blend(kwargs["latents"], i)
            return kwargs

        kwargs = dict(prompt_embeds=cond, negative_prompt_embeds=uncond, image=image, num_inference_steps=steps,
                      guidance_scale=guidance_scale, generator=torch.Generator("cpu").manual_seed(seed),
                      callback_on_step_end=on_step_end)
        if instruct:
            kwargs["image_guidance_scale"] = image_guidance_scale
        else:
            kwargs["strength"] = strength
        if pooled is not None:
            kwargs.update(pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=negative_pooled)
        with torch.no_grad(), diffusers_backend.attached(runner.unet, controller), \
                named_bar(runner, "editing", disable=True if bar is not None else None):
            try:
                return runner(**kwargs).images[0]
            except FeatureStepReached:  # the first pass ends at the feature step
                return None

    timings = {}
    found: Roi | None = None
    if lime and roi is None:
        started = time.perf_counter()
        capture = RoiCapture(options.feature_step, objects, options.feature_downscales, **options.capture_maps())
        with progress_bar(runner, "finding the region", capture.feature_index(executed) + 1) as bar:
            run([capture], bar=bar)
        attention = capture.attention()
        if attention is None:
            raise RegEditError("instruction", "its edit tokens were not attended where LIME reads the maps",
                               "check lime.maps and lime.feature_downscales against the model's attention layers "
                               "(or give the region: roi=)")
        timings["first_pass"] = time.perf_counter() - started
        located = locate_roi(capture.features, attention, options, latent_hw, image, seed)
        found, roi, pixel_roi = located.found, located.roi, located.pixel_roi
        timings["clustering"] = found.seconds
        if located.snap_seconds is not None:  # the superpixels, the object pick and the snap
            timings["snap"] = located.snap_seconds
    started = time.perf_counter()
    effects = [LimeRegularisation(roi, positions, options.regularise_until, options.regularise_downscales)] if lime else []
    edited = run(effects, roi if lime and options.keep_outside else None)
    if lime and options.keep_outside:
        edited = paste_outside_roi(image, edited, roi if pixel_roi is None else pixel_roi, pipe.vae_scale_factor)
    timings["edit"] = time.perf_counter() - started

    params = {"Steps": steps, "Seed": seed, "Size": f"{width}x{height}", "CFG scale": guidance_scale, "Model": model_name}
    if instruct:
        params["Image CFG scale"] = image_guidance_scale
    else:
        params["Denoising strength"] = strength
    if lime:
        params[LIME_INFOTEXT_KEY] = LimeDocument(options, document.roi).to_json()
    return LimeResult(edited, parameters_text(instruction, negative_prompt, params), roi if lime else None,
                      roi_preview(image, roi if pixel_roi is None else pixel_roi > 0.5) if lime else None, timings,
                      found)


API_FIX = "give the region: roi= a mask (white on the object), or boxes in the LIME document's roi"


def _outside_blend(runner, image: Image.Image, roi: torch.Tensor, seed: int, skipped: int):
    """After step ``i``, the latent outside ``roi`` becomes the source's latent noised to the next
    step's level (the source itself after the last step): Blended Latent Diffusion. ``skipped``: the
    schedule's steps that img2img's strength leaves out."""
    from ..regions.layout_init import image_to_tensor

    vae, scheduler = runner.vae, runner.scheduler
    with torch.no_grad():
        pixels = image_to_tensor(image).to(vae.device, vae.dtype)
        source = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
    noise = torch.randn(source.shape, generator=torch.Generator("cpu").manual_seed(seed + 1)).to(source)
    inside = roi.to(source.device, source.dtype)[None, None]

    def blend(latents: torch.Tensor, i: int) -> torch.Tensor:
        timesteps = scheduler.timesteps
        j = skipped + i + 1  # the timestep the latents are at now
        if j < len(timesteps):
            outside = scheduler.add_noise(source, noise, timesteps[j:j + 1])
        else:
            outside = source
        return latents * inside + outside.to(latents.dtype) * (1 - inside)

    return blend


def _encode(pipe, prompt: str, negative_prompt: str):
    """(cond, uncond, pooled, negative_pooled) as ``api.encode``; instruct-pix2pix pipelines have only the
    older ``_encode_prompt``."""
    from ..api import encode

    if hasattr(pipe, "encode_prompt") or not hasattr(pipe, "_encode_prompt"):
        return encode(pipe, prompt, negative_prompt)
    with torch.no_grad():
        device = pipe._execution_device
        return (pipe._encode_prompt(prompt, device, 1, False), pipe._encode_prompt(negative_prompt, device, 1, False),
                None, None)
