"""LIME in ComfyUI (Simsar et al. 2025, a localized instruction edit): ComfyUI's own sampler runs twice, a
first pass that stops at the feature step and finds the region of interest, then the edit with the
cross-attention regularised inside it (``lime/webui_lime.py``'s :class:`LimeSession`, as in the WebUI).

With an instruct-pix2pix checkpoint the picture conditions the model (ComfyUI's ``concat_latent_image``,
as its InstructPixToPixConditioning node sets it) and the prompt is the instruction; with an ordinary
checkpoint it is img2img at ``denoise`` and the prompt describes the edited picture. Outside the region
the source is kept at every step (ComfyUI's noise mask) and its pixels pasted back at the end.
"""

from __future__ import annotations

import contextlib

import torch

from ..backends import comfy_backend
from ..documents.lime import parse_lime_document
from ..errors import RegEditError
from ..lime.roi import uncertainty_note
from ..lime.webui_lime import LimeSession
from ..masks import mask_at
from . import host

COMFY_FIX = "give the region as boxes in the LIME document (\"roi\"), or check the preview MASK"


def lime_edit(model, clip, vae, image: torch.Tensor, prompt: str, *, negative_prompt: str, lime, seed: int,
              steps: int, cfg: float, denoise: float, sampler_name: str, scheduler: str):
    """Each picture of ``image`` edited by ``prompt`` inside the region LIME finds (or the document's
    ``roi`` boxes). Returns (the edited IMAGE, the region as a MASK)."""
    import comfy.sample

    document = parse_lime_document(lime if lime not in (None, "") else True)
    if document is None:
        raise RegEditError("lime", "is off", 'leave the LIME document empty (its defaults) or write {"clusters": 8}')
    if not prompt.strip():
        raise RegEditError("prompt", "is empty", "write the instruction (\"make the circle blue\") with an "
                                                 "instruct-pix2pix checkpoint, or the edited picture's prompt")
    pictures = host.pictures(image)
    width, height = pictures[0].size
    factor = host.vae_factor(vae)
    checkpoint = host.checkpoint(model, clip, vae, width, height)
    instruct = checkpoint.needs_image_conditioning()
    latent_hw = (height // factor, width // factor)
    encoded = {text: host.conditioning(clip, [text]) for text in (prompt, negative_prompt)}  # once for every picture
    outputs, masks = [], []
    for i, picture in enumerate(pictures):
        session = LimeSession(document, checkpoint.tokenize(prompt), latent_hw, None, picture)
        pixels = host.image_of([picture])
        z0 = vae.encode(pixels)  # ComfyUI's LATENT scale, the posterior's mode
        concat = z0 if instruct else None
        positive, negative = (host.with_image(encoded[text], concat) for text in (prompt, negative_prompt))
        noise = comfy.sample.prepare_noise(z0, int(seed) + i)
        current = {"model": model, "mask": None}

        @contextlib.contextmanager
        def attach(controller):
            current["model"] = comfy_backend.patched(model, lambda: (controller, None),
                                                     attention_function=checkpoint.attention_function)
            try:
                yield
            finally:
                current["model"] = model

        def keep_outside(roi):
            current["mask"] = roi.float()[None, None]

        def sample():
            return comfy.sample.sample(current["model"], noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                       z0, denoise=1.0 if instruct else denoise, noise_mask=current["mask"],
                                       seed=int(seed) + i)

        samples = session.run(attach, sample, None, keep_outside=keep_outside)
        if session.found is not None:
            note = uncertainty_note(session.found, COMFY_FIX)
            if note:
                print(f"RegEdit LIME: {note}")
        edited = host.pictures(vae.decode(samples))[0]
        outputs.append(session.paste_outside(picture, edited))
        region = session.pixel_roi if session.pixel_roi is not None else session.roi
        masks.append(mask_at(region.float(), (height, width)) if region is not None else torch.zeros(height, width))
    return host.image_of(outputs), torch.stack([m.float().clamp(0, 1) for m in masks])
