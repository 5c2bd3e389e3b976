"""The WebUI's loaded checkpoint as the model interface (``lib_regedit/backends/checkpoint.py``).

The one place that tells AUTOMATIC1111 from WebUI Forge: :func:`current` gives an ``LdmCheckpoint``
or a ``ForgeCheckpoint`` for a generation, and everything else in the adapter asks it. Runs inside the
WebUI only (it imports ``modules``).
"""

from __future__ import annotations

import importlib.util
import os

import torch

from ..backends.checkpoint import Checkpoint
from ..errors import RegEditError
from ..images import to_rgb
from ..regions.layout_init import image_to_tensor
from .run import run_of

# WebUI Forge: no ldm/sgm; each sampling call's UNet is a clone of Forge's UNet patcher
FORGE = importlib.util.find_spec("modules_forge") is not None


def active_networks(p) -> tuple:
    """The extra networks (LoRAs, ...) the WebUI has applied to the checkpoint's weights for this
    generation: part of the caches' keys, since they change what an inversion computes."""
    data = getattr(p, "extra_network_data", None) or {}
    return (repr(sorted((name, [tuple(getattr(params, "items", ()) or ()) for params in entries])
                        for name, entries in data.items())),)


def current(p) -> Checkpoint:
    """The loaded checkpoint, its prompts encoded at the generation's size (SDXL's conditioning
    carries it), one object per generation (``p``)."""
    held = run_of(p).checkpoint
    if held is not None:
        return held
    from modules import devices, prompt_parser, shared

    model = shared.sd_model
    width, height = getattr(p, "width", 512), getattr(p, "height", 512)

    def encode(prompt: str, negative: bool):
        return model.get_learned_conditioning(prompt_parser.SdConditioning(
            [prompt], is_negative_prompt=negative, width=width, height=height))

    if FORGE:
        from backend import memory_management
        from backend.attention import attention_function

        from ..backends.forge_checkpoint import ForgeCheckpoint

        checkpoint = ForgeCheckpoint(model, encode, load_models=memory_management.load_models_gpu,
                                     attention_function=attention_function, key=active_networks(p))
    else:
        from ..backends.ldm_checkpoint import LdmCheckpoint

        checkpoint = LdmCheckpoint(model, encode, autocast=devices.autocast, device=devices.device,
                                   vae_dtype=devices.dtype_vae, key=active_networks(p))
    run_of(p).checkpoint = checkpoint
    return checkpoint


def before_every_sampling(p) -> None:
    """Forge rebuilt ``forge_objects`` for this sampling call (the first pass, hires fix's second): the
    effects attached to the checkpoint go into a clone of its UNet patcher now. AUTOMATIC1111's UNet is
    patched in place while effects are attached, so nothing happens there."""
    state = getattr(p, "_regedit_run", None)
    checkpoint = state.checkpoint if state is not None else None
    objects = getattr(p.sd_model, "forge_objects", None)
    if checkpoint is not None and objects is not None and hasattr(checkpoint, "sampling_unet"):
        objects.unet = checkpoint.sampling_unet(objects.unet)


def remove_leftovers() -> None:
    """Any ldm adapter a crashed generation left on the UNet (Forge's patched UNet is a clone it drops)."""
    if not FORGE:
        from modules import shared

        from ..backends.ldm_backend import remove_leftovers as remove

        remove(shared.sd_model.model.diffusion_model)


def init_image(p):
    """img2img's first init image at the generation's size, as the WebUI resizes it for sampling; a
    transparent one composited on white (``lib_regedit/images.py``'s rule, the WebUI's own default)."""
    from modules import images

    return images.resize_image(getattr(p, "resize_mode", 0), to_rgb(p.init_images[0], "init_images[0]"), p.width,
                               p.height)


def init_means(p, rows: int | None = None):
    """The init images' latents as the VAE posterior's mean, for the first ``rows`` rows (all of
    them by default). The WebUI's ``p.init_latent`` samples the posterior with the unseeded global
    RNG; an inversion retraces its input exactly, so a deterministic input makes an edit
    reproducible (and its infotext paste redo it)."""
    from modules import images

    rows = p.init_latent.shape[0] if rows is None else rows
    sources = [images.resize_image(getattr(p, "resize_mode", 0), to_rgb(img, f"init_images[{i}]"), p.width, p.height)
               for i, img in enumerate(p.init_images)]
    batch = torch.cat([image_to_tensor(sources[min(i, len(sources) - 1)]) for i in range(rows)])
    means = current(p).posterior_mean(batch)
    if means.shape != p.init_latent[:rows].shape:  # a VAE the WebUI encodes differently (e.g. TAESD): keep its latent
        return p.init_latent[:rows]
    return means.to(p.init_latent.device, p.init_latent.dtype)


def region_loras():
    """LoRA per region through the built-in Lora extension (``lib_regedit/webui/loras.py``), or None when
    it is not loaded or in WebUI Forge, whose Lora extension differs (region prompts' LoRA tags are then
    left out with a note)."""
    if FORGE:
        return None
    try:
        import networks  # the built-in Lora extension's module
    except ImportError:
        return None
    if not all(hasattr(networks, n) for n in ("load_network", "loaded_networks", "available_network_aliases")):
        return None
    from .loras import WebUILoras

    return WebUILoras(networks)


def needs_gradient(p, field: str, what: str) -> RegEditError | None:
    """The error for a feature whose gradient runs through the UNet, where the checkpoint cannot give one
    (WebUI Forge holds its weights as inference tensors); None where it can."""
    if current(p).differentiable:
        return None
    return RegEditError(field, f"{what} does not run in WebUI Forge: its gradient runs through the UNet, whose "
                               "weights Forge holds as inference tensors",
                        "use AUTOMATIC1111's WebUI v1.10, the Python API or the command line for it (region "
                        "prompts, layout init, keywords, KSSA, RegionDrag, LIME and region edits run in Forge)")


_SEGMENTERS: dict = {}  # folder -> (mtime, Segmenter): loading a CLIPSeg once per folder, not per generation


def segmenter():
    """The segmenter of multi-region guidance: the folder in Settings → RegEdit, or the bundled one."""
    from modules import shared

    from ..editing.segmenter import load_segmenter
    from ..models import default_segmenter_path

    folder = str(shared.opts.data.get("regedit_segmenter", "") or "").strip() or str(default_segmenter_path())
    config = os.path.join(folder, "config.json")
    stamp = os.path.getmtime(config) if os.path.exists(config) else None
    cached = _SEGMENTERS.get(folder)
    if cached is None or cached[0] != stamp:
        _SEGMENTERS.clear()
        _SEGMENTERS[folder] = (stamp, load_segmenter(folder))
    return _SEGMENTERS[folder][1]
