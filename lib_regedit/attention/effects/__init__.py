"""Effects composed by the controller. One module per idea:

- ``region_fusion``: MultiDiffusion fusion inside cross-attention (MRGD Eq. 1), a ``compute`` stage.
- ``map_capture``: per-token cross-attention maps (previews, keyword selection), ``observe``.
- ``keyword_selection`` and ``kssa``: keyword-selected self-attention (MRGD §3.2), a ``prepare``
  reweighting of self-attention keys.
- ``guidance_capture``: differentiable maps for layout guidance (Chen et al. 2023), ``observe``.
- ``mutual_self_attention``: RegionDrag's key/value replacement (Lu et al. 2024), ``prepare``.
- ``roi_capture``: LIME's features and edit-token maps at the feature step (Simsar et al. 2025),
  ``observe``; it ends the first pass.
- ``lime_regularisation``: LIME's -inf on unrelated tokens inside the RoI, ``prepare``.
- ``pair_fusion``: region fusion of an edit pair with prompt-to-prompt per region (MRGD Eq. 5),
  ``compute``.
- ``self_map_injection``: the pair's self-attention maps, source into target (prompt-to-prompt),
  ``compute``.
"""

from .map_capture import MapCapture
from .region_fusion import RegionFusion, RegionPrompt

__all__ = ["MapCapture", "RegionFusion", "RegionPrompt"]
