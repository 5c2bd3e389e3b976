"""Tiny Stable-Diffusion-architecture pipelines with random weights, built from configs in-process.

Nothing downloads: the tokenizer is the real CLIP BPE tokenizer built from open_clip_torch's vocabulary.
"""

from __future__ import annotations

import functools
import tempfile

import numpy as np
import torch


@functools.lru_cache(maxsize=None)
def clip_tokenizer():
    from lib_regedit.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(tempfile.mkdtemp(prefix="regedit-tok-"))


def _text_encoder(hidden=32, projection=False, seed=0):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=77, projection_dim=hidden,
                            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).eval()


def _vae(seed=0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(16, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                         layers_per_block=1, sample_size=32).eval()


def tiny_sd_pipeline(seed=0, scheduler="ddim"):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=8, norm_num_groups=16).eval()
    cls = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}[scheduler]
    extra = {"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1} if scheduler == "ddim" else {}
    sched = cls(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000, **extra)
    pipe = StableDiffusionPipeline(vae=_vae(seed), text_encoder=_text_encoder(seed=seed), tokenizer=clip_tokenizer(),
                                   unet=unet, scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_pipeline(seed=0):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                transformer_layers_per_block=(1, 2), cross_attention_dim=64, attention_head_dim=(2, 4),
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=32 + 6 * 8, norm_num_groups=16,
                                use_linear_projection=True).eval()
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   num_train_timesteps=1000)
    pipe = StableDiffusionXLPipeline(vae=_vae(seed), text_encoder=_text_encoder(32, seed=seed),
                                     text_encoder_2=_text_encoder(32, projection=True, seed=seed + 1),
                                     tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=unet,
                                     scheduler=sched, force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pixels(image) -> np.ndarray:
    """An image's pixels as float64, for differences between images."""
    return np.asarray(image, dtype=np.float64)


def tiny_instruct_pipeline(seed=0):
    """An instruct-pix2pix pipeline: the tiny SD pipeline with its UNet widened to 8 input channels
    (random weights in the new channels, so the source image matters)."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from lib_regedit.shapesworld.instruct_train import widen_unet

    base = tiny_sd_pipeline(seed)
    unet = widen_unet(base.unet)
    with torch.no_grad():
        torch.manual_seed(seed + 1)
        unet.conv_in.weight[:, 4:].normal_(0, 0.05)
    pipe = StableDiffusionInstructPix2PixPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                                  unet=unet.eval(), scheduler=base.scheduler, safety_checker=None,
                                                  feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
