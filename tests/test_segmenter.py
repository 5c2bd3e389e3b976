"""The MRGD segmenter (CLIPSeg through transformers) and the ShapesWorld segmenter trainer.

Tiny random CLIPSeg models are built from configs and saved to tmp_path; nothing is downloaded.
"""

import json

import numpy as np
import pytest
import torch

from lib_regedit.editing.segmenter import Segmenter, load_segmenter
from lib_regedit.errors import RegEditError
from lib_regedit.shapesworld import segmenter_train as st
from lib_regedit.shapesworld.data import Scene, ShapeObject, render_array, scene_for
from lib_regedit.shapesworld.segmentation_data import object_mask, queries_for

torch.set_num_threads(1)


def tiny_config(image_size=32):
    return st.small_config(vision_hidden=32, vision_layers=2, text_hidden=32, text_layers=1, image_size=image_size,
                           patch=8, extract_layers=(0, 1), reduce_dim=16)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from transformers import CLIPSegForImageSegmentation

    torch.manual_seed(0)
    return st.save_folder(CLIPSegForImageSegmentation(tiny_config()), tmp_path_factory.mktemp("seg") / "tiny")


def test_load_segmenter_masks_are_probabilities_and_differentiable(tiny_folder):
    segmenter = load_segmenter(tiny_folder)
    assert isinstance(segmenter, Segmenter) and segmenter.image_size == 32
    images = torch.rand(2, 3, 48, 40, requires_grad=True)
    phrases = ["a red circle", "blue", "a green triangle"]
    masks = segmenter(images, phrases)
    assert masks.shape == (2, 3, 48, 40)
    assert masks.min() >= 0 and masks.max() <= 1
    masks[:, 0].mean().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert tuple(phrases) in segmenter.phrase_tokens
    assert not any(p.requires_grad for p in segmenter.model.parameters())
    # image b with phrase p is the same whether or not other images and phrases share the call
    single = segmenter(images[1:2].detach(), ["blue"])
    torch.testing.assert_close(single[0, 0], masks[1, 1].detach(), atol=1e-5, rtol=1e-4)


def test_folder_loads_with_plain_transformers(tiny_folder):
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    model = CLIPSegForImageSegmentation.from_pretrained(str(tiny_folder), local_files_only=True)
    processor = CLIPSegProcessor.from_pretrained(str(tiny_folder), local_files_only=True)
    assert processor.tokenizer("a red circle").input_ids == [49406, 320, 736, 7117, 49407]
    assert list(processor.image_processor.image_mean) == pytest.approx(st.IMAGE_MEAN)
    assert model.config.vision_config.image_size == 32


def test_missing_folder(tmp_path):
    with pytest.raises(RegEditError) as err:
        load_segmenter(tmp_path / "nowhere")
    assert err.value.field == "segmenter"
    assert "does not exist" in str(err.value) and "save_pretrained" in err.value.fix
    assert "models/shapesworld_clipseg" in err.value.fix


def test_folder_without_config(tmp_path):
    with pytest.raises(RegEditError) as err:
        load_segmenter(tmp_path)
    assert err.value.field == "segmenter" and "config.json" in err.value.problem
    assert "CLIPSeg" in err.value.fix and "save_pretrained" in err.value.fix


def test_wrong_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip_text_model"}))
    with pytest.raises(RegEditError) as err:
        load_segmenter(tmp_path)
    assert err.value.field == "segmenter"
    assert "clip_text_model" in err.value.problem and "clipseg" in err.value.problem
    assert "CLIPSeg" in err.value.fix


def test_missing_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clipseg"}))
    with pytest.raises(RegEditError) as err:
        load_segmenter(tmp_path)
    assert err.value.field == "segmenter" and "tokenizer" in err.value.problem
    assert "tokenizer.save_pretrained" in err.value.fix


