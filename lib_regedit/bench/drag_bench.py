"""``python -m lib_regedit.bench drag``: one RegionDrag edit against one plain txt2img, whole runs.

Both run on one Stable Diffusion pipeline with the full SD 1.5 UNet and VAE architectures (random
weights; the text encoder is a one-layer CLIP of SD's width, as its cost is the same for both), at
256x256 and the same number of steps, interleaved over ``--runs`` rounds (the order alternates each
round, so machine load hits both alike); medians are compared. The plain run does ``steps`` UNet
evaluations of batch 2 (classifier-free guidance) and a VAE decode; the drag does
``2 * start_t * steps`` evaluations of batch 1 (inversion and denoise, no guidance), a VAE encode and
decode, the dense mapping, the copy-paste and the key/value cache, and (drag document version 2) the
handle's fill from its surroundings and the seamless paste. The same drag with version 1's settings
(RegionDrag's own fill and feathered paste) runs beside it. The limit of the ratio is near 0.5; the
goal is at most 0.7. Last line: ``ratio_time=X`` (the current version's).
"""

from __future__ import annotations

import torch
from PIL import Image

from .interleaved import interleaved_medians

DRAG = {"pairs": [{"handle": {"type": "polygon", "points": [[0.1, 0.1], [0.45, 0.1], [0.45, 0.45], [0.1, 0.45]]},
                   "target": {"type": "polygon", "points": [[0.5, 0.5], [0.85, 0.5], [0.85, 0.85], [0.5, 0.85]]}}]}


def sd15_pipeline(size: int):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..tokenizer import build_clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=size // 8, cross_attention_dim=768).eval()  # SD 1.5's UNet
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).eval()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=1,
                                        num_attention_heads=12, max_position_embeddings=77, vocab_size=49408)).eval()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=build_clip_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(args) -> None:
    from ..api import generate_plain
    from ..drag.diffusers_drag import drag
    from ..drag.region_drag import DragOptions

    torch.set_num_threads(args.threads)
    pipe = sd15_pipeline(args.size)
    image = Image.new("RGB", (args.size, args.size), (200, 200, 200))
    options = DragOptions(steps=args.steps)
    original = DragOptions(steps=args.steps, match_surroundings=False, grow_handles=False)  # version 1
    jobs = {
        "plain": lambda: generate_plain(pipe, "a photo", seed=0, steps=args.steps, width=args.size, height=args.size),
        "drag": lambda: drag(pipe, image, DRAG, prompt="a photo", seed=0, options=options, progress=False),
        "drag v1": lambda: drag(pipe, image, dict(DRAG, version=1), prompt="a photo", seed=0, options=original,
                                progress=False),
    }
    medians = interleaved_medians(jobs, args.runs)
    plain, dragged, first = medians["plain"], medians["drag"], medians["drag v1"]
    print(f"plain txt2img: {plain:.2f} s ({args.steps} steps, CFG batch 2); drag: {dragged:.2f} s "
          f"({options.evaluations} batch-1 evaluations); SD 1.5 UNet and VAE (random weights), "
          f"{args.size}x{args.size}, {args.threads} thread(s), median of {args.runs}")
    print(f"drag document version 1 (RegionDrag's own fill): {first:.2f} s, ratio_time_v1={first / plain:.3f}; "
          f"version 2 against version 1: {dragged / first:.3f}")
    print(f"ratio_time={dragged / plain:.3f}")
