"""diffusers -> original LDM key layout, for the WebUI single-file checkpoint.

Our own mapping, written from the two architectures (diffusers ``UNet2DConditionModel`` /
``AutoencoderKL`` / transformers ``CLIPTextModel`` against ``ldm.modules.diffusionmodules.openaimodel
.UNetModel``, ``ldm.modules.diffusionmodules.model.Encoder/Decoder`` and ``FrozenCLIPEmbedder``). It
covers SD 1.x-style configs (conv ``proj_in``/``proj_out``, one transformer per attention block,
no class embedding), which is what ShapesWorld uses. The tests check it against the ``ldm`` package.

LDM layout, for ``num_res_blocks = L`` and levels ``i``:

- ``input_blocks.0.0`` is ``conv_in``; level ``i`` resnet ``j`` (and its attention) is
  ``input_blocks.{1 + i(L+1) + j}.{0,1}``; level ``i``'s downsampler is ``input_blocks.{(i+1)(L+1)}.0.op``.
- ``middle_block.{0,1,2}`` is resnet, attention, resnet.
- diffusers up level ``i`` resnet ``j`` is ``output_blocks.{i(L+1) + j}.0``, its attention ``.1``, and
  the upsampler sits after them in block ``i(L+1) + L``.
- VAE decoder levels are numbered from the bottom in LDM (``up.{n-1-i}``), from the top in diffusers.
"""

from __future__ import annotations

import torch

UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(sd: dict, src: str, dst: str, out: dict, table: dict | None = None, conv1x1: bool = False) -> None:
    """Move every ``src.<rest>`` key to ``dst.<rest>``, renaming the first part of ``rest`` by ``table``."""
    for key in [k for k in sd if k.startswith(src + ".")]:
        rest = key[len(src) + 1:]
        if table is not None:
            for a, b in table.items():
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            else:
                raise KeyError(f"no LDM name for {key}")
        value = sd.pop(key)
        if conv1x1 and value.ndim == 2:
            value = value[:, :, None, None]
        out[f"{dst}.{rest}"] = value


