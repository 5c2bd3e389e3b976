"""A mask picture: regions painted in flat colours, each colour named by one region of the document.

::

    {"mask_image": "<base64 PNG or data URL>",
     "regions": [{"colour": "#ff0000", "prompt": "a red circle"}, {"colour": "#0000ff", "prompt": "a blue square"}]}

- Each pixel belongs to the region whose colour is nearest to it, within ``MATCH_TOLERANCE`` on
  every channel (so a JPEG's or a soft brush's near-colours count); pixels further from every named
  colour, and transparent pixels (alpha below half), belong to no region: a note says how much of
  the picture that is and which colours it holds. A region naming a colour the picture lacks is an
  error.
- A picture whose size differs from the image is **scaled** to it, each region's mask area-averaged
  (nearest on the labels, then soft where a cell straddles an edge), with a note; one whose aspect
  ratio differs is stretched, and the note says so.
- In the infotext and ``to_json`` the picture is its run-length encoding
  (``{"width", "height", "colours", "runs"}``, ``runs`` as ``label*count`` over rows, label 0 for no
  region and ``k`` for ``colours[k-1]``), so pasting restores it. An encoding longer than
  ``MAX_RUNS_CHARS`` is recorded as the picture's SHA-256 instead, with a note; such a document needs
  the picture given again (``--mask-image``, or ``mask_image`` as a PNG).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

from ..errors import RegEditError
from .fields import type_name

MATCH_TOLERANCE = 24  # largest per-channel difference (0..255) at which a pixel still takes a named colour
MAX_PICTURE_SIDE = 4096
MAX_RUNS_CHARS = 50_000
COLOUR_RE = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
PICTURE_FIX = ('give the mask picture as a base64 PNG or a data URL ("data:image/png;base64,..."), '
               "or on the command line as --mask-image PNG")


class MaskPicture:
    """A label map (H, W) of uint8: 0 for no region, ``k`` for ``colours[k - 1]``. Immutable; equal
    (and hashed) by size, colours and content."""

    def __init__(self, labels: np.ndarray, colours: tuple[str, ...], notes: tuple[str, ...] = ()):
        import numpy as np

        self.labels = np.ascontiguousarray(labels, dtype=np.uint8)
        self.labels.setflags(write=False)
        self.colours = tuple(colours)
        self.notes = tuple(notes)
        self.digest = hashlib.sha256(self.labels.tobytes() + repr((self.labels.shape, self.colours)).encode()).hexdigest()

    @property
    def height(self) -> int:
        return int(self.labels.shape[0])

    @property
    def width(self) -> int:
        return int(self.labels.shape[1])

    def __eq__(self, other) -> bool:
        return isinstance(other, MaskPicture) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"MaskPicture({self.width}x{self.height}, {list(self.colours)}, sha256 {self.digest[:12]})"

    def __deepcopy__(self, memo):
        return self

    def region(self, colour: str) -> np.ndarray:
        """The boolean (H, W) mask of ``colour``."""
        import numpy as np

        return self.labels == (self.colours.index(colour) + 1)

    def to_dict(self) -> dict:
        """The run-length encoding, or the SHA-256 when the encoding is longer than ``MAX_RUNS_CHARS``."""
        runs = run_length(self.labels)
        data = {"width": self.width, "height": self.height, "colours": list(self.colours)}
        if len(runs) > MAX_RUNS_CHARS:
            return {**data, "sha256": self.digest}
        return {**data, "runs": runs}


@dataclass(frozen=True)
class ColourArea:
    """A region's area in a mask picture: the pixels of ``colour``."""

    picture: MaskPicture
    colour: str
    type: str = "colour"

    def bbox(self, aspect: float = 1.0) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) in fractions."""
        import numpy as np

        ys, xs = np.nonzero(self.picture.region(self.colour))
        h, w = self.picture.labels.shape
        return float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h)


def normalise_colour(value: Any, field: str) -> str:
    """``"#rrggbb"`` (lower case) from ``"#rrggbb"`` or ``"#rgb"``."""
    if not isinstance(value, str) or not COLOUR_RE.match(value.strip()):
        shown = repr(value[:20]) if isinstance(value, str) else type_name(value)
        raise RegEditError(field, f"{shown} is not a colour", 'write it as "#rrggbb", e.g. "#ff0000" for red')
    hexa = value.strip()[1:].lower()
    if len(hexa) == 3:
        hexa = "".join(c * 2 for c in hexa)
    return "#" + hexa


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def run_length(labels: np.ndarray) -> str:
    """``label*count`` runs over the rows, joined by commas."""
    import numpy as np

    flat = labels.reshape(-1)
    if flat.size == 0:
        return ""
    starts = np.flatnonzero(np.diff(flat.astype(np.int16))) + 1
    starts = np.concatenate([[0], starts])
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    return ",".join(f"{int(flat[s])}*{int(c)}" for s, c in zip(starts, counts))


def from_runs(runs: str, width: int, height: int, labels: int, field: str) -> np.ndarray:
    import numpy as np

    out = np.zeros(width * height, dtype=np.uint8)
    at = 0
    for i, run in enumerate(runs.split(",") if runs else []):
        try:
            label, count = (int(v) for v in run.split("*"))
        except ValueError:
            raise RegEditError(f"{field}.runs", f"run {i} ({run[:20]!r}) is not label*count",
                               "paste the document as RegEdit wrote it, or give the picture itself") from None
        if not 0 <= label <= labels or count <= 0 or at + count > out.size:
            raise RegEditError(f"{field}.runs", f"run {i} ({run[:20]!r}) does not fit a {width}x{height} picture "
                                                f"of {labels} colours",
                               "paste the document as RegEdit wrote it, or give the picture itself")
        out[at:at + count] = label
        at += count
    if at != out.size:
        raise RegEditError(f"{field}.runs", f"the runs cover {at} pixels, not {width}x{height}",
                           "paste the document as RegEdit wrote it, or give the picture itself")
    return out.reshape(height, width)


def decode_image(value: Any, field: str):
    """A PIL image from a PIL image, PNG bytes, or a base64 string / data URL."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        image = value
    else:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("data:"):
                text = text.split(",", 1)[1] if "," in text else ""
            try:
                value = base64.b64decode(text, validate=False)
            except (binascii.Error, ValueError):
                raise RegEditError(field, "is not base64", PICTURE_FIX) from None
        if not isinstance(value, (bytes, bytearray)):
            raise RegEditError(field, f"expected a picture, got {type_name(value)}", PICTURE_FIX)
        try:
            image = Image.open(io.BytesIO(value))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError):
            raise RegEditError(field, "is not a picture RegEdit can read", PICTURE_FIX) from None
    if max(image.size) > MAX_PICTURE_SIDE or min(image.size) < 1:
        raise RegEditError(field, f"the picture is {image.width}x{image.height}",
                           f"give a picture of at most {MAX_PICTURE_SIDE} pixels a side (the image's own size is best)")
    return image


