"""Layout init: a spatial-aware initial latent from the region boxes (document ``"init": "layout"``).

Sun et al. 2024, *Spatial-Aware Latent Initialization for Controllable Image Generation* (seed 003):
where an object appears is largely decided by the initial noise, and the DDIM inversion of an image
keeps that image's layout in the latent, so starting from an inverted latent puts objects where the
image had them. Here the image is a sketch drawn from the boxes themselves, so no reference image is
needed:

1. ``layout_sketch``: a light background (grey 240) with a dark mark (grey 20) per object box:
   ``"disc"`` (document version 3), a disc of ``DISC_SHARE`` of the box's shorter side at its centre,
   which says where and not what shape or size; ``"ellipse"`` (version 2), an ellipse inset by 10%
   in the box, which takes the box's aspect. A region with a shape (a polygon, brush strokes, a mask
   picture's colour) has, from version 7, its bounding box's disc cut to the shape (the largest disc
   inside the shape where its box overlaps another object's or the shape holds less than half of
   that disc; before version 7, always that inner disc, which sits low in a triangle, so a model
   draws the triangle small) and, for
   ``"ellipse"``, is filled as drawn. Background regions draw nothing. The dark fill is
   measured: on three ShapesWorld eval layouts, with pure inversion, adherence went from 0.48
   (noise) to 0.57 with a grey-128 fill, 0.71 with grey 60 and 1.0 with grey 20.
2. ``invert_sketch``: deterministic DDIM inversion (the ODE, as the paper requires; Song et al. 2021;
   the one in ``inversion/ddim.py``) of the sketch's VAE latent up the sampling schedule, with the
   empty prompt. The sketch never
   depends on the seed, so ``LayoutCache`` keeps the result per layout and model.
3. ``start_noise``: the inverted latent alone is the same for every seed, so every seed would draw
   the same image. The seed's Gaussian noise is mixed in, keeping unit variance per pixel:
   ``sqrt(1 - s) * z_inv + sqrt(s) * noise``, with the seed's share ``s`` = ``init_noise`` inside
   the boxes (0.25) and ``init_noise_outside`` outside them (0.85 from version 3, so the background
   follows the seed; version 2 used 0.25 everywhere).
4. ``as_unit_noise``: the result is returned in the samplers' "initial noise" form
   (``z_T / sqrt(1 - alpha_bar_T)``), which every sampler then scales by its own initial sigma.

A miss costs one UNet pass per sampling step (batch 1, no CFG) and a VAE encode; a hit costs
nothing (``python -m lib_regedit.bench defaults``; docs/placement.md).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..documents.region import SKETCHES
from ..inversion import ddim
from ..shape_masks import inner_disc, shape_mask

SKETCH_BACKGROUND = 240
SKETCH_FILL = 20
SKETCH_INSET = 0.1
DEFAULT_NOISE_SHARE = 0.25
DISC_SHARE = 0.6  # the disc's diameter as a share of the box's shorter side
SHAPE_DISCS = ("box", "inner")  # where a shape's disc goes: its box's centre cut to it (version 7), or inside it
MIN_DISC_KEPT = 0.5  # a box-centred disc the shape holds less of than this falls back to the shape's inner disc
AREA_FEATHER = 0.05  # the soft edge of the boxes where the seed's share changes, as a fraction of the image


def layout_sketch(boxes: Sequence[tuple], width: int, height: int, shape: str = "ellipse",
                  shape_disc: str = "box") -> Image.Image:
    """The sketch of (x, y, w, h) boxes (image fractions), each optionally followed by its region's
    shape: ``"ellipse"``, a dark ellipse inset by ``SKETCH_INSET`` in each box (it takes the box's
    aspect), or the shape filled; ``"disc"``, a dark disc of ``DISC_SHARE`` of the box's shorter side
    at the box's centre (a mark of where, whatever the box's aspect). For a shape, ``shape_disc``
    says where its disc goes: ``"box"`` (document version 7), at its bounding box's centre as a box's
    and cut to the shape, unless that box overlaps another object's or the shape holds less than half
    of that disc; ``"inner"`` (before, and in those two cases), the largest disc inside the shape, no
    larger than a box's."""
    if shape not in SKETCHES:
        raise ValueError(f"unknown sketch {shape!r}")
    if shape_disc not in SHAPE_DISCS:
        raise ValueError(f"unknown shape disc {shape_disc!r}")
    image = Image.new("RGB", (width, height), (SKETCH_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(image)
    for i, (x, y, w, h, *rest) in enumerate(boxes):
        area = rest[0] if rest else None
        if area is not None and shape == "ellipse":
            _fill_shape(image, area)
            continue
        if (area is not None and shape_disc == "box" and not _overlaps_another(boxes, i)
                and _box_disc_in_shape(image, (x, y, w, h), area)):
            continue
        if area is not None:
            cx, cy, inner = inner_disc(area, *_disc_grid(width, height))
            radius = min(_box_disc(x, y, w, h, width, height)[2], inner * width)
            corners = _disc_corners(cx * width, cy * height, radius)
        elif shape == "ellipse":
            dx, dy = w * SKETCH_INSET, h * SKETCH_INSET
            corners = ((x + dx) * width, (y + dy) * height, (x + w - dx) * width - 1, (y + h - dy) * height - 1)
        else:
            corners = _disc_corners(*_box_disc(x, y, w, h, width, height))
        draw.ellipse(corners, fill=(SKETCH_FILL,) * 3)
    return image


def _box_disc(x, y, w, h, width: int, height: int) -> tuple[float, float, float]:
    """A box's disc in pixels: its centre and a radius of ``DISC_SHARE`` of its shorter side's half."""
    return (x + w / 2) * width, (y + h / 2) * height, DISC_SHARE * min(w * width, h * height) / 2


def _disc_corners(cx: float, cy: float, radius: float) -> tuple:
    return cx - radius, cy - radius, cx + radius - 1, cy + radius - 1


def _paint(image: Image.Image, mask: np.ndarray) -> None:
    """Paint the sketch's dark fill where ``mask`` is true."""
    pixels = np.asarray(image).copy()
    pixels[mask] = SKETCH_FILL
    image.paste(Image.fromarray(pixels))


def _fill_shape(image: Image.Image, area) -> None:
    _paint(image, shape_mask(area, image.height, image.width).numpy() >= 0.5)


def _overlaps_another(boxes: Sequence[tuple], i: int) -> bool:
    """Whether box ``i`` overlaps another box of ``boxes``: its centre may then be the other object's
    place, so its shape keeps its mark inside itself (where boxes overlap, the fair judge lost small
    objects beside a shape marked at its box's centre: docs/regions.md)."""
    x, y, w, h = boxes[i][:4]
    return any(min(x + w, bx + bw) > max(x, bx) and min(y + h, by + bh) > max(y, by)
               for j, (bx, by, bw, bh, *_) in enumerate(boxes) if j != i)


def _box_disc_in_shape(image: Image.Image, box: tuple, area) -> bool:
    """Draw a box's disc (at its centre, ``DISC_SHARE`` of its shorter side) cut to the shape ``area``,
    where the shape holds at least ``MIN_DISC_KEPT`` of it; ``False`` (nothing drawn) where it does not."""
    width, height = image.size
    layer = Image.new("L", (width, height), 0)
    ImageDraw.Draw(layer).ellipse(_disc_corners(*_box_disc(*box, width, height)), fill=255)
    disc = np.asarray(layer) > 127
    kept = disc & (shape_mask(area, height, width).numpy() >= 0.5)
    if kept.sum() < MIN_DISC_KEPT * max(1, disc.sum()):
        return False
    _paint(image, kept)
    return True


def _disc_grid(width: int, height: int) -> tuple[int, int]:
    """Where the largest inner disc is sought: the image's aspect, 128 cells on the longer side."""
    scale = 128 / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def document_boxes(document) -> list[tuple]:
    """Each object region's (x, y, w, h), followed by its shape where it has one."""
    return [(r.x, r.y, r.w, r.h) if r.shape is None else (r.x, r.y, r.w, r.h, r.shape)
            for r in document.object_regions]


def _shape_key(shape):
    if shape is None:
        return None
    picture = getattr(shape, "picture", None)
    return (picture.digest, shape.colour) if picture is not None else repr(shape.to_dict())


def document_sketch(document, width: int, height: int) -> torch.Tensor:
    """The sketch of a region document's object boxes as a VAE input, (1, 3, H, W) in [-1, 1]."""
    return image_to_tensor(layout_sketch(document_boxes(document), width, height, document.init_sketch,
                                         document.shape_disc()))


def area_mask(document, height: int, width: int) -> torch.Tensor | None:
    """The object boxes with a soft edge at latent size (h, w), where the seed's share is
    ``init_noise``; outside them it is ``init_noise_outside``. ``None`` when the share is the same
    everywhere (``init_noise_outside`` unset)."""
    if document.init_noise_outside is None:
        return None
    from ..masks import region_mask

    mask = torch.zeros(height, width)
    for region in document.object_regions:
        mask = torch.maximum(mask, region_mask(region, height, width, feather=AREA_FEATHER))
    return mask


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], as VAEs take it."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def mix_noise(z_inv: torch.Tensor, noise: torch.Tensor, share: float) -> torch.Tensor:
    """``sqrt(1 - share) * z_inv + sqrt(share) * noise``: the seed's share of the variance."""
    share = float(share)
    return (1.0 - share) ** 0.5 * z_inv + share ** 0.5 * noise


def as_unit_noise(z_t: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
    """A latent at noise level ``alpha_bar_t`` as the unit "initial noise" that samplers scale."""
    return z_t / (1.0 - float(alpha_bar_t)) ** 0.5



def invert_sketch(eps: Callable[[torch.Tensor, int], torch.Tensor], z0: torch.Tensor,
                  alphas_cumprod: torch.Tensor, steps: int, evaluations: int = 0) -> tuple[torch.Tensor, float]:
    """DDIM-invert the sketch's latent ``z0`` over ``steps`` steps (``evaluations`` UNet passes when
    given, see :func:`~lib_regedit.inversion.ddim.inversion_timesteps`) with the empty-prompt noise
    predictor ``eps(z, t)``. Returns the inverted latent and its alpha_bar."""
    timesteps = ddim.inversion_timesteps(len(alphas_cumprod), steps, evaluations)
    return ddim.invert(eps, z0, alphas_cumprod, timesteps)[-1], float(alphas_cumprod[timesteps[-1]])


def start_noise(z_inv: torch.Tensor, alpha_bar: float, noise: torch.Tensor,
                share: float = DEFAULT_NOISE_SHARE, mask: torch.Tensor | None = None,
                outside: float | None = None) -> torch.Tensor:
    """The seed's ``noise`` (one row per image) mixed into the inverted latent, as unit initial noise.
    With ``mask`` (h, w) in [0, 1] and ``outside``, the seed's share is ``share`` where the mask is 1
    and ``outside`` where it is 0 (per pixel, so the variance stays 1 everywhere)."""
    z_inv = z_inv.to(noise.device, noise.dtype).expand_as(noise)
    if mask is None or outside is None:
        return as_unit_noise(mix_noise(z_inv, noise, share), alpha_bar)
    mask = mask.to(noise.device, noise.dtype)
    shares = mask * float(share) + (1 - mask) * float(outside)
    return as_unit_noise((1 - shares).sqrt() * z_inv + shares.sqrt() * noise, alpha_bar)


DEFAULT_CACHE_BYTES = 64 << 20


class LayoutCache:
    """Inverted sketches, so a layout is inverted once across a batch, the batch count and later
    calls: least recently used first out within ``max_bytes``, and emptied when the model changes
    (``model_key``). A hit returns the very tensor a miss stored, so outputs are bit-identical."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._items: dict = {}
        self._model_key = None
        self.hits = self.misses = 0

    @property
    def nbytes(self) -> int:
        return sum(z.numel() * z.element_size() for z, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def inverted(self, model_key, key, invert: Callable[[], tuple[torch.Tensor, float]]) -> tuple[torch.Tensor, float]:
        """The cached inversion under ``key`` for ``model_key``, or ``invert()`` stored."""
        if model_key != self._model_key:
            self._items.clear()
            self._model_key = model_key
        if key in self._items:
            self.hits += 1
            self._items[key] = self._items.pop(key)  # most recently used last
            return self._items[key]
        self.misses += 1
        z_inv, alpha_bar = invert()
        item = (z_inv.detach().float().cpu(), float(alpha_bar))
        if item[0].numel() * item[0].element_size() <= self.max_bytes:
            self._items[key] = item
            while self.nbytes > self.max_bytes:
                self._items.pop(next(iter(self._items)))
        return item


LAYOUTS = LayoutCache()  # one per process, shared by every host: a checkpoint change empties it


def sketch_key(document, width: int, height: int, steps: int) -> str:
    """What an inversion of the document's sketch depends on, besides the model."""
    import hashlib

    parts = (document.init_sketch, document.shape_disc(), document.init_steps, width, height, steps,
             tuple((tuple(round(v, 6) for v in box[:4]), _shape_key(box[4] if len(box) > 4 else None))
                   for box in document_boxes(document)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def inverted_sketch(document, *, width: int, height: int, steps: int,
                    encode: Callable[[torch.Tensor], torch.Tensor], eps: Callable[[torch.Tensor, int], torch.Tensor],
                    alphas_cumprod: torch.Tensor, model_key, cache: LayoutCache | None = LAYOUTS) -> tuple[torch.Tensor, float]:
    """The document's sketch (which never depends on the seed), VAE-encoded with ``encode`` (pixels
    (1, 3, H, W) in [-1, 1] -> the scaled posterior mean) and DDIM-inverted with the empty-prompt
    ``eps(z, t)``, on any host, through ``cache``. Returns the inverted latent and its alpha_bar."""

    def invert():
        z0 = encode(document_sketch(document, width, height)).float().cpu()
        return invert_sketch(eps, z0, alphas_cumprod, steps, document.init_steps)

    if cache is None:
        return invert()
    return cache.inverted(model_key, sketch_key(document, width, height, steps), invert)


def start_for(document, inverted: tuple[torch.Tensor, float], noise: torch.Tensor) -> torch.Tensor:
    """Layout init's starting noise for one batch: the seed's ``noise`` (B, C, h, w) mixed into the
    inverted sketch with the document's shares, inside the boxes and outside them."""
    z_inv, alpha_bar = inverted
    mask = area_mask(document, *noise.shape[-2:])
    return start_noise(z_inv, alpha_bar, noise.float().cpu(), document.init_noise, mask,
                       document.init_noise_outside).to(noise.device, noise.dtype)


def layout_start(document, noise: torch.Tensor, **model) -> torch.Tensor:
    """:func:`inverted_sketch` then :func:`start_for`; ``model`` are the former's keywords."""
    return start_for(document, inverted_sketch(document, **model), noise)
