"""Region editing (MRGD): the pieces that edit a generated or real image region by region.

- ``pair_documents``: R^S and R^T from one document with edit roles;
- ``pair_effects``: the set-up of the pair's attention effects. What they share lives in the core,
  ``attention/``: ``pair_plan`` (the plan), ``token_alignment`` (prompt-to-prompt's word swap and
  refinement), ``replace_schedule`` (when and where the target reads the source's maps) and
  ``pair_rows`` (which rows of a UNet call are a pair's source and target);
- ``diffusers_edit``: ``edit_pair`` on diffusers; ``segmenter``: the CLIPSeg guidance model.

``edit_pair`` and ``EditResult`` are imported on first use, so that reading the command line's options
does not import torch and diffusers.
"""

__all__ = ["EditResult", "edit_pair"]


def __getattr__(name):
    if name in __all__:
        from . import diffusers_edit

        return getattr(diffusers_edit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
