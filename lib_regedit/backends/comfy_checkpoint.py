"""A ComfyUI checkpoint (its MODEL, CLIP and VAE) as a :class:`~lib_regedit.backends.checkpoint.Checkpoint`.

ComfyUI's ``ModelPatcher`` is the patcher WebUI Forge took over: its ``BaseModel.apply_model`` takes
k-diffusion's sigma and scaled input and returns the denoised latent, as Forge's ``KModel`` does, so the
noise prediction of the VP latent is :func:`forge_checkpoint.denoiser_eps` on ``patcher.model``. Attention
effects reach the UNet through a patched clone of the patcher (``forge_backend.patched``), made while a
controller is attached. Duck-typed: nothing imports ComfyUI; the node pack (``lib_regedit/comfy``) hands
in ComfyUI's ``load_models_gpu`` and its attention function.

Latents here are what the engine works in everywhere: the VAE's posterior mean times the model's scale
(``process_latent_in``), the form of a ComfyUI LATENT after ``process_latent_in``.
"""

from __future__ import annotations

from typing import Callable

import torch

from .checkpoint import Conditioning
from .forge_checkpoint import PatcherEffects, denoiser_eps


def alphas_cumprod(model_patcher) -> torch.Tensor:
    """ᾱ_t for t = 0..T-1 from the model's sigmas (ComfyUI keeps σ_t = sqrt((1 - ᾱ_t) / ᾱ_t))."""
    sigmas = model_patcher.model.model_sampling.sigmas.detach().float().cpu()
    return 1.0 / (1.0 + sigmas * sigmas)


def clip_words(clip, prompt: str) -> list[tuple[int, str]]:
    """Word tokens of ``prompt`` as ComfyUI's CLIP encodes it: (position in its 77-token chunks, text),
    without start, end and padding tokens. SDXL: CLIP-L's (OpenCLIP-G has the same positions)."""
    tokens = clip.tokenize(prompt)
    chunks = tokens.get("l") or next(iter(tokens.values()), [])
    tokenizer = getattr(clip.tokenizer, "clip_l", None) or next(
        (t for t in vars(clip.tokenizer).values() if hasattr(t, "tokenizer") and hasattr(t, "end_token")), None)
    if tokenizer is None:
        return []
    special = {tokenizer.start_token, tokenizer.end_token, getattr(tokenizer, "pad_token", None)}
    words = []
    for c, chunk in enumerate(chunks):
        for i, item in enumerate(chunk):
            token = int(item[0]) if not torch.is_tensor(item[0]) else None
            if token is None or token in special:
                continue
            words.append((c * len(chunk) + i, tokenizer.tokenizer.convert_ids_to_tokens(token).replace("</w>", "")))
    return words


class ComfyCheckpoint(PatcherEffects):
    """ComfyUI's MODEL (a ``ModelPatcher``), CLIP and VAE for an image of ``width`` × ``height`` pixels (the
    size SDXL's added conditioning carries). ``load_models`` is ComfyUI's ``load_models_gpu``;
    ``attention_function`` ComfyUI's ``optimized_attention``, used where no effect acts."""

    differentiable = False  # ComfyUI runs its nodes under torch.inference_mode()

    def __init__(self, model, clip, vae, width: int, height: int, *, load_models: Callable | None = None,
                 attention_function: Callable | None = None):
        self.patcher = model
        self.clip = clip
        self.vae = vae
        self.width, self.height = int(width), int(height)
        self._load = load_models or (lambda models: None)
        self.attention_function = attention_function
        self.unet = model.model.diffusion_model
        self.alphas = alphas_cumprod(model)
        self.key = ("comfyui", id(model.model), id(vae))
        self._loaded = False

    def conditioning(self, prompt: str, negative: bool = False) -> Conditioning:
        if self.clip is None:
            raise ValueError("this ComfyUI checkpoint was given no CLIP")
        with torch.no_grad():
            out = self.clip.encode_from_tokens(self.clip.tokenize(prompt), return_pooled=True, return_dict=True)
        context = out.pop("cond").float()
        return Conditioning(context, self._vector(out))

    def _vector(self, encoded: dict) -> torch.Tensor | None:
        """SDXL's added conditioning (the pooled text and the size), as the model builds it for sampling."""
        model = self.patcher.model
        if getattr(model, "adm_channels", 0) in (0, None) or encoded.get("pooled_output") is None:
            return None
        vector = model.encode_adm(pooled_output=encoded["pooled_output"], width=self.width, height=self.height,
                                  target_width=self.width, target_height=self.height, crop_w=0, crop_h=0,
                                  device=encoded["pooled_output"].device)
        return None if vector is None else vector.float()

    def tokenize(self, prompt: str) -> list[tuple[int, str]]:
        return clip_words(self.clip, prompt) if self.clip is not None else []

    def _ready(self) -> None:
        if not self._loaded:  # once per checkpoint object: one node's run
            self._load([self.patcher])
            self._loaded = True

    def eps(self, z: torch.Tensor, t: int, cond: Conditioning) -> torch.Tensor:
        self._ready()
        held = self.direct_patcher(self.patcher)
        return denoiser_eps(self.patcher.model, self.alphas, z, t, cond.context, cond.vector, held).to(z.device)

    def posterior_mean(self, pixels: torch.Tensor) -> torch.Tensor:
        """ComfyUI's VAE encodes the posterior's mode (no sampling), which is its mean."""
        image = ((pixels.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
        with torch.no_grad():
            latent = self.vae.encode(image[..., :3])
        return self.patcher.model.process_latent_in(latent.float())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            image = self.vae.decode(self.patcher.model.process_latent_out(z.float()))
        return image.float().permute(0, 3, 1, 2) * 2 - 1

    def needs_image_conditioning(self) -> bool:
        """A UNet with more than 4 input channels (inpainting, instruct-pix2pix)."""
        return int(getattr(self.unet, "in_channels", 4)) > 4
