"""Loading models: diffusers folders and single-file checkpoints, from local files only."""

from __future__ import annotations

import os
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_model_path() -> Path:
    """The bundled ShapesWorld model (diffusers format), trained by ``lib_regedit.shapesworld``."""
    return REPO_ROOT / "models" / "shapesworld"


def load_pipeline(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, config: str | None = None):
    """A StableDiffusionPipeline or StableDiffusionXLPipeline from a diffusers folder or a single file
    (``.safetensors``/``.ckpt``; a ``.yaml`` beside it is used as its original config). Never downloads."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--model: {path} does not exist; give a diffusers folder or a .safetensors/.ckpt file")
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise FileNotFoundError(f"--model: {path} has no model_index.json; is it a diffusers pipeline folder?")
        pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    else:
        pipe = _load_single_file(path, dtype, config)
    if not isinstance(pipe, (StableDiffusionPipeline, StableDiffusionXLPipeline)):
        raise TypeError(f"--model: {path} is a {type(pipe).__name__}; RegEdit needs an SD 1.x or SDXL pipeline")
    pipe.set_progress_bar_config(disable=False)
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    return pipe


def _load_single_file(path: Path, dtype, config: str | None):
    """A single-file checkpoint. Its components' configs come from ``config`` (a diffusers folder of the
    same architecture) or a diffusers folder of the same name beside it; a ``.yaml`` beside it is the
    original LDM config. Offline, diffusers cannot fetch the text encoder's config from the hub, so
    without a local config folder the error says how to give one."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    kwargs = {"dtype": dtype, "local_files_only": True}
    folder = Path(config) if config else path.with_suffix("")
    if folder.is_dir() and (folder / "model_index.json").exists():
        kwargs["config"] = str(folder)
    elif path.with_suffix(".yaml").exists():
        kwargs["original_config"] = str(path.with_suffix(".yaml"))
    cls = StableDiffusionXLPipeline if _looks_like_sdxl(path) else StableDiffusionPipeline
    try:
        return cls.from_single_file(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        if "config" in kwargs:
            raise
        raise FileNotFoundError(
            f"--model: {path} needs its components' configs, which cannot be downloaded here; pass --config with a "
            f"diffusers folder of the same architecture (or put one named {path.stem}/ beside it). ({exc})") from exc


def _looks_like_sdxl(path: Path) -> bool:
    if path.suffix != ".safetensors":
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return any(k.startswith("conditioner.embedders.1") for k in f.keys())
