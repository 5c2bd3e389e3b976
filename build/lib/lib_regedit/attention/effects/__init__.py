"""Effects composed by the controller. One module per idea:

- ``region_fusion``: MultiDiffusion fusion inside cross-attention (MRGD Eq. 1), this release.
- ``map_capture``: per-token cross-attention maps (previews, keyword selection), this release.
- planned: ``kssa`` (keyword-selected self-attention, MRGD §3.2, a ``prepare`` bias on self-attention),
  ``lime_regularisation`` (LIME, seed 000, a ``prepare`` bias on cross-attention inside the RoI),
  ``map_injection`` (prompt-to-prompt, MRGD Eq. 5, a ``compute`` stage before fusion),
  ``mutual_self_attention`` (RegionDrag, seed 002, a ``prepare`` k/v replacement),
  ``guidance_capture`` (layout guidance, seed 003, an ``observe`` stage that keeps the graph).
"""

from .map_capture import MapCapture
from .region_fusion import RegionFusion, RegionPrompt

__all__ = ["MapCapture", "RegionFusion", "RegionPrompt"]
