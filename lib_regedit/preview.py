"""Layout preview: labelled boxes drawn over an image."""

from __future__ import annotations

from PIL import Image, ImageDraw

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324"]


def region_colour(index: int) -> str:
    """The colour of region ``index``; the JavaScript canvas uses the same palette."""
    return PALETTE[index % len(PALETTE)]


def draw_layout(image: Image.Image, document) -> Image.Image:
    """A copy of ``image`` with each object region's box, index and prompt drawn on it."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out, "RGBA")
    width, height = out.size
    line = max(1, round(min(width, height) / 128))
    for i, region in enumerate(r for r in document.regions if not r.is_background):
        colour = region_colour(i)
        box = (region.x * width, region.y * height, (region.x + region.w) * width - 1, (region.y + region.h) * height - 1)
        draw.rectangle(box, outline=colour, width=line)
        label = f"{i + 1}: {region.prompt}"[:60]
        tw = draw.textlength(label)
        draw.rectangle((box[0], box[1], box[0] + tw + 4, box[1] + 12), fill=colour + "c0")
        draw.text((box[0] + 2, box[1]), label, fill="white")
    return out
