"""The vacated handle painted from what lies around it (``match_surroundings``, drag document version 2).

RegionDrag turns the handle into noise at the start (``copy_paste.noise_handles``): the model then
paints whatever the prompt suggests there, alone inside the handle, and on ShapesWorld that was a
patch 5 to 18 of 255 off the scene's background (a cream rectangle on white, a bluish disc), and in
some cases a fragment of the dragged object itself, which the handle's own inverted noise still
carried. Here the handle starts instead from its surroundings: the clean latent's membrane over the
handle (the interpolant of Pérez, Gangnet & Blake 2003, *Poisson Image Editing*, Eq. 2: Laplace's
equation with the latent around the handle as its boundary; :func:`lib_regedit.compositing.harmonic_fill`),
noised to the start's level with fresh noise, ``sqrt(a) fill + sqrt(1 - a) eps``: the forward
diffusion of the picture with its handle already filled from the border in. The denoising then
paints detail over a start that matches what lies around it, and the rest of the cycle (copy-paste,
mutual self-attention, the stored noise) is RegionDrag's. The handle noise ``s`` mixes as before,
``sqrt(1 - s²) z + s n``, with ``n`` the noised fill in place of pure noise. Where the handle cuts
through an object, the object's cells on its border are let go (:func:`surroundings`): the fill is
the background around, not the object grown back.

The final composite (``composite.py``) is then seamless (Poisson image editing,
:func:`lib_regedit.compositing.seamless_paste`). Measured in docs/regiondrag.md.
"""

from __future__ import annotations

import numpy as np
import torch

from ..compositing import boundary_difference, harmonic_fill
from .mapping import DenseMapping

OUTLIER = 0.5  # of the latent's standard deviation (per channel): a boundary cell this far from its ring is an object
BAND = 2  # latent cells: how far outside the handle such cells are let go


def surroundings(z0: torch.Tensor, region) -> torch.Tensor:
    """``z0`` (1, C, H, W) with the cells of ``region`` (bool (H, W)) replaced by the membrane of the
    latent around them. Cells just outside the region that stand out from their ring's median by more
    than :data:`OUTLIER` of the latent's spread (an object the handle cuts through) are let go within
    :data:`BAND` cells, so the fill is the background's and does not grow the cut object back
    (``compositing.boundary_difference``)."""
    values = z0[0].permute(1, 2, 0).detach().cpu().double().numpy()
    region = np.asarray(region, dtype=bool)
    known, free = boundary_difference(values, region, BAND, OUTLIER * values.reshape(-1, values.shape[-1]).std(0))
    filled = np.where(region[..., None], harmonic_fill(known, free), values)
    return torch.from_numpy(filled).permute(2, 0, 1)[None].to(z0.device, z0.dtype)


def fill_handles(x: torch.Tensor, z0: torch.Tensor, mapping: DenseMapping, share: float, alpha: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The handle cells of ``x`` (the inverted latent at cumulative alpha ``alpha``) as
    ``sqrt(1 - s²) x + s (sqrt(alpha) fill + sqrt(1 - alpha) eps)``, ``fill`` the surroundings of the
    handle in the clean latent ``z0`` and ``s`` the handle noise share; the rest of ``x`` as it is."""
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    filled = alpha ** 0.5 * surroundings(z0, mapping.handles).to(x.dtype) + (1 - alpha) ** 0.5 * noise
    handles = torch.as_tensor(mapping.handles, device=x.device)
    return torch.where(handles, (1 - share * share) ** 0.5 * x + share * filled, x)
