"""A real image's regions as the inversion takes them: checked before any work, with a message naming
the fix. The picture itself is checked by :func:`lib_regedit.images.check_image`, the one rule of every
command."""

from __future__ import annotations

from ..errors import RegEditError


def check_regions_cover(document, width: int, height: int, vae_factor: int) -> None:
    """Every object region covers at least one latent cell of the image: a smaller box or shape fuses
    nothing."""
    from ..masks import region_mask

    h, w = height // vae_factor, width // vae_factor
    for i, region in enumerate(document.regions):
        if region.is_background:
            continue
        if float(region_mask(region, h, w, feather=0.0).sum()) < 1.0:
            what = "box" if region.shape is None else "shape"
            raise RegEditError(f"regions[{i}]", f"the {what} covers less than one latent cell ({vae_factor}x{vae_factor} "
                               f"pixels) of this {width}x{height} image, so it would change nothing",
                               f"draw it at least {vae_factor}x{vae_factor} pixels large")
