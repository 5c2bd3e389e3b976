"""Put the bundled ShapesWorld checkpoint into an AUTOMATIC1111 WebUI's checkpoint folder.

``python -m lib_regedit.shapesworld.webui_install /path/to/stable-diffusion-webui``

The WebUI reads a checkpoint's ``.yaml`` only from beside the checkpoint, and the yaml's
``FrozenCLIPEmbedder`` ``version:`` names the folder holding the text encoder's ``config.json`` and
the CLIP tokenizer files. The shipped yaml gives that folder relative to the WebUI's root
(``extensions/sd-webui-regedit/models/shapesworld_clip``), which breaks when the extension folder
has another name or the WebUI starts from elsewhere. This command copies the checkpoint and writes
its yaml with the absolute path of this checkout's ``models/shapesworld_clip`` instead, so neither
matters. Nothing is downloaded and nothing of the WebUI is changed except the two files it writes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from ..errors import RegEditError

MODELS = Path(__file__).resolve().parents[2] / "models"
VERSION_LINE = re.compile(r"^(\s*version:\s*).*$", re.MULTILINE)


def yaml_with_version(text: str, clip_folder: Path) -> str:
    """The LDM yaml ``text`` with its ``version:`` line pointing at ``clip_folder`` (absolute)."""
    new, count = VERSION_LINE.subn(lambda m: f"{m.group(1)}{clip_folder.resolve().as_posix()}", text)
    if count != 1:
        raise RegEditError("shapesworld.yaml", f"expected one 'version:' line, found {count}",
                           "re-export the model with python -m lib_regedit.shapesworld.export")
    return new


def install(target: Path, *, models: Path = MODELS, name: str = "shapesworld", clip_name: str = "shapesworld") -> dict:
    """Copy ``{name}.safetensors`` into ``target`` (a WebUI root, or its checkpoint folder itself) and
    write ``{name}.yaml`` beside it, its text encoder read from ``{clip_name}_clip``. Returns the paths
    written. ``name="shapesworld_instruct"`` installs the instruct model (an instruct-pix2pix checkpoint
    for img2img and LIME), which shares ShapesWorld's text encoder config."""
    target = Path(target)
    if not target.is_dir():
        raise RegEditError("webui", f"{target} is not a folder",
                           "give the WebUI's root folder or its models/Stable-diffusion folder")
    ckpt_dir = target / "models" / "Stable-diffusion" if (target / "models").is_dir() else target
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    source = models / f"{name}.safetensors"
    clip = models / f"{clip_name}_clip"
    for path in (source, models / f"{name}.yaml", clip / "config.json", clip / "vocab.json"):
        if not path.exists():
            raise RegEditError("models", f"{path} is missing",
                               "use a full checkout of sd-webui-regedit (the model ships in models/)")
    ckpt = ckpt_dir / source.name
    shutil.copyfile(source, ckpt)
    yaml = ckpt.with_suffix(".yaml")
    yaml.write_text(yaml_with_version((models / f"{name}.yaml").read_text(), clip))
    return {"checkpoint": ckpt, "yaml": yaml, "clip": clip.resolve()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib_regedit.shapesworld.webui_install",
                                description=__doc__.splitlines()[0])
    p.add_argument("webui", help="the WebUI's root folder (or a checkpoint folder such as its --ckpt-dir)")
    args = p.parse_args(argv)
    try:
        out = install(Path(args.webui))
        edit = install(Path(args.webui), name="shapesworld_instruct") \
            if (MODELS / "shapesworld_instruct.safetensors").exists() else None
    except RegEditError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"wrote {out['checkpoint']}\nwrote {out['yaml']} (text encoder: {out['clip']})\n"
          "Select 'shapesworld' in the WebUI's checkpoint list and generate at 64x64.")
    if edit is not None:
        print(f"wrote {edit['checkpoint']}\nwrote {edit['yaml']}\n"
              "Select 'shapesworld_instruct' to edit images from instructions in img2img (LIME).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
