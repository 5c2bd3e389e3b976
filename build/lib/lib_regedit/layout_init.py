"""Layout init: a spatial-aware initial latent from the region boxes (document ``"init": "layout"``).

Sun et al. 2024, *Spatial-Aware Latent Initialization for Controllable Image Generation* (seed 003):
where an object appears is largely decided by the initial noise, and the DDIM inversion of an image
keeps that image's layout in the latent, so starting from an inverted latent puts objects where the
image had them. Here the image is a sketch drawn from the boxes themselves, so no reference image is
needed:

1. ``layout_sketch``: a light background (grey 240) with a dark ellipse (grey 20) inset by 10% in
   each object box. Background regions draw nothing. The dark fill is measured: on three ShapesWorld
   eval layouts, with pure inversion, adherence went from 0.48 (noise) to 0.57 with a grey-128
   fill, 0.71 with grey 60 and 1.0 with grey 20. Rectangles instead of ellipses did worse on
   held-out layouts, squares included (models/README.md).
2. ``ddim_invert``: deterministic DDIM inversion (the ODE, as the paper requires; Song et al. 2021)
   of the sketch's VAE latent up the sampling schedule, with the empty prompt.
3. ``mix_noise``: the inverted latent alone is the same for every seed, so every seed would draw
   the same image. The seed's Gaussian noise is mixed in, keeping unit variance:
   ``sqrt(1 - share) * z_inv + sqrt(share) * noise``, default share 0.25 (``init_noise``).
4. ``as_unit_noise``: the result is returned in the samplers' "initial noise" form
   (``z_T / sqrt(1 - alpha_bar_T)``), which every sampler then scales by its own initial sigma.

It costs one UNet pass per sampling step (batch 1, no CFG) and a VAE encode: 1.62x the time of
regions alone on ShapesWorld (``python -m lib_regedit.bench layout``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

SKETCH_BACKGROUND = 240
SKETCH_FILL = 20
SKETCH_INSET = 0.1
DEFAULT_NOISE_SHARE = 0.25


def layout_sketch(boxes: Sequence[tuple[float, float, float, float]], width: int, height: int) -> Image.Image:
    """The sketch: a dark ellipse inset by ``SKETCH_INSET`` in each (x, y, w, h) box (image fractions)."""
    image = Image.new("RGB", (width, height), (SKETCH_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in boxes:
        dx, dy = w * SKETCH_INSET, h * SKETCH_INSET
        draw.ellipse(((x + dx) * width, (y + dy) * height, (x + w - dx) * width - 1, (y + h - dy) * height - 1),
                     fill=(SKETCH_FILL,) * 3)
    return image


def document_sketch(document, width: int, height: int) -> torch.Tensor:
    """The sketch of a region document's object boxes as a VAE input, (1, 3, H, W) in [-1, 1]."""
    boxes = [(r.x, r.y, r.w, r.h) for r in document.object_regions]
    return image_to_tensor(layout_sketch(boxes, width, height))


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], as VAEs take it."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def inversion_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """Ascending DDIM timesteps ("leading" spacing with offset 1: 1, 51, ..., 951 for 1000 and 20)."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    stride = num_train_timesteps // steps
    return [min(i * stride + 1, num_train_timesteps - 1) for i in range(steps)]


@torch.no_grad()
def ddim_invert(eps: Callable[[torch.Tensor, int], torch.Tensor], z0: torch.Tensor,
                alphas_cumprod: torch.Tensor, timesteps: Sequence[int]) -> torch.Tensor:
    """DDIM inversion of the clean latent ``z0`` up through ascending ``timesteps``.

    Each step predicts the noise at the current level and moves the latent to the next level along the
    deterministic DDIM path: ``x0 = (z - sqrt(1 - a) eps) / sqrt(a)``, ``z' = sqrt(a') x0 + sqrt(1 - a') eps``.
    """
    z = z0.float()
    a_cur = torch.tensor(1.0, dtype=torch.float64)
    t_cur = timesteps[0]
    for t_next in timesteps:
        e = eps(z, t_cur).float()
        a_next = alphas_cumprod[t_next].double()
        x0 = (z - (1 - a_cur).sqrt().float() * e) / a_cur.sqrt().float()
        z = a_next.sqrt().float() * x0 + (1 - a_next).sqrt().float() * e
        a_cur, t_cur = a_next, t_next
    return z


def mix_noise(z_inv: torch.Tensor, noise: torch.Tensor, share: float) -> torch.Tensor:
    """``sqrt(1 - share) * z_inv + sqrt(share) * noise``: the seed's share of the variance."""
    share = float(share)
    return (1.0 - share) ** 0.5 * z_inv + share ** 0.5 * noise


def as_unit_noise(z_t: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
    """A latent at noise level ``alpha_bar_t`` as the unit "initial noise" that samplers scale."""
    return z_t / (1.0 - float(alpha_bar_t)) ** 0.5



def invert_sketch(eps: Callable[[torch.Tensor, int], torch.Tensor], z0: torch.Tensor,
                  alphas_cumprod: torch.Tensor, steps: int) -> tuple[torch.Tensor, float]:
    """DDIM-invert the sketch's latent ``z0`` over ``steps`` steps with the empty-prompt noise
    predictor ``eps(z, t)``. Returns the inverted latent and its alpha_bar."""
    timesteps = inversion_timesteps(len(alphas_cumprod), steps)
    return ddim_invert(eps, z0, alphas_cumprod, timesteps), float(alphas_cumprod[timesteps[-1]])


def start_noise(z_inv: torch.Tensor, alpha_bar: float, noise: torch.Tensor,
                share: float = DEFAULT_NOISE_SHARE) -> torch.Tensor:
    """The seed's ``noise`` (one row per image) mixed into the inverted latent, as unit initial noise."""
    mixed = mix_noise(z_inv.to(noise.device, noise.dtype).expand_as(noise), noise, share)
    return as_unit_noise(mixed, alpha_bar)


def spatial_noise(eps: Callable[[torch.Tensor, int], torch.Tensor], z0: torch.Tensor, alphas_cumprod: torch.Tensor,
                  steps: int, noise: torch.Tensor, share: float = DEFAULT_NOISE_SHARE) -> torch.Tensor:
    """``invert_sketch`` then ``start_noise``: the initial noise of a layout-init generation."""
    return start_noise(*invert_sketch(eps, z0, alphas_cumprod, steps), noise, share)
