"""Layout preview: labelled boxes and shapes drawn over an image."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324"]


def region_colour(index: int) -> str:
    """The colour of region ``index``; the JavaScript canvas uses the same palette."""
    return PALETTE[index % len(PALETTE)]


MIN_PREVIEW_SIDE = 256


def draw_layout(image: Image.Image, document) -> Image.Image:
    """A copy of ``image`` with each object region's box, index and prompt drawn on it. Images with a
    side under 256 px (ShapesWorld's 64x64) are enlarged first, pixel for pixel, so labels stay legible."""
    out = image.convert("RGB").copy()
    scale = -(-MIN_PREVIEW_SIDE // min(out.size))  # ceil
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(out, "RGBA")
    width, height = out.size
    line = max(1, round(min(width, height) / 128))
    for i, region in enumerate(r for r in document.regions if not r.is_background):
        colour = region_colour(i)
        box = (region.x * width, region.y * height, (region.x + region.w) * width - 1, (region.y + region.h) * height - 1)
        _draw_area(out, draw, region, box, colour, line)
        label = f"{i + 1}: {region.prompt}"[:60]
        tw = draw.textlength(label)
        draw.rectangle((box[0], box[1], box[0] + tw + 4, box[1] + 12), fill=colour + "c0")
        draw.text((box[0] + 2, box[1]), label, fill="white")
    return out


def draw_keyword_maps(image: Image.Image, document, maps, keywords: list[list[str]]) -> Image.Image:
    """The image with each region's keyword attention map (selected keywords, averaged) as a red
    heat overlay inside a grid of tiles, one tile per region, labelled with the keywords. Enlarged as
    :func:`draw_layout` enlarges small images, so the labels stay legible."""
    base = image.convert("RGB")
    scale = -(-MIN_PREVIEW_SIDE // min(base.size))  # ceil
    if scale > 1:
        base = base.resize((base.width * scale, base.height * scale), Image.NEAREST)
    width, height = base.size
    regions = [r for r in document.regions if not r.is_background]
    tiles = []
    for i, (region, heat) in enumerate(zip(regions, maps)):
        tile = base.copy()
        if heat is not None:
            h = heat.float()
            h = (h - h.min()) / (h.max() - h.min()).clamp_min(1e-12)
            alpha = Image.fromarray((h.numpy() * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
            tile = Image.composite(Image.new("RGB", (width, height), (255, 0, 0)), tile,
                                   alpha.point(lambda v: int(v * 0.6)))
        draw = ImageDraw.Draw(tile)
        box = (region.x * width, region.y * height, (region.x + region.w) * width - 1, (region.y + region.h) * height - 1)
        _draw_area(tile, draw, region, box, region_colour(i), max(1, round(min(width, height) / 128)))
        words = keywords[i] if i < len(keywords) else []
        draw.text((2, 2), f"{i + 1}: {', '.join(words) or '-'}"[:80], fill="white", stroke_width=1, stroke_fill="black")
        tiles.append(tile)
    if not tiles:
        return base.copy()
    grid = Image.new("RGB", (width * len(tiles), height))
    for i, tile in enumerate(tiles):
        grid.paste(tile, (i * width, 0))
    return grid


def _draw_area(image: Image.Image, draw: ImageDraw.ImageDraw, region, box, colour: str, line: int) -> None:
    """A box's outline, or a shape's: its mask at the picture's size (the one rasteriser,
    ``lib_regedit/masks.py``), outlined ``line`` pixels wide over a faint fill; the label goes at
    its bounding box's corner."""
    if getattr(region, "shape", None) is None:
        draw.rectangle(box, outline=colour, width=line)
        return
    from scipy.ndimage import binary_erosion

    from .masks import region_mask

    inside = region_mask(region, image.height, image.width, feather=0.0).numpy() >= 0.5
    edge = inside & ~binary_erosion(inside, iterations=line)
    rgb = tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))
    fill = Image.new("RGBA", image.size, rgb + (0,))
    alpha = np.where(edge, 255, np.where(inside, 48, 0)).astype(np.uint8)
    fill.putalpha(Image.fromarray(alpha))
    image.paste(fill, (0, 0), fill)
