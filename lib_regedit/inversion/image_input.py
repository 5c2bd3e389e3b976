"""A real image as the inversion takes it: checked before any work, with a message naming the fix."""

from __future__ import annotations

from PIL import Image

from ..errors import RegEditError
from .. import generation_limits as limits

ACCEPTED_MODES = ("RGB", "L")


def check_image(image, *, vae_factor: int, native: int, allow_large: bool = False,
                field: str = "image") -> Image.Image:
    """The image in RGB. Refused: not an image; an alpha channel or a palette (what the transparent
    pixels should become is the user's choice); 16-bit or float pixels; a side that is not a multiple
    of the model's latent factor; an area far beyond the model's native one."""
    if not isinstance(image, Image.Image):
        raise RegEditError(field, f"{type(image).__name__} is not an image", "give a PIL image or a PNG/JPEG file")
    if image.mode not in ACCEPTED_MODES:
        kind = {"RGBA": "has an alpha channel", "LA": "has an alpha channel", "P": "is a palette image",
                "PA": "is a palette image with alpha", "I;16": "has 16-bit pixels", "I;16B": "has 16-bit pixels",
                "I;16L": "has 16-bit pixels", "I": "has 32-bit integer pixels", "F": "has float pixels",
                "CMYK": "is CMYK"}.get(image.mode, f"is in mode {image.mode}")
        raise RegEditError(field, f"the image {kind}",
                           "save it as an 8-bit RGB PNG or JPEG (flatten any transparency onto a background "
                           "first), e.g. PIL's image.convert('RGB')")
    width, height = image.size
    multiple = limits.size_multiple(vae_factor)
    if width % multiple or height % multiple:
        w, h = max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)
        raise RegEditError(f"{field} size", f"{width}x{height} is not a multiple of {multiple} on each side",
                           f"crop or resize it to {w}x{h}")
    limits.check_size(width, height, vae_factor=vae_factor, native=native, allow_large=allow_large,
                      width_field=f"{field} width", height_field=f"{field} height")
    return image.convert("RGB")


def check_regions_cover(document, width: int, height: int, vae_factor: int) -> None:
    """Every object region covers at least one latent cell of the image: a smaller box fuses nothing."""
    import torch

    from ..masks import box_coverage

    h, w = height // vae_factor, width // vae_factor
    for i, region in enumerate(document.regions):
        if region.is_background:
            continue
        if float(box_coverage(torch.tensor([region.x, region.y, region.w, region.h]), h, w).sum()) < 1.0:
            raise RegEditError(f"regions[{i}]", f"the box covers less than one latent cell ({vae_factor}x{vae_factor} "
                               f"pixels) of this {width}x{height} image, so it would change nothing",
                               f"draw it at least {vae_factor}x{vae_factor} pixels large")
