"""The ShapesWorld architecture: a standard SD 1.x stack, shrunk.

Sizes follow the measured probes in ``shared/notes/shapesworld-findings.md``:

- VAE: AutoencoderKL (32, 64, 64), 4x down, 64x64x3 -> 16x16x4 (about 0.95M parameters).
- UNet2DConditionModel (64, 128, 128), cross-attention at 16x16 and 8x8, cross-attention dim 128,
  4 heads (diffusers' ``attention_head_dim`` is the head count for SD 1.x UNets; ``num_heads: 4`` in
  the LDM yaml).
- CLIPTextModel, hidden 128, with the real 49,408-token CLIP vocabulary. The findings show that a
  causal text encoder sends the prompt into the EOS padding and word maps stop localising (ratio
  about 1.1), while a 0-layer encoder (token + position embeddings -> final LayerNorm) localises
  (3.5 at the 8x8 down layer). We ship the 0-layer encoder as ``IDENTITY_LAYERS`` exact identity
  transformer layers (all their weights zero, so each residual branch adds exactly 0): the output is
  bit-identical to the 0-layer encoder and the WebUI's clip skip (``hidden_states[-N]`` then the
  final LayerNorm) works for every N up to 12.
"""

from __future__ import annotations

import torch

IMAGE_SIZE = 64
LATENT_SIZE = 16
TEXT_HIDDEN = 128
IDENTITY_LAYERS = 12  # the WebUI's clip-skip slider goes up to 12
VOCAB_SIZE = 49408
MAX_TOKENS = 77

UNET_CONFIG = dict(
    sample_size=LATENT_SIZE, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(64, 128, 128),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=TEXT_HIDDEN, attention_head_dim=4, norm_num_groups=32,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE, layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 64), norm_num_groups=32,
)
TEXT_CONFIG = dict(
    vocab_size=VOCAB_SIZE, hidden_size=TEXT_HIDDEN, intermediate_size=128, num_hidden_layers=IDENTITY_LAYERS,
    num_attention_heads=4, max_position_embeddings=MAX_TOKENS, hidden_act="quick_gelu", projection_dim=TEXT_HIDDEN,
    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)
# SD 1.x noise schedule (scaled_linear 0.00085 -> 0.012, 1000 steps).
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def build_unet(**overrides):
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(**{**UNET_CONFIG, **overrides})


def build_vae(**overrides):
    from diffusers import AutoencoderKL
    return AutoencoderKL(**{**VAE_CONFIG, **overrides})


def build_text_encoder(**overrides):
    from transformers import CLIPTextConfig, CLIPTextModel
    model = CLIPTextModel(CLIPTextConfig(**{**TEXT_CONFIG, **overrides}))
    make_identity_layers(model)
    return model


def text_core(text_encoder):
    """The module holding embeddings/encoder/final_layer_norm (``text_model`` before transformers 5)."""
    return getattr(text_encoder, "text_model", text_encoder)


@torch.no_grad()
def make_identity_layers(text_encoder) -> None:
    """Zero every weight of every transformer layer: each residual branch then adds exactly 0.

    Only the out-projection and fc2 need to be zero for an exact identity; zeroing the rest too makes
    the identity obvious on inspection and lets the files compress.
    """
    for layer in text_core(text_encoder).encoder.layers:
        for name, p in layer.named_parameters():
            if "layer_norm" in name:
                continue
            p.zero_()
            p.requires_grad_(False)


def encode_tokens(text_encoder, input_ids: torch.Tensor) -> torch.Tensor:
    """The text encoder's last hidden state, skipping the identity layers (same result, less work)."""
    tm = text_core(text_encoder)
    return tm.final_layer_norm(tm.embeddings(input_ids=input_ids))


def trainable_text_parameters(text_encoder):
    """The "0-layer encoder": token and position embeddings plus the final LayerNorm."""
    tm = text_core(text_encoder)
    return list(tm.embeddings.parameters()) + list(tm.final_layer_norm.parameters())


def noise_scheduler():
    from diffusers import DDPMScheduler
    return DDPMScheduler(**SCHEDULE, prediction_type="epsilon", clip_sample=False)


def tokenize(tokenizer, prompts) -> torch.Tensor:
    """77 tokens, EOS padding, no attention mask: what the WebUI sends."""
    return tokenizer(list(prompts), padding="max_length", max_length=MAX_TOKENS, truncation=True,
                     return_tensors="pt").input_ids
