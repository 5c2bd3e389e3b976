"""Write tiny random-weight SD1 and SDXL checkpoints that a real WebUI v1.10 loads, fully offline.

Run with the WebUI's own Python (``A1111_PY``), because the checkpoints are instantiated from their
``.yaml`` with the WebUI's ``ldm``/``sgm`` packages, which guarantees the state-dict keys match::

    $A1111_PY tests/e2e/make_models.py --webui $A1111_DIR --out DIR

It writes into ``DIR``:

- ``hf/hub/``: a Hugging Face cache (point ``HF_HOME`` at ``DIR/hf``) with two entries under their
  real names, so the WebUI's usual loading code runs unchanged:
  ``openai/clip-vit-large-patch14`` (a tiny CLIP text model: its config, and the real 49,408-token
  CLIP tokenizer written offline by :func:`lib_regedit.tokenizer.write_clip_tokenizer_files`), and
  ``laion/CLIP-ViT-bigG-14-laion2B-39B-b160k`` (a tiny OpenCLIP model for SDXL's second encoder,
  loaded as ``hf-hub:`` by open_clip).
- ``Stable-diffusion/regedit-e2e-sd1.safetensors`` with ``regedit-e2e-sd1.yaml`` beside it, and
  ``regedit-e2e-sdxl.safetensors`` with ``regedit-e2e-sdxl.yaml``.

Every parameter gets seeded random values (the stock initialisation zeroes the UNet's output
convolutions and attention projections, which would make every prompt produce the same image).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = "0" * 40
CLIP_L = "openai/clip-vit-large-patch14"
OPENCLIP_G = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"

# Tiny sizes. GroupNorm(32) in ldm/sgm needs channel counts that are multiples of 32; the VAE keeps
# four levels so the latent is 1/8 of the image, as the WebUI assumes.
TEXT_WIDTH = 32          # CLIP-L stand-in hidden size (SD1 context_dim)
OPENCLIP_WIDTH = 32      # OpenCLIP-G stand-in width (SDXL context_dim = 32 + 32)
OPENCLIP_EMBED = 32      # pooled embedding size (SDXL adm_in_channels = 32 + 6 * 256)

VAE = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
    "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
}

SD1_YAML = {
    "model": {
        "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
        "params": {
            "linear_start": 0.00085, "linear_end": 0.0120, "num_timesteps_cond": 1, "log_every_t": 200,
            "timesteps": 1000, "first_stage_key": "jpg", "cond_stage_key": "txt", "image_size": 64,
            "channels": 4, "cond_stage_trainable": False, "conditioning_key": "crossattn",
            "monitor": "val/loss_simple_ema", "scale_factor": 0.18215, "use_ema": False,
            "unet_config": {
                "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                "params": {
                    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 32,
                    "attention_resolutions": [1, 2], "num_res_blocks": 1, "channel_mult": [1, 2],
                    "num_heads": 2, "use_spatial_transformer": True, "transformer_depth": 1,
                    "context_dim": TEXT_WIDTH, "use_checkpoint": False, "legacy": False,
                },
            },
            "first_stage_config": {
                "target": "ldm.models.autoencoder.AutoencoderKL",
                "params": {"embed_dim": 4, "monitor": "val/rec_loss", "ddconfig": VAE,
                           "lossconfig": {"target": "torch.nn.Identity"}},
            },
            "cond_stage_config": {"target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder"},
        },
    },
}

SDXL_YAML = {
    "model": {
        "target": "sgm.models.diffusion.DiffusionEngine",
        "params": {
            "scale_factor": 0.13025,
            "disable_first_stage_autocast": True,
            "denoiser_config": {
                "target": "sgm.modules.diffusionmodules.denoiser.DiscreteDenoiser",
                "params": {
                    "num_idx": 1000,
                    "weighting_config": {"target": "sgm.modules.diffusionmodules.denoiser_weighting.EpsWeighting"},
                    "scaling_config": {"target": "sgm.modules.diffusionmodules.denoiser_scaling.EpsScaling"},
                    "discretization_config": {
                        "target": "sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization"},
                },
            },
            "network_config": {
                "target": "sgm.modules.diffusionmodules.openaimodel.UNetModel",
                "params": {
                    "adm_in_channels": OPENCLIP_EMBED + 6 * 256, "num_classes": "sequential",
                    "use_checkpoint": False, "in_channels": 4, "out_channels": 4, "model_channels": 32,
                    "attention_resolutions": [1, 2], "num_res_blocks": 1, "channel_mult": [1, 2],
                    "num_head_channels": 16, "use_spatial_transformer": True,
                    "use_linear_in_transformer": True, "transformer_depth": [1, 1],
                    "context_dim": TEXT_WIDTH + OPENCLIP_WIDTH,
                    "spatial_transformer_attn_type": "softmax-xformers", "legacy": False,
                },
            },
            "conditioner_config": {
                "target": "sgm.modules.GeneralConditioner",
                "params": {
                    "emb_models": [
                        {"is_trainable": False, "input_key": "txt",
                         "target": "sgm.modules.encoders.modules.FrozenCLIPEmbedder",
                         "params": {"layer": "hidden", "layer_idx": -2}},
                        {"is_trainable": False, "input_key": "txt",
                         "target": "sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2",
                         "params": {"arch": f"hf-hub:{OPENCLIP_G}", "version": None, "freeze": True,
                                    "layer": "penultimate", "always_return_pooled": True, "legacy": False}},
                        {"is_trainable": False, "input_key": "original_size_as_tuple",
                         "target": "sgm.modules.encoders.modules.ConcatTimestepEmbedderND",
                         "params": {"outdim": 256}},
                        {"is_trainable": False, "input_key": "crop_coords_top_left",
                         "target": "sgm.modules.encoders.modules.ConcatTimestepEmbedderND",
                         "params": {"outdim": 256}},
                        {"is_trainable": False, "input_key": "target_size_as_tuple",
                         "target": "sgm.modules.encoders.modules.ConcatTimestepEmbedderND",
                         "params": {"outdim": 256}},
                    ],
                },
            },
            "first_stage_config": {
                "target": "sgm.models.autoencoder.AutoencoderKLInferenceWrapper",
                "params": {"embed_dim": 4, "monitor": "val/rec_loss", "ddconfig": dict(VAE, attn_type="vanilla-xformers"),
                           "lossconfig": {"target": "torch.nn.Identity"}},
            },
        },
    },
}

OPENCLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": OPENCLIP_EMBED,
        "vision_cfg": {"image_size": 28, "layers": 1, "width": 32, "head_width": 16, "mlp_ratio": 2.0,
                       "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": OPENCLIP_WIDTH, "heads": 2,
                     "layers": 2},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def hf_snapshot(hf_home: Path, repo_id: str) -> Path:
    entry = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text(SNAPSHOT)
    snap = entry / "snapshots" / SNAPSHOT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_hf_cache(hf_home: Path, seed: int) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from lib_regedit.tokenizer import write_clip_tokenizer_files

    snap = hf_snapshot(hf_home, CLIP_L)
    write_clip_tokenizer_files(snap)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
                            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                            hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
                            projection_dim=TEXT_WIDTH)
    torch.manual_seed(seed)
    CLIPTextModel(config).save_pretrained(snap, safe_serialization=True)

    import open_clip
    snap = hf_snapshot(hf_home, OPENCLIP_G)
    (snap / "open_clip_config.json").write_text(json.dumps(OPENCLIP_CONFIG, indent=1))
    model = open_clip.model.CLIP(**OPENCLIP_CONFIG["model_cfg"])
    # open_clip 2.20 reads only torch pickles. The WebUI's safe unpickler rejects the `.format_version`
    # entry of current zip pickles, so write the legacy (non-zip) format it still accepts.
    torch.save(model.state_dict(), snap / "open_clip_pytorch_model.bin", _use_new_zipfile_serialization=False)


def randomize(model, seed: int) -> None:
    """Seeded random values for every parameter, scaled by fan-in so activations stay O(1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif name.endswith("weight"):  # norms
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))


