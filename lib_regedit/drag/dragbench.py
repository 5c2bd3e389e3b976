"""DragBench-SR / DragBench-DR (RegionDrag's region versions of DragBench) for users who have them.

Each case is a folder holding ``original_image.png`` and ``meta_data_region.pkl``: a dict with the
``prompt``, a ``mask`` (the editable area, image-sized) and ``points``, the dense correspondences as
pixel coordinates ``(x, y)``, handle and target interleaved (``points[0::2]`` handles,
``points[1::2]`` targets). The points are already a dense mapping, so they become a
:class:`DenseMapping` at latent resolution directly (each pixel pair to its latent cell; later
points win), and the original is composited back outside the case's mask.

The pickle is read with an unpickler that admits only plain containers and numpy arrays, so a
data set file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import RegEditError
from ..images import to_rgb
from .mapping import DenseMapping

IMAGE_NAME = "original_image.png"
META_NAME = "meta_data_region.pkl"
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "tuple"),
            ("builtins", "dict"), ("builtins", "set"), ("collections", "OrderedDict")}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


@dataclass
class DragBenchCase:
    name: str
    image: Image.Image
    prompt: str
    mask: np.ndarray  # (H, W) bool: the editable area
    source: np.ndarray  # (N, 2) pixel x, y of handle points
    target: np.ndarray  # (N, 2) pixel x, y of their targets


def find_cases(root: Path) -> list[Path]:
    """Every folder below ``root`` (itself included) that holds a case, sorted."""
    return sorted(p.parent for p in Path(root).rglob(META_NAME) if (p.parent / IMAGE_NAME).exists())


def read_case(folder: Path, root: Path | None = None) -> DragBenchCase:
    field = f"--dragbench {folder}"
    try:
        with open(folder / META_NAME, "rb") as f:
            meta = _DataUnpickler(io.BytesIO(f.read())).load()
        picture = Image.open(folder / IMAGE_NAME)
        picture.load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise RegEditError(field, f"cannot read the case ({exc})",
                           f"each case needs {IMAGE_NAME} and {META_NAME} as DragBench-SR/DR ship them")
    image = to_rgb(picture, f"{field}/{IMAGE_NAME}")
    if not isinstance(meta, dict) or not {"prompt", "mask", "points"} <= set(meta):
        raise RegEditError(field, f"{META_NAME} lacks prompt, mask or points", "use DragBench-SR/DR's region files")
    points = np.asarray(meta["points"], dtype=np.float64).reshape(-1, 2)
    if len(points) < 2 or len(points) % 2:
        raise RegEditError(field, "the points do not come in handle/target pairs", "use DragBench-SR/DR's region files")
    mask = np.asarray(meta["mask"]).astype(bool)
    if mask.shape != (image.height, image.width):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
    name = str(folder.relative_to(root)) if root is not None and folder != root else folder.name
    return DragBenchCase(name, image, str(meta["prompt"]), mask, points[0::2], points[1::2])


def latent_mapping(case: DragBenchCase, width: int, height: int, factor: int) -> DenseMapping:
    """The case's point pairs on the latent grid of a ``width x height`` image (the case image resized)."""
    h, w = height // factor, width // factor
    sx, sy = width / case.image.width / factor, height / case.image.height / factor

    def cells(points):
        col = np.clip(np.floor(points[:, 0] * sx), 0, w - 1).astype(np.int64)
        row = np.clip(np.floor(points[:, 1] * sy), 0, h - 1).astype(np.int64)
        return row * w + col

    source_of = np.full(h * w, -1, dtype=np.int64)
    source_of[cells(case.target)] = cells(case.source)  # later points win
    handles = np.zeros(h * w, dtype=bool)
    handles[cells(case.source)] = True
    return DenseMapping.from_sources(source_of, handles.reshape(h, w))


def fitted_size(image: Image.Image, multiple: int, longest: int = 512) -> tuple[int, int]:
    """The case image's size scaled so its longer side is at most ``longest``, in multiples."""
    scale = min(1.0, longest / max(image.size))
    return tuple(max(multiple, int(round(s * scale / multiple)) * multiple) for s in image.size)  # type: ignore[return-value]
