"""LIME's settings, with the defaults of LIME (Simsar et al. 2025) and its reference implementation
(instruct-pix2pix, 30 steps): the RoI from features of step 10, the regularisation during the first 27
steps, in the cross-attention layers of the two finest resolutions."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RegEditError


@dataclass(frozen=True)
class LimeOptions:
    clusters: int = 8  # k of k-means on the features
    points: int = 1  # the edit tokens' top-attended positions whose clusters form the RoI
    feature_step: float = 1 / 3  # the step (a fraction of the run) whose features and maps find the RoI
    regularise_until: float = 0.9  # regularise while fewer than this fraction of the steps are done
    feature_downscales: tuple[int, ...] = (2, 4, 8)  # resolutions read for the RoI (latent side / layer side)
    regularise_downscales: tuple[int, ...] = (1, 2)  # resolutions regularised
    max_dim: int = 64  # features with more channels are reduced by PCA to this many before clustering

    def checked(self) -> "LimeOptions":
        """Itself, or a RegEditError naming the field."""
        for name, lo in (("clusters", 1), ("points", 1), ("max_dim", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise RegEditError(f"lime.{name}", f"{value!r} is not a whole number of at least {lo}",
                                   f"use an integer >= {lo} (default {getattr(LimeOptions, name)})")
        for name in ("feature_step", "regularise_until"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise RegEditError(f"lime.{name}", f"{value!r} is out of range",
                                   f"use a fraction from 0 to 1 (default {getattr(LimeOptions, name):.3g})")
        for name in ("feature_downscales", "regularise_downscales"):
            value = getattr(self, name)
            if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
                raise RegEditError(f"lime.{name}", f"{value!r} is not a list of layer downscales",
                                   "use whole numbers >= 1, e.g. [1, 2] (1 = the latent's resolution)")
        return self
