"""``python -m lib_regedit.bench edit``: one region edit pair (source and target, MRGD) against one
region generation, whole runs.

Both run on one Stable Diffusion pipeline with the full SD 1.5 UNet and VAE architectures (random
weights; a one-layer CLIP text encoder of SD's width, the same for both), at 256x256, the same steps
and the same document defaults (two regions, layout init), interleaved over ``--runs`` rounds;
medians are compared. The pair denoises two images at once (a batch of 4 rows with classifier-free
guidance, against 2), inverts two layout sketches instead of one, and computes the explicit
attention maps prompt-to-prompt injects; the limit of the ratio is near 2. Goal: at most 2.2.
``--guidance`` adds a third job, the pair with multi-region guidance through a CLIPSeg of
ViT-B/16's size (random weights), and prints its cost. Last line: ``ratio_time=X`` (the pair without
guidance).
"""

from __future__ import annotations

import torch

from .drag_bench import sd15_pipeline
from .interleaved import interleaved_medians

DOCUMENT = {"prompt": "a red circle and a green square", "regions": [
    {"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
     "target_prompt": "a blue circle"},
    {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a green square"}]}


def random_clipseg():
    """A CLIPSeg of the published model's size (ViT-B/16 at 352², a 512-wide text encoder, reduce_dim
    64), random weights, as a :class:`~lib_regedit.editing.segmenter.Segmenter`: its cost is the real one."""
    from transformers import CLIPSegForImageSegmentation

    from ..editing.segmenter import Segmenter
    from ..shapesworld.segmenter_train import small_config
    from ..tokenizer import build_clip_tokenizer

    config = small_config(vision_hidden=768, vision_layers=12, text_hidden=512, text_layers=12, image_size=352,
                          patch=16, extract_layers=(3, 6, 9), reduce_dim=64)
    config.vision_config.num_attention_heads = 12
    config.text_config.num_attention_heads = 8
    torch.manual_seed(0)
    return Segmenter(CLIPSegForImageSegmentation(config).eval(), build_clip_tokenizer(), [0.485, 0.456, 0.406],
                     [0.229, 0.224, 0.225])


def run(args) -> None:
    from ..api import generate
    from ..editing import edit_pair
    from ..editing.pair_documents import split_pair
    from ..editing.diffusers_edit import parse_pair

    torch.set_num_threads(args.threads)
    pipe = sd15_pipeline(args.size)
    source = split_pair(parse_pair(DOCUMENT)).source
    size = dict(width=args.size, height=args.size)
    jobs = {
        "regions": lambda: generate(pipe, source, seed=0, steps=args.steps, **size),
        "pair": lambda: edit_pair(pipe, DOCUMENT, seed=0, steps=args.steps, **size),
    }
    if args.guidance:
        segmenter = random_clipseg()
        guided = dict(DOCUMENT, edit={"guidance": True})
        jobs["pair + guidance"] = lambda: edit_pair(pipe, guided, seed=0, steps=args.steps, segmenter=segmenter,
                                                    **size)
    medians = interleaved_medians(jobs, args.runs)
    regions, pair = medians["regions"], medians["pair"]
    print(f"region generation: {regions:.2f} s; edit pair: {pair:.2f} s ({args.steps} steps, CFG, layout init); "
          f"SD 1.5 UNet and VAE (random weights), {args.size}x{args.size}, {args.threads} thread(s), "
          f"median of {args.runs}")
    if "pair + guidance" in medians:
        guided_s = medians["pair + guidance"]
        print(f"edit pair with multi-region guidance: {guided_s:.2f} s, {guided_s / pair:.2f}x the pair "
              f"without it, {guided_s / regions:.2f}x one region generation")
    print(f"ratio_time={pair / regions:.3f}")
