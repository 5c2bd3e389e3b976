"""Check that the single-file LDM checkpoint computes what the diffusers folder computes.

``python -m lib_regedit.shapesworld.verify models`` builds the original LDM modules (``UNetModel``,
``Encoder``/``Decoder`` from the ``ldm`` package that ships in PyPI's ``stable-diffusion-sdkit``) from
``shapesworld.yaml``, loads ``shapesworld.safetensors`` into them with ``strict=True``, and compares
them with the diffusers folder on the same inputs, in float32. The text encoder is rebuilt from the
checkpoint's ``cond_stage_model.transformer.*`` keys and the clip folder's config, as the WebUI does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def _strip(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v.float() if v.is_floating_point() else v for k, v in sd.items() if k.startswith(prefix)}


def build_ldm(yaml_path, state: dict):
    """(unet, encoder, decoder, quant_conv, post_quant_conv, scale_factor) as LDM modules, weights loaded."""
    from omegaconf import OmegaConf
    from ldm.modules.diffusionmodules.model import Decoder, Encoder
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    cfg = OmegaConf.load(yaml_path).model.params
    unet = UNetModel(**OmegaConf.to_container(cfg.unet_config.params))
    unet.load_state_dict(_strip(state, "model.diffusion_model."), strict=True)
    fs = cfg.first_stage_config.params
    dd = OmegaConf.to_container(fs.ddconfig)
    enc, dec = Encoder(**dd), Decoder(**dd)
    enc.load_state_dict(_strip(state, "first_stage_model.encoder."), strict=True)
    dec.load_state_dict(_strip(state, "first_stage_model.decoder."), strict=True)
    qc = torch.nn.Conv2d(2 * dd["z_channels"], 2 * fs.embed_dim, 1)
    pqc = torch.nn.Conv2d(fs.embed_dim, dd["z_channels"], 1)
    qc.load_state_dict(_strip(state, "first_stage_model.quant_conv."))
    pqc.load_state_dict(_strip(state, "first_stage_model.post_quant_conv."))
    return [m.eval() for m in (unet, enc, dec, qc, pqc)] + [float(cfg.scale_factor)]


def build_text_from_checkpoint(clip_folder, state: dict):
    from transformers import CLIPTextConfig, CLIPTextModel
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(str(clip_folder), local_files_only=True))
    sd = _strip(state, "cond_stage_model.transformer.")
    sd.pop("text_model.embeddings.position_ids", None)
    if not hasattr(text, "text_model"):  # transformers 5 flattened the module
        sd = {k.removeprefix("text_model."): v for k, v in sd.items()}
    text.load_state_dict(sd, strict=False)
    missing = set(text.state_dict()) - set(sd)
    missing = {k for k in missing if not k.endswith("position_ids")}
    if missing:
        raise KeyError(f"text encoder keys missing from the checkpoint: {sorted(missing)[:5]}")
    return text.eval()


@torch.no_grad()
def compare(folder, checkpoint, yaml_path, clip_folder, seed: int = 0) -> dict:
    """Max absolute differences between the diffusers folder and the LDM single file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    folder = Path(folder)
    state = load_file(str(checkpoint))
    l_unet, enc, dec, qc, pqc, scale = build_ldm(yaml_path, state)
    d_unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    d_vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    d_text = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), torch_dtype=torch.float32,
                                           local_files_only=True).eval()
    l_text = build_text_from_checkpoint(clip_folder, state)

    g = torch.Generator().manual_seed(seed)
    size = d_unet.config.sample_size
    ids = torch.randint(0, 49406, (2, d_text.config.max_position_embeddings), generator=g)
    ids[:, 0] = 49406
    ids[:, 6:] = 49407
    c_d = d_text(ids).last_hidden_state
    c_l = l_text(ids).last_hidden_state
    x = torch.randn(2, d_unet.config.in_channels, size, size, generator=g)
    t = torch.tensor([10, 700])
    e_d = d_unet(x, t, encoder_hidden_states=c_d).sample
    e_l = l_unet(x, t, context=c_d)
    img = torch.rand(2, 3, d_vae.config.sample_size, d_vae.config.sample_size, generator=g) * 2 - 1
    m_d = d_vae.encode(img).latent_dist.mean
    m_l = torch.chunk(qc(enc(img)), 2, dim=1)[0]
    z = torch.randn(2, d_vae.config.latent_channels, size, size, generator=g)
    r_d = d_vae.decode(z).sample
    r_l = dec(pqc(z))
    return {"text": (c_d - c_l).abs().max().item(), "unet": (e_d - e_l).abs().max().item(),
            "unet_scale": e_d.abs().max().item(), "vae_encode": (m_d - m_l).abs().max().item(),
            "vae_decode": (r_d - r_l).abs().max().item(),
            "scale_factor": abs(scale - d_vae.config.scaling_factor)}


@torch.no_grad()
def compare_with_diffusers_loader(folder, checkpoint) -> dict:
    """diffusers' own single-file converter on our checkpoint (configs from the folder, weights from the
    file) against the folder's weights: max absolute difference per component."""
    from diffusers import StableDiffusionPipeline
    a = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True, torch_dtype=torch.float32)
    b = StableDiffusionPipeline.from_single_file(str(checkpoint), config=str(folder), local_files_only=True,
                                                 torch_dtype=torch.float32)
    out = {}
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        keys = [k for k in sa if not k.endswith("position_ids")]
        missing = [k for k in keys if k not in sb]
        if missing:
            raise KeyError(f"{name}: {len(missing)} keys not loaded from the single file, e.g. {missing[:3]}")
        out["diffusers_loader_" + name] = max((sa[k].float() - sb[k].float()).abs().max().item() for k in keys)
    return out


def main(argv=None) -> None:
    models = Path((argv or sys.argv[1:] or ["models"])[0])
    torch.set_num_threads(1)
    diffs = compare(models / "shapesworld", models / "shapesworld.safetensors", models / "shapesworld.yaml",
                    models / "shapesworld_clip")
    diffs.update(compare_with_diffusers_loader(models / "shapesworld", models / "shapesworld.safetensors"))
    for k, v in diffs.items():
        print(f"{k:14s} {v:.3e}")


if __name__ == "__main__":
    main()
