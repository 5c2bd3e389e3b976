"""What a user sees of region placement, beyond "is the object in its box" (ShapesWorld images).

- ``placed``: the right colour and shape inside the box (``metrics.match_in_box``); ``both``: every
  box of an image placed.
- ``shape kept``: of the placed objects, the share whose bounding-box aspect (long side over short
  side) and fill (area over bounding-box area) lie in the range that the plain prompt's objects of
  that shape show (the 5th to 95th percentile of one-object plain images, ``shape_reference``). A
  circle stretched by a tall box, or a square grown to fill it, falls outside.
- ``seed variety``: the mean pixel difference ``|a - b| / 255`` over RGB between the images of one
  layout and sampler, over all pairs of seeds. Reported as a share of the plain prompt's figure on
  the same layouts, seeds and samplers: 1.0 is as varied as plain, and a method that draws one
  picture for every seed scores near 0.
- ``impurity``: the share of the coloured (non-background) pixels inside a box that are not the
  region's colour: colours bleeding between regions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..shapesworld.data import COLOURS, SHAPES
from . import metrics
from .detector import Detection, colour_labels, detect, to_array

REFERENCE_PERCENTILES = (5, 95)


def aspect_and_fill(d: Detection) -> tuple[float, float]:
    """(long side / short side of the bounding box, area / bounding-box area) of one detection."""
    _, _, w, h = d.box
    return max(w, h) / min(w, h), d.fill


def shape_reference(images_by_object: dict) -> dict[str, tuple[float, float, float, float]]:
    """``{shape: (aspect lo, aspect hi, fill lo, fill hi)}`` from one-object plain images:
    ``images_by_object[(colour, shape)]`` is a list of images; the objects of that colour and shape
    found in them give the range (``REFERENCE_PERCENTILES``)."""
    stats: dict[str, list] = {}
    for (colour, shape), images in images_by_object.items():
        for image in images:
            stats.setdefault(shape, []).extend(aspect_and_fill(d) for d in detect(image)
                                               if d.colour == colour and d.shape == shape)
    lo, hi = REFERENCE_PERCENTILES
    out = {}
    for shape, values in stats.items():
        a = np.array(values)
        out[shape] = (float(np.percentile(a[:, 0], lo)), float(np.percentile(a[:, 0], hi)),
                      float(np.percentile(a[:, 1], lo)), float(np.percentile(a[:, 1], hi)))
    return out


def single_object_prompts() -> list[tuple[str, str]]:
    """Every (colour, shape) of ShapesWorld, for ``shape_reference``."""
    return [(c, s) for c in COLOURS for s in SHAPES]


def shape_kept(d: Detection, shape: str, reference: dict) -> bool:
    a_lo, a_hi, f_lo, f_hi = reference[shape]
    aspect, fill = aspect_and_fill(d)
    return a_lo <= aspect <= a_hi and f_lo <= fill <= f_hi


def box_impurity(labels: np.ndarray, box, colour: str) -> float:
    """Share of the coloured pixels inside ``box`` that are not ``colour`` (nan when none is coloured)."""
    inside = labels[metrics.box_mask(box, *labels.shape)]
    coloured = inside[inside >= 0]
    if not coloured.size:
        return math.nan
    return float((coloured != list(COLOURS).index(colour)).mean())


def seed_variety(images) -> float:
    """Mean ``|a - b| / 255`` over RGB, over all pairs of ``images`` (one layout, one sampler)."""
    arrays = [to_array(i).astype(np.float64) / 255.0 for i in images]
    pairs = list(itertools.combinations(arrays, 2))
    return float(np.mean([np.abs(a - b).mean() for a, b in pairs])) if pairs else math.nan


@dataclass
class PlacementScore:
    """Running totals over images of one method."""

    images: int = 0
    both: int = 0
    boxes: int = 0
    placed: int = 0
    kept: int = 0
    impurities: list = field(default_factory=list)
    varieties: list = field(default_factory=list)
    seconds: float = 0.0

    def add_image(self, image, layout, reference: dict) -> None:
        """Score one image of ``layout`` (``[(colour, shape, box), ...]``)."""
        dets, labels = detect(image), colour_labels(image)
        hits = 0
        for colour, shape, box in layout:
            match = metrics.match_in_box(dets, box, colour, shape)
            self.boxes += 1
            if match is not None:
                hits += 1
                self.kept += shape_kept(match, shape, reference)
            self.impurities.append(box_impurity(labels, box, colour))
        self.placed += hits
        self.both += hits == len(layout)
        self.images += 1

    def add_seeds(self, images) -> None:
        """The images of one layout and sampler across seeds."""
        self.varieties.append(seed_variety(images))

    def row(self, plain_variety: float | None = None, plain_seconds: float | None = None) -> dict:
        impurities = [i for i in self.impurities if not math.isnan(i)]
        variety = float(np.mean(self.varieties)) if self.varieties else math.nan
        return {
            "both": self.both / max(self.images, 1),
            "per_box": self.placed / max(self.boxes, 1),
            "shape_kept": self.kept / self.placed if self.placed else math.nan,
            "variety": variety,
            "variety_share": variety / plain_variety if plain_variety else math.nan,
            "impurity": float(np.mean(impurities)) if impurities else math.nan,
            "time": self.seconds / plain_seconds if plain_seconds else math.nan,
            "images": self.images,
        }


HEADER = "| method | both in their boxes | per box | shape kept | seed variety (share of plain's) | in-box impurity | time vs plain |"


def table_row(name: str, row: dict) -> str:
    return (f"| {name} | {row['both']:.2f} | {row['per_box']:.2f} | {row['shape_kept']:.2f} | "
            f"{row['variety_share']:.2f} | {row['impurity']:.3f} | {row['time']:.2f} |")


def table(rows: dict) -> str:
    """A markdown table of ``{name: row}``."""
    return "\n".join([HEADER, "|---|---|---|---|---|---|---|"] + [table_row(n, r) for n, r in rows.items()])



USER_LAYOUT_SEED = 4343  # not a seed the training data or the other evaluations draw from


def user_layouts(n: int = 6, seed: int = USER_LAYOUT_SEED) -> list:
    """``n`` two-object layouts as a user draws them: two colours, any two shapes, and loose boxes
    of 0.3-0.5 of the image side with an aspect (w/h) of 0.6-1.6, side by side without overlap. A
    box is not the object's outline, so a method that makes the object fill its box shows it here."""
    rng = np.random.default_rng(seed)
    colours, layouts = list(COLOURS), []
    while len(layouts) < n:
        c1, c2 = rng.choice(len(colours), 2, replace=False)
        s1, s2 = rng.integers(len(SHAPES), size=2)
        boxes = []
        for _ in range(2):
            side = rng.uniform(0.3, 0.5)
            aspect = rng.uniform(0.6, 1.6)
            w, h = min(0.48, side * aspect ** 0.5), min(0.9, side / aspect ** 0.5)
            boxes.append([w, h])
        horizontal = rng.random() < 0.5
        placed = []
        for k, (w, h) in enumerate(boxes):
            if horizontal:
                x = rng.uniform(0.02, 0.5 - w) if k == 0 else rng.uniform(0.5, 0.98 - w)
                y = rng.uniform(0.02, 0.98 - h)
            else:
                w, h = h, w  # stacked: the long side across
                y = rng.uniform(0.02, 0.5 - h) if k == 0 else rng.uniform(0.5, 0.98 - h)
                x = rng.uniform(0.02, 0.98 - w)
            placed.append(tuple(round(float(v), 3) for v in (x, y, w, h)))
        layouts.append([(colours[c1], SHAPES[s1], placed[0]), (colours[c2], SHAPES[s2], placed[1])])
    return layouts