def quiet_vae_posterior(model) -> None:
    """Make the VAE encoder's posterior (nearly) a point: logvar at its clamp of -30, std ~3e-7.

    The WebUI samples the posterior with the global RNG when it encodes an img2img init image, so
    two identical img2img requests differ. With this the difference is below a pixel level or two,
    far under what a left-behind hook does, so the harness can compare img2img runs with a tolerance.
    """
    import torch

    conv = model.first_stage_model.quant_conv
    half = conv.out_channels // 2
    with torch.no_grad():
        conv.weight[half:] = 0.0
        conv.bias[half:] = -1000.0


def full_sd15_yaml(clip_dir: Path) -> dict:
    """SD 1.5 at full size (the WebUI's v1-inference.yaml), its text encoder read from ``clip_dir``."""
    import copy

    config = copy.deepcopy(SD1_YAML)
    params = config["model"]["params"]
    params["unet_config"]["params"].update(model_channels=320, attention_resolutions=[4, 2, 1], num_res_blocks=2,
                                           channel_mult=[1, 2, 4, 4], num_heads=8, context_dim=768)
    params["first_stage_config"]["params"]["ddconfig"] = dict(VAE, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2)
    params["cond_stage_config"] = {"target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder",
                                   "params": {"version": str(clip_dir)}}
    return config