def unet_to_ldm(unet_sd: dict, config) -> dict:
    sd = dict(unet_sd)
    out: dict = {}
    L = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    for a, b in (("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
                 ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2")):
        _rename(sd, a, b, out)
    for i in range(levels):
        for j in range(L):
            n = 1 + i * (L + 1) + j
            _rename(sd, f"down_blocks.{i}.resnets.{j}", f"input_blocks.{n}.0", out, UNET_RESNET)
            _rename(sd, f"down_blocks.{i}.attentions.{j}", f"input_blocks.{n}.1", out)
        _rename(sd, f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(i + 1) * (L + 1)}.0.op", out)
    _rename(sd, "mid_block.resnets.0", "middle_block.0", out, UNET_RESNET)
    _rename(sd, "mid_block.attentions.0", "middle_block.1", out)
    _rename(sd, "mid_block.resnets.1", "middle_block.2", out, UNET_RESNET)
    for i in range(levels):
        has_attention = any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
        for j in range(L + 1):
            n = i * (L + 1) + j
            _rename(sd, f"up_blocks.{i}.resnets.{j}", f"output_blocks.{n}.0", out, UNET_RESNET)
            _rename(sd, f"up_blocks.{i}.attentions.{j}", f"output_blocks.{n}.1", out)
        n = i * (L + 1) + L
        _rename(sd, f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{n}.{2 if has_attention else 1}.conv", out)
    if sd:
        raise KeyError(f"UNet keys with no LDM name: {sorted(sd)[:5]}")
    return out


def vae_to_ldm(vae_sd: dict, config) -> dict:
    sd = dict(vae_sd)
    out: dict = {}
    levels = len(config["block_out_channels"])
    for part in ("encoder", "decoder"):
        _rename(sd, f"{part}.conv_in", f"{part}.conv_in", out)
        _rename(sd, f"{part}.conv_out", f"{part}.conv_out", out)
        _rename(sd, f"{part}.conv_norm_out", f"{part}.norm_out", out)
        _rename(sd, f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", out, VAE_RESNET)
        _rename(sd, f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", out, VAE_RESNET)
        _rename(sd, f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", out, VAE_ATTENTION, conv1x1=True)
    for i in range(levels):
        for j in range(config["layers_per_block"]):
            _rename(sd, f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}", out, VAE_RESNET)
        _rename(sd, f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv", out)
        k = levels - 1 - i
        for j in range(config["layers_per_block"] + 1):
            _rename(sd, f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{k}.block.{j}", out, VAE_RESNET)
        _rename(sd, f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{k}.upsample.conv", out)
    _rename(sd, "quant_conv", "quant_conv", out)
    _rename(sd, "post_quant_conv", "post_quant_conv", out)
    if sd:
        raise KeyError(f"VAE keys with no LDM name: {sorted(sd)[:5]}")
    return out


def text_to_transformers4(text_sd: dict) -> dict:
    """Keys as ``text_model.*`` (the transformers 4 layout, which transformers 5 also loads)."""
    return {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in text_sd.items()}


def text_to_ldm(text_sd: dict, max_positions: int = 77) -> dict:
    out = {"cond_stage_model.transformer." + k: v for k, v in text_to_transformers4(text_sd).items()}
    # SD 1.x checkpoints carry the position_ids buffer; older transformers expect it.
    out.setdefault("cond_stage_model.transformer.text_model.embeddings.position_ids",
                   torch.arange(max_positions, dtype=torch.int64)[None])
    return out


def pipeline_to_ldm(unet, vae, text_encoder, dtype=torch.float16) -> dict:
    """One state dict in the original LDM layout (model.diffusion_model / first_stage_model / cond_stage_model)."""
    sd: dict = {}
    sd.update({"model.diffusion_model." + k: v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()})
    sd.update({"first_stage_model." + k: v for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()})
    sd.update(text_to_ldm(text_encoder.state_dict(), text_encoder.config.max_position_embeddings))
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}


def ldm_yaml(unet_config, vae_config, text_config, scale_factor: float, clip_version: str,
             instruct: bool = False) -> str:
    """The LDM ``LatentDiffusion`` config the WebUI reads from ``<checkpoint>.yaml``; with ``instruct``,
    the WebUI's instruct-pix2pix model (its ``ddpm_edit`` LatentDiffusion, hybrid conditioning: the
    source image's latent concatenated to the input)."""
    target, first_key, cond_key, conditioning = (
        ("modules.models.diffusion.ddpm_edit.LatentDiffusion", "edited", "edit", "hybrid") if instruct
        else ("ldm.models.diffusion.ddpm.LatentDiffusion", "jpg", "txt", "crossattn"))
    from .model import SCHEDULE
    levels = len(unet_config["block_out_channels"])
    base = unet_config["block_out_channels"][0]
    mult = [c // base for c in unet_config["block_out_channels"]]
    attn = [2 ** i for i, t in enumerate(unet_config["down_block_types"]) if t.startswith("CrossAttn")]
    heads = unet_config["attention_head_dim"]
    heads = heads if isinstance(heads, int) else heads[0]
    vbase = vae_config["block_out_channels"][0]
    vmult = [c // vbase for c in vae_config["block_out_channels"]]
    assert len(mult) == levels
    return f"""# ShapesWorld: SD 1.x architecture, shrunk (see models/README.md)
model:
  base_learning_rate: 1.0e-04
  target: {target}
  params:
    linear_start: {SCHEDULE['beta_start']}
    linear_end: {SCHEDULE['beta_end']}
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: {SCHEDULE['num_train_timesteps']}
    first_stage_key: {first_key}
    cond_stage_key: {cond_key}
    image_size: {unet_config['sample_size']}
    channels: {unet_config['out_channels']}
    cond_stage_trainable: false
    conditioning_key: {conditioning}
    monitor: val/loss_simple_ema
    scale_factor: {scale_factor:.6f}
    use_ema: false
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: {unet_config['sample_size']}
        in_channels: {unet_config['in_channels']}
        out_channels: {unet_config['out_channels']}
        model_channels: {base}
        attention_resolutions: {attn}
        num_res_blocks: {unet_config['layers_per_block']}
        channel_mult: {mult}
        num_heads: {heads}
        use_spatial_transformer: true
        transformer_depth: 1
        context_dim: {unet_config['cross_attention_dim']}
        use_checkpoint: false
        legacy: false
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: {vae_config['latent_channels']}
        monitor: val/rec_loss
        ddconfig:
          double_z: true
          z_channels: {vae_config['latent_channels']}
          resolution: {vae_config['sample_size']}
          in_channels: {vae_config['in_channels']}
          out_ch: {vae_config['out_channels']}
          ch: {vbase}
          ch_mult: {vmult}
          num_res_blocks: {vae_config['layers_per_block']}
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        # A folder with the text encoder's config.json and the CLIP tokenizer files. Relative paths
        # resolve against the WebUI's working directory (its root folder); see models/README.md.
        version: {clip_version}
        max_length: {text_config['max_position_embeddings']}
"""
