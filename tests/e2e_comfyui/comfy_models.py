"""Random-weight SD 1.5 models built in-process with ComfyUI's own classes, for the bench and in-process
checks (run by ComfyUI's Python, with ComfyUI on ``sys.path``): the full SD 1.5 UNet (320 channels, four
levels, context 768) or a two-level one, the full CLIP-L text encoder with ComfyUI's own tokenizer, and
the full SD VAE. Nothing is read from disk or downloaded."""
import torch


def sd15_unet_config(full: bool) -> dict:
    """ComfyUI's SD 1.5 UNet config (its ``model_detection`` table); ``full=False`` keeps two levels."""
    config = {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
              'legacy': False, 'adm_in_channels': None, 'in_channels': 4, 'model_channels': 320,
              'num_res_blocks': [2, 2, 2, 2], 'transformer_depth': [1, 1, 1, 1, 1, 1, 0, 0],
              'channel_mult': [1, 2, 4, 4], 'transformer_depth_middle': 1, 'use_linear_in_transformer': False,
              'context_dim': 768, 'num_heads': 8, 'transformer_depth_output': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
              'use_temporal_attention': False, 'use_temporal_resblock': False}
    if not full:
        config.update(num_res_blocks=[1, 1], transformer_depth=[1, 1], channel_mult=[1, 2],
                      transformer_depth_output=[1, 1, 1, 1])
    return config


def _init(module, seed):
    """Seeded random weights (ComfyUI builds its layers without initialising them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 0:
                continue
            if p.ndim == 1 and name.endswith("weight"):
                p.fill_(1.0)
            elif p.ndim == 1:
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(1, p[0].numel())) ** 0.5)


def sd15(full: bool = False, seed: int = 0):
    """(MODEL, CLIP) of ComfyUI: a ``ModelPatcher`` and a ``comfy.sd.CLIP``, float32 on ComfyUI's device."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models

    config = comfy.supported_models.SD15(sd15_unet_config(full))
    config.set_inference_dtype(torch.float32, None)
    base = config.get_model({})
    _init(base.diffusion_model, seed)
    model = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                             offload_device=mm.unet_offload_device())

    class Target:
        params = {}
        clip = comfy.sd1_clip.SD1ClipModel
        tokenizer = comfy.sd1_clip.SD1Tokenizer

    clip = comfy.sd.CLIP(Target(), model_options={"dtype": torch.float32})
    _init(clip.cond_stage_model, seed + 1)
    return model, clip


def vae(seed: int = 2):
    """ComfyUI's VAE over the SD 1.x autoencoder's architecture (downscale 8)."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = {'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3, 'ch': 128,
                'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0}
    model = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    _init(model, seed)
    return comfy.sd.VAE(sd=model.state_dict())
