"""Layout guidance in the WebUI (txt2img), at the CFG denoiser, so every sampler takes it.

Chen et al. 2023's backward guidance moves the sampler's latent z_t before the step's prediction:
``z_t <- z_t - eta * sigma_t^2 * grad E`` (``lib_regedit/regions/layout_guidance.py``). In the WebUI every
sampler, k-diffusion's and the timestep ones alike, hands its current latent to the CFG denoiser
(``CFGDenoiser.forward(x, sigma, ...)``) once per model evaluation. :class:`DenoiserGuidance` runs
the gradient steps there, on the conditional prompt of each image, and writes the guided latent back
into that same tensor, so the sampler continues from it: the update Chen et al. make, in no
particular sampler. Kept free of the WebUI's ``modules`` so it can be tested; ``webui/generation.py``
patches the denoiser of each txt2img first pass and passes the conditioning.

The sampler's input is k-diffusion's ``x = z_t * sqrt(1 + sigma^2)`` with ``sigma^2 = (1 - a) / a``
(the VP latent scaled), or the VP latent itself with the timestep as ``sigma`` for DDIM, PLMS and
UniPC (``predicts_noise``). Only the first model evaluation of a step is guided (second-order
samplers call the denoiser twice per step).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ..regions.layout_guidance import LayoutGuidance, capture_energy, descend, run_pass, sigma_squared


class DenoiserGuidance:
    """Layout guidance for one WebUI generation: ``guidance`` (capture, options, guided steps) and the
    checkpoint's ``alphas_cumprod``."""

    def __init__(self, guidance: LayoutGuidance, alphas_cumprod: torch.Tensor):
        self.guidance = guidance
        self.alphas = alphas_cumprod.detach().double().cpu()
        self.seconds = 0.0
        self.guided_steps: set[int] = set()
        self.energies: dict[int, list[list[float]]] = {}  # step -> per image, the energy before each update

    def wants(self, step: int) -> bool:
        return step not in self.guided_steps and self.guidance.wants(step)

    def alpha_bar(self, sigma: float, predicts_noise: bool) -> float:
        """alpha_bar of a sampler's ``sigma``: k-diffusion's noise level (``sigma^2 = (1 - a) / a``), or
        the timestep itself for the timestep samplers."""
        if predicts_noise:
            return float(self.alphas[min(max(int(round(sigma)), 0), len(self.alphas) - 1)])
        return 1.0 / (1.0 + sigma * sigma)

    def guide(self, x: torch.Tensor, sigma: torch.Tensor, step: int, predicts_noise: bool,
              forward: Callable[[torch.Tensor, list[int]], object]) -> bool:
        """Guide the sampler's input ``x`` (one row per image, ``sigma`` per image) in place at ``step``;
        whether it ran. ``forward(x_rows, rows)`` runs the denoiser's model on sampler inputs of the
        images ``rows`` with their conditional prompts (its output is not used: the capture records the
        maps)."""
        if not self.wants(step):
            return False
        self.guided_steps.add(step)
        started = time.perf_counter()
        options, capture = self.guidance.options, self.guidance.capture
        energies = self.energies.setdefault(step, [])
        for row in range(x.shape[0]):
            s = float(sigma.flatten()[row])
            alpha_bar = self.alpha_bar(s, predicts_noise)
            scale = 1.0 if predicts_noise else (1.0 + s * s) ** 0.5  # sampler input = scale * VP latent
            z = x[row:row + 1].detach().float() / scale

            def energy(zz, row=row, scale=scale):
                capture.start()
                try:
                    run_pass(forward, (zz * scale).to(x.dtype), [row])
                    return capture_energy(capture)
                finally:
                    capture.active = False

            try:
                with self.guidance.lean():
                    guided, history = descend(z, energy, options.scale * sigma_squared(alpha_bar),
                                              options.iterations, options.threshold, options.max_shift)
            finally:
                capture.stop()
            energies.append(history)
            with torch.no_grad():
                x[row:row + 1].copy_((guided * scale).to(x.dtype))
        self.seconds += time.perf_counter() - started
        return True

    def summary(self, sampling_seconds: float | None = None) -> str:
        """``layout guidance: E 0.61 -> 0.18 over 4 steps, 3.2 s (41% of sampling)``: the energy averaged
        over the images, as measured before the first update and before the last one (the API's
        ``LayoutGuidance.summary`` reads its history the same way)."""
        steps = sorted(s for s, rows in self.energies.items() if any(rows))
        if not steps:
            return "layout guidance: no step was guided"
        first = [h[0] for h in self.energies[steps[0]] if h]
        last = [h[-1] for h in self.energies[steps[-1]] if h]
        text = (f"layout guidance: E {sum(first) / len(first):.2f} -> {sum(last) / len(last):.2f} over "
                f"{len(steps)} steps, {self.seconds:.1f} s")
        if sampling_seconds:
            text += f" ({100 * self.seconds / sampling_seconds:.0f}% of sampling)"
        return text
