"""Loading models: diffusers folders and single-file checkpoints, from local files only."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import RegEditError

REPO_ROOT = Path(__file__).resolve().parent.parent
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def default_model_path() -> Path:
    """The bundled ShapesWorld model (diffusers format), trained by ``lib_regedit.shapesworld``: in the
    checkout's ``models/``, or where ``REGEDIT_MODEL`` points (a package installed from a wheel has no
    checkout beside it)."""
    return Path(os.environ["REGEDIT_MODEL"]) if os.environ.get("REGEDIT_MODEL") else REPO_ROOT / "models" / "shapesworld"


def default_instruct_model_path() -> Path:
    """The bundled ShapesWorld instruct model (an instruct-pix2pix pipeline folder, for LIME), in the
    checkout's ``models/`` or where ``REGEDIT_INSTRUCT_MODEL`` points."""
    if os.environ.get("REGEDIT_INSTRUCT_MODEL"):
        return Path(os.environ["REGEDIT_INSTRUCT_MODEL"])
    return REPO_ROOT / "models" / "shapesworld_instruct"


def default_segmenter_path() -> Path:
    """The bundled ShapesWorld CLIPSeg (the segmenter of multi-region guidance), in the checkout's
    ``models/`` or where ``REGEDIT_SEGMENTER`` points."""
    if os.environ.get("REGEDIT_SEGMENTER"):
        return Path(os.environ["REGEDIT_SEGMENTER"])
    return REPO_ROOT / "models" / "shapesworld_clipseg"


def load_pipeline(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, config: str | None = None,
                  field: str = "model", instruct: bool = False):
    """A StableDiffusionPipeline or StableDiffusionXLPipeline from a diffusers folder or a single file
    (``.safetensors``/``.ckpt``; a ``.yaml`` beside it is used as its original config). Never downloads.
    With ``instruct``, instruct-pix2pix pipelines (8-channel UNet) are accepted too. A path that is not
    such a model raises :class:`RegEditError` naming ``field``."""
    from diffusers import (DiffusionPipeline, StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline,
                           StableDiffusionXLInstructPix2PixPipeline, StableDiffusionXLPipeline)

    path = Path(path)
    fix = "give a diffusers pipeline folder (with model_index.json) or a .safetensors/.ckpt checkpoint"
    if not path.exists():
        raise RegEditError(field, f"{path} does not exist", fix)
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise RegEditError(field, f"{path} is a folder without model_index.json, so not a diffusers pipeline", fix)
        try:
            pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegEditError(field, f"{path} could not be loaded as a pipeline ({_first_line(exc)})",
                               f"check that the folder is complete, or {fix}") from exc
    elif path.suffix not in SINGLE_FILE_SUFFIXES:
        raise RegEditError(field, f"{path} is a {path.suffix or 'suffix-less'} file, not a checkpoint", fix)
    else:
        pipe = _load_single_file(path, dtype, config, field)
    editors = (StableDiffusionInstructPix2PixPipeline, StableDiffusionXLInstructPix2PixPipeline)
    if isinstance(pipe, editors) and not instruct:
        raise RegEditError(field, f"{path} is an instruct-pix2pix model (it edits images from instructions)",
                           "use it with `python -m lib_regedit edit`, or give a text-to-image SD 1.x or SDXL checkpoint")
    if not isinstance(pipe, (StableDiffusionPipeline, StableDiffusionXLPipeline) + editors):
        raise RegEditError(field, f"{path} is a {type(pipe).__name__}", "give an SD 1.x or SDXL pipeline")
    pipe.set_progress_bar_config(disable=False)
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None
    return pipe


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _load_single_file(path: Path, dtype, config: str | None, field: str):
    """A single-file checkpoint. Its components' configs come from ``config`` (a diffusers folder of the
    same architecture) or a diffusers folder of the same name beside it; a ``.yaml`` beside it is the
    original LDM config. Offline, diffusers cannot fetch the text encoder's config from the hub, so
    without a local config folder the error says how to give one."""
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    kwargs = {"dtype": dtype, "local_files_only": True}
    folder = Path(config) if config else path.with_suffix("")
    if folder.is_dir() and (folder / "model_index.json").exists():
        kwargs["config"] = str(folder)
    elif path.with_suffix(".yaml").exists():
        kwargs["original_config"] = str(path.with_suffix(".yaml"))
    cls = StableDiffusionXLPipeline if _looks_like_sdxl(path) else StableDiffusionPipeline
    if cls is StableDiffusionPipeline and _input_channels(path) == 8:
        cls = StableDiffusionInstructPix2PixPipeline
    try:
        return cls.from_single_file(str(path), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if "config" in kwargs or "original_config" in kwargs:
            raise RegEditError(field, f"{path} could not be loaded ({_first_line(exc)})",
                               "check the file and the config beside it (--config: a diffusers folder of the "
                               "same architecture)") from exc
        raise RegEditError(field, f"{path} needs its components' configs, which cannot be downloaded here "
                                  f"({_first_line(exc)})",
                           f"pass --config with a diffusers folder of the same architecture (or put one named "
                           f"{path.stem}/ beside it)") from exc


def _looks_like_sdxl(path: Path) -> bool:
    if path.suffix != ".safetensors":
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return any(k.startswith("conditioner.embedders.1") for k in f.keys())
    except Exception:  # noqa: BLE001 - not a readable safetensors file: loading it names the problem
        return False


def _input_channels(path: Path) -> int | None:
    """The UNet's input channels of a single-file SD checkpoint (8: instruct-pix2pix), if readable."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return int(f.get_slice("model.diffusion_model.input_blocks.0.0.weight").get_shape()[1])
    except Exception:  # noqa: BLE001 - not an SD checkpoint: loading it names the problem
        return None
