"""AUTOMATIC1111's checkpoints (``ldm`` for SD 1.x/2.x, ``sgm`` for SDXL) as a
:class:`~lib_regedit.backends.checkpoint.Checkpoint`.

Duck-typed: nothing imports the WebUI. The WebUI adapter (``lib_regedit/webui/checkpoints.py``) hands in
the loaded model, its prompt encoder (the WebUI's, so emphasis and embeddings work as in a generation)
and its autocast, device and VAE dtype. The UNet is called as the WebUI's samplers call it
(``apply_model``), and attention effects reach it through the ``ldm`` backend's per-instance patches.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from . import ldm_backend
from .checkpoint import Conditioning


def as_conditioning(cond) -> Conditioning:
    """A WebUI conditioning (a tensor, or SDXL's dict with ``crossattn`` and ``vector``)."""
    if isinstance(cond, dict):
        return Conditioning(cond["crossattn"], cond.get("vector"))
    return Conditioning(cond)


def checkpoint_eps(model, x: torch.Tensor, z: torch.Tensor, t: int, cond) -> torch.Tensor:
    """``apply_model`` on ``x`` (``z`` on the UNet's device and dtype) with a WebUI ``cond``, v-prediction
    converted to ε with ``z``. Differentiable."""
    ts = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
    out = model.apply_model(x, ts, cond).float()
    if getattr(model, "parameterization", "eps") == "v":  # eps = sqrt(a) v + sqrt(1 - a) x_t
        a = model.alphas_cumprod[int(t)].float().to(out.device)
        out = a.sqrt() * out + (1 - a).sqrt() * z.to(out.device).float()
    return out


def embedder_words(sd_model, prompt: str) -> list[tuple[int, str]]:
    """Word tokens of a prompt as the WebUI encodes it: (position in its 75-token chunks, text). SDXL:
    the conditioner's first CLIP embedder (CLIP-L; OpenCLIP-G has the same token positions); Forge: its
    text processing engine (SDXL: CLIP-L's)."""
    model = getattr(sd_model, "cond_stage_model", None)
    candidates = [getattr(sd_model, name, None) for name in ("text_processing_engine", "text_processing_engine_l")]
    candidates += list(getattr(model, "embedders", None) or [model])
    embedder = next((e for e in candidates if hasattr(e, "process_texts") and _hf_tokenizer(e)), None)
    if embedder is None:
        return []
    tokenizer = _hf_tokenizer(embedder)
    special = {embedder.id_start, embedder.id_end, embedder.id_pad}
    words = []
    for c, chunk in enumerate(embedder.process_texts([prompt])[0][0]):
        for i, token in enumerate(chunk.tokens):
            if token not in special:
                words.append((c * len(chunk.tokens) + i, tokenizer.convert_ids_to_tokens(token).replace("</w>", "")))
    return words


def _hf_tokenizer(embedder):
    """The Hugging Face tokenizer of a WebUI text embedder (A1111: ``wrapped.tokenizer``; Forge: ``tokenizer``)."""
    return getattr(getattr(embedder, "wrapped", None), "tokenizer", None) or getattr(embedder, "tokenizer", None)


class LdmCheckpoint:
    """An ``ldm``/``sgm`` model. ``encode(prompt, negative)`` is the WebUI's conditioning of a prompt;
    ``autocast()`` its autocast context; ``device`` and ``vae_dtype`` where its UNet and VAE compute."""

    differentiable = True

    def __init__(self, model, encode: Callable[[str, bool], object], *, autocast=contextlib.nullcontext,
                 device=None, vae_dtype=None, key: tuple = ()):
        self.model = model
        self.unet = model.model.diffusion_model
        self._encode = encode
        self._autocast = autocast
        self.device = device if device is not None else next(self.unet.parameters()).device
        self.vae_dtype = vae_dtype
        self.alphas = model.alphas_cumprod.detach().float().cpu()
        info = getattr(model, "sd_checkpoint_info", None)
        self.key = (id(model), getattr(info, "filename", None), getattr(model, "sd_model_hash", None)) + tuple(key)

    def conditioning(self, prompt: str, negative: bool = False) -> Conditioning:
        with torch.no_grad(), self._autocast():
            return as_conditioning(self._encode(prompt, negative))

    def tokenize(self, prompt: str) -> list[tuple[int, str]]:
        return embedder_words(self.model, prompt)

    def eps(self, z: torch.Tensor, t: int, cond: Conditioning) -> torch.Tensor:
        dtype = next(self.unet.parameters()).dtype
        context = cond.context.to(self.device, dtype)
        raw = {"c_crossattn": [context]} if cond.vector is None else \
            {"crossattn": context, "vector": cond.vector.to(self.device, dtype)}
        with self._autocast():
            return checkpoint_eps(self.model, z.to(self.device, dtype), z, t, raw)

    def posterior_mean(self, pixels: torch.Tensor) -> torch.Tensor:
        """sgm's (SDXL) ``encode_first_stage`` samples the posterior with the unseeded global RNG, so the
        mean is read from the encoder's moments where the VAE has them."""
        model = self.model
        vae = model.first_stage_model
        image = pixels.to(self.device, self.vae_dtype or pixels.dtype)
        with torch.no_grad(), self._autocast():
            encoder, quant_conv = getattr(vae, "encoder", None), getattr(vae, "quant_conv", None)
            if encoder is not None and isinstance(quant_conv, torch.nn.Module):
                return (quant_conv(encoder(image)).chunk(2, dim=1)[0] * model.scale_factor).float()
            posterior = model.encode_first_stage(image)  # ldm returns the posterior, others a tensor
            latent = posterior if isinstance(posterior, torch.Tensor) else posterior.mode() * model.scale_factor
            return latent.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable (the WebUI's ``decode_first_stage`` runs under ``no_grad``): the VAE's own decode."""
        vae = self.model.first_stage_model
        return vae.decode(z.to(self.device, self.vae_dtype or z.dtype) / self.model.scale_factor).float()

    def attach(self, controller, fusion=None):
        return ldm_backend.attach(self.unet, controller, fusion)

    def needs_image_conditioning(self) -> bool:
        key = getattr(getattr(self.model, "model", None), "conditioning_key", None)
        return key in ("hybrid", "concat", "crossattn-adm") or getattr(self.model, "is_sdxl_inpaint", False)
