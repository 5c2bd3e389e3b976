"""A drag's settings (RegionDrag's defaults) and their checks, without torch: the command line checks
its flags with these before it imports the model's libraries."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import generation_limits as limits
from ..errors import RegEditError


@dataclass(frozen=True)
class DragOptions:
    steps: int = 20
    start_t: float = 0.5
    end_t: float = 0.2
    handle_noise: float = 1.0
    mutual_self_attention: bool = True
    copy_paste_every_step: bool = False
    match_surroundings: bool = True  # drag document version 2's default (version 1: False)
    grow_handles: bool = True  # drag document version 2's default (version 1: False)

    @property
    def evaluations(self) -> int:
        """UNet evaluations of one drag (batch 1): as many inverting as denoising."""
        return 2 * self.phase_evaluations

    @property
    def phase_evaluations(self) -> int:
        """UNet evaluations of each phase, the inversion and the denoising."""
        return max(1, round(self.steps * self.start_t))


def options_for(document, steps: int = 20, **overrides) -> DragOptions:
    """The options a drag document asks for (its settings), with ``overrides`` given by the caller."""
    values = dict(document.settings(), steps=steps)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DragOptions(**values)


def check_options(options: DragOptions, train_timesteps: int) -> DragOptions:
    """Each setting in its range, and ``end_t`` below ``start_t``: the denoising starts at ``start_t``
    and copy-pastes while the timestep is above ``end_t``, so an ``end_t`` at or above ``start_t``
    would paste once, at the first step, and never again (unless ``copy_paste_every_step``, which
    does not read ``end_t``)."""
    limits.check_steps(options.steps, train_timesteps)
    for name, lo, hi in (("start_t", 0.0, 1.0), ("end_t", 0.0, 1.0), ("handle_noise", 0.0, 1.0)):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
                or (name == "start_t" and value == 0):
            raise RegEditError(name, f"{value!r} is out of range", f"use a number in ({lo:g}, {hi:g}]"
                               if name == "start_t" else f"use a number from {lo:g} to {hi:g}")
    if not options.copy_paste_every_step and options.end_t >= options.start_t:
        raise RegEditError("end_t", f"{options.end_t:g} is not below start_t {options.start_t:g}: the denoising "
                                    "starts at start_t and copy-pastes while the timestep is above end_t, so the "
                                    "handle would be pasted once, at the first step",
                           f"give an end_t below {options.start_t:g} (RegionDrag's defaults: start_t 0.5, end_t 0.2), "
                           "or paste at every step (copy_paste_every_step)")
    return replace(options, start_t=float(options.start_t), end_t=float(options.end_t),
                   handle_noise=float(options.handle_noise))
