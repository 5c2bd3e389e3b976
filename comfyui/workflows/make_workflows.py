"""Writes the example workflows beside this file, in ComfyUI's API format (what ``/prompt`` takes; the page
opens them too): each runs one RegEdit node on the bundled ShapesWorld model at 64x64.

    python comfyui/workflows/make_workflows.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOXES = {"regions": [{"x": 0.05, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a red circle"},
                     {"x": 0.55, "y": 0.1, "w": 0.4, "h": 0.8, "prompt": "a blue square"}]}
PROMPT = "a red circle and a blue square"
SAMPLE = {"seed": 1, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal"}


def base(name: str = "shapesworld") -> dict:
    """The loader, the prompts and an empty latent: nodes 1-4."""
    return {
        "1": {"class_type": "RegEditShapesWorldLoader", "inputs": {"name": name}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": PROMPT}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "RegEditEmptyLatent", "inputs": {"vae": ["1", 2], "width": 64, "height": 64,
                                                              "batch_size": 1}},
    }


def generated(model=("1", 0), latent=("4", 0)) -> dict:
    """A KSampler and its decode: nodes 5-6 (the picture the image nodes edit)."""
    return {
        "5": {"class_type": "KSampler", "inputs": dict(SAMPLE, model=list(model), positive=["2", 0], negative=["3", 0],
                                                       latent_image=list(latent), denoise=1.0)},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    }


def save(node: str, output: int, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": [node, output], "filename_prefix": f"regedit/{prefix}"}}


def workflows() -> dict:
    regions = base()
    regions["10"] = {"class_type": "RegEditRegions", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "regions": json.dumps(BOXES), "mode": "from the document",
        "background_prompt": "from the document", "kssa": "from the document"}}
    regions.update(generated(model=("10", 0)))
    regions["7"] = save("6", 0, "regions")

    layout = base()
    layout["10"] = dict(regions["10"])
    layout["11"] = {"class_type": "RegEditLayoutInit", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "regions": json.dumps(BOXES), "width": 64, "height": 64,
        "batch_size": 1, "seed": 1, "steps": 20}}
    layout["5"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["10", 0], "add_noise": "disable", "noise_seed": 1, "steps": 20, "cfg": 7.5, "sampler_name": "euler",
        "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["11", 0],
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    layout["6"] = {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}}
    layout["7"] = save("6", 0, "layout_init")
    del layout["4"]

    pair = base()
    del pair["2"], pair["4"]
    edit = {"regions": [BOXES["regions"][0], dict(BOXES["regions"][1], edit="remove")]}
    pair["10"] = {"class_type": "RegEditEditPair", "inputs": dict(SAMPLE, model=["1", 0], clip=["1", 1], vae=["1", 2],
                  regions=json.dumps(edit), prompt=PROMPT, negative_prompt="", width=64, height=64, pairs=1)}
    pair["7"] = save("10", 1, "pair_source")
    pair["8"] = save("10", 0, "pair_target")

    picture = base()
    picture.update(generated(model=("10", 0)))
    picture["10"] = dict(regions["10"])
    change = {"regions": [dict(BOXES["regions"][0], edit="change", target_prompt="a green circle"),
                          BOXES["regions"][1]]}
    picture["11"] = {"class_type": "RegEditPictureEdit", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["6", 0], "regions": json.dumps(change),
        "inversion": "negative", "negative_prompt": "", "seed": 1, "steps": 20, "cfg": 7.5}}
    picture["7"] = save("6", 0, "picture")
    picture["8"] = save("11", 0, "picture_edit")

    drag = base()
    drag.update(generated(model=("10", 0)))
    drag["10"] = dict(regions["10"])
    move = {"pairs": [{"handle": {"type": "polygon", "points": [[0.05, 0.1], [0.45, 0.1], [0.45, 0.9], [0.05, 0.9]]},
                       "target": {"type": "polygon", "points": [[0.05, 0.0], [0.45, 0.0], [0.45, 0.5], [0.05, 0.5]]}}]}
    drag["11"] = {"class_type": "RegEditDrag", "inputs": {
        "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["6", 0], "drag": json.dumps(move),
        "prompt": PROMPT, "seed": 1, "steps": 20}}
    drag["7"] = save("6", 0, "drag_source")
    drag["8"] = save("11", 0, "drag")

    lime = base()
    lime.update(generated(model=("10", 0)))
    lime["10"] = dict(regions["10"])
    lime["12"] = {"class_type": "RegEditShapesWorldLoader", "inputs": {"name": "shapesworld_instruct"}}
    lime["11"] = {"class_type": "RegEditLime", "inputs": dict(SAMPLE, model=["12", 0], clip=["12", 1], vae=["12", 2],
                  image=["6", 0], prompt="make the red circle green", negative_prompt="", lime="{}", denoise=1.0)}
    lime["7"] = save("6", 0, "lime_source")
    lime["8"] = save("11", 0, "lime")
    lime["9"] = {"class_type": "MaskToImage", "inputs": {"mask": ["11", 1]}}
    lime["13"] = save("9", 0, "lime_region")
    return {"regions": regions, "layout_init": layout, "edit_pair": pair, "picture_edit": picture, "drag": drag,
            "lime": lime}


def main() -> None:
    for name, workflow in workflows().items():
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(workflow, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