def _erode(mask):
    """Pixels whose 3x3 neighbourhood is all in ``mask``."""
    padded = np.pad(mask, 1, constant_values=False)
    h, w = mask.shape
    return np.all([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)


def test_object_mask_matches_rendered_pixels():
    red, blue = (220, 40, 40), (40, 70, 220)
    scene = Scene((250, 250, 250), (ShapeObject("square", "red", (0.1, 0.1, 0.3, 0.3), red),
                                    ShapeObject("triangle", "blue", (0.5, 0.45, 0.4, 0.4), blue),
                                    ShapeObject("circle", "blue", (0.05, 0.6, 0.3, 0.3), blue)))
    image = render_array(scene, 64).astype(float)
    square, triangle, circle = (object_mask(scene, p, 64) for p in ("a red square", "a blue triangle", "a blue circle"))
    for rgb, mask in ((red, square), (blue, triangle + circle)):
        colour = np.abs(image - rgb).sum(-1) < 40  # pixels that show the colour
        assert colour[_erode(mask == 1)].all()  # covered pixels away from the edge (Lanczos rings there)
        assert not colour[_erode(mask == 0)].any()  # and uncovered ones
    for obj in scene.objects:  # each object alone: its coverage read back from the render
        alone = Scene(scene.background, (obj,))
        direction = np.subtract(obj.rgb, 250.0)
        alpha = np.clip((render_array(alone, 64) - 250.0) @ direction / (direction @ direction), 0, 1)
        mask = object_mask(alone, obj.phrase, 64)
        assert ((alpha > 0.5) == (mask > 0.5)).mean() > 0.998
        assert np.abs(alpha - mask).mean() < 0.003
    np.testing.assert_array_equal(object_mask(scene, "red", 64), square)
    np.testing.assert_allclose(object_mask(scene, "blue", 64), triangle + circle, atol=1e-6)
    np.testing.assert_array_equal(object_mask(scene, "circle", 64), circle)
    assert object_mask(scene, "a green circle", 64).max() == 0
    assert object_mask(scene, "a red square", 16).shape == (16, 16)


def test_queries_one_of_each_kind():
    scene = scene_for(0, 5)
    queries = queries_for(scene, np.random.default_rng(0))
    assert [q.kind for q in queries] == ["full", "colour", "kind", "absent"]
    assert queries[0].phrase in {o.phrase for o in scene.objects}
    assert object_mask(scene, queries[3].phrase).max() == 0 and object_mask(scene, queries[0].phrase).max() == 1


def test_evaluate_scores_an_oracle_perfectly():
    seen = iter(range(10))

    def oracle(images, phrases):
        scene = scene_for(st.EVAL_SEED, next(seen))
        return torch.from_numpy(np.stack([object_mask(scene, p) for p in phrases]))[None]

    scores = st.evaluate(oracle, scenes=4)
    assert scores == {"full": 1.0, "colour": 1.0, "kind": 1.0, "absent": 0.0}


def test_loss_and_schedule():
    target = torch.zeros(2, 8, 8)
    target[0, 2:5, 2:5] = 1
    good = (target * 2 - 1) * 8
    assert st.segmentation_loss(good, target) < st.segmentation_loss(torch.zeros(2, 8, 8), target)
    assert st.learning_rate(0, 1000, 1e-3) < st.learning_rate(199, 1000, 1e-3) == pytest.approx(1e-3)
    assert st.learning_rate(1000, 1000, 1e-3) == pytest.approx(5e-5)


def test_training_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "run"
    common = ["--out", str(out), "--tiny", "--scenes", "2", "--eval-every", "0", "--eval-scenes", "2"]
    st.main(common + ["--max-steps", "2"])
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2 and "optimizer" in state
    assert (out / "model" / "config.json").exists()
    st.main(common + ["--max-steps", "4"])
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 4
    log = (out / "train.log").read_text()
    assert "resume at step 2" in log and "through load_segmenter" in log
    scores = st.export(out, tmp_path / "shipped", scenes=2)
    assert set(scores) == {"full", "colour", "kind", "absent"}
    assert load_segmenter(tmp_path / "shipped").model.dtype == torch.float32


def test_bundled_segmenter():
    """models/shapesworld_clipseg (TRAINING.md): held-out masks through the differentiable path, and the
    folder read by plain transformers gives the same logits."""
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    from lib_regedit.models import default_segmenter_path

    folder = default_segmenter_path()
    if not (folder / "config.json").exists():
        pytest.skip(f"{folder} is not there")
    segmenter = load_segmenter(folder)
    scores = st.evaluate(segmenter, scenes=20)
    assert scores["full"] > 0.8 and scores["colour"] > 0.8 and scores["kind"] > 0.8 and scores["absent"] < 0.02
    image = torch.tensor(render_array(scene_for(st.EVAL_SEED, 0))).permute(2, 0, 1)[None].float() / 255
    image.requires_grad_(True)
    ours = segmenter(image, ["a red circle"])
    ours.sum().backward()
    assert image.grad.abs().sum() > 0
    processor = CLIPSegProcessor.from_pretrained(str(folder), local_files_only=True)
    model = CLIPSegForImageSegmentation.from_pretrained(str(folder), local_files_only=True).float()
    inputs = processor.tokenizer(["a red circle"], return_tensors="pt")
    pixels = (image.detach() - torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)) / \
        torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(input_ids=inputs.input_ids, pixel_values=pixels).logits
    torch.testing.assert_close(torch.sigmoid(logits).view(1, 1, 64, 64), ours.detach(), atol=1e-4, rtol=1e-3)
