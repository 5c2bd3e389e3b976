"""Real-image inversion (MRGD §3.3): the DDIM round trip, negative-prompt and null-text inversion, the
cache, bad images, and the command line."""

import numpy as np
import pytest
import torch
from PIL import Image

from lib_regedit.errors import RegEditError
from lib_regedit.inversion import InversionCache, InversionCancelled, inversion_key
from lib_regedit.inversion import ddim
from lib_regedit.inversion.null_text import NullTextOptions, learning_rate, stop_below

DOC = {"prompt": "a red circle and a green square", "regions": [
    {"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
     "target_prompt": "a blue circle"},
    {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a green square"}]}


def picture(size=64, seed=0) -> Image.Image:
    """A smooth picture (blobs of colour), closer to what a VAE keeps than noise."""
    rng = np.random.default_rng(seed)
    small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((size, size), Image.BICUBIC)


@pytest.fixture(scope="module")
def sd():
    from tiny_models import tiny_sd_pipeline

    return tiny_sd_pipeline()


def _error(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


# --- the DDIM path ------------------------------------------------------------------------------------

def test_ddim_round_trip_is_exact_when_the_noise_does_not_change():
    alphas = torch.linspace(0.9999, 0.01, 1000)
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    path = ddim.trajectory(lambda z, t: noise, z0, alphas, 10)
    assert len(path) == 11
    back = ddim.reconstruct(lambda z, t: noise, path[-1], alphas, 10)
    assert torch.allclose(back, z0, atol=1e-5)


def test_ddim_round_trip_on_a_tiny_unet(sd):
    """Plain DDIM inversion reads the noise one level low, and on a random tiny UNet that is far off;
    fixed-point refinement reads it where denoising will, and the round trip becomes exact."""
    from lib_regedit import api

    cond = api.encode(sd, "a red circle")[0]

    def eps(z, t):
        with torch.no_grad():
            return sd.unet(z, t, encoder_hidden_states=cond).sample

    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    errors = {}
    for refine in (0, 1, 6):
        path = ddim.trajectory(eps, z0, sd.scheduler.alphas_cumprod, 50, fixed_point=refine)
        back = ddim.reconstruct(eps, path[-1], sd.scheduler.alphas_cumprod, 50)
        errors[refine] = float((back - z0).abs().mean() / z0.abs().mean())
    assert errors[6] < 1e-3  # measured 3e-5
    assert errors[6] < errors[1] < errors[0]


def test_levels_match_the_samplers_leading_schedule():
    alphas = torch.linspace(0.999, 0.01, 1000)
    timesteps, levels = ddim.levels(alphas, 20)
    assert timesteps[0] == 1 and timesteps[-1] == 951 and len(levels) == 21 and levels[0] == 1.0
    schedule = ddim.denoise_schedule(alphas, 20)
    assert schedule[0][0] == 951 and schedule[-1] == (1, levels[1], 1.0)


def test_null_text_settings_follow_the_paper_at_50_steps():
    options = NullTextOptions()
    assert (options.iterations, options.learning_rate, options.early_stop) == (10, 1e-2, 1e-5)
    assert learning_rate(options, 10, 50) == pytest.approx(1e-2 * 0.9)
    assert stop_below(options, 10, 50) == pytest.approx(1e-5 + 10 * 2e-5)
    assert learning_rate(options, 5, 25) == pytest.approx(learning_rate(options, 10, 50))  # same fraction
    with pytest.raises(RegEditError, match="nulltext.iterations"):
        NullTextOptions(iterations=0)


# --- the three inversions on a tiny pipeline ----------------------------------------------------------

def test_negative_prompt_inversion_is_ddim_inversion_without_guidance_drift(sd):
    """With the source prompts as the negative, CFG reduces to the conditional prediction: the
    reconstruction at CFG 7.5 equals plain DDIM inversion's at CFG 1."""
    from lib_regedit.editing.diffusers_real import edit_image

    image = picture()
    negative = edit_image(sd, image, DOC, inversion="negative", guidance_scale=7.5, steps=6)
    ddim_1 = edit_image(sd, image, DOC, inversion="ddim", guidance_scale=1.0, steps=6)
    ddim_7 = edit_image(sd, image, DOC, inversion="ddim", guidance_scale=7.5, steps=6)
    assert _error(negative.source, ddim_1.source) <= 1.0
    assert _error(negative.source, ddim_7.source) > 1.0
    assert "RegEdit inversion: negative" in negative.target_parameters
    assert "RegEdit pair: source" in negative.source_parameters


@pytest.fixture(scope="module")
def shapesworld():
    from lib_regedit.models import default_model_path, load_pipeline

    return load_pipeline(default_model_path())


def _scene_picture(size=128):
    from lib_regedit.shapesworld.data import BACKGROUNDS, COLOURS, Scene, ShapeObject, render

    return render(Scene(BACKGROUNDS[0], (ShapeObject("circle", "red", (0.05, 0.3, 0.4, 0.4), COLOURS["red"]),
                                         ShapeObject("square", "blue", (0.55, 0.3, 0.4, 0.4), COLOURS["blue"]))),
                  size)


SCENE_DOC = {"prompt": "a red circle and a blue square", "regions": [
    {"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
     "target_prompt": "a green circle"},
    {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a blue square"}]}


def test_reconstructions_on_the_bundled_model(shapesworld):
    """A rendered picture (not one the model made), 10 steps: negative-prompt inversion with one
    fixed-point refinement reconstructs it near the VAE's own round trip; plain DDIM inversion at CFG
    7.5 drifts, and null-text inversion at the paper's settings pulls the same pivot back (measured:
    30.9, 23.1 and 30.4 dB; the VAE 31.2)."""
    from lib_regedit.editing.diffusers_real import edit_image
    from lib_regedit.evaluation.inversion_eval import psnr

    image = _scene_picture()
    psnrs = {}
    for method, extra in (("negative", {}), ("ddim", {"fixed_point": 0}), ("nulltext", {"fixed_point": 0})):
        result = edit_image(shapesworld, image, SCENE_DOC, inversion=method, steps=10, **extra)
        psnrs[method] = psnr(result.source, image)
    assert psnrs["negative"] > 28, psnrs
    assert psnrs["nulltext"] > psnrs["ddim"] + 4, psnrs


def test_null_text_optimises_one_set_per_step_and_region(sd):
    """The structure on a tiny model (whose random cross-attention barely reads the text, so the
    error it can remove is small; the bundled model's test above measures that)."""
    from lib_regedit.editing.diffusers_real import edit_image

    tuned = edit_image(sd, picture(seed=3), DOC, inversion="nulltext", steps=4, nulltext=NullTextOptions(3, 0.1))
    inversion = tuned.extras["inversion"]
    assert len(inversion.null_sets) == 4 and len(inversion.losses) == 4
    first = inversion.null_sets[0]
    assert len(first.regions) == 2 and first.background is not None
    assert not torch.equal(first.regions[0], first.total)  # each region's null context moved on its own
    assert "RegEdit inversion: nulltext" in tuned.target_parameters


def test_edit_image_on_sdxl():
    from tiny_models import tiny_sdxl_pipeline

    from lib_regedit.editing.diffusers_real import edit_image

    pipe = tiny_sdxl_pipeline()
    for method in ("negative", "nulltext"):
        result = edit_image(pipe, picture(), DOC, inversion=method, steps=3, nulltext=NullTextOptions(2))
        assert result.source.size == result.target.size == (64, 64)


# --- the cache ----------------------------------------------------------------------------------------

def test_cache_key_names_everything_the_inversion_depends_on():
    image = picture()
    base = dict(image=image, model_id="m", source_document="{}", negative_prompt="", method="nulltext", steps=20,
                guidance_scale=7.5, settings={"lr": 0.01})
    key = inversion_key(**base)
    assert key == inversion_key(**dict(base, image=picture()))  # same pixels, same key
    changed = image.copy()
    changed.putpixel((0, 0), (0, 0, 0))
    for change in (dict(image=changed), dict(model_id="n"), dict(source_document='{"a":1}'), dict(negative_prompt="x"),
                   dict(method="ddim"), dict(steps=10), dict(guidance_scale=5.0), dict(settings={"lr": 0.1})):
        assert inversion_key(**dict(base, **change)) != key, change
    # the CFG scale changes only null-text's result
    negative = dict(base, method="negative")
    assert inversion_key(**negative) == inversion_key(**dict(negative, guidance_scale=3.0))


def test_cache_skips_a_second_inversion_and_is_bounded(sd, tmp_path, monkeypatch):
    from lib_regedit.editing import diffusers_real, real_edit

    cache = InversionCache(folder=tmp_path)
    first = diffusers_real.edit_image(sd, picture(), DOC, steps=4, cache=cache)
    assert not first.extras["cached"] and len(cache) == 1 and len(list(tmp_path.glob("*.pt"))) == 1
    monkeypatch.setattr(real_edit, "invert_source", lambda *a, **k: pytest.fail("inverted again"))
    second = diffusers_real.edit_image(sd, picture(), DOC, steps=4, cache=cache)
    assert second.extras["cached"] and _error(first.target, second.target) == 0
    # from disk, in a fresh cache (the command line's --cache-dir)
    third = diffusers_real.edit_image(sd, picture(), DOC, steps=4, cache=InversionCache(folder=tmp_path))
    assert third.extras["cached"] and _error(first.target, third.target) == 0
    # a bound smaller than one inversion keeps nothing in memory
    small = InversionCache(max_bytes=16)
    small.put("k", first.extras["inversion"])
    assert len(small) == 0


def test_a_cancelled_inversion_leaves_nothing_cached(sd, tmp_path):
    from lib_regedit.editing.diffusers_real import edit_image

    cache = InversionCache(folder=tmp_path)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(InversionCancelled) as info:
        edit_image(sd, picture(), DOC, inversion="nulltext", steps=4, cache=cache, cancel=cancel)
    assert info.value.field == "inversion" and "nothing was cached" in str(info.value)
    assert len(cache) == 0 and not list(tmp_path.iterdir())
    # the pipeline is left clean: a plain generation still runs
    from lib_regedit.api import generate_plain

    generate_plain(sd, "a cat", steps=2)


# --- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda: Image.new("F", (64, 64)), "float pixels"),  # transparency, palettes, 16-bit: tests/test_images.py
    (lambda: Image.new("RGB", (60, 64)), "crop or resize it to 56x64"),
    (lambda: np.zeros((64, 64, 3)), "is not an image"),
])
def test_bad_pictures_are_refused_before_any_work(sd, monkeypatch, make, words):
    from lib_regedit.editing import diffusers_real, real_edit

    monkeypatch.setattr(real_edit, "invert_source", lambda *a, **k: pytest.fail("inversion started"))
    with pytest.raises(RegEditError) as info:
        diffusers_real.edit_image(sd, make(), DOC)
    assert info.value.field.startswith("image") and words in str(info.value)


def test_a_region_that_covers_nothing_is_refused(sd, monkeypatch):
    from lib_regedit.editing import diffusers_real, real_edit

    monkeypatch.setattr(real_edit, "invert_source", lambda *a, **k: pytest.fail("inversion started"))
    tiny = dict(DOC, regions=[dict(DOC["regions"][0], w=0.01, h=0.01), DOC["regions"][1]])
    with pytest.raises(RegEditError) as info:
        diffusers_real.edit_image(sd, picture(), tiny)
    assert info.value.field == "regions[0]" and "less than one latent cell" in str(info.value)
    with pytest.raises(RegEditError, match="inversion"):
        diffusers_real.edit_image(sd, picture(), DOC, inversion="magic")


# --- the command line on the bundled model ------------------------------------------------------------

def test_edit_regions_image_command(tmp_path, capsys):
    import json

    from lib_regedit.cli import main
    from lib_regedit.shapesworld.data import BACKGROUNDS, COLOURS, Scene, ShapeObject, render

    scene = Scene(BACKGROUNDS[0], (ShapeObject("circle", "red", (0.05, 0.3, 0.4, 0.4), COLOURS["red"]),
                                   ShapeObject("square", "blue", (0.55, 0.3, 0.4, 0.4), COLOURS["blue"])))
    render(scene, 128).save(tmp_path / "in.png")
    doc = {"prompt": "a red circle and a blue square", "regions": [
        {"x": 0.05, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
         "target_prompt": "a green circle"},
        {"x": 0.55, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a blue square"}]}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    args = ["edit-regions", "--image", str(tmp_path / "in.png"), "--regions", str(tmp_path / "doc.json"),
            "--out", str(tmp_path / "out.png"), "--out-source", str(tmp_path / "rec.png"), "--steps", "4",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "note: negative inversion, 4 steps, " in first.out and "inverting: 100%" in first.err
    out = Image.open(tmp_path / "out.png")
    assert out.size == (128, 128) and "RegEdit inversion: negative" in out.info["parameters"]
    assert Image.open(tmp_path / "rec.png").info["parameters"].count("RegEdit pair: source") == 1
    assert main(args) == 0
    printed = capsys.readouterr()
    # the second run says where its inversion came from, without claiming the first run's seconds, and
    # shows no inversion bar: only the edit's, to its true total
    assert "negative inversion, 4 steps, read from the cache" in printed.out and " s\n" not in printed.out
    assert "inverting" not in printed.err and "editing: 100%" in printed.err and "4/4" in printed.err
    # bad input: a clear message, exit code 2
    Image.new("F", (128, 128)).save(tmp_path / "float.tif")
    assert main(args[:2] + [str(tmp_path / "float.tif")] + args[3:]) == 2
    assert "RegEdit: --image: the image has float pixels" in capsys.readouterr().err
    assert main(["edit-regions", "--image", str(tmp_path / "in.png"), "--regions", str(tmp_path / "doc.json")]) == 2
    assert "--out" in capsys.readouterr().err


def test_added_and_removed_boxes_start_from_noise_and_removals_take_the_plain_negative():
    """An inverted latent holds the picture's objects where they were: inside added and removed boxes
    the target starts from seeded noise, and inside removed boxes its unconditional prediction is the
    plain negative prompt's (the inversion's would keep the object)."""
    from lib_regedit.editing.diffusers_edit import parse_pair
    from lib_regedit.editing.real_edit import RealEdit, _target_start
    from lib_regedit.inversion.null_text import NullTextOptions as Options

    doc = parse_pair({"regions": [
        {"x": 0.0, "y": 0.0, "w": 0.5, "h": 0.5, "prompt": "a cat", "edit": "remove"},
        {"x": 0.5, "y": 0.5, "w": 0.5, "h": 0.5, "prompt": "a dog", "edit": "add"},
        {"x": 0.5, "y": 0.0, "w": 0.5, "h": 0.5, "prompt": "a hat", "edit": "change", "target_prompt": "a cap"}]})

    def edit(method):
        return RealEdit(None, None, None, None, method, 4, 7.5, Options(), 1, doc)

    latent = torch.zeros(1, 4, 8, 8)
    start = _target_start(latent, edit("negative"))
    assert start[..., :4, :4].abs().sum() > 0 and start[..., 4:, 4:].abs().sum() > 0  # removed, added: noise
    assert start[..., :4, 4:].abs().sum() == 0 and start[..., 4:, :4].abs().sum() == 0  # changed, kept: inverted
    assert torch.equal(start, _target_start(latent, edit("negative")))  # seeded
    mask = edit("negative").removal_mask(8, 8)
    assert mask[:4, :4].all() and mask.sum() == 16  # the removed box only
    assert edit("ddim").removal_mask(8, 8) is None  # DDIM's negative is the plain one already


def test_the_target_keeps_the_reconstruction_outside_the_edited_boxes(sd):
    """``keep_outside``: outside the edited boxes (grown by a margin, soft-edged) the target's latent is
    the reconstruction's at every step, so only the edited area can change."""
    from lib_regedit.editing.diffusers_edit import parse_pair
    from lib_regedit.editing.diffusers_real import edit_image
    from lib_regedit.editing.real_edit import RealEdit

    doc = parse_pair(DOC)
    area = RealEdit(None, None, None, None, "negative", 4, 7.5, NullTextOptions(), 1, doc).edit_area(20, 20)
    assert area[10, 4] == 1 and area[0, 19] == 0 and area[10, 12] == 0  # the changed box, a corner, the kept box
    assert 0 < float(area[4, 4]) < 1  # the soft margin
    whole = parse_pair({"prompt": "a field", "regions": [{"x": 0, "y": 0, "w": 1, "h": 1, "role": "background",
                                                          "prompt": "a field", "edit": "change",
                                                          "target_prompt": "a beach"}]})
    assert RealEdit(None, None, None, None, "negative", 4, 7.5, NullTextOptions(), 1, whole).edit_area(8, 8) is None

    own = edit_image(sd, picture(), dict(DOC, edit={"paste_outside": False}), steps=4)
    source, target = (np.asarray(im, dtype=float) for im in (own.source, own.target))
    right = (slice(None), slice(40, 64))  # the kept square's side, far from the changed box
    left = (slice(20, 44), slice(4, 28))
    assert np.abs(source[right] - target[right]).mean() < 0.25 * np.abs(source[left] - target[left]).mean()
    # pasted back (the default): outside the edit area the pixels are the picture's own
    pasted = np.asarray(edit_image(sd, picture(), DOC, steps=4).target, dtype=float)
    assert np.array_equal(pasted[right], np.asarray(picture(), dtype=float)[right])
    from lib_regedit.compositing import seamless_paste
    from lib_regedit.editing.real_edit import edit_area

    harmonised = seamless_paste(picture(), own.target, edit_area(doc, 64, 64).numpy())
    assert np.array_equal(pasted[left], np.asarray(harmonised, dtype=float)[left])  # inside, the edit, harmonised
    old = np.asarray(edit_image(sd, picture(), dict(DOC, version=3), steps=4).target, dtype=float)
    assert np.array_equal(old[left], target[left])  # version 3: the edit's own pixels


def test_null_text_counts_its_own_steps(tmp_path, capsys):
    """Each phase of a picture's edit has its bar and its own total: null-text counted to 40 for a 20-step
    run (the inversion's steps and its own together)."""
    import json

    from lib_regedit.cli import main
    from lib_regedit.models import default_model_path

    if not (default_model_path() / "model_index.json").exists():
        pytest.skip("the bundled model is missing")
    picture = Image.new("RGB", (64, 64), (235, 235, 230))
    picture.paste((220, 40, 40), (8, 20, 30, 44))
    picture.save(tmp_path / "in.png")
    (tmp_path / "doc.json").write_text(json.dumps({"prompt": "a red circle", "regions": [
        {"x": 0.1, "y": 0.3, "w": 0.4, "h": 0.4, "prompt": "a red circle", "edit": "change",
         "target_prompt": "a green circle"}]}))
    assert main(["edit-regions", "--image", str(tmp_path / "in.png"), "--regions", str(tmp_path / "doc.json"),
                 "--out", str(tmp_path / "out.png"), "--steps", "3", "--inversion", "nulltext",
                 "--nulltext-iterations", "1"]) == 0
    err = capsys.readouterr().err
    for phase in ("inverting", "null-text", "editing"):
        assert f"{phase}: 100%" in err and f"{phase}: 100%|██████████| 3/3" in err, phase
    assert "/6" not in err
