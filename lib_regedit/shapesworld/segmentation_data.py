"""ShapesWorld phrases and their exact masks, for training and scoring the segmenter (CLIPSeg).

A phrase names objects by colour and shape ("a red circle"), colour alone ("red") or shape alone
("circle"); its mask is the union of the objects it names, rasterised exactly as ``data.render`` draws
them (the same ``draw_shape`` at ``SUPERSAMPLE`` times the size, then each pixel's covered fraction).
A phrase that names nothing in the scene has an empty mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .data import COLOURS, SHAPES, SUPERSAMPLE, Scene, draw_shape

KINDS = ("full", "colour", "kind", "absent")


@dataclass(frozen=True)
class Query:
    phrase: str
    kind: str  # one of KINDS


def named(scene: Scene, phrase: str):
    """The objects of ``scene`` that ``phrase`` names: "a red circle", "red circle", "red" or "circle"."""
    words = [w for w in phrase.lower().replace(",", " ").split() if w not in ("a", "an", "the")]
    colours = [w for w in words if w in COLOURS]
    shapes = [w for w in words if w in SHAPES]
    if not colours and not shapes:
        return []
    return [o for o in scene.objects
            if (not colours or o.colour in colours) and (not shapes or o.shape in shapes)]


def object_mask(scene: Scene, phrase: str, size: int = 64) -> np.ndarray:
    """(size, size) float32 in [0, 1]: how much of each pixel the objects named by ``phrase`` cover."""
    big = size * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for obj in named(scene, phrase):
        x, y, w, h = obj.box
        draw_shape(draw, obj.shape, (x * big, y * big, (x + w) * big - 1, (y + h) * big - 1), 255)
    cover = np.asarray(canvas, dtype=np.float32) / 255.0
    return cover.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def all_phrases() -> list[str]:
    return [f"a {c} {s}" for c in COLOURS for s in SHAPES]


def queries_for(scene: Scene, rng: np.random.Generator) -> list[Query]:
    """One phrase of each kind: an object's full phrase, its colour, its shape, and a full phrase that
    names no object of the scene."""
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    present = {o.phrase for o in scene.objects}
    absent = [p for p in all_phrases() if p not in present]
    return [Query(obj.phrase, "full"), Query(obj.colour, "colour"), Query(obj.shape, "kind"),
            Query(absent[int(rng.integers(len(absent)))], "absent")]
