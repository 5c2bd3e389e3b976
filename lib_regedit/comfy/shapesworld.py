"""The bundled ShapesWorld models as ComfyUI's MODEL, CLIP and VAE.

ShapesWorld is SD 1.x shrunk (``models/README.md``): a UNet of 64 channels with cross-attention width
128, a 128-wide CLIP text model with the real CLIP tokenizer, and a VAE that downscales by 4. ComfyUI's
``CheckpointLoaderSimple`` cannot load it: its SD 1.5 detection wants 320 channels and a 768-wide
context, its text encoder is the 768-wide CLIP-L, and its VAE guess gives a VAE of 128 channels. This
module builds the same objects that loader returns from ComfyUI's own classes, configured from the
checkpoint's LDM yaml (``shapesworld.yaml``):

- MODEL: a ``comfy.model_patcher.ModelPatcher`` over a ``comfy.model_base.BaseModel`` (for the instruct
  model ``SD15_instructpix2pix``) whose UNet is ComfyUI's ``UNetModel`` with the config
  ``comfy.model_detection.detect_unet_config`` reads from the weights, 4 attention heads as the yaml
  says, the SD 1.x linear schedule of the yaml (0.00085 to 0.012 over 1000 steps, epsilon prediction)
  and a latent format whose scale factor is the yaml's (0.781922);
- CLIP: a ``comfy.sd.CLIP`` over ComfyUI's SD 1.x CLIP classes, its text model built from the text
  encoder folder's ``config.json`` and its tokenizer read from that folder (``models/shapesworld_clip``);
- VAE: a ``comfy.sd.VAE`` built from the yaml's ``ddconfig`` (3 levels: 4x down), ``downscale_ratio`` 4.

All weights are float32 and start on the CPU; ComfyUI moves them to its device for sampling as it does
for any checkpoint. ComfyUI is imported inside :func:`load` only, so this module imports without it.

Its latents are 4x smaller than the picture, where ComfyUI's ``EmptyLatentImage`` makes width // 8: make
an empty LATENT of ``(batch, 4, height // 4, width // 4)`` for it (:func:`empty_latent`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import RegEditError

MODELS = Path(__file__).resolve().parents[2] / "models"
NAMES = ("shapesworld", "shapesworld_instruct")  # the bundled checkpoints: models/{name}.safetensors
INSTALL_FOLDER = "regedit"  # ComfyUI/models/checkpoints/regedit (lib_regedit.shapesworld.comfyui_install)
CLIP_FOLDER_NAME = "shapesworld_clip"  # the text encoder's config.json and the CLIP tokenizer files
CLIP_FILES = ("config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")

DOWNSCALE = 4  # the ShapesWorld VAE's pixels per latent pixel

# Latent to RGB for ComfyUI's live previews: least squares from the scaled latents of 256 rendered
# ShapesWorld scenes (data seed 123) to their 4x4-pooled pixels in [-1, 1] (RMS error 0.20 where the
# pixels' spread is 0.40); SD 1.5's factors do not fit this VAE. Rows: latent channels; columns: R, G, B.
LATENT_RGB_FACTORS = [[-0.1044, 0.3432, 0.7549],
                      [-0.5738, -1.0015, -1.2826],
                      [0.2902, 0.4298, 0.2694],
                      [0.3016, 0.3130, 0.2849]]
LATENT_RGB_BIAS = [0.7310, 0.6699, 0.5751]


def checkpoint_path(name: str = "shapesworld") -> Path:
    """The ``.safetensors`` file ``name`` means: a bundled model's name (:data:`NAMES`), a file path (such as
    one that ``comfyui_install`` wrote), or, inside ComfyUI, a name from its checkpoint list (such as
    ``regedit/shapesworld.safetensors``)."""
    name = str(name)
    if name in NAMES:
        path = MODELS / f"{name}.safetensors"
        if not path.is_file():
            raise RegEditError("model", f"{path} is missing",
                               "use a full checkout of sd-webui-regedit (the model ships in models/)")
        return path
    path = Path(name).expanduser()
    if path.is_file():
        return path
    try:
        import folder_paths  # ComfyUI's
        found = folder_paths.get_full_path("checkpoints", name)
    except Exception:  # not inside ComfyUI, or not one of its checkpoints
        found = None
    if found and Path(found).is_file():
        return Path(found)
    raise RegEditError("model", f"no ShapesWorld checkpoint {name!r}",
                       f"give one of {', '.join(NAMES)}, a .safetensors path, or a file that "
                       "python -m lib_regedit.shapesworld.comfyui_install put into ComfyUI's "
                       f"models/checkpoints/{INSTALL_FOLDER}")


def yaml_path(checkpoint: Path) -> Path:
    """The LDM yaml of ``checkpoint``: beside it (``<name>.yaml``), else the bundled one of that name."""
    for path in (checkpoint.with_suffix(".yaml"), MODELS / f"{checkpoint.stem}.yaml"):
        if path.is_file():
            return path
    raise RegEditError("model", f"{checkpoint.with_suffix('.yaml')} is missing (ShapesWorld needs its yaml)",
                       "install the model with python -m lib_regedit.shapesworld.comfyui_install, which "
                       "writes the yaml beside the checkpoint")


def clip_folder(checkpoint: Path, version: str | None = None) -> Path:
    """The text encoder's folder (``config.json`` and the CLIP tokenizer files): the yaml's ``version:``
    (absolute, or relative to the checkpoint's folder), else ``shapesworld_clip`` beside the checkpoint,
    else the bundled ``models/shapesworld_clip``."""
    candidates = []
    if version:
        v = Path(version).expanduser()
        candidates.append(v if v.is_absolute() else checkpoint.parent / v)
    candidates += [checkpoint.parent / CLIP_FOLDER_NAME, MODELS / CLIP_FOLDER_NAME]
    for folder in candidates:
        if all((folder / f).is_file() for f in ("config.json", "vocab.json", "merges.txt")):
            return folder
    raise RegEditError("model", f"no text encoder folder for {checkpoint} (looked in "
                       f"{', '.join(str(c) for c in candidates)})",
                       "install the model with python -m lib_regedit.shapesworld.comfyui_install")


def read_config(path: Path) -> dict:
    """What :func:`load` takes from the LDM yaml: the schedule, scale factor, UNet heads, VAE config."""
    import yaml

    try:
        params = yaml.safe_load(path.read_text())["model"]["params"]
        unet = params["unet_config"]["params"]
        first = params["first_stage_config"]["params"]
        config = {
            "linear_start": float(params["linear_start"]),
            "linear_end": float(params["linear_end"]),
            "timesteps": int(params.get("timesteps", 1000)),
            "scale_factor": float(params["scale_factor"]),
            "instruct": params.get("conditioning_key") == "hybrid" or int(unet["in_channels"]) == 8,
            "in_channels": int(unet["in_channels"]),
            "context_dim": int(unet["context_dim"]),
            "num_heads": int(unet.get("num_heads", -1)),
            "num_head_channels": int(unet.get("num_head_channels", -1)),
            "embed_dim": int(first["embed_dim"]),
            "ddconfig": dict(first["ddconfig"]),
            "version": (params.get("cond_stage_config", {}).get("params") or {}).get("version"),
        }
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as e:
        raise RegEditError("model", f"{path} is not a ShapesWorld LDM yaml ({e!r})",
                           "use the yaml shipped in models/ (or re-export the model)") from e
    return config


def downscale(config: dict) -> int:
    """Pixels per latent pixel of the VAE ``ddconfig``: 2 per level after the first."""
    return 2 ** (len(config["ddconfig"]["ch_mult"]) - 1)


def _comfy():
    try:
        import comfy.latent_formats
        import comfy.model_detection
        import comfy.model_management
        import comfy.model_patcher
        import comfy.sd
        import comfy.sd1_clip
        import comfy.supported_models
        import comfy.supported_models_base
        import comfy.utils
    except ImportError as e:
        raise RegEditError("comfyui", f"ComfyUI's modules cannot be imported ({e})",
                           "run this inside ComfyUI (its Python, with ComfyUI's folder on sys.path)") from e
    return comfy


def _float32(sd: dict) -> dict:
    import torch

    return {k: (v.float() if torch.is_floating_point(v) else v) for k, v in sd.items()}


def load(name: str = "shapesworld"):
    """``(model, clip, vae)``: ComfyUI's MODEL (``ModelPatcher``), CLIP (``comfy.sd.CLIP``) and VAE
    (``comfy.sd.VAE``) of the ShapesWorld checkpoint ``name`` (see :func:`checkpoint_path`): ``"shapesworld"``
    (text to image) or ``"shapesworld_instruct"`` (instruct-pix2pix, 8 input channels; give it the source
    picture with ComfyUI's InstructPixToPixConditioning node). Raises :class:`RegEditError` when ComfyUI
    cannot be imported or the files are missing."""
    path = checkpoint_path(name)
    comfy = _comfy()
    config = read_config(yaml_path(path))
    text_folder = clip_folder(path, config["version"])
    import torch

    mm = comfy.model_management
    sd = _float32(comfy.utils.load_torch_file(str(path)))
    prefix = "model.diffusion_model."
    if f"{prefix}input_blocks.0.0.weight" not in sd or "first_stage_model.decoder.conv_in.weight" not in sd:
        raise RegEditError("model", f"{path} is not an LDM single-file checkpoint (no {prefix}* or "
                           "first_stage_model.* weights)", "give models/shapesworld.safetensors or a copy of it")

    # MODEL: ComfyUI's UNet with the detected config, SD 1.5's model class with ShapesWorld's settings.
    unet_config = comfy.model_detection.detect_unet_config(sd, prefix)
    for key in ("in_channels", "context_dim"):
        if unet_config.get(key) != config[key]:
            raise RegEditError("model", f"{path}: the weights have {key} {unet_config.get(key)}, its yaml "
                               f"{config[key]}", "keep each checkpoint with its own yaml")
    base = comfy.supported_models.SD15_instructpix2pix if config["instruct"] else comfy.supported_models.SD15
    model_config = base(unet_config)
    model_config.unet_config["num_heads"] = config["num_heads"]
    model_config.unet_config["num_head_channels"] = config["num_head_channels"]
    model_config.sampling_settings = {"beta_schedule": "linear", "linear_start": config["linear_start"],
                                      "linear_end": config["linear_end"], "timesteps": config["timesteps"]}
    latent_format = comfy.latent_formats.SD15(scale_factor=config["scale_factor"])
    latent_format.taesd_decoder_name = None  # SD's TAESD previews decode 8x latents of another VAE
    latent_format.latent_rgb_factors = LATENT_RGB_FACTORS
    latent_format.latent_rgb_factors_bias = LATENT_RGB_BIAS
    model_config.latent_format = latent_format
    model_config.set_inference_dtype(torch.float32, None)
    cpu = torch.device("cpu")
    base_model = model_config.get_model(sd, prefix, device=cpu)
    base_model.load_model_weights(sd, prefix)
    base_model.to(torch.float32)
    model = comfy.model_patcher.ModelPatcher(base_model, load_device=mm.get_torch_device(),
                                             offload_device=mm.unet_offload_device())

    # VAE: the yaml's AutoencoderKL, 4x down.
    vae_sd = comfy.utils.state_dict_prefix_replace(sd, {"first_stage_model.": ""}, filter_keys=True)
    vae = comfy.sd.VAE(sd=vae_sd, config={"params": {"embed_dim": config["embed_dim"],
                                                      "ddconfig": config["ddconfig"]}}, dtype=torch.float32)
    ratio = downscale(config)
    vae.downscale_ratio = vae.upscale_ratio = ratio
    pixels_per_latent = ratio * ratio
    vae.memory_used_decode = lambda shape, dtype: (2178 * shape[2] * shape[3] * pixels_per_latent) * \
        mm.dtype_size(dtype)

    # CLIP: ComfyUI's SD 1.x CLIP text model of the folder's config, its tokenizer from that folder.
    import json
    import functools

    text_config = json.loads((text_folder / "config.json").read_text())
    width = int(text_config["hidden_size"])
    if width != config["context_dim"]:
        raise RegEditError("model", f"{text_folder / 'config.json'} has hidden_size {width}, the UNet's "
                           f"context is {config['context_dim']}", "use the shapesworld_clip folder of the model")
    sd1 = comfy.sd1_clip
    clip_model = functools.partial(sd1.SDClipModel, textmodel_json_config=text_config,
                                   return_projected_pooled=False,
                                   special_tokens={"start": int(text_config.get("bos_token_id", 49406)),
                                                   "end": int(text_config.get("eos_token_id", 49407)),
                                                   "pad": int(text_config.get("pad_token_id", 49407))})
    tokenizer = functools.partial(sd1.SDTokenizer, tokenizer_path=str(text_folder), embedding_size=width,
                                  max_length=int(text_config.get("max_position_embeddings", 77)))
    target = comfy.supported_models_base.ClipTarget(
        functools.partial(sd1.SD1Tokenizer, tokenizer=tokenizer),
        functools.partial(sd1.SD1ClipModel, clip_model=clip_model))
    clip_sd = model_config.process_clip_state_dict(
        {k: v for k, v in sd.items() if k.startswith("cond_stage_model.")})
    try:
        import folder_paths
        embeddings = folder_paths.get_folder_paths("embeddings")
    except Exception:
        embeddings = None
    clip = comfy.sd.CLIP(target, embedding_directory=embeddings, parameters=comfy.utils.calculate_parameters(clip_sd),
                         state_dict=clip_sd, model_options={"dtype": torch.float32, "initial_device": cpu})
    return model, clip, vae


def empty_latent(width: int = 64, height: int = 64, batch_size: int = 1, factor: int = DOWNSCALE) -> dict:
    """ComfyUI's LATENT of zeros for a ``width`` x ``height`` picture of a VAE ``factor`` x down (the
    ShapesWorld VAE: 4), as ``EmptyLatentImage`` makes for SD's 8."""
    import torch

    if width % factor or height % factor:
        raise RegEditError("width/height", f"{width}x{height} is not a multiple of {factor}",
                           f"give a size divisible by {factor}")
    return {"samples": torch.zeros([int(batch_size), 4, int(height) // factor, int(width) // factor])}


def installed_names(checkpoint_names) -> list[str]:
    """The ShapesWorld entries of ComfyUI's checkpoint list (``folder_paths.get_filename_list("checkpoints")``):
    the files under ``regedit/`` with a ShapesWorld name."""
    pattern = re.compile(rf"^{INSTALL_FOLDER}[/\\]shapesworld[\w.-]*\.safetensors$")
    return [n for n in checkpoint_names if pattern.match(n)]
