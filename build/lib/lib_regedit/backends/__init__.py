"""Thin adapters from each framework's attention call to the neutral :class:`AttentionCall`.

- ``diffusers_backend``: an attention processor for StableDiffusion(XL)Pipeline's UNet.
- ``ldm_backend``: per-instance patches of the WebUI's ``ldm``/``sgm`` CrossAttention modules.
"""
