"""Write random-weight checkpoints that ComfyUI accepts, with ComfyUI's own model classes.

Run by the ComfyUI e2e harness as ``$COMFYUI_PY tests/e2e/make_comfyui_models.py [--sdxl] [--check] OUT_DIR``
from the ComfyUI folder (``comfy`` must be importable). Nothing is downloaded: ComfyUI recognises a
checkpoint by its UNet (``comfy/model_detection.py``) and builds the text encoders from the configs it
ships (``comfy/sd1_clip_config.json``, ``comfy/clip_config_bigg.json``, tokenizers included), so those and
the VAE are full size; only the UNet is cut down where ComfyUI's detection still accepts it:

- ``comfyui-sd15-e2e.safetensors``: SD 1.5's CLIP-L and VAE, a UNet with 320 channels and context 768
  (what ComfyUI's ``SD15`` match requires: ``use_linear_in_transformer`` False, no ``adm_in_channels``)
  but two levels of one res block each, the layout of ``make_forge_models.py``: 1.2 GB in float32.
- ``comfyui-sd15-ip2p-e2e.safetensors``: the same with 8 input channels, which ComfyUI detects as
  ``SD15_instructpix2pix`` (for LIME).
- ``comfyui-sdxl-e2e.safetensors`` (with ``--sdxl``): SDXL's CLIP-L, OpenCLIP-G (in the checkpoint's own
  OpenCLIP layout) and VAE, with the UNet of Segmind Vega (SDXL's layout with transformer depths 0/1/2),
  which ComfyUI detects as ``Segmind_Vega``, an SDXL subclass (``model_base.SDXL``); float16, 3.3 GB.

Each file written is then loaded once with ``comfy.sd.load_checkpoint_guess_config`` on the CPU (``--check``:
the ones already there too), which fails when ComfyUI leaves any weight unplaced, and the model config
ComfyUI picked is printed. A JSON object ``{"sd15": path, ...}`` is printed last.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.getcwd())

import comfy.cli_args  # noqa: E402  (parsed with its defaults: ComfyUI enables argv parsing only in main.py)

comfy.cli_args.args.cpu = True  # read by comfy.model_management at import: no CUDA probing
from comfy.ldm.models.autoencoder import AutoencoderKL  # noqa: E402
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from openclip_layout import openclip_g_state_dict  # noqa: E402

SD1_CLIP_CONFIG = os.path.join("comfy", "sd1_clip_config.json")
BIGG_CLIP_CONFIG = os.path.join("comfy", "clip_config_bigg.json")
# comfy/sd.py's default SD1.x/SD2.x/SDXL VAE
VAE_DDCONFIG = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}

NAMES = {"sd15": "comfyui-sd15-e2e", "sd15_ip2p": "comfyui-sd15-ip2p-e2e", "sdxl": "comfyui-sdxl-e2e"}


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    """ComfyUI builds its layers with ``comfy.ops.disable_weight_init`` (no init: the weights are whatever
    ``torch.empty`` left). Give every layer torch's own default init, and every zero-initialised tensor
    random values so outputs depend on the input."""
    bases = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.GroupNorm,
             torch.nn.LayerNorm, torch.nn.Embedding)
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))
        for m in module.modules():
            for base in bases:
                if isinstance(m, base):
                    base.reset_parameters(m)  # the torch class's, not ComfyUI's no-op override
                    break
        for name, p in module.named_parameters():
            if torch.isnan(p).any():
                raise RuntimeError(f"{name} was not initialised")
            if p.abs().max() == 0:
                p.normal_(0, 0.02)
    return module


def _prefixed(module: torch.nn.Module, prefix: str, dtype) -> dict:
    return {prefix + k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}


def _clip_l(prefix: str, dtype) -> dict:
    """CLIP-L under ``prefix`` in the checkpoints' own layout (``<prefix>text_model.embeddings...``).
    transformers 5's ``CLIPTextModel`` names its weights without the ``text_model.`` level that
    transformers 4 (and every SD checkpoint) has; ComfyUI's SDXL loader only finds them with it."""
    clip = CLIPTextModel(CLIPTextConfig.from_json_file(SD1_CLIP_CONFIG))
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in _prefixed(clip, "", dtype).items()}


