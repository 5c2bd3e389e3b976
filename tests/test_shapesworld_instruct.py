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
    from lib_regedit.shapesworld.model import text_core

    main(["--out", str(tmp_path / "instruct"), "--steps", "2", "--batch", "4", "--threads", "1"])
    assert (tmp_path / "instruct" / "next_start.txt").read_text().strip() == "8"
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(str(tmp_path / "instruct"), local_files_only=True)
    assert pipe.unet.config.in_channels == 8
    pipe.set_progress_bar_config(disable=True)
    pair = edit_pair(7, 3)
    image = pipe(pair.instruction, image=render(pair.source), num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_grounding_targets_are_the_instructions_object_words_at_the_edited_box():
    from types import SimpleNamespace

    from lib_regedit.shapesworld.instruct_train import grounding_targets
    from lib_regedit.tokenizer import build_clip_tokenizer

    tokenizer = build_clip_tokenizer()
    pairs = [edit_pair(0, i) for i in range(12)]
    ids = tokenizer([p.instruction for p in pairs], padding="max_length", max_length=77, return_tensors="pt").input_ids
    positions, boxes, others = grounding_targets(SimpleNamespace(tokenizer=tokenizer), pairs)
    for p, row, pos, box, rest in zip(pairs, ids, positions, boxes, others):
        obj = p.source.objects[p.index]
        words = [tokenizer.decode([int(row[j])]).strip() for j in pos if j >= 0]
        new = [] if p.edit == "remove" else [p.instruction.split()[-1]]
        assert words == [obj.colour, obj.shape] + new  # verbs and stop words carry no target
        assert torch.equal(box, torch.tensor([obj.box] * 3, dtype=box.dtype))
        negatives = [o.box for j, o in enumerate(p.source.objects) if j != p.index]
        assert torch.allclose(rest[:len(negatives)], torch.tensor(negatives, dtype=rest.dtype).reshape(-1, 4))
        assert (rest[len(negatives):] == 0).all()  # empty slots: zero-sized boxes, no negatives


def test_a_grounded_step_returns_its_losses_and_reaches_the_cross_attention_keys():
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    from lib_regedit.shapesworld import grounding
    from lib_regedit.shapesworld.instruct_train import batch, load, train_step

    pipe = load(None)
    store = grounding.install(pipe.unet)
    sources, targets, pairs = batch(0, 0, 4)
    noise_loss, ground, choice = train_step(pipe, sources, targets, pairs, torch.Generator().manual_seed(0), store)
    assert noise_loss.requires_grad and ground.requires_grad and 0 < ground.item() <= 1 and choice is None
    _, _, choice = train_step(pipe, sources, targets, pairs, torch.Generator().manual_seed(0), store, choice=True)
    assert choice.requires_grad and 0 < choice.item() <= 1
    assert len(store) == 6  # the down and up cross-attention layers of ShapesWorld's UNet (2 + 4), not the mid one
    ground.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in pipe.unet.named_parameters() if "attn2.to_k" in n)


def test_text_layers_train_the_first_encoder_layers_and_leave_the_rest_identities(tmp_path):
    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    from transformers import CLIPTextModel

    from lib_regedit.shapesworld.instruct_train import main
    from lib_regedit.shapesworld.model import text_core

    main(["--out", str(tmp_path / "instruct"), "--steps", "2", "--batch", "4", "--threads", "1", "--text-layers", "1",
          "--grounding", "0.05", "--grounding-choice", "0.2"])
    text = CLIPTextModel.from_pretrained(str(tmp_path / "instruct" / "text_encoder"), local_files_only=True)
    layers = text_core(text).encoder.layers
    assert layers[0].self_attn.out_proj.weight.abs().sum() > 0  # no longer an identity: it mixes in earlier words
    assert all(layer.self_attn.out_proj.weight.abs().sum() == 0 and layer.mlp.fc2.weight.abs().sum() == 0
               for layer in layers[1:])  # still exact identities, so the WebUI's clip skip sees the same output
