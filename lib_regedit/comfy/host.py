"""What the ComfyUI adapter takes from ComfyUI itself: the checkpoint on its objects, its progress bar and
interrupt, and conversions between its IMAGE/LATENT and the engine's tensors and pictures. ComfyUI's
modules are imported inside the functions, so this module imports without ComfyUI."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ..backends.comfy_checkpoint import ComfyCheckpoint


def checkpoint(model, clip, vae, width: int, height: int) -> ComfyCheckpoint:
    """ComfyUI's MODEL, CLIP and VAE (CLIP and VAE may be None where a task needs neither) as the model
    interface, its models loaded as ComfyUI loads them for sampling."""
    import comfy.model_management as mm
    from comfy.ldm.modules.attention import optimized_attention

    return ComfyCheckpoint(model, clip, vae, width, height, load_models=mm.load_models_gpu,
                           attention_function=optimized_attention)


def vae_factor(vae) -> int:
    """Pixels per latent pixel of ComfyUI's VAE (8 for SD; 4 for the bundled ShapesWorld model)."""
    ratio = getattr(vae, "downscale_ratio", 8)
    return int(ratio) if isinstance(ratio, (int, float)) else 8


def conditioning(clip, prompts: list[str]) -> list:
    """ComfyUI's CONDITIONING with one row per prompt, each distinct prompt encoded once; contexts of
    different lengths tiled to a common one, as ComfyUI concatenates conditionings."""
    encoded = {}
    for text in prompts:
        if text not in encoded:
            encoded[text] = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
    rows = [encoded[text] for text in prompts]
    length = math.lcm(*(row["cond"].shape[1] for row in rows))
    cond = torch.cat([row["cond"].repeat(1, length // row["cond"].shape[1], 1) for row in rows])
    extra = {}
    if all(row.get("pooled_output") is not None for row in rows):
        extra["pooled_output"] = torch.cat([row["pooled_output"] for row in rows])
    return [[cond, extra]]


def with_image(conditioning: list, concat: torch.Tensor | None) -> list:
    """``conditioning`` with ComfyUI's ``concat_latent_image`` (an instruct-pix2pix model's picture), as its
    InstructPixToPixConditioning node sets it; unchanged without one."""
    if concat is None:
        return conditioning
    return [[cond, dict(extra, concat_latent_image=concat)] for cond, extra in conditioning]


def check_size(vae, width: int, height: int) -> int:
    """The VAE's factor, after checking that ``width`` and ``height`` are multiples of it."""
    from ..errors import RegEditError

    factor = vae_factor(vae)
    for name, value in (("width", width), ("height", height)):
        if value % factor:
            raise RegEditError(name, f"{value} is not a multiple of the VAE's {factor}", f"use a multiple of {factor}")
    return factor


def pictures(image: torch.Tensor) -> list[Image.Image]:
    """ComfyUI's IMAGE (B, H, W, C) in [0, 1] as RGB pictures."""
    array = (image[..., :3].detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in array]


def image_of(pictures_: list[Image.Image]) -> torch.Tensor:
    """RGB pictures as ComfyUI's IMAGE (B, H, W, 3) in [0, 1]."""
    return torch.from_numpy(np.stack([np.asarray(p.convert("RGB"), dtype=np.float32) / 255 for p in pictures_]))


def picture_of(pixels: torch.Tensor) -> Image.Image:
    """A decoded (3, H, W) tensor in [-1, 1] as a picture."""
    array = ((pixels.float().permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255)
    return Image.fromarray(array.round().astype(np.uint8))


def progress(total: int):
    """A callback that moves ComfyUI's progress bar of the running node one step per call (whatever the
    engine passes it: ``(done, total)``, or ``(done, total, phase)``)."""
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(1, int(total)))

    def step(*_):
        bar.update(1)
    return step


def cancelled() -> bool:
    """Whether the user pressed Cancel (ComfyUI's interrupt) while the node runs."""
    import comfy.model_management as mm

    return bool(getattr(mm, "processing_interrupted", lambda: False)())
