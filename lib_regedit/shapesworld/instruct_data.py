"""ShapesWorld edit pairs for an instruction-following (instruct-pix2pix style) model: a scene, one
instruction about one of its objects, and the scene after the edit. Ground truth is exact, so the
LIME evaluation can tell what changed where.

Deterministic by seed, like the scenes: pair ``index`` of data seed ``seed`` comes from
``numpy.random.default_rng([seed, index, EDIT_STREAM])``. Edits, each a third of the pairs:

- recolour: "make the red circle blue";
- reshape: "turn the red circle into a square" (same box, same colour);
- remove: "remove the red circle" (the background shows where it was).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .data import COLOUR_JITTER, COLOURS, SHAPES, Scene, ShapeObject, scene_for

EDITS = ("recolour", "reshape", "remove")
EDIT_STREAM = 11  # keeps the edit choices apart from the scene's own random stream


@dataclass(frozen=True)
class EditPair:
    source: Scene
    target: Scene
    instruction: str
    edit: str
    index: int  # which object of the source the instruction is about


def instruction_for(edit: str, obj: ShapeObject, new: str | None = None) -> str:
    if edit == "recolour":
        return f"make the {obj.colour} {obj.shape} {new}"
    if edit == "reshape":
        return f"turn the {obj.colour} {obj.shape} into a {new}"
    return f"remove the {obj.colour} {obj.shape}"


def edit_pair(seed: int, index: int) -> EditPair:
    rng = np.random.default_rng([int(seed), int(index), EDIT_STREAM])
    scene = scene_for(seed, index)
    while not scene.objects:  # blank scenes have nothing to edit: take the next index's scene
        index += 1_000_003
        scene = scene_for(seed, index)
    i = int(rng.integers(len(scene.objects)))
    obj = scene.objects[i]
    edit = EDITS[int(rng.integers(len(EDITS)))]
    objects = list(scene.objects)
    if edit == "recolour":
        new = [c for c in COLOURS if c != obj.colour][int(rng.integers(len(COLOURS) - 1))]
        base = np.array(COLOURS[new])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255))
        objects[i] = replace(obj, colour=new, rgb=rgb)
    elif edit == "reshape":
        new = [s for s in SHAPES if s != obj.shape][int(rng.integers(len(SHAPES) - 1))]
        objects[i] = replace(obj, shape=new)
    else:
        new = None
        del objects[i]
    return EditPair(scene, Scene(scene.background, tuple(objects)), instruction_for(edit, obj, new), edit, i)


def instruction_vocabulary() -> list[str]:
    """Every word an instruction can contain besides the colours and shapes."""
    return ["make", "the", "turn", "into", "a", "remove"]
