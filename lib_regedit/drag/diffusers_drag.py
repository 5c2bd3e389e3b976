"""RegionDrag on a diffusers StableDiffusionPipeline or StableDiffusionXLPipeline (the Python API).

>>> from lib_regedit.drag.diffusers_drag import drag
>>> result = drag(pipe, Image.open("in.png"), drag_document, prompt="", seed=0)
>>> result.image.save("out.png", pnginfo=result.pnginfo())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import generation_limits as limits
from ..regions import layout_init
from ..backends.diffusers_checkpoint import DiffusersCheckpoint
from ..documents import DragDocument, parse_drag_document
from ..documents.drag import require_pairs
from ..images import check_image, check_image_size
from ..infotext import DRAG_INFOTEXT_KEY, parameters_text
from ..progress import PhaseBars
from .composite import composite
from .grow import grown_handles
from .mapping import dense_mapping
from .batch import drag_rows
from .options import DragOptions, check_options, options_for


@dataclass
class DragResult:
    image: Image.Image
    parameters: str
    document: DragDocument
    options: DragOptions

    def pnginfo(self) -> PngInfo:
        info = PngInfo()
        info.add_text("parameters", self.parameters)
        return info


def drag(pipe, image, document, *, prompt: str = "", seed: int = 0, options: DragOptions | None = None,
         progress: bool = True, model_name: str | None = None) -> DragResult:
    """Drag the handle regions of ``document`` onto its targets in ``image`` (RegionDrag). ``options``
    default to the document's settings at 20 steps."""
    doc = document if isinstance(document, DragDocument) else parse_drag_document(document)
    require_pairs(doc, "drag")
    options = options_for(doc) if options is None else options
    limits.check_seed(seed)
    options = check_options(options, pipe.scheduler.config.num_train_timesteps)
    from ..api import native_size

    image = check_image(image, vae_factor=pipe.vae_scale_factor, native=native_size(pipe))
    width, height = image.size
    latent_hw = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    grown = grown_handles(doc, image, latent_hw, options.grow_handles)
    mapping = dense_mapping(doc, *latent_hw, grown=grown)
    edited = drag_mapped(pipe, image, mapping, prompt=prompt, seed=seed, options=options, progress=progress)
    result = composite(image, edited, doc, grown, seamless=options.match_surroundings)
    params = {"Steps": options.steps, "Sampler": "RegionDrag (Cycle-SDE)", "Seed": seed, "Size": f"{width}x{height}",
              "Model": model_name, "RegEdit drag options": _options_text(options), DRAG_INFOTEXT_KEY: doc.to_json()}
    return DragResult(result, parameters_text(prompt, "", params), doc, options)


def drag_mapped(pipe, image: Image.Image, mapping, *, prompt: str, seed: int, options: DragOptions,
                progress: bool = True) -> Image.Image:
    """The drag itself on a checked image (:func:`lib_regedit.images.check_image`) and a
    latent-resolution mapping: the decoded edit, before the original is composited back."""
    from ..api import native_size

    width, height = check_image_size(image, vae_factor=pipe.vae_scale_factor, native=native_size(pipe))
    checkpoint = DiffusersCheckpoint(pipe, width, height)
    cond = checkpoint.conditioning(prompt)
    phase = options.phase_evaluations  # one bar per phase: the inversion, then the denoising that drags
    bars = PhaseBars(disable=not progress or bool(getattr(pipe, "_progress_bar_config", {}).get("disable")))

    def eps_of_row(row, x, t):
        with torch.no_grad():
            return checkpoint.eps(x, t, cond)

    def step(done, total):
        if done <= phase:
            bars(done, phase, "inverting")
        else:
            bars(done - phase, phase, "dragging")

    z0 = checkpoint.posterior_mean(layout_init.image_to_tensor(image))
    try:
        z = drag_rows(eps_of_row, z0, [seed], mapping, options, checkpoint.alphas, checkpoint.attach, step)
    finally:
        bars.close()
    with torch.no_grad():
        decoded = checkpoint.decode(z)
    edited = ((decoded[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255)
    return Image.fromarray(edited.round().astype(np.uint8))


def _options_text(options: DragOptions) -> str:
    defaults = asdict(DragOptions())
    changed = {k: v for k, v in asdict(options).items() if v != defaults[k] or k in ("start_t", "end_t", "handle_noise")}
    return " ".join(f"{k}={v}" for k, v in changed.items())
