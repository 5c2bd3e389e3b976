"""A text-prompted segmenter that is differentiable in the image (CLIPSeg), for multi-region guidance.

MRGD guides each region toward its phrase with the gradient of a segmentation loss on the predicted
clean image, so the whole path from image to mask is torch: resize with ``interpolate``, normalise
with the processor's mean and std, run the CLIP vision backbone, decode. transformers'
``CLIPSegForImageSegmentation.forward`` runs the backbone under ``no_grad`` (CLIPSeg freezes CLIP),
so :func:`vision_activations`, :func:`text_embeddings` and :func:`decode` call the parts themselves;
the trainer (``lib_regedit.shapesworld.segmenter_train``) uses the same three functions.

A segmenter is a folder as ``save_pretrained`` writes it: config.json, the weights, a CLIP tokenizer
and preprocessor_config.json. The project ships ``models/shapesworld_clipseg``, trained on ShapesWorld.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import RegEditError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
FIELD = "segmenter"
FIX = ("give a folder holding a CLIPSeg model saved with save_pretrained, with its CLIP tokenizer and "
       "preprocessor_config.json, e.g. models/shapesworld_clipseg")
# The project's CLIP tokenizer (lib_regedit/tokenizer.py wrote it): copied beside every segmenter we save.
PROJECT_TOKENIZER = REPO_ROOT / "models" / "shapesworld_clip"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def preprocess(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> the model's pixel values (B, 3, size, size), differentiably."""
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


