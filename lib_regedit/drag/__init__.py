"""RegionDrag (Lu et al. 2024, *RegionDrag: Fast Region-Based Image Editing with Diffusion Models*):
drag handle regions onto target regions, gradient-free, in one inversion-denoising cycle.

- ``mapping``: the dense mapping from every target cell back to a handle cell;
- ``inversion``: the Cycle-SDE inversion that stores each step's noise (exact retrace);
- ``copy_paste``: handle latents onto target cells;
- ``options``: the settings (start_t, end_t, handle noise) and their checks;
- ``region_drag``: the loop (invert, copy-paste, denoise with mutual self-attention, end_t);
- ``diffusers_drag``: the Python API on a diffusers pipeline.

Its attention effect, mutual self-attention, is ``attention/effects/mutual_self_attention.py``.
"""
