"""Latent sizes in the WebUI for checkpoints whose VAE does not downsample by 8.

WebUI v1.x sizes every latent it makes (the seeded noise, hires fix, img2img resizes) as the image
size divided by ``modules.processing.opt_f``, a module constant of 8: right for every SD 1.x, SD 2.x
and SDXL VAE (``ch_mult`` of 4 levels, 3 downsamplings). ShapesWorld's VAE downsamples by 4, so at
64x64 the WebUI would hand the UNet an 8x8 latent instead of its native 16x16 and get noise back.

``sync`` sets ``opt_f`` to the loaded checkpoint's own factor, ``2 ** (levels - 1)`` of its
first-stage encoder, every time a checkpoint loads and before every generation. For every 8x model
it writes 8, the WebUI's own value, so nothing changes for them; ``reset`` puts 8 back when the
script unloads.
"""

from __future__ import annotations

DEFAULT = 8


def vae_downscale(sd_model) -> int:
    """How many image pixels one latent cell spans along a side, read from the model's VAE encoder
    (``ldm``/``sgm`` ``Encoder.num_resolutions``); 8 when the model does not say."""
    encoder = getattr(getattr(sd_model, "first_stage_model", None), "encoder", None)
    levels = getattr(encoder, "num_resolutions", None)
    if not isinstance(levels, int) or not 1 <= levels <= 6:
        return DEFAULT
    return 2 ** (levels - 1)


def sync(processing, sd_model) -> int:
    """Set ``processing.opt_f`` to ``sd_model``'s factor; returns it."""
    factor = vae_downscale(sd_model) if sd_model is not None else DEFAULT
    if getattr(processing, "opt_f", None) != factor:
        processing.opt_f = factor
        if factor != DEFAULT:
            print(f"RegEdit: this checkpoint's VAE downsamples by {factor}, not 8; "
                  f"the WebUI's latent sizes follow it while it is loaded")
    return factor


def reset(processing) -> None:
    processing.opt_f = DEFAULT
