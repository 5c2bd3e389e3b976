"""A real-image region edit in the WebUI's img2img (MRGD Alg. 1 with inversion), kept free of the
WebUI's ``modules`` so it can be tested: the WebUI adapter passes the checkpoint (the model interface,
``lib_regedit/backends/checkpoint.py``) and the picture's latent, and this module runs ``real_edit``'s
inversion and pair denoising through it; SDXL's pooled vector follows each row's prompt. Inversions are cached in
memory per picture, checkpoint, source prompts and settings (``INVERSIONS``, bounded by the
*Inversion cache* setting), so a second edit of the same photo skips the inversion.
"""

from __future__ import annotations

import torch

from ..backends.checkpoint import forward_of
from ..documents import RegionDocument
from ..inversion import InversionCache
from ..inversion.invert import DEFAULT_FIXED_POINT, Inversion
from ..inversion.null_text import NullTextOptions
from .pair_effects import build_pair_effects
from .real_edit import RealEdit, cached_inversion, denoise_pair, frozen_weights, invert_source

INVERSIONS = InversionCache()


def edit_latent(checkpoint, document: RegionDocument, z0: torch.Tensor, picture, *, source_prompt: str,
                target_prompt: str, negative_prompt: str, steps: int, guidance_scale: float, seed: int = 0,
                progress=None, cancel=None, cache: InversionCache | None = INVERSIONS,
                nulltext: NullTextOptions | None = None,
                fixed_point: int = DEFAULT_FIXED_POINT) -> tuple[torch.Tensor, Inversion, bool, list[str]]:
    """(2, C, h, w) latents (the reconstruction, the edit), the inversion, whether it was cached, and
    the notes, on ``checkpoint`` (``lib_regedit/backends/checkpoint.py``)."""
    method = document.edit.inversion
    nulltext = nulltext or NullTextOptions()
    with torch.no_grad():
        built = build_pair_effects(document, lambda p: checkpoint.conditioning(p).context, checkpoint.tokenize,
                                   ("source", "target"), prompt=source_prompt, target_prompt=target_prompt)
        full = {"cond_s": checkpoint.conditioning(source_prompt), "cond_t": checkpoint.conditioning(target_prompt),
                "uncond": checkpoint.conditioning(negative_prompt, negative=True)}
    vectors = {k: v.vector for k, v in full.items()} if full["cond_s"].vector is not None else None
    edit = RealEdit(built, full["cond_s"].context, full["cond_t"].context, full["uncond"].context, method,
                    steps, guidance_scale, nulltext, fixed_point, document, seed=seed)
    forward, attach, alphas = forward_of(checkpoint, vectors), checkpoint.attach, checkpoint.alphas

    def run():
        with frozen_weights(checkpoint.unet):
            return invert_source(forward, attach, z0.float().to(edit.cond_s.device), alphas, edit, progress, cancel)

    inversion, cached = cached_inversion(edit, picture, repr(checkpoint.key), negative_prompt, cache, run)
    with torch.no_grad():
        z = denoise_pair(forward, attach, inversion, alphas, edit, progress, cancel)
    notes = list(built.notes) + [inversion.summary() + (" (cached)" if cached else "")]
    return z, inversion, cached, notes
