"""Input pictures and masks: one rule for every command and host (issue 34).

Every picture RegEdit changes (``drag``, ``edit``, ``edit --lime``, ``edit-regions --image``, their
Python functions and the WebUI) goes through :func:`to_rgb`, and every mask a user draws (``--roi-mask``)
through :func:`to_mask`; :func:`check_image` adds the size rule. Nothing here knows a feature.

**Pictures** become 8-bit RGB:

- ``RGB``: as it is.
- ``L`` (8-bit grey) and ``1`` (black and white): the grey in all three channels (``1``: 0 or 255).
- 16-bit grey (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) and ``I`` (32-bit integers, as some readers
  give 16-bit files): read as 16-bit levels, 0 to 65535 (clipped), scaled to 8 bits as
  ``round(v / 257)``, so 65535 is white (PIL's own ``convert`` clips at 255 and turns almost every
  pixel white).
- ``P`` (a palette): each pixel's palette colour.
- ``CMYK``: PIL's conversion, without a colour profile: ``R = (255 - C)(255 - K) / 255``, likewise G
  with M and B with Y.
- ``YCbCr``, ``LAB``, ``HSV``: PIL's colour-space conversion.
- Transparency, wherever it is (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``, a palette entry or a colour
  marked transparent): the picture is **composited onto white**, each channel
  ``round((c * a + 255 * (255 - a)) / 255)`` with ``a`` the alpha: what a transparent picture looks
  like on a page, and what the WebUI's img2img does with its default background colour. A fully
  opaque alpha channel therefore only drops; a transparent pixel's hidden colour never shows (dropping
  the alpha alone let it through: a transparent PNG came out as noise).
- Refused, with a :class:`RegEditError` naming ``field`` and the fix: something that is not a PIL image;
  float pixels (``F``: their range is unknown); any other mode.

**Masks** are greyscale, white = inside (the region to edit): the same conversion, except that
transparency is composited onto **black** (a transparent pixel is unpainted, so outside), then
ITU-R 601 luma (PIL's ``L``), and a pixel is inside where that grey is at least
:data:`MASK_THRESHOLD`. White strokes on a transparent layer and a white-on-black mask both work.

A mask of another size than its picture (:func:`fit_mask`) is scaled to the picture's size (nearest
neighbour, so it stays black and white) when it has the picture's shape (the sides' ratio, within one
pixel), with a note saying so; a mask of another shape is refused: stretched, it would mark another
region than the one drawn.

**Sizes**: both sides a multiple of 8 and of the VAE's factor (``generation_limits.size_multiple``),
with a crop to suggest, then the model's limits on the area (``generation_limits.check_size``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from . import generation_limits as limits
from .errors import RegEditError

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
GREY = ("L", "1")
ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
PIL_CONVERTED = ("P", "CMYK", "YCbCr", "LAB", "HSV")
MASK_THRESHOLD = 128
WHITE, BLACK = 255, 0

_FIX = "save it as an 8-bit RGB (or greyscale) PNG or JPEG"


def to_rgb(image, field: str = "image") -> Image.Image:
    """``image`` as 8-bit RGB by the module's rule (transparency composited onto white), or a
    :class:`RegEditError` naming ``field`` when it cannot be read as a picture."""
    return _eight_bit(image, field, WHITE, "RGB")


def to_mask(image, field: str = "mask") -> Image.Image:
    """A mask picture as 8-bit grey (``L``) by the module's rule (transparency composited onto black):
    white is inside. :func:`mask_array` thresholds it."""
    return _eight_bit(image, field, BLACK, "L")


def mask_array(image, field: str = "mask") -> np.ndarray:
    """A mask picture as a (height, width) bool array: True where its grey (:func:`to_mask`) is at
    least :data:`MASK_THRESHOLD`."""
    return np.asarray(to_mask(image, field)) >= MASK_THRESHOLD


def fit_mask(mask: Image.Image, size: tuple[int, int], field: str = "mask") -> tuple[Image.Image, str | None]:
    """A mask (:func:`to_mask`) at the picture's ``size`` (width, height), and a note when it was scaled
    to it; a mask of another shape is refused, naming ``field``."""
    width, height = size
    w, h = mask.size
    if (w, h) == (width, height):
        return mask, None
    if abs(w * height - h * width) > max(width, height):  # the ratios differ by more than a pixel's rounding
        raise RegEditError(field, f"the mask is {w}x{h} and the image {width}x{height}, a different shape",
                           f"give the mask at the image's size, {width}x{height} (draw it over the image)")
    return mask.resize((width, height), Image.NEAREST), \
        f"{field}: the {w}x{h} mask was scaled to the image's {width}x{height}"


def check_image_size(image: Image.Image, *, vae_factor: int, native: int, allow_large: bool = False,
                     field: str = "image") -> tuple[int, int]:
    """The picture's (width, height): each side a multiple of 8 and of ``vae_factor``, the area within
    the model's limits (``allow_large`` lifts the one on far larger areas than ``native``)."""
    width, height = image.size
    multiple = limits.size_multiple(vae_factor)
    if width % multiple or height % multiple or width < multiple or height < multiple:
        w, h = max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)
        raise RegEditError(field, f"its size {width}x{height} is not a multiple of {multiple} on each side",
                           f"crop or resize it to {w}x{h}")
    return limits.check_size(width, height, vae_factor=vae_factor, native=native, allow_large=allow_large,
                             width_field=f"{field} width", height_field=f"{field} height")


def check_image(image, *, vae_factor: int, native: int, allow_large: bool = False,
                field: str = "image") -> Image.Image:
    """:func:`to_rgb` then :func:`check_image_size`: the picture every command edits, checked before any
    work."""
    image = to_rgb(image, field)
    check_image_size(image, vae_factor=vae_factor, native=native, allow_large=allow_large, field=field)
    return image


def _eight_bit(image, field: str, background: int, mode: str) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise RegEditError(field, f"{type(image).__name__} is not an image", "give a PIL image or a PNG/JPEG file")
    if image.mode in SIXTEEN_BIT:
        levels = np.asarray(image).astype(np.int64)
        grey = Image.fromarray(((np.clip(levels, 0, 65535) + 128) // 257).astype(np.uint8))  # L: round(v / 257)
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):  # a grey level marked transparent (a PNG's tRNS)
            grey = Image.merge("LA", (grey, Image.fromarray(np.where(levels == transparent, 0, 255).astype(np.uint8))))
        image = grey
    elif image.mode not in ("RGB",) + GREY + ALPHA + PIL_CONVERTED:
        kind = "has float pixels" if image.mode == "F" else f"is in mode {image.mode}"
        raise RegEditError(field, f"the image {kind}", _FIX + ", e.g. with PIL's image.convert('RGB')")
    if image.mode in ALPHA or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
        alpha = rgba[..., 3:]
        flat = (rgba[..., :3] * alpha + background * (255 - alpha) + 127) // 255  # round(.. / 255)
        image = Image.fromarray(flat.astype(np.uint8))  # RGB
    if image.mode not in ("RGB", "L"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    return image.convert(mode)  # a copy even when it is already in ``mode``: the caller's image stays its own