def picture_from_image(image, colours: list[str], field: str) -> MaskPicture:
    """Each pixel labelled with the nearest of ``colours`` within ``MATCH_TOLERANCE``, else 0."""
    import numpy as np

    rgba = np.asarray(image.convert("RGBA"), dtype=np.int16)
    rgb, opaque = rgba[..., :3], rgba[..., 3] >= 128
    palette = np.array([_rgb(c) for c in colours], dtype=np.int16).reshape(-1, 1, 1, 3)
    distance = np.abs(rgb[None] - palette).max(-1)  # (K, H, W), Chebyshev
    nearest = distance.argmin(0)
    matched = (distance.min(0) <= MATCH_TOLERANCE) & opaque
    labels = np.where(matched, nearest + 1, 0).astype(np.uint8)
    notes = []
    left = ~matched & opaque
    if left.any():
        values, counts = np.unique(rgb[left].reshape(-1, 3), axis=0, return_counts=True)
        top = np.argsort(-counts)[:3]
        shown = ", ".join(f"#{v[0]:02x}{v[1]:02x}{v[2]:02x} ({counts[i] / left.size:.0%})" for i, v in
                          ((i, values[i]) for i in top))
        notes.append(f"mask_image: {left.mean():.0%} of the picture is in colours no region names ({shown}"
                     f"{', ...' if len(values) > 3 else ''}); no region covers it, the background does")
    return MaskPicture(labels, tuple(colours), tuple(notes))


