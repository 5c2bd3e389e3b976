"""Region editing (MRGD): the pieces that edit a generated or real image region by region.

- ``pair_documents``: R^S and R^T from one document with edit roles;
- ``token_alignment``: prompt-to-prompt's word swap and refinement;
- ``replace_schedule``: when and where the target reads the source's maps;
- ``pair_rows``: which rows of a UNet call are a pair's source and target;
- ``pair_plan`` and ``pair_effects``: what the pair's attention effects share, and their set-up;
- ``diffusers_edit``: ``edit_pair`` on diffusers; ``segmenter``: the CLIPSeg guidance model.
"""

from .diffusers_edit import EditResult, edit_pair

__all__ = ["EditResult", "edit_pair"]
