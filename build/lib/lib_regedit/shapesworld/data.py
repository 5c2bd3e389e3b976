"""ShapesWorld data: 1-3 coloured shapes on a light background, with captions and boxes.

Deterministic by seed: scene ``index`` of dataset ``seed`` is drawn from
``numpy.random.default_rng([seed, index])``, so any single sample can be regenerated without the
rest (issue 4, "Data generator").

Boxes use the project's one region format: fractions of the image, top-left origin, ``(x, y, w, h)``.
Shapes do not overlap (rejection sampling with a small margin), which keeps every object fully
visible and lets the classical detector in ``lib_regedit.evaluation`` score them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 30),
}
BACKGROUNDS = (
    (250, 250, 250),  # white
    (226, 226, 226),  # light grey
    (245, 238, 220),  # cream
    (225, 235, 245),  # pale blue
)
# Scenes with no shape, captioned BLANK_CAPTION, mixed into training (train.py --blank-fraction). They
# give region prompts a way to say "nothing here" for the background; without them every caption the
# model knows asks for at least one shape somewhere.
BLANK_CAPTION = "a blank background"
MIN_SIZE, MAX_SIZE = 0.2, 0.45  # side of a shape's box as a fraction of the image
COLOUR_JITTER = 12  # +- per channel, so the model does not memorise a single RGB value
SUPERSAMPLE = 4  # draw at 4x and downsample for anti-aliased edges


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    box: tuple[float, float, float, float]  # x, y, w, h as fractions, top-left origin
    rgb: tuple[int, int, int]

    @property
    def phrase(self) -> str:
        return f"a {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    background: tuple[int, int, int]
    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)

    @property
    def caption(self) -> str:
        return caption_for(self.objects)


def caption_for(objects) -> str:
    """"a red circle", "a red circle and a blue square", "a red circle, a blue square and a ..."."""
    phrases = [o.phrase if isinstance(o, ShapeObject) else str(o) for o in objects]
    if not phrases:
        return BLANK_CAPTION
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _overlaps(a, b, margin: float) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return not (ax + aw + margin <= bx or bx + bw + margin <= ax or ay + ah + margin <= by or by + bh + margin <= ay)


def sample_scene(rng: np.random.Generator, max_objects: int = 3, margin: float = 0.03) -> Scene:
    """Draw one scene: 1..max_objects non-overlapping shapes at random places and sizes."""
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    n = int(rng.integers(1, max_objects + 1))
    objects: list[ShapeObject] = []
    for _ in range(n):
        for _attempt in range(60):
            size = float(rng.uniform(MIN_SIZE, MAX_SIZE))
            x = float(rng.uniform(0.02, 0.98 - size))
            y = float(rng.uniform(0.02, 0.98 - size))
            box = (x, y, size, size)
            if all(not _overlaps(box, o.box, margin) for o in objects):
                break
        else:
            continue  # no room left; the scene keeps fewer objects
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        base = np.array(COLOURS[colour])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255))
        objects.append(ShapeObject(shape, colour, box, rgb))
    return Scene(background, tuple(objects))


def scene_for(seed: int, index: int) -> Scene:
    return sample_scene(np.random.default_rng([int(seed), int(index)]))


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box_px, fill) -> None:
    x0, y0, x1, y1 = box_px
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif shape == "triangle":  # upright isosceles, apex at the top centre
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(scene: Scene, size: int = 64) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), scene.background)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        x, y, w, h = obj.box
        draw_shape(draw, obj.shape, (x * big, y * big, (x + w) * big - 1, (y + h) * big - 1), obj.rgb)
    return image.resize((size, size), Image.LANCZOS)


def render_array(scene: Scene, size: int = 64) -> np.ndarray:
    return np.asarray(render(scene, size), dtype=np.uint8)


def generate_dataset(n: int, seed: int = 0, size: int = 64, start: int = 0):
    """Images (n, size, size, 3) uint8, captions, and per-sample lists of objects."""
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions: list[str] = []
    scenes: list[Scene] = []
    for i in range(n):
        scene = scene_for(seed, start + i)
        images[i] = render_array(scene, size)
        captions.append(scene.caption)
        scenes.append(scene)
    return images, captions, scenes


def blank_scene(background) -> Scene:
    return Scene(tuple(background), ())


def training_vocabulary() -> list[str]:
    """Every word a ShapesWorld caption can contain."""
    return ["a", "and", ","] + list(COLOURS) + list(SHAPES) + BLANK_CAPTION.split()