def variety_ceiling(layouts, seeds: int = 5, repeats: int = 20, rng_seed: int = 0) -> dict:
    """How much seed variety holding the objects in their boxes leaves, in ShapesWorld's own data:
    for each layout, sets of ``seeds`` scenes drawn by the data generator's rules (its sizes, colours
    and backgrounds; ``lib_regedit/shapesworld/data.py``) with the layout's two objects either anywhere
    ("free", what the plain prompt draws) or at a random size and place inside their boxes ("placed",
    an ideal method that keeps every seed's own picture). Returns both varieties and their ratio: no
    method that puts the objects in these boxes is expected above that share of plain's variety."""
    from ..shapesworld.data import (BACKGROUNDS, MAX_SIZE, MIN_SIZE, Scene, ShapeObject, _overlaps, render)

    rng = np.random.default_rng(rng_seed)

    def background():
        return BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]

    def free(layout):
        objects: list = []
        for colour, shape, _ in layout:
            for _attempt in range(60):
                s = float(rng.uniform(MIN_SIZE, MAX_SIZE))
                box = (float(rng.uniform(0.02, 0.98 - s)), float(rng.uniform(0.02, 0.98 - s)), s, s)
                if all(not _overlaps(box, o.box, 0.03) for o in objects):
                    break
            objects.append(ShapeObject(shape, colour, box, COLOURS[colour]))
        return Scene(background(), tuple(objects))

    def placed(layout):
        objects = []
        for colour, shape, (x, y, w, h) in layout:
            side = min(w, h)
            s = float(rng.uniform(min(MIN_SIZE, side), min(MAX_SIZE, side)))
            box = (float(rng.uniform(x, x + max(0.0, w - s))), float(rng.uniform(y, y + max(0.0, h - s))), s, s)
            objects.append(ShapeObject(shape, colour, box, COLOURS[colour]))
        return Scene(background(), tuple(objects))

    out = {}
    for name, draw in (("free", free), ("placed", placed)):
        out[name] = float(np.mean([seed_variety([render(draw(layout)) for _ in range(seeds)])
                                   for layout in layouts for _ in range(repeats)]))
    out["ratio"] = out["placed"] / out["free"]
    return out
