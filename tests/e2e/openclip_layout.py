"""OpenCLIP-G text weights in an SDXL checkpoint's own layout, from a ``transformers`` model.

Shared by ``make_forge_models.py`` and ``make_comfyui_models.py`` (each runs under its host's Python; this
needs only torch).
"""

from __future__ import annotations

import torch


def openclip_g_state_dict(model, prefix: str = "conditioner.embedders.1.model.", dtype=torch.float16) -> dict:
    """``model`` (a ``CLIPTextModelWithProjection``) as OpenCLIP's ``resblocks`` keys under ``prefix``."""
    sd = {}
    text = model.text_model
    sd[prefix + "token_embedding.weight"] = text.embeddings.token_embedding.weight
    sd[prefix + "positional_embedding"] = text.embeddings.position_embedding.weight
    sd[prefix + "ln_final.weight"] = text.final_layer_norm.weight
    sd[prefix + "ln_final.bias"] = text.final_layer_norm.bias
    sd[prefix + "text_projection"] = model.text_projection.weight.t()
    for i, layer in enumerate(text.encoder.layers):
        p = f"{prefix}transformer.resblocks.{i}."
        attn = layer.self_attn
        sd[p + "attn.in_proj_weight"] = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        sd[p + "attn.in_proj_bias"] = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
        sd[p + "attn.out_proj.weight"] = attn.out_proj.weight
        sd[p + "attn.out_proj.bias"] = attn.out_proj.bias
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = layer.layer_norm1.weight, layer.layer_norm1.bias
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = layer.layer_norm2.weight, layer.layer_norm2.bias
        sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = layer.mlp.fc1.weight, layer.mlp.fc1.bias
        sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = layer.mlp.fc2.weight, layer.mlp.fc2.bias
    sd[prefix + "logit_scale"] = torch.tensor(4.6052)
    return {k: v.detach().to(dtype).contiguous() for k, v in sd.items()}