def write_full_clip(clip_dir: Path, seed: int) -> None:
    """The full CLIP ViT-L/14 text model (random weights) with the offline tokenizer, as a folder."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from lib_regedit.tokenizer import write_clip_tokenizer_files

    write_clip_tokenizer_files(clip_dir)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=768)
    torch.manual_seed(seed)
    CLIPTextModel(config).save_pretrained(clip_dir, safe_serialization=True)


def write_checkpoint(webui: Path, out: Path, name: str, config: dict, seed: int, dtype: str = "float32") -> Path:
    import torch
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    yaml_path = out / f"{name}.yaml"
    yaml_path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    from ldm.util import instantiate_from_config

    model = instantiate_from_config(OmegaConf.load(yaml_path).model)
    randomize(model, seed)
    quiet_vae_posterior(model)
    import torch

    cast = getattr(torch, dtype)
    state = {k: v.detach().to(cast if v.is_floating_point() else v.dtype).contiguous().clone()
             for k, v in model.state_dict().items()}
    del model
    path = out / f"{name}.safetensors"
    save_file(state, str(path))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--webui", required=True, type=Path, help="the WebUI checkout (A1111_DIR)")
    ap.add_argument("--out", required=True, type=Path, help="where to write hf/ and Stable-diffusion/")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--full-sd15", action="store_true",
                    help="also write regedit-e2e-sd15-full: the full SD 1.5 architecture, random fp16 weights (~2 GB)")
    args = ap.parse_args(argv)

    webui = args.webui.resolve()
    out = args.out.resolve()
    hf_home = out / "hf"
    os.environ.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    sys.path.insert(0, str(REPO))
    for sub in ("stable-diffusion-stability-ai", "generative-models", "k-diffusion"):
        sys.path.insert(0, str(webui / "repositories" / sub))

    write_hf_cache(hf_home, args.seed)
    ckpt_dir = out / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for name, config, seed in (("regedit-e2e-sd1", SD1_YAML, args.seed),
                               ("regedit-e2e-sdxl", SDXL_YAML, args.seed + 1)):
        if (ckpt_dir / f"{name}.safetensors").exists():
            continue
        path = write_checkpoint(webui, ckpt_dir, name, config, seed)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    if args.full_sd15 and not (ckpt_dir / "regedit-e2e-sd15-full.safetensors").exists():
        clip_dir = out / "clip-vit-large-patch14-full"
        write_full_clip(clip_dir, args.seed + 2)
        path = write_checkpoint(webui, ckpt_dir, "regedit-e2e-sd15-full", full_sd15_yaml(clip_dir), args.seed + 2,
                                dtype="float16")
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
