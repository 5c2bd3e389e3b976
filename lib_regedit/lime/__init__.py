"""LIME (Simsar et al. 2025): localized instruction edits. ``roi`` finds the region of interest,
``edit_tokens`` picks the instruction's edit words, ``diffusers_lime`` runs it on diffusers pipelines;
the regularisation itself is an attention effect (``attention/effects/lime_regularisation.py``)."""

from .diffusers_lime import LimeResult, lime_edit
from ..documents.lime import LimeOptions

__all__ = ["LimeOptions", "LimeResult", "lime_edit"]
