"""Write random-weight checkpoints that WebUI Forge accepts, with Forge's own model classes.

Run by the e2e harness as ``$FORGE_PY tests/e2e/make_forge_models.py [--sdxl] OUT_DIR`` from the Forge folder
(``backend`` must be importable). Forge recognises a checkpoint by its UNet (``huggingface_guess``) and
takes the text-encoder and VAE configs from its own ``backend/huggingface`` folder, so those are full
size; only the UNet is cut down where Forge still accepts it:

- ``forge-sd15-e2e.safetensors``: SD 1.5's CLIP-L and VAE, a UNet with 320 channels and context 768
  (what Forge's SD 1.5 detection requires) but two levels with one res block each: 1.2 GB in float32.
- ``forge-sd15-ip2p-e2e.safetensors``: the same with an instruct-pix2pix UNet (8 input channels), which
  Forge detects as SD 1.5 instruct-pix2pix (for LIME).
- ``forge-sdxl-e2e.safetensors`` (with ``--sdxl``): SDXL's CLIP-L, OpenCLIP-G and VAE with the UNet of
  Segmind Vega (SDXL's layout with transformer depths 0/1/2), the smallest SDXL-family UNet Forge
  detects; stored in float16.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "packages_3rdparty")]
sys.argv[1:1] = ["--always-cpu"]  # Forge's backend reads its flags at import; the output folder stays last

from backend.nn.unet import IntegratedUNet2DConditionModel  # noqa: E402
from backend.nn.vae import IntegratedAutoencoderKL  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openclip_layout import openclip_g_state_dict  # noqa: E402

HF = os.path.join("backend", "huggingface")
SD15 = os.path.join(HF, "runwayml", "stable-diffusion-v1-5")
SDXL = os.path.join(HF, "stabilityai", "stable-diffusion-xl-base-1.0")


def _nonzero(module: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere, so outputs depend on the input (zero-initialised layers included)."""
    with torch.no_grad():
        for param in module.parameters():
            if param.abs().max() == 0:
                param.normal_(0, 0.02)
    return module


def _prefixed(module: torch.nn.Module, prefix: str, dtype) -> dict:
    return {prefix + k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}


def _vae(repo: str) -> IntegratedAutoencoderKL:
    return IntegratedAutoencoderKL.from_config(IntegratedAutoencoderKL.load_config(os.path.join(repo, "vae")))


def _text(repo: str, folder: str, cls) -> torch.nn.Module:
    return cls(CLIPTextConfig.from_pretrained(os.path.join(repo, folder)))


def sd15(in_channels: int = 4) -> dict:
    unet = IntegratedUNet2DConditionModel(
        in_channels=in_channels, model_channels=320, out_channels=4, num_res_blocks=[1, 1], channel_mult=[1, 2],
        num_heads=8, use_spatial_transformer=True, transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
        transformer_depth_middle=1, context_dim=768, use_linear_in_transformer=False)
    clip = _text(SD15, "text_encoder", CLIPTextModel)
    sd = _prefixed(_nonzero(unet), "model.diffusion_model.", torch.float32)
    sd.update(_prefixed(clip, "cond_stage_model.transformer.", torch.float32))
    sd.update(_prefixed(_vae(SD15), "first_stage_model.", torch.float32))
    return sd


def sdxl() -> dict:
    unet = IntegratedUNet2DConditionModel(
        in_channels=4, model_channels=320, out_channels=4, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
        num_head_channels=64, use_spatial_transformer=True, transformer_depth=[0, 0, 1, 1, 2, 2],
        transformer_depth_output=[0, 0, 0, 1, 1, 1, 2, 2, 2], transformer_depth_middle=-1, context_dim=2048,
        use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential")
    sd = _prefixed(_nonzero(unet), "model.diffusion_model.", torch.float16)
    clip_l = _text(SDXL, "text_encoder", CLIPTextModel)
    sd.update(_prefixed(clip_l, "conditioner.embedders.0.transformer.", torch.float16))
    clip_g = _text(SDXL, "text_encoder_2", CLIPTextModelWithProjection)
    sd.update(_openclip_g(clip_g))
    sd.update(_prefixed(_vae(SDXL), "first_stage_model.", torch.float16))
    return sd


def _openclip_g(model) -> dict:
    """OpenCLIP-G in the SDXL checkpoint's own layout (``conditioner.embedders.1.model.``)."""
    return openclip_g_state_dict(model, "conditioner.embedders.1.model.", torch.float16)


def main(argv: list[str]) -> int:
    out = argv[-1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    written = {}
    with torch.no_grad():
        path = os.path.join(out, "forge-sd15-e2e.safetensors")
        if not os.path.exists(path):
            save_file(sd15(), path)
        written["sd15"] = path
        path = os.path.join(out, "forge-sd15-ip2p-e2e.safetensors")
        if not os.path.exists(path):
            save_file(sd15(in_channels=8), path)
        written["sd15_ip2p"] = path
        if "--sdxl" in argv:
            path = os.path.join(out, "forge-sdxl-e2e.safetensors")
            if not os.path.exists(path):
                save_file(sdxl(), path)
            written["sdxl"] = path
    print(json.dumps(written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[2:]))
