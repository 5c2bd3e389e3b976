"""ShapesWorld edit pairs and the instruct fine-tune: exact ground truth, and a training step that
runs on the bundled model and saves a pipeline diffusers loads as an instruct-pix2pix editor."""

import numpy as np
import pytest
import torch

from lib_regedit.shapesworld.data import render_array
from lib_regedit.shapesworld.instruct_data import EDITS, edit_pair
from lib_regedit.models import default_model_path


def test_pairs_are_deterministic_and_say_what_changed():
    pairs = [edit_pair(0, i) for i in range(60)]
    assert [p.instruction for p in pairs] == [edit_pair(0, i).instruction for i in range(60)]
    assert {p.edit for p in pairs} == set(EDITS)
    for p in pairs:
        obj = p.source.objects[p.index]
        assert f"the {obj.colour} {obj.shape}" in p.instruction
        others_before = [o for i, o in enumerate(p.source.objects) if i != p.index]
        if p.edit == "remove":
            assert list(p.target.objects) == others_before and p.instruction.startswith("remove")
        else:
            new = p.target.objects[p.index]
            assert new.box == obj.box and [o for i, o in enumerate(p.target.objects) if i != p.index] == others_before
            if p.edit == "recolour":
                assert new.colour != obj.colour and new.shape == obj.shape and p.instruction.endswith(new.colour)
            else:
                assert new.shape != obj.shape and new.colour == obj.colour and p.instruction.endswith(new.shape)
        assert not np.array_equal(render_array(p.source), render_array(p.target))


def test_widened_unet_starts_as_the_text_to_image_one(sd):
    from lib_regedit.shapesworld.instruct_train import widen_unet

    wide = widen_unet(sd.unet)
    x = torch.randn(1, 4, 16, 16)
    context = torch.randn(1, 77, sd.unet.config.cross_attention_dim)
    with torch.no_grad():
        a = sd.unet(x, 10, encoder_hidden_states=context).sample
        b = wide(torch.cat([x, torch.randn_like(x)], 1), 10, encoder_hidden_states=context).sample
    torch.testing.assert_close(a, b)


def test_a_short_run_saves_an_instruct_pipeline(tmp_path):
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from lib_regedit.shapesworld.data import render
    from lib_regedit.shapesworld.instruct_train import main

    main(["--out", str(tmp_path / "instruct"), "--steps", "2", "--batch", "4", "--threads", "1"])
    assert (tmp_path / "instruct" / "next_start.txt").read_text().strip() == "8"
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(tmp_path / "instruct"), local_files_only=True)
    assert pipe.unet.config.in_channels == 8
    pipe.set_progress_bar_config(disable=True)
    pair = edit_pair(7, 3)
    image = pipe(pair.instruction, image=render(pair.source), num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
