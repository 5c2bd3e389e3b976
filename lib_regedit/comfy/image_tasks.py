"""The ComfyUI nodes' tasks that make pictures or latents themselves: layout init's starting latent,
RegionDrag, and a picture's region edit. Each is the engine's host-independent function over the model
interface (``backends/comfy_checkpoint.py``), as in the Python API and the WebUI."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..backends.checkpoint import empty_prompt_eps
from ..documents import parse_drag_document
from ..documents.drag import require_pairs
from ..drag.batch import drag_rows
from ..drag.composite import composite
from ..drag.grow import grown_handles
from ..drag.mapping import dense_mapping
from ..drag.options import check_options, options_for
from ..editing.pair_documents import parse_pair
from ..editing.real_edit import edit_latents, paste_outside
from ..errors import RegEditError
from ..inversion import InversionCache
from ..inversion.image_input import check_regions_cover
from ..inversion.invert import check_method
from ..regions import layout_init
from . import host

INVERSIONS = InversionCache()  # a picture's inversions: a second edit of the same picture skips its own


def _no_image_model(checkpoint, field: str, what: str) -> None:
    if checkpoint.needs_image_conditioning():
        raise RegEditError(field, f"this checkpoint is an inpainting or instruct-pix2pix model, which {what} "
                                  "does not support", "load an ordinary SD 1.x or SDXL checkpoint")


def empty_latent(vae, width: int, height: int, batch_size: int) -> dict:
    """An empty LATENT for ``width`` × ``height`` pictures through ``vae`` (its own downscale factor)."""
    factor = host.check_size(vae, width, height)
    channels = int(getattr(vae, "latent_channels", 4))
    return {"samples": torch.zeros(int(batch_size), channels, height // factor, width // factor)}


def layout_latent(model, clip, vae, document, *, width: int, height: int, batch_size: int, seed: int,
                  steps: int) -> torch.Tensor:
    """Layout init's start (Sun et al. 2024, spatially aware initial noise): the document's sketch
    DDIM-inverted with the empty prompt (once per layout and model), mixed with the seed's noise, as
    ComfyUI's LATENT for a sampler that adds no noise (KSamplerAdvanced, add_noise "disable"): the
    latent at the model's largest sigma, (B, C, h, w) in ComfyUI's latent scale."""
    factor = host.check_size(vae, width, height)
    checkpoint = host.checkpoint(model, clip, vae, width, height)
    shape = (batch_size, int(getattr(vae, "latent_channels", 4)), height // factor, width // factor)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)))
    with torch.no_grad():
        unit = layout_init.layout_start(document, noise, width=width, height=height, steps=steps,
                                        encode=checkpoint.posterior_mean, eps=empty_prompt_eps(checkpoint),
                                        alphas_cumprod=checkpoint.alphas, model_key=checkpoint.key)
    sigma_max = float(model.model.model_sampling.sigmas[-1])
    x = unit.float() * (1 + sigma_max ** 2) ** 0.5  # k-diffusion's x at sigma_max, as a sampler adding no noise starts
    return model.model.process_latent_out(x)


def drag_image(model, clip, vae, image: torch.Tensor, document, *, prompt: str, seed: int, steps: int):
    """RegionDrag on each picture of ComfyUI's IMAGE: handles copied onto targets in the latent, a
    Cycle-SDE inversion and denoising with mutual self-attention, the original composited back outside
    handles and targets. Returns the dragged IMAGE."""
    doc = parse_drag_document(document, field="drag")
    require_pairs(doc, "drag")
    pictures = host.pictures(image)
    width, height = pictures[0].size
    factor = host.check_size(vae, width, height)
    checkpoint = host.checkpoint(model, clip, vae, width, height)
    _no_image_model(checkpoint, "drag", "RegionDrag")
    options = check_options(options_for(doc, steps), len(checkpoint.alphas))
    cond = checkpoint.conditioning(prompt)
    latent_hw = (height // factor, width // factor)
    step = host.progress(options.evaluations * len(pictures))

    def eps_of_row(row, x, t):
        with torch.no_grad():
            return checkpoint.eps(x, t, cond)

    out = []
    for i, picture in enumerate(pictures):
        grown = grown_handles(doc, picture, latent_hw, options.grow_handles)
        mapping = dense_mapping(doc, *latent_hw, grown=grown)
        z0 = checkpoint.posterior_mean(layout_init.image_to_tensor(picture))
        z = drag_rows(eps_of_row, z0, [int(seed) + i], mapping, options, checkpoint.alphas, checkpoint.attach, step,
                      host.cancelled)
        edited = host.picture_of(checkpoint.decode(z)[0])
        out.append(composite(picture, edited, doc, grown, seamless=options.match_surroundings))
    return host.image_of(out)


def picture_edit(model, clip, vae, image: torch.Tensor, document, *, inversion: str, seed: int, steps: int,
                 cfg: float, negative_prompt: str = ""):
    """A region edit of a real picture (MRGD with inversion): each picture inverted with its source
    prompts, then denoised as a pair whose target makes the edit; outside the edit the picture itself
    is pasted back. Returns (reconstructions, edits) as IMAGEs."""
    doc = parse_pair(document)
    method = check_method(inversion or doc.edit.inversion)
    if method == "nulltext":
        raise RegEditError("inversion", "null-text inversion optimises through the UNet, and ComfyUI runs its "
                                        "nodes without gradients", 'use "negative" (the default) or "ddim"')
    pictures = host.pictures(image)
    width, height = pictures[0].size
    factor = host.check_size(vae, width, height)
    check_regions_cover(doc, width, height, factor)
    checkpoint = host.checkpoint(model, clip, vae, width, height)
    _no_image_model(checkpoint, "regions", "region editing of a picture")
    doc = replace(doc, edit=replace(doc.edit, inversion=method))
    step = host.progress(steps * 2 * len(pictures))
    sources, targets = [], []
    for picture in pictures:
        z0 = checkpoint.posterior_mean(layout_init.image_to_tensor(picture))
        z, _, _, _ = edit_latents(checkpoint, doc, z0, picture, repr(checkpoint.key), negative_prompt=negative_prompt,
                                  steps=steps, guidance_scale=cfg, seed=int(seed), progress=step,
                                  cancel=host.cancelled, cache=INVERSIONS)
        decoded = checkpoint.decode(z)
        sources.append(host.picture_of(decoded[0]))
        targets.append(paste_outside(picture, host.picture_of(decoded[1]), doc))
    return host.image_of(sources), host.image_of(targets)