def parse_mask_picture(value: Any, colours: list[str], field: str = "mask_image") -> MaskPicture:
    """The document's ``mask_image``: a picture (base64 PNG, data URL, bytes or a PIL image), or the
    run-length encoding ``to_json`` writes. ``colours``: the regions' colours, in order."""
    if not colours:
        raise RegEditError(field, "no region names a colour of the mask picture",
                           'give each region of the picture its "colour", e.g. {"colour": "#ff0000", "prompt": "..."}')
    if isinstance(value, MaskPicture):  # a parsed document's own (``RegionDocument.to_dict``)
        return MaskPicture(_relabelled(value.labels, list(value.colours), colours), tuple(colours), value.notes)
    if isinstance(value, dict):
        return _from_encoding(value, colours, field)
    return picture_from_image(decode_image(value, field), colours, field)


def _from_encoding(obj: dict, colours: list[str], field: str) -> MaskPicture:
    import numpy as np

    from .fields import get_list, get_number, get_string, reject_unknown

    reject_unknown(obj, ("width", "height", "colours", "runs", "sha256"), field)
    width = int(get_number(obj, "width", field, required=True, lo=1, hi=MAX_PICTURE_SIDE))
    height = int(get_number(obj, "height", field, required=True, lo=1, hi=MAX_PICTURE_SIDE))
    listed = [normalise_colour(c, f"{field}.colours[{i}]")
              for i, c in enumerate(get_list(obj, "colours", field, max_items=255, required=True))]
    if "runs" not in obj and "sha256" in obj:
        raise RegEditError(field, "the document records only the mask picture's SHA-256 (its run-length "
                                  "encoding was too long for the infotext)", PICTURE_FIX)
    labels = from_runs(get_string(obj, "runs", field, required=True, max_chars=10 * MAX_RUNS_CHARS),
                       width, height, len(listed), field)
    return MaskPicture(_relabelled(labels, listed, colours), tuple(colours))


def _relabelled(labels, listed: list[str], colours: list[str]):
    """``labels`` over ``listed`` colours relabelled to ``colours``, in their order; a listed colour no
    region names is no region."""
    import numpy as np

    remap = np.zeros(len(listed) + 1, dtype=np.uint8)
    for k, colour in enumerate(listed):
        remap[k + 1] = colours.index(colour) + 1 if colour in colours else 0
    return remap[labels]


def check_colour_present(picture: MaskPicture, colour: str, field: str) -> None:
    if not picture.region(colour).any():
        raise RegEditError(field, f"the mask picture has no {colour} pixels",
                           "paint this region in that colour in the picture, or write the colour the picture "
                           "uses for it")


def size_notes(picture: MaskPicture, width: int, height: int) -> list[str]:
    """The note for a picture whose size is not the image's (it is scaled; stretched when the aspect
    ratio differs)."""
    if (picture.width, picture.height) == (width, height):
        return []
    stretched = abs(picture.width * height - picture.height * width) > 0.01 * picture.height * width
    return [f"mask_image: the picture is {picture.width}x{picture.height} and the image {width}x{height}; it was "
            f"scaled to the image{' (stretched: the aspect ratios differ)' if stretched else ''}"]