def _vae() -> torch.nn.Module:
    return _randomised(AutoencoderKL(ddconfig=dict(VAE_DDCONFIG), embed_dim=4))


def sd15(in_channels: int = 4) -> dict:
    unet = UNetModel(
        image_size=32, in_channels=in_channels, model_channels=320, out_channels=4, num_res_blocks=[1, 1],
        channel_mult=[1, 2], num_heads=8, use_spatial_transformer=True, transformer_depth=[1, 1],
        transformer_depth_output=[1, 1, 1, 1], transformer_depth_middle=1, context_dim=768,
        use_linear_in_transformer=False, legacy=False)
    sd = _prefixed(_randomised(unet), "model.diffusion_model.", torch.float32)
    sd.update(_clip_l("cond_stage_model.transformer.", torch.float32))
    sd.update(_prefixed(_vae(), "first_stage_model.", torch.float32))
    return sd


def sdxl() -> dict:
    unet = UNetModel(
        image_size=32, in_channels=4, model_channels=320, out_channels=4, num_res_blocks=[2, 2, 2],
        channel_mult=[1, 2, 4], num_head_channels=64, use_spatial_transformer=True,
        transformer_depth=[0, 0, 1, 1, 2, 2], transformer_depth_output=[0, 0, 0, 1, 1, 1, 2, 2, 2],
        transformer_depth_middle=-1, context_dim=2048, use_linear_in_transformer=True, adm_in_channels=2816,
        num_classes="sequential", legacy=False)
    sd = _prefixed(_randomised(unet), "model.diffusion_model.", torch.float16)
    sd.update(_clip_l("conditioner.embedders.0.transformer.", torch.float16))
    clip_g = CLIPTextModelWithProjection(CLIPTextConfig.from_json_file(BIGG_CLIP_CONFIG))
    sd.update(openclip_g_state_dict(clip_g, "conditioner.embedders.1.model.", torch.float16))
    sd.update(_prefixed(_vae(), "first_stage_model.", torch.float16))
    return sd


# what ComfyUI logs when a checkpoint's weights don't all land (comfy/sd.py, comfy/model_base.py); it already
# leaves out CLIP-L's logit_scale and text_projection, which SD checkpoints never carry
LOAD_COMPLAINTS = ("clip missing", "unet missing", "unet unexpected", "Missing VAE keys", "left over keys")


def check(path: str) -> str:
    """Load ``path`` the way CheckpointLoaderSimple does and fail on any weight ComfyUI did not place;
    the name of the model config ComfyUI chose."""
    import logging

    import comfy.sd

    complaints = []

    class Catch(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if record.levelno >= logging.WARNING and msg.startswith(LOAD_COMPLAINTS):
                complaints.append(msg[:500])
            elif msg.startswith("left over keys") and "dict_keys([])" not in msg:
                complaints.append(msg[:500])

    root = logging.getLogger()
    handler, level = Catch(), root.level
    quiet = [(h, h.level) for h in root.handlers]  # "left over keys" is a debug message: hear it, print nothing new
    for h, h_level in quiet:
        h.setLevel(max(h_level, level))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for h, h_level in quiet:
            h.setLevel(h_level)
    if clip is None or vae is None:
        raise RuntimeError(f"{path}: ComfyUI found no text encoder or no VAE in it")
    if complaints:
        raise RuntimeError(f"{path}: ComfyUI did not load every weight:\n" + "\n".join(complaints))
    return type(model.model.model_config).__name__


def main(argv: list[str]) -> int:
    out = argv[-1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    makers = {"sd15": sd15, "sd15_ip2p": lambda: sd15(in_channels=8)}
    if "--sdxl" in argv:
        makers["sdxl"] = sdxl
    written, fresh = {}, set()
    for key, make in makers.items():
        path = os.path.join(out, NAMES[key] + ".safetensors")
        if not os.path.exists(path):
            with torch.no_grad():
                sd = make()
            save_file(sd, path + ".part")
            os.replace(path + ".part", path)  # never leave a half-written checkpoint under the final name
            del sd
            fresh.add(key)
        written[key] = path
    for key, path in written.items():
        if key in fresh or "--check" in argv:  # a new file is always loaded once through ComfyUI
            print(f"{key}: {check(path)}", file=sys.stderr)
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
