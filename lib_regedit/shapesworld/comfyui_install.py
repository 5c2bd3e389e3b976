"""Put the bundled ShapesWorld checkpoints into a ComfyUI's checkpoint folder.

``python -m lib_regedit.shapesworld.comfyui_install /path/to/ComfyUI``

ComfyUI's own checkpoint loader cannot load ShapesWorld (it is SD 1.x shrunk: its detection wants SD's
320-channel UNet and 768-wide text encoder); RegEdit's ShapesWorld loader (``lib_regedit.comfy.shapesworld``)
builds it from ComfyUI's classes and the checkpoint's LDM yaml. This command copies the checkpoints into
``ComfyUI/models/checkpoints/regedit/`` with what that loader reads beside them: each checkpoint's yaml,
whose text encoder ``version:`` is the folder ``shapesworld_clip`` next to it, and that folder (the text
encoder's ``config.json`` and the CLIP tokenizer files). The copies need nothing from this checkout
afterwards. Nothing is downloaded and nothing of ComfyUI is changed except the files it writes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..comfy.shapesworld import CLIP_FILES, MODELS, NAMES
from ..comfy.shapesworld import CLIP_FOLDER_NAME as CLIP_FOLDER
from ..comfy.shapesworld import INSTALL_FOLDER as FOLDER
from ..errors import RegEditError
from .webui_install import VERSION_LINE


def yaml_with_clip_folder(text: str, folder: str = CLIP_FOLDER) -> str:
    """The LDM yaml ``text`` with its ``version:`` line naming ``folder`` (relative to the yaml's folder)."""
    new, count = VERSION_LINE.subn(lambda m: f"{m.group(1)}{folder}", text)
    if count != 1:
        raise RegEditError("shapesworld.yaml", f"expected one 'version:' line, found {count}",
                           "re-export the model with python -m lib_regedit.shapesworld.export")
    return new


def target_folder(target: Path) -> Path:
    """``target/models/checkpoints/regedit`` for a ComfyUI root (a folder with ``models/``), else
    ``target/regedit`` (a checkpoint folder itself, such as one of extra_model_paths.yaml)."""
    target = Path(target)
    if not target.is_dir():
        raise RegEditError("comfyui", f"{target} is not a folder",
                           "give ComfyUI's root folder or its models/checkpoints folder")
    if (target / "models").is_dir():
        return target / "models" / "checkpoints" / FOLDER
    return target / FOLDER


def install(target: Path, *, models: Path = MODELS, names=NAMES) -> dict:
    """Copy ``{name}.safetensors`` of each of ``names`` and the text encoder folder into ComfyUI's
    ``checkpoints/regedit`` (see :func:`target_folder`), each with its yaml. Returns the paths written:
    ``{"folder", "clip", "checkpoints": [...], "yamls": [...]}``."""
    folder = target_folder(target)
    clip = models / CLIP_FOLDER
    needed = [models / f"{name}{ext}" for name in names for ext in (".safetensors", ".yaml")]
    needed += [clip / f for f in CLIP_FILES]
    for path in needed:
        if not path.is_file():
            raise RegEditError("models", f"{path} is missing",
                               "use a full checkout of sd-webui-regedit (the model ships in models/)")
    yamls = {name: yaml_with_clip_folder((models / f"{name}.yaml").read_text()) for name in names}
    folder.mkdir(parents=True, exist_ok=True)
    clip_out = folder / CLIP_FOLDER
    clip_out.mkdir(exist_ok=True)
    for f in CLIP_FILES:
        shutil.copyfile(clip / f, clip_out / f)
    out = {"folder": folder, "clip": clip_out, "checkpoints": [], "yamls": []}
    for name in names:
        ckpt = folder / f"{name}.safetensors"
        shutil.copyfile(models / f"{name}.safetensors", ckpt)
        yaml = ckpt.with_suffix(".yaml")
        yaml.write_text(yamls[name])
        out["checkpoints"].append(ckpt)
        out["yamls"].append(yaml)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.shapesworld.comfyui_install",
                                description=__doc__.splitlines()[0])
    p.add_argument("comfyui", help="ComfyUI's root folder (or a checkpoint folder, such as one of "
                                   "extra_model_paths.yaml)")
    args = p.parse_args(argv)
    names = tuple(n for n in NAMES if n == "shapesworld" or (MODELS / f"{n}.safetensors").exists())
    try:
        out = install(Path(args.comfyui), names=names)
    except RegEditError as e:
        print(e, file=sys.stderr)
        return 2
    for ckpt, yaml in zip(out["checkpoints"], out["yamls"]):
        print(f"wrote {ckpt}\nwrote {yaml}")
    print(f"wrote {out['clip']}/ (text encoder config and CLIP tokenizer: {', '.join(CLIP_FILES)})\n"
          f"Load them with RegEdit's ShapesWorld loader node ({FOLDER}/shapesworld.safetensors), not ComfyUI's "
          "checkpoint loader, and sample at 64x64 (a 16x16 latent: the VAE downscales by 4).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
