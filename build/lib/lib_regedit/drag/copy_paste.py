"""RegionDrag's copy-paste on latents (Lu et al. 2024, "Multi-step Copy-Paste"): the handle
cells' latents are written onto the target cells through the dense mapping. Pure tensor functions.
"""

from __future__ import annotations

import torch

from .mapping import DenseMapping


def _index(mapping: DenseMapping, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(mapping.target, device=device), torch.as_tensor(mapping.source, device=device))


def paste(x: torch.Tensor, source: torch.Tensor, mapping: DenseMapping) -> torch.Tensor:
    """``x`` (B, C, H, W) with each target cell taken from ``source`` at its handle cell."""
    target, src = _index(mapping, x.device)
    out = x.clone()
    flat = out.view(*out.shape[:2], -1)
    flat[:, :, target] = source.reshape(*source.shape[:2], -1)[:, :, src].to(out.dtype)
    return out


def noise_handles(x: torch.Tensor, mapping: DenseMapping, share: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The handle cells as ``sqrt(1 - s²) z + s ε`` (``s`` the handle noise share; RegionDrag: 0.6 in
    its interface, 1.0 in its evaluation, where the handle is pure noise), so the model paints what
    was behind the object where no target covers it."""
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    handles = torch.as_tensor(mapping.handles, device=x.device)
    return torch.where(handles, (1 - share * share) ** 0.5 * x + share * noise, x)
