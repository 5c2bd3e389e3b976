"""A real-image region edit in the WebUI's img2img (MRGD Alg. 1 with inversion), kept free of the
WebUI's ``modules`` so it can be tested: ``scripts/regedit.py`` passes the checkpoint, its prompt
encoder and the picture's latent, and this module runs ``real_edit``'s inversion and pair denoising
through the ldm backend.

The UNet is called as the samplers call it (``model.apply_model``, v-prediction converted to ε), and
SDXL's pooled vector follows each row's prompt. :class:`ModelAccess` is how: ``ldm_access`` for
AUTOMATIC1111's checkpoints, ``scripts/regedit.py``'s own for WebUI Forge's. Inversions are cached in
memory per picture, checkpoint, source prompts and settings (``INVERSIONS``, bounded by the
*Inversion cache* setting), so a second edit of the same photo skips the inversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ContextManager

import torch

from ..backends import ldm_backend
from ..documents import RegionDocument
from ..inversion import InversionCache
from ..inversion.invert import DEFAULT_FIXED_POINT, Inversion
from ..inversion.null_text import NullTextOptions
from ..webui.session import checkpoint_eps, crossattn
from .pair_effects import build_pair_effects
from .real_edit import RealEdit, cached_inversion, denoise_pair, frozen_weights, invert_source

INVERSIONS = InversionCache()


@dataclass
class ModelAccess:
    """How the edit calls a checkpoint: ``forward_for(vectors)`` gives ``forward(z, t, context, kinds)``
    (differentiable in the context), ``attach(controller)`` gives the model the pair's effects, ``unet``
    is frozen while null-text optimises, ``alphas`` is the noise schedule."""

    forward_for: Callable[[dict | None], Callable]
    attach: Callable[[object], ContextManager]
    unet: torch.nn.Module
    alphas: torch.Tensor


def ldm_access(model) -> ModelAccess:
    """An AUTOMATIC1111 checkpoint (``ldm``/``sgm``): its UNet patched through the ldm backend."""
    unet = model.model.diffusion_model

    def attach(controller):
        ldm_backend.remove_leftovers(unet)
        return ldm_backend.attached(unet, controller)

    return ModelAccess(lambda vectors: model_forward(model, vectors), attach, unet,
                       model.alphas_cumprod.detach().float().cpu())


def model_forward(model, vectors: dict | None):
    """``forward(z, t, context, kinds)`` on a WebUI checkpoint, differentiable in the context."""
    def forward(z, t, context, kinds):
        unet_dtype = next(model.model.diffusion_model.parameters()).dtype
        if vectors is None:
            cond = {"c_crossattn": [context.to(unet_dtype)]}
        else:
            vector = torch.cat([vectors[k] for k in kinds]).to(unet_dtype)
            cond = {"crossattn": context.to(unet_dtype), "vector": vector}
        return checkpoint_eps(model, z.to(context.device, unet_dtype), z, t, cond)
    return forward


def edit_latent(model, document: RegionDocument, z0: torch.Tensor, picture, model_id: str,
                encode: Callable[[str, bool], object], tokenize, *, source_prompt: str, target_prompt: str,
                negative_prompt: str, steps: int, guidance_scale: float, seed: int = 0, progress=None, cancel=None,
                cache: InversionCache | None = INVERSIONS, nulltext: NullTextOptions | None = None,
                fixed_point: int = DEFAULT_FIXED_POINT,
                access: ModelAccess | None = None) -> tuple[torch.Tensor, Inversion, bool, list[str]]:
    """(2, C, h, w) latents (the reconstruction, the edit), the inversion, whether it was cached, and
    the notes. ``encode(text, negative)`` is the WebUI's conditioning of a prompt (SDXL: a dict).
    ``access``: how the checkpoint is called (default: :func:`ldm_access`)."""
    access = access or ldm_access(model)
    method = document.edit.inversion
    nulltext = nulltext or NullTextOptions()
    with torch.no_grad():
        built = build_pair_effects(document, lambda p: crossattn(encode(p, False)), tokenize, ("source", "target"),
                                   prompt=source_prompt, target_prompt=target_prompt)
        full = {"cond_s": encode(source_prompt, False), "cond_t": encode(target_prompt, False),
                "uncond": encode(negative_prompt, True)}
    vectors = {k: v["vector"] for k, v in full.items()} if isinstance(full["cond_s"], dict) else None
    edit = RealEdit(built, crossattn(full["cond_s"]), crossattn(full["cond_t"]), crossattn(full["uncond"]), method,
                    steps, guidance_scale, nulltext, fixed_point, document, seed=seed)
    forward, attach, alphas = access.forward_for(vectors), access.attach, access.alphas

    def run():
        with frozen_weights(access.unet):
            return invert_source(forward, attach, z0.float().to(edit.cond_s.device), alphas, edit, progress, cancel)

    inversion, cached = cached_inversion(edit, picture, model_id, negative_prompt, cache, run)
    with torch.no_grad():
        z = denoise_pair(forward, attach, inversion, alphas, edit, progress, cancel)
    notes = list(built.notes) + [inversion.summary() + (" (cached)" if cached else "")]
    return z, inversion, cached, notes