def vision_activations(model, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """The vision backbone's hidden states at ``config.extract_layers`` (with gradients)."""
    out = model.clip.vision_model(pixel_values=pixel_values, output_hidden_states=True)
    return [out.hidden_states[i + 1] for i in model.config.extract_layers]


def text_embeddings(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The projected text features (N, projection_dim) that condition the decoder."""
    features = model.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
    return features if isinstance(features, torch.Tensor) else features.pooler_output  # transformers < 5: a tensor


def decode(model, activations: list[torch.Tensor], conditions: torch.Tensor) -> torch.Tensor:
    """Mask logits (N, h, w) from N rows of activations and N conditioning embeddings."""
    logits = model.decoder(activations, conditions).logits
    return logits if logits.dim() == 3 else logits.view(conditions.shape[0], *logits.shape[-2:])


class Segmenter:
    """``segmenter(images, phrases)``: the probability that each pixel shows each phrase."""

    def __init__(self, model, tokenizer, image_mean, image_std):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.image_size = int(model.config.vision_config.image_size)
        self.phrase_tokens: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def tokens(self, phrases) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(phrases)
        if key not in self.phrase_tokens:
            limit = min(self.tokenizer.model_max_length, self.model.config.text_config.max_position_embeddings)
            enc = self.tokenizer(list(key), padding=True, truncation=True, max_length=limit, return_tensors="pt")
            device = self.model.device
            self.phrase_tokens[key] = (enc.input_ids.to(device), enc.attention_mask.to(device))
        return self.phrase_tokens[key]

    def __call__(self, images: torch.Tensor, phrases) -> torch.Tensor:
        """``images`` (B, 3, H, W) in [0, 1], ``phrases`` P strings -> probabilities (B, P, H, W).

        Every image is paired with every phrase. Gradients flow to ``images``; the model is frozen."""
        phrases = [phrases] if isinstance(phrases, str) else list(phrases)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        return segment(self.model, images, *self.tokens(phrases), self.image_mean, self.image_std)


def segment(model, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
            image_mean, image_std) -> torch.Tensor:
    """Probabilities (B, P, H, W) that pixel (h, w) of image b shows phrase p (P rows of ``input_ids``)."""
    b, p, (h, w) = images.shape[0], input_ids.shape[0], images.shape[-2:]
    dtype = next(model.parameters()).dtype
    pixels = preprocess(images.to(dtype), int(model.config.vision_config.image_size), image_mean, image_std)
    activations = [a.repeat_interleave(p, dim=0) for a in vision_activations(model, pixels)]
    conditions = text_embeddings(model, input_ids, attention_mask).repeat(b, 1)
    logits = decode(model, activations, conditions)
    logits = logits.view(b, p, *logits.shape[-2:])
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").exists() or ((folder / "vocab.json").exists() and (folder / "merges.txt").exists())


def _from_pretrained(cls, folder: Path, dtype: torch.dtype):
    """``from_pretrained`` offline, on transformers 5 (``dtype=``) and on the WebUI's 4.x (``torch_dtype=``)."""
    import transformers

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return cls.from_pretrained(str(folder), local_files_only=True, **{key: dtype})


def load_segmenter(folder: str | os.PathLike, device="cpu", dtype: torch.dtype = torch.float32) -> Segmenter:
    """A :class:`Segmenter` from a local CLIPSeg folder; never downloads. Bad folders raise
    :class:`RegEditError` on field ``segmenter``."""
    from transformers import CLIPSegForImageSegmentation, CLIPTokenizer

    folder = Path(folder)
    if not folder.exists():
        raise RegEditError(FIELD, f"{folder} does not exist", FIX)
    if not (folder / "config.json").is_file():
        raise RegEditError(FIELD, f"{folder} has no config.json, so it is not a saved model", FIX)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegEditError(FIELD, f"{folder / 'config.json'} is not valid JSON ({exc})", FIX) from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "clipseg":
        raise RegEditError(FIELD, f"{folder} holds a {model_type or 'untyped'} model, not CLIPSeg "
                                  "(config.json's model_type must be 'clipseg')", FIX)
    if not _has_tokenizer(folder):
        raise RegEditError(FIELD, f"{folder} has no tokenizer files (vocab.json and merges.txt, or tokenizer.json)",
                           "save the CLIP tokenizer beside the model (tokenizer.save_pretrained(folder)), "
                           "as models/shapesworld_clipseg has it")
    if not (folder / "preprocessor_config.json").is_file():
        raise RegEditError(FIELD, f"{folder} has no preprocessor_config.json (the image mean and std)",
                           "save the CLIPSeg image processor beside the model (image_processor.save_pretrained(folder)), "
                           "as models/shapesworld_clipseg has it")
    try:
        processor = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
        tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = _from_pretrained(CLIPSegForImageSegmentation, folder, dtype)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise RegEditError(FIELD, f"{folder} could not be loaded as CLIPSeg ({type(exc).__name__}: {first})",
                           f"check that the folder is complete, or {FIX}") from exc
    mean = processor.get("image_mean", [0.5, 0.5, 0.5]) if processor.get("do_normalize", True) else [0.0] * 3
    std = processor.get("image_std", [0.5, 0.5, 0.5]) if processor.get("do_normalize", True) else [1.0] * 3
    return Segmenter(model.to(device), tokenizer, mean, std)


def write_processor_files(folder: str | os.PathLike, image_size: int, image_mean, image_std) -> Path:
    """Write the project's CLIP tokenizer files and a CLIPSeg ``preprocessor_config.json`` into ``folder``,
    so that ``load_segmenter`` and ``CLIPSegProcessor.from_pretrained`` read it beside the model."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if all((PROJECT_TOKENIZER / name).exists() for name in TOKENIZER_FILES):
        for name in TOKENIZER_FILES:
            shutil.copyfile(PROJECT_TOKENIZER / name, folder / name)
    else:  # a checkout without models/: build the same vocabulary from open_clip_torch's file
        from ..tokenizer import write_clip_tokenizer_files
        write_clip_tokenizer_files(folder)
    config = {
        "image_processor_type": "ViTImageProcessor", "processor_class": "CLIPSegProcessor",
        "do_resize": True, "size": {"height": int(image_size), "width": int(image_size)}, "resample": 2,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [float(v) for v in image_mean], "image_std": [float(v) for v in image_std],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder
