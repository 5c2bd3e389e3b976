"""ShapesWorld in a real ComfyUI, through ComfyUI's own nodes (a by-hand check: CI has no ComfyUI).

    cd /path/to/ComfyUI && venv/bin/python /path/to/sd-webui-regedit/tests/e2e/comfyui_shapesworld.py --out /tmp/sw

Loads both bundled checkpoints with ``lib_regedit.comfy.shapesworld.load``, checks the objects (ComfyUI's
classes, a VAE 4x down, float32, the tokenizer's ids those of ``models/shapesworld_clip``), samples
"a red circle" at 64x64 (20 steps, euler, CFG 7.5, seed 0) with CLIPTextEncode, KSampler and VAEDecode,
then edits it with the instruct model ("make the red circle blue", InstructPixToPixConditioning), saves
both pictures and checks their colours. Runs on ComfyUI's device (the CPU where there is no GPU).
"""

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def colour_pixels(image, channel: int) -> int:
    """Pixels where ``channel`` (0 red, 2 blue) is strong and the other two weak."""
    strong = image[..., channel] > 0.55
    for c in {0, 1, 2} - {channel}:
        strong &= image[..., c] < 0.4
    return int(strong.sum())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=os.getcwd(), help="ComfyUI's folder (default: the current one)")
    p.add_argument("--out", default="/tmp/shapesworld_comfyui")
    args_ = p.parse_args()
    sys.path[:0] = [args_.comfyui, str(REPO)]
    import torch
    from comfy.cli_args import args
    args.cpu = args.cpu or not torch.cuda.is_available()
    import numpy as np
    from PIL import Image

    import comfy.model_base
    import comfy.model_patcher
    import comfy.sd
    import nodes
    from comfy_extras.nodes_ip2p import InstructPixToPixConditioning
    from transformers import CLIPTokenizer

    from lib_regedit.comfy import shapesworld

    out = Path(args_.out)
    out.mkdir(parents=True, exist_ok=True)
    model, clip, vae = shapesworld.load("shapesworld")
    assert isinstance(model, comfy.model_patcher.ModelPatcher) and type(model.model) is comfy.model_base.BaseModel
    assert isinstance(clip, comfy.sd.CLIP) and isinstance(vae, comfy.sd.VAE)
    assert vae.downscale_ratio == vae.upscale_ratio == vae.spacial_compression_encode() == 4
    assert model.model.latent_format.scale_factor == 0.781922
    assert {p.dtype for m in (model.model, clip.cond_stage_model, vae.first_stage_model) for p in m.parameters()} \
        == {torch.float32}
    ids = [int(t[0]) for t in clip.tokenize("a red circle")["l"][0]]
    reference = CLIPTokenizer.from_pretrained(str(shapesworld.MODELS / "shapesworld_clip"))
    assert ids == reference("a red circle", padding="max_length", max_length=77)["input_ids"], ids[:8]

    with torch.inference_mode():
        (positive,) = nodes.CLIPTextEncode().encode(clip, "a red circle")
        (negative,) = nodes.CLIPTextEncode().encode(clip, "")
        start = time.perf_counter()
        (latent,) = nodes.KSampler().sample(model, 0, 20, 7.5, "euler", "normal", positive, negative,
                                            shapesworld.empty_latent(64, 64), denoise=1.0)
        (image,) = nodes.VAEDecode().decode(vae, latent)
        seconds = time.perf_counter() - start
    picture = image[0].float().cpu().numpy()
    Image.fromarray((picture * 255).round().astype(np.uint8)).save(out / "red_circle.png")
    print(f"a red circle: {out / 'red_circle.png'}, 20 steps + decode in {seconds:.2f} s, "
          f"{colour_pixels(picture, 0)} red pixels")
    assert picture.shape == (64, 64, 3) and colour_pixels(picture, 0) > 50

    model, clip, vae = shapesworld.load("shapesworld_instruct")
    assert type(model.model) is comfy.model_base.SD15_instructpix2pix
    with torch.inference_mode():
        (positive,) = nodes.CLIPTextEncode().encode(clip, "make the red circle blue")
        (negative,) = nodes.CLIPTextEncode().encode(clip, "")
        result = InstructPixToPixConditioning.execute(positive, negative, image, vae)
        positive, negative, start_latent = result.result if hasattr(result, "result") else result
        (latent,) = nodes.KSampler().sample(model, 0, 20, 7.5, "euler", "normal", positive, negative, start_latent)
        (edited,) = nodes.VAEDecode().decode(vae, latent)
    picture = edited[0].float().cpu().numpy()
    Image.fromarray((picture * 255).round().astype(np.uint8)).save(out / "made_blue.png")
    print(f"make the red circle blue: {out / 'made_blue.png'}, {colour_pixels(picture, 2)} blue pixels, "
          f"{colour_pixels(picture, 0)} red")
    assert colour_pixels(picture, 2) > 50 and colour_pixels(picture, 0) < 10
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
