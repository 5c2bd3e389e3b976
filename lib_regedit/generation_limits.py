"""Checks on a generation's settings before any work starts (the Python API and the command line).

Each bad value gets one :class:`RegEditError` that names the field and the fix, instead of an error
from deep inside diffusers (a ZeroDivisionError for 0 steps, a ValueError for more steps than the
model was trained with, a size the pipeline refuses). Sizes far beyond the model's native size are
refused with their estimated cost unless the caller allows them: a run at 64 times the native area
takes hours and tens of GB of memory, where a mistyped size is the likely cause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import RegEditError

PIPELINE_MULTIPLE = 8  # diffusers' SD and SDXL pipelines refuse sizes that are not multiples of 8
LARGE_AREA = 4.0  # beyond this many times the native area, a size needs allow_large
MAX_SIDE = 8192


@dataclass(frozen=True)
class SizeCost:
    """How a size compares with the model's native one."""

    area: float  # times the native number of pixels
    time: float  # estimated time per step, times a native-size step

    def describe(self) -> str:
        return (f"{self.area:.0f}x the native area: roughly {self.time:.0f}x the time and memory per step, "
                "as self-attention grows with the square of the area")


def check_steps(steps, train_timesteps: int, field: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= train_timesteps:
        raise RegEditError(field, f"{steps!r} is not a usable number of steps",
                           f"use a whole number from 1 to {train_timesteps} (the model's training timesteps); 20 is typical")
    return steps


def check_guidance_scale(scale, field: str = "cfg") -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
            or not 0 <= scale <= 100:
        raise RegEditError(field, f"{scale!r} is not a usable guidance scale",
                           "use a number from 0 to 100; 7.5 is typical, 1 turns classifier-free guidance off")
    return float(scale)


def check_seed(seed, field: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise RegEditError(field, f"{seed!r} is not a usable seed", "use a whole number from 0 to 2**63 - 1")
    return seed


def check_batch_size(batch_size, field: str = "batch_size") -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 64:
        raise RegEditError(field, f"{batch_size!r} is not a usable batch size", "use a whole number from 1 to 64")
    return batch_size


def size_cost(width: int, height: int, native: int) -> SizeCost:
    """The estimate behind the refusal. Convolutions grow with the area; self-attention at the finest
    attention layer grows with its square and dominates once the area is large (at the native size it
    is about half of a step; an estimate, not a measurement of the given model)."""
    area = width * height / (native * native)
    return SizeCost(area=area, time=max(area, 0.5 * area + 0.5 * area * area))


def size_multiple(vae_factor: int) -> int:
    """What image sides must be a multiple of: 8 for the pipelines, and the VAE's factor."""
    return math.lcm(PIPELINE_MULTIPLE, vae_factor)


def check_side(value, multiple: int, field: str, native: int | None = None) -> int:
    """One image side: a whole multiple of ``multiple`` from ``multiple`` to ``MAX_SIDE``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < multiple or value > MAX_SIDE \
            or value % multiple:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        largest = MAX_SIDE // multiple * multiple
        suggestion = max(multiple, min(largest, round(value / multiple) * multiple)) if numeric else native or multiple
        hint = f" (this model's native size is {native})" if native else ""
        raise RegEditError(field, f"{value!r} is not a usable size",
                           f"use a multiple of {multiple} from {multiple} to {MAX_SIDE}, e.g. {suggestion}{hint}")
    return value


def check_size(width, height, *, vae_factor: int, native: int, allow_large: bool = False,
               width_field: str = "width", height_field: str = "height") -> tuple[int, int]:
    """Width and height (``None``: the native size), each a multiple of 8 and of the VAE's factor; a
    size beyond ``LARGE_AREA`` times the native area is refused unless ``allow_large``."""
    multiple = size_multiple(vae_factor)
    width, height = width or native, height or native
    for field, value in ((width_field, width), (height_field, height)):
        check_side(value, multiple, field, native)
    cost = size_cost(width, height, native)
    if cost.area > LARGE_AREA and not allow_large:
        raise RegEditError(f"{width_field}/{height_field}",
                           f"{width}x{height} is far beyond this model's native {native}x{native} "
                           f"({cost.describe()})",
                           f"generate at most {LARGE_AREA:g}x the native area (e.g. {native}x{native}), or allow it "
                           "explicitly (--allow-large on the command line, allow_large=True in the Python API)")
    return width, height
