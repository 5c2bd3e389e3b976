"""Null-text inversion's optimisation (Mokady et al. 2023, *Null-text Inversion for Editing Real
Images using Guided Diffusion Models*), per step and per region as MRGD §3.3 extends it.

Along the DDIM inversion's trajectory ``z*_0..z*_N`` (the pivot, made with the conditional
prediction), each denoising step optimises the step's null set so that one guided DDIM step from the
current latent lands on the pivot's next latent:
``min_∅ || z*_{t-1} - step(z_t, ε_∅ + w (ε_c - ε_∅)) ||²`` (MRGD Alg. 1 line 7). The settings are
the paper's: Adam, at most 10 iterations, learning rate ``1e-2 (1 - k / 100)`` at step ``k`` of 50
and an early stop once the loss is below ``1e-5 + k · 2e-5``; for other step counts both are read at
the same fraction of the run (``k / 50``). Each step starts from the previous step's optimum, and
the current latent then moves with the optimised set, so errors do not accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_STEPS = 50


@dataclass(frozen=True)
class NullTextOptions:
    iterations: int = 10
    learning_rate: float = 1e-2
    early_stop: float = 1e-5

    def __post_init__(self):
        from ..errors import RegEditError

        if not isinstance(self.iterations, int) or not 1 <= self.iterations <= 100:
            raise RegEditError("nulltext.iterations", f"{self.iterations!r} is not 1 to 100",
                               "use the paper's 10 (fewer is faster, more rarely helps)")
        if not 0 < float(self.learning_rate) <= 1:
            raise RegEditError("nulltext.learning_rate", f"{self.learning_rate!r} is not in (0, 1]",
                               "use the paper's 0.01")


def learning_rate(options: NullTextOptions, k: int, steps: int) -> float:
    """Adam's rate at denoising step ``k`` (0 = the noisiest) of ``steps``."""
    return options.learning_rate * (1.0 - (k * PAPER_STEPS / steps) / 100.0)


def stop_below(options: NullTextOptions, k: int, steps: int) -> float:
    """The loss under which step ``k``'s optimisation stops early."""
    return options.early_stop + (k * PAPER_STEPS / steps) * 2e-5
