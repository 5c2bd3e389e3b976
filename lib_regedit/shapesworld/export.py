"""Export a ShapesWorld training run as the shipped weights.

``python -m lib_regedit.shapesworld.export --run runs/shapesworld --out models``

writes, in fp16:

- ``models/shapesworld/``: a diffusers ``StableDiffusionPipeline`` folder (what
  ``lib_regedit.models.default_model_path()`` returns);
- ``models/shapesworld.safetensors``: the same weights in the original LDM key layout, for the WebUI;
- ``models/shapesworld.yaml``: its LDM config, whose ``FrozenCLIPEmbedder`` ``version`` points at
- ``models/shapesworld_clip/``: the text encoder's ``config.json`` plus the CLIP tokenizer files
  (the WebUI builds the text encoder from that config and then loads the weights from the checkpoint).

The EMA weights are exported. Token-embedding rows of tokens that never occur in a training caption
are set to zero (they were never trained, so their random values carry no meaning; zeros are a
neutral, content-free input and compress to nothing in git).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from . import model as M
from .convert import ldm_yaml, pipeline_to_ldm, text_to_transformers4

# Relative to the WebUI's root folder, where webui.sh / webui-user.bat start it.
WEBUI_CLIP_VERSION = "extensions/sd-webui-regedit/models/shapesworld_clip"
DDIM_CONFIG = dict(M.SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                   prediction_type="epsilon")


def load_run(run: Path, use_ema: bool = True):
    """The run's VAE, UNet and text encoder (EMA weights by default), in float32."""
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(run / "vae")
    state = torch.load(run / "unet.pt", weights_only=False, map_location="cpu")
    unet = M.build_unet()
    text = M.build_text_encoder()
    unet.load_state_dict(state["unet"])
    text.load_state_dict(state["text"])
    if use_ema:
        params = list(unet.parameters()) + M.trainable_text_parameters(text)
        with torch.no_grad():
            for p, s in zip(params, state["ema"]):
                p.copy_(s)
    return vae.eval(), unet.eval(), text.eval(), state["step"]


@torch.no_grad()
def zero_unused_tokens(text_encoder, tokenizer, words) -> int:
    used = set(tokenizer.convert_tokens_to_ids([tokenizer.bos_token, tokenizer.eos_token]))
    for w in words:
        used.update(tokenizer(w, add_special_tokens=False).input_ids)
    emb = M.text_core(text_encoder).embeddings.token_embedding.weight
    keep = torch.zeros(emb.shape[0], dtype=torch.bool)
    keep[sorted(used)] = True
    emb[~keep] = 0
    return int(keep.sum())


def write_text_encoder(text_encoder, folder: Path, dtype=torch.float16) -> None:
    """config.json + model.safetensors with ``text_model.*`` keys (loads in transformers 4 and 5)."""
    from safetensors.torch import save_file
    folder.mkdir(parents=True, exist_ok=True)
    text_encoder.config.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["torch_dtype"] = str(dtype).replace("torch.", "")  # transformers 4 reads this name
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    sd = {k: v.to(dtype).contiguous() for k, v in text_to_transformers4(text_encoder.state_dict()).items()}
    save_file(sd, folder / "model.safetensors", metadata={"format": "pt"})


def export(vae, unet, text, out: Path, *, name: str = "shapesworld", clip_version: str = WEBUI_CLIP_VERSION,
           dtype=torch.float16, zero_unused: bool = True, instruct: bool = False, clip_name: str | None = None) -> dict:
    """Write the diffusers folder ``out/name``, the WebUI checkpoint ``out/name.safetensors`` and its yaml;
    the clip folder (``out/{clip_name or name}_clip``) is written unless ``clip_name`` names an existing
    one. ``instruct``: an instruct-pix2pix model (8-channel UNet), as diffusers'
    ``StableDiffusionInstructPix2PixPipeline`` and the WebUI's instruct-pix2pix checkpoints."""
    from diffusers import DDIMScheduler
    from safetensors.torch import save_file

    from ..tokenizer import write_clip_tokenizer_files
    from .data import training_vocabulary
    from .instruct_data import instruction_vocabulary

    out = Path(out)
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write_clip_tokenizer_files(folder / "tokenizer")
    from transformers import CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
    words = training_vocabulary() + (instruction_vocabulary() if instruct else [])
    kept = zero_unused_tokens(text, tokenizer, words) if zero_unused else None

    vae.to(dtype).save_pretrained(folder / "vae")
    unet.to(dtype).save_pretrained(folder / "unet")
    write_text_encoder(text, folder / "text_encoder", dtype)
    DDIMScheduler(**DDIM_CONFIG).save_pretrained(folder / "scheduler")
    from diffusers import __version__ as dv
    index = {"_class_name": "StableDiffusionInstructPix2PixPipeline" if instruct else "StableDiffusionPipeline", "_diffusers_version": dv,
             "feature_extractor": [None, None], "image_encoder": [None, None],
             "requires_safety_checker": False, "safety_checker": [None, None],
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))

    # WebUI single file + yaml + the clip folder its yaml points at.
    ckpt = out / f"{name}.safetensors"
    save_file(pipeline_to_ldm(unet, vae, text, dtype), ckpt, metadata={"format": "pt", "model": name})
    clip = out / f"{clip_name or name}_clip"
    if clip_name is None:
        if clip.exists():
            shutil.rmtree(clip)
        write_clip_tokenizer_files(clip)
        shutil.copy(folder / "text_encoder" / "config.json", clip / "config.json")
    elif _architecture(clip / "config.json") != _architecture(folder / "text_encoder" / "config.json"):
        raise ValueError(f"{clip} holds another text encoder's config")
    (out / f"{name}.yaml").write_text(ldm_yaml(dict(unet.config), dict(vae.config), text.config.to_dict(),
                                               vae.config.scaling_factor, clip_version, instruct=instruct))
    return {"folder": folder, "checkpoint": ckpt, "yaml": out / f"{name}.yaml", "clip": clip, "kept_tokens": kept}


def _architecture(config: Path) -> dict:
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
            "max_position_embeddings", "hidden_act", "projection_dim")
    data = json.loads(config.read_text())
    return {k: data.get(k) for k in keys}


def export_instruct(folder: Path, out: Path, name: str = "shapesworld_instruct") -> dict:
    """Export an instruct fine-tune (``instruct_train.py``'s pipeline folder) beside the ShapesWorld model:
    its text encoder config is ShapesWorld's, so its yaml points at the same ``shapesworld_clip``."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(folder), local_files_only=True)
    return export(pipe.vae, pipe.unet, pipe.text_encoder, out, name=name, instruct=True, clip_name="shapesworld",
                  clip_version=WEBUI_CLIP_VERSION)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="export a ShapesWorld run as the shipped weights")
    p.add_argument("--run", default="runs/shapesworld")
    p.add_argument("--out", default="models")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--instruct", action="store_true",
                   help="--run is an instruct fine-tune's pipeline folder (runs/shapesworld_instruct): export it as "
                        "models/shapesworld_instruct")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.instruct:
        print(f"exported the instruct model: {export_instruct(Path(args.run), Path(args.out))}")
        return
    vae, unet, text, step = load_run(Path(args.run), use_ema=not args.no_ema)
    info = export(vae, unet, text, Path(args.out))
    print(f"exported step {step} ({'raw' if args.no_ema else 'EMA'} weights): {info}")


if __name__ == "__main__":
    main(sys.argv[1:])
