"""LIME (Simsar et al. 2025): localized instruction edits. ``roi`` finds the region of interest,
``edit_tokens`` picks the instruction's edit words, ``diffusers_lime`` runs it on diffusers pipelines;
the regularisation itself is an attention effect (``attention/effects/lime_regularisation.py``).

``lime_edit``, ``LimeResult`` and ``LimeOptions`` are imported on first use, so that reading the
command line's options does not import torch and diffusers."""

_LAZY = {"LimeResult": ".diffusers_lime", "lime_edit": ".diffusers_lime", "LimeOptions": "..documents.lime"}

__all__ = ["LimeOptions", "LimeResult", "lime_edit"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
