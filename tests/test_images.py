"""One rule for input pictures and masks in every command and host (``lib_regedit/images.py``, issue 34):
each PIL mode through the one function, then each command showing the same rule."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_regedit import images
from lib_regedit.cli import main
from lib_regedit.errors import RegEditError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def rgb(image) -> np.ndarray:
    out = images.to_rgb(image)
    assert out.mode == "RGB" and out.size == image.size
    return np.asarray(out)


def on_white(rgba: np.ndarray) -> np.ndarray:
    """The stated rule, written out: each channel round((c a + 255 (255 - a)) / 255)."""
    c, a = rgba[..., :3].astype(np.float64), rgba[..., 3:].astype(np.float64)
    return np.floor((c * a + 255 * (255 - a)) / 255 + 0.5).astype(np.uint8)


# --- every mode through the one function -----------------------------------------------------------------

def test_rgb_is_unchanged_and_copied():
    source = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    out = images.to_rgb(source)
    assert np.array_equal(np.asarray(out), np.asarray(source)) and out is not source


def test_rgba_opaque_drops_its_alpha():
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    assert np.array_equal(rgb(Image.fromarray(pixels)), pixels[..., :3])


def test_rgba_transparent_is_composited_onto_white():
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8, 4), dtype=np.uint8)  # every alpha level
    pixels[0, 0] = (10, 200, 30, 0)  # a hidden colour never shows
    pixels[0, 1] = (0, 0, 0, 128)
    out = rgb(Image.fromarray(pixels))
    assert np.array_equal(out, on_white(pixels))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (127, 127, 127)


def test_la_is_grey_composited_onto_white():
    image = Image.new("LA", (2, 1), (100, 255))
    image.putpixel((1, 0), (100, 128))
    assert rgb(image).tolist() == [[[100] * 3, [177] * 3]]  # round((100·128 + 255·127) / 255) = 177


def test_palette_gives_its_colours():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    assert rgb(image).tolist() == [[[255, 0, 0], [0, 128, 255]]]


def test_palette_with_a_transparent_entry_is_composited_onto_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 128, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.png", transparency=1)  # as a GIF or an indexed PNG carries it
    opened = Image.open(tmp_path / "p.png")
    assert opened.mode == "P" and "transparency" in opened.info
    assert rgb(opened).tolist() == [[[255, 0, 0], [255, 255, 255]]]


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_sixteen_bit_is_scaled_not_clipped(tmp_path, mode):
    levels = np.array([[0, 128, 129, 257, 40000, 65535]], dtype=np.uint16)
    image = Image.fromarray(levels)
    if mode == "I":
        image = image.convert("I")
    else:
        image.save(tmp_path / "grey16.png")  # a 16-bit greyscale PNG opens as I;16
        image = Image.open(tmp_path / "grey16.png")
    assert image.mode == mode
    expected = [0, 0, 1, 1, 156, 255]  # round(v / 257); PIL's convert("L") would give 0, 128, 129, 255, 255, 255
    assert rgb(image)[0].tolist() == [[v] * 3 for v in expected]


def test_32_bit_levels_are_clipped_to_16_bits():
    image = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))
    assert image.mode == "I" and rgb(image)[0].tolist() == [[0] * 3, [255] * 3]


def test_greyscale_fills_the_three_channels():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    assert np.array_equal(rgb(Image.fromarray(grey)), np.repeat(grey[..., None], 3, -1))


def test_cmyk_uses_the_stated_formula():
    image = Image.new("CMYK", (1, 1), (100, 50, 0, 30))
    assert rgb(image)[0, 0].tolist() == [round((255 - v) * (255 - 30) / 255) for v in (100, 50, 0)] == [137, 181, 225]


def test_one_bit_is_black_and_white():
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    assert rgb(image).tolist() == [[[0] * 3, [255] * 3]]


@pytest.mark.parametrize("value, words", [
    (Image.new("F", (8, 8), 0.5), "the image has float pixels"),
    (np.zeros((8, 8, 3)), "ndarray is not an image"),
])
def test_what_cannot_be_read_is_refused_naming_the_field(value, words):
    with pytest.raises(RegEditError) as info:
        images.to_rgb(value, field="init_images[0]")
    assert info.value.field == "init_images[0]" and words in info.value.problem and info.value.fix


# --- masks: grey, white inside, transparency outside ------------------------------------------------------

def test_mask_rule():
    strokes = np.zeros((4, 4, 4), np.uint8)
    strokes[..., :3] = 255  # transparent pixels that hide white: still outside
    strokes[1:3, 1:3, 3] = 255
    inside = np.zeros((4, 4), bool)
    inside[1:3, 1:3] = True
    assert np.array_equal(images.mask_array(Image.fromarray(strokes)), inside)
    assert np.array_equal(images.mask_array(Image.fromarray(inside.astype(np.uint8) * 255)), inside)
    assert np.array_equal(images.mask_array(Image.fromarray(inside)), inside)  # mode 1
    assert np.array_equal(images.mask_array(Image.fromarray(inside.astype(np.uint16) * 65535)), inside)  # 16-bit
    assert images.mask_array(Image.new("L", (1, 2), 127)).tolist() == [[False], [False]]
    assert images.mask_array(Image.new("RGB", (1, 1), (255, 255, 0))).tolist() == [[True]]  # luma 226
    assert images.to_mask(Image.new("RGBA", (1, 1), (255, 255, 255, 128))).getpixel((0, 0)) == 128
    with pytest.raises(RegEditError, match="--roi-mask"):
        images.to_mask(Image.new("F", (4, 4)), "--roi-mask")


# --- sizes ------------------------------------------------------------------------------------------------

def test_size_rule():
    image = images.check_image(Image.new("RGBA", (64, 32)), vae_factor=8, native=64)
    assert image.mode == "RGB" and images.check_image_size(image, vae_factor=8, native=64) == (64, 32)
    with pytest.raises(RegEditError) as info:
        images.check_image(Image.new("RGB", (60, 64)), vae_factor=8, native=64)
    assert info.value.field == "image" and "its size 60x64 is not a multiple of 8 on each side" in str(info.value)
    assert info.value.fix == "crop or resize it to 56x64"
    with pytest.raises(RegEditError, match="multiple of 16"):  # the VAE's factor when it is larger
        images.check_image(Image.new("RGB", (72, 64)), vae_factor=16, native=64)
    with pytest.raises(RegEditError, match="far beyond"):
        images.check_image(Image.new("RGB", (512, 512)), vae_factor=8, native=64)
    assert images.check_image(Image.new("RGB", (512, 512)), vae_factor=8, native=64, allow_large=True).size == (512, 512)


# --- every command, the same rule -------------------------------------------------------------------------

SIZE = 32


def transparent_picture(tmp_path) -> tuple[Path, Path]:
    """A picture on a transparent background that hides noise, with an opaque red square and a
    half-transparent blue one; and the same picture composited onto white by the stated rule."""
    rng = np.random.default_rng(3)
    pixels = np.zeros((SIZE, SIZE, 4), np.uint8)
    pixels[..., :3] = rng.integers(0, 256, (SIZE, SIZE, 3))
    pixels[4:14, 4:14] = (220, 30, 30, 255)
    pixels[18:28, 18:28] = (30, 30, 220, 128)
    Image.fromarray(pixels).save(tmp_path / "transparent.png")
    Image.fromarray(on_white(pixels)).save(tmp_path / "flat.png")
    return tmp_path / "transparent.png", tmp_path / "flat.png"


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    from tiny_models import tiny_sd_pipeline

    folder = tmp_path_factory.mktemp("sd") / "pipe"
    tiny_sd_pipeline().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def instruct_folder(tmp_path_factory):
    from tiny_models import tiny_instruct_pipeline

    folder = tmp_path_factory.mktemp("instruct") / "pipe"
    tiny_instruct_pipeline().save_pretrained(folder)
    return folder


def _regions(tmp_path) -> Path:
    path = tmp_path / "regions.json"
    path.write_text(json.dumps({"prompt": "a red square and a blue square", "regions": [
        {"x": 0.1, "y": 0.1, "w": 0.35, "h": 0.35, "prompt": "a red square", "edit": "change",
         "target_prompt": "a green square"},
        {"x": 0.55, "y": 0.55, "w": 0.35, "h": 0.35, "prompt": "a blue square"}]}))
    return path


COMMANDS = {
    "drag": lambda t, m: ["drag", "--drag", str(EXAMPLES / "drag_square.json"), "--model", str(m["sd"]),
                          "--steps", "2"],
    "edit": lambda t, m: ["edit", "--instruction", "make the red square blue", "--model", str(m["instruct"]),
                          "--steps", "2"],
    "edit --lime": lambda t, m: ["edit", "--instruction", "make the red square blue", "--lime", "--clusters", "4",
                                 "--model", str(m["instruct"]), "--steps", "3"],
    "edit-regions --image": lambda t, m: ["edit-regions", "--regions", str(_regions(t)), "--model", str(m["sd"]),
                                          "--steps", "2", "--inversion", "ddim"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_composites_a_transparent_picture_onto_white(tmp_path, sd_folder, instruct_folder, command,
                                                                   capsys):
    """A transparent PNG gives exactly what its white-composited copy gives, in every command (a drag
    of one used to show the noise its transparent pixels hid; the picture's edit refused it)."""
    transparent, flat = transparent_picture(tmp_path)
    args = COMMANDS[command](tmp_path, {"sd": sd_folder, "instruct": instruct_folder})
    outputs = []
    for picture in (transparent, flat):
        out = tmp_path / f"out-{picture.stem}.png"
        assert main(args + ["--image", str(picture), "--out", str(out)]) == 0, capsys.readouterr().err
        outputs.append(np.asarray(Image.open(out).convert("RGB")))
    assert outputs[0].shape == (SIZE, SIZE, 3) and np.array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_float_pixels_alike_before_the_model_loads(tmp_path, monkeypatch, command, capsys):
    import lib_regedit.models as models

    monkeypatch.setattr(models, "load_pipeline", lambda *a, **k: pytest.fail("loaded the model for a bad picture"))
    Image.new("F", (SIZE, SIZE), 0.5).save(tmp_path / "float.tif")
    args = COMMANDS[command](tmp_path, {"sd": tmp_path, "instruct": tmp_path})
    assert main(args + ["--image", str(tmp_path / "float.tif"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("RegEdit: --image: the image has float pixels. Fix: save it as an 8-bit RGB"), err


def test_a_transparent_roi_mask_reads_its_strokes(tmp_path, instruct_folder, capsys):
    """``--roi-mask``: white strokes on a transparent layer give the same edit as a white-on-black mask,
    even where the transparent pixels hide white."""
    _, flat = transparent_picture(tmp_path)
    strokes = np.full((SIZE, SIZE, 4), 255, np.uint8)
    strokes[..., 3] = 0
    strokes[2:16, 2:16, 3] = 255
    Image.fromarray(strokes).save(tmp_path / "strokes.png")
    Image.fromarray((strokes[..., 3] > 0).astype(np.uint8) * 255).save(tmp_path / "grey.png")
    outputs = []
    for mask in ("strokes.png", "grey.png"):
        out = tmp_path / f"out-{mask}"
        assert main(["edit", "--image", str(flat), "--instruction", "make the red square blue", "--lime",
                     "--roi-mask", str(tmp_path / mask), "--model", str(instruct_folder), "--steps", "3",
                     "--out", str(out)]) == 0, capsys.readouterr().err
        outputs.append(np.asarray(Image.open(out).convert("RGB")))
    assert np.array_equal(outputs[0], outputs[1])
    # and outside the mask the picture comes back (keep_outside): the strokes were read, not the hidden white
    assert np.array_equal(outputs[0][20:, 20:], np.asarray(Image.open(flat))[20:, 20:])
