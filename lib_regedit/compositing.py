"""The original picture composited back around an edit, as the WebUI's inpainting does: pixels the
edit does not touch stay the original's exactly (RegionDrag, region edits of a picture).

- :func:`paste_back`: the edit inside a (feathered) mask, the original outside;
- :func:`seamless_paste`: the same after the edit's colours are matched to the original's along the
  mask's boundary in the gradient domain (Poisson image editing), so a fill whose tone is off (a cream
  rectangle on white) leaves no patch;
- :func:`harmonic_fill`: the membrane behind it, also what RegionDrag's vacated handle starts from
  (``lib_regedit/drag/fill.py``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _aligned(original: Image.Image, edited: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Both images in RGB, the original resized to the edit's size."""
    edited = edited.convert("RGB")
    original = original.convert("RGB")
    if original.size != edited.size:
        original = original.resize(edited.size, Image.LANCZOS)
    return original, edited


def paste_back(original: Image.Image, edited: Image.Image, mask) -> Image.Image:
    """``edited`` where ``mask`` is 1, ``original`` where it is 0, blended in between. ``mask`` is
    (H, W) or (H, W, 1) in [0, 1] at the edit's size; the original is resized to that size first."""
    original, edited = _aligned(original, edited)
    m = np.asarray(mask, dtype=np.float32).reshape(edited.height, edited.width, 1)
    out = np.asarray(original, dtype=np.float32) * (1 - m) + np.asarray(edited, dtype=np.float32) * m
    return Image.fromarray(out.round().astype(np.uint8))


OUTLIER = 32.0  # grey levels: a boundary difference this far from its ring's median is a structure, not a tone
BAND = 0.02  # of the image width: how far outside the region a structure's boundary pixels are let go


def seamless_paste(original: Image.Image, edited: Image.Image, mask) -> Image.Image:
    """:func:`paste_back` of ``edited`` harmonised with ``original`` first: Pérez, Gangnet & Blake 2003,
    *Poisson Image Editing*, with the edit's own gradients as the guidance field over the region where
    ``mask`` > 0 and the original as its boundary. That solution is the edit plus the harmonic membrane
    of the difference (original - edit) on the boundary (Farbman et al. 2009, *Coordinates for Instant
    Image Cloning*), which is how it is computed here (:func:`harmonic_fill`): everything the edit drew
    inside keeps its shape and contrast, and a tone offset against the surroundings (the model's
    background a few levels off the picture's) is taken out. The feather of ``mask`` then blends the two
    as :func:`paste_back` does.

    Where the boundary crosses something the edit changed (an object the region cuts, drawn elsewhere
    in the edit), the difference there is a structure, not a tone, and a membrane would smear it into
    the region as a coloured glow. So boundary pixels whose difference is more than :data:`OUTLIER`
    levels from the median of their ring are let go (:func:`boundary_difference`): the membrane
    passes over them from the rest of the boundary, and the feather covers the seam they leave."""
    original, edited = _aligned(original, edited)
    m = np.asarray(mask, dtype=np.float32).reshape(edited.height, edited.width)
    region = m > 0
    if not region.any() or region.all():
        return paste_back(original, edited, m)
    e = np.asarray(edited, dtype=np.float64)
    known, free = boundary_difference(np.asarray(original, dtype=np.float64) - e, region,
                                      max(1, round(BAND * edited.width)))
    corrected = e + np.where(region[..., None], harmonic_fill(known, free), 0.0)
    return paste_back(original, Image.fromarray(corrected.clip(0, 255).round().astype(np.uint8)), m)


def boundary_difference(difference: np.ndarray, region: np.ndarray, band: int,
                        outlier=OUTLIER) -> tuple[np.ndarray, np.ndarray]:
    """(the known values, where the membrane is solved) for :func:`harmonic_fill`: ``difference``
    (H, W, C) outside ``region``, and the region with the outliers within ``band`` pixels of it. Per
    part of the region's surroundings, the median over the pixels just outside it is the tone; a pixel
    more than ``outlier`` from it (any channel; a number or one per channel) is an outlier, and the
    known values that remain are clipped to within ``outlier`` of it. :func:`seamless_paste` reads the
    difference between two images; RegionDrag's fill (``drag/fill.py``) the latent around its handle."""
    from scipy import ndimage

    ring = ndimage.binary_dilation(region) & ~region
    near = ndimage.binary_dilation(region, iterations=band + 1)
    parts, count = ndimage.label(near)
    known = np.where(region[..., None], 0.0, difference)
    free = region.copy()
    for part in range(1, count + 1):
        inside = parts == part
        edge = ring & inside
        if not edge.any():
            continue
        tone = np.median(difference[edge], axis=0)
        far = (np.abs(difference - tone) > outlier).any(-1)
        free |= far & inside & ~region & ndimage.binary_dilation(region, iterations=band)
        known[inside & ~region] = np.clip(difference[inside & ~region], tone - outlier, tone + outlier)
    return np.where(free[..., None], 0.0, known), free


def pixel_mask(mask, height: int, width: int, feather: float = 0.0) -> np.ndarray:
    """A (h, w) mask at a coarser resolution (a latent's, bool or [0, 1]) as a float (height, width)
    mask: each cell covers its pixels (nearest), and a Gaussian of ``feather`` pixels softens the edge
    outward only, so every pixel the mask covers stays covered whole (as the WebUI's mask blur, but the
    blur never eats into the region)."""
    from PIL import ImageFilter

    cells = np.asarray(mask, dtype=np.float32)
    image = Image.fromarray((cells * 255).round().astype(np.uint8)).resize((width, height), Image.NEAREST)
    hard = np.asarray(image, dtype=np.float32) / 255
    if feather <= 0:
        return hard
    return np.maximum(hard, np.asarray(image.filter(ImageFilter.GaussianBlur(feather)), dtype=np.float32) / 255)


DIRECT_UNKNOWNS = 40_000  # a membrane with more unknowns is solved at a lower resolution (a smooth function)


def harmonic_fill(values, mask) -> np.ndarray:
    """``values`` (H, W) or (H, W, C) with the pixels under ``mask`` (bool (H, W)) replaced by the
    membrane that solves Laplace's equation there, its boundary the unmasked neighbours' values (the
    4-neighbour discrete Laplacian; the image border is a mirror). A masked part that touches no
    unmasked pixel is left as it was.

    Up to :data:`DIRECT_UNKNOWNS` masked pixels the sparse system is solved directly (about 0.3 s);
    above, the image is averaged over 2x2, 4x4... cells until it has no more, solved there and the
    membrane resized back (bilinear): a membrane is smooth inside its region, and a pixel or two of it
    at the boundary is what the feather of :func:`seamless_paste` covers anyway."""
    from scipy import ndimage

    vals = np.asarray(values, dtype=np.float64)
    flat = vals.reshape(vals.shape[0], vals.shape[1], -1)
    inside = np.asarray(mask, dtype=bool)
    parts, count = ndimage.label(inside)
    if count:
        open_parts = np.unique(parts[ndimage.binary_dilation(~inside) & inside])
        inside = np.isin(parts, open_parts[open_parts > 0])
    if not inside.any():
        return vals.copy()
    return _membrane(flat, inside).reshape(vals.shape)


def _membrane(flat: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """:func:`harmonic_fill` of (H, W, C) ``flat`` where every part of ``inside`` touches a known pixel."""
    from scipy.sparse.linalg import spsolve

    out = flat.copy()
    ys, xs = np.nonzero(inside)
    if ys.size <= DIRECT_UNKNOWNS or min(inside.shape) < 16:
        matrix, rhs = _laplace_system(flat, inside, ys, xs)
        out[ys, xs] = spsolve(matrix.tocsc(), rhs).reshape(ys.size, -1)
        return out
    out[ys, xs] = _coarse_membrane(flat, inside)[ys, xs]
    return out


def _laplace_system(flat: np.ndarray, inside: np.ndarray, ys: np.ndarray, xs: np.ndarray):
    """The sparse system ``A u = b`` of the membrane: one row per masked pixel, its in-image neighbours
    on the diagonal, -1 for each masked neighbour, the known neighbours' values in ``b``."""
    from scipy import sparse

    h, w = inside.shape
    index = -np.ones((h, w), dtype=np.int64)
    n = ys.size
    index[ys, xs] = np.arange(n)
    rows, cols = [np.arange(n)], [np.arange(n)]
    diagonal = np.zeros(n)
    data = []
    rhs = np.zeros((n, flat.shape[2]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        diagonal += ok
        neighbour = np.where(ok, index[ny.clip(0, h - 1), nx.clip(0, w - 1)], -1)
        unknown = ok & (neighbour >= 0)
        rows.append(np.flatnonzero(unknown))
        cols.append(neighbour[unknown])
        data.append(-np.ones(int(unknown.sum())))
        known = ok & (neighbour < 0)
        rhs[known] += flat[ny[known], nx[known]]
    matrix = sparse.csr_matrix((np.concatenate([diagonal] + data), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(n, n))
    return matrix, rhs


def _coarse_membrane(flat: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The membrane solved at half the resolution (a coarse cell is known when any of its pixels is,
    with their mean; recursively while it has too many unknowns) and resized back."""
    h, w, c = flat.shape
    hh, ww = (h + 1) // 2, (w + 1) // 2
    pad = ((0, 2 * hh - h), (0, 2 * ww - w))
    known = np.pad(~inside, pad).reshape(hh, 2, ww, 2).astype(np.float64)
    total = np.stack([np.pad(np.where(inside, 0.0, flat[..., k]), pad).reshape(hh, 2, ww, 2).sum((1, 3))
                      for k in range(c)], -1)
    count = known.sum((1, 3))
    solved = harmonic_fill(total / np.maximum(count, 1)[..., None], count == 0)
    return np.stack([np.asarray(Image.fromarray(solved[..., k].astype(np.float32)).resize((w, h), Image.BILINEAR))
                     for k in range(c)], -1).astype(np.float64)


UNCHANGED_LEVELS = (10.0, 30.0)  # restore_unchanged: below the first the picture's pixel, above the second the edit's
UNCHANGED_BLUR = 1 / 64  # ... the difference map's smoothing (Gaussian sigma), as a fraction of the image width


def restore_unchanged(original: Image.Image, edited: Image.Image, mask, levels=UNCHANGED_LEVELS) -> Image.Image:
    """``edited`` with the pixels it barely changed given back to ``original``, inside ``mask`` > 0. A
    region edit of a picture repaints its whole edit area, and around what it drew the model leaves a
    faint glow of the new colour in the background (a few levels, but over the box it shifts the
    background's tone: the seam of ``eval --inversion``). Per pixel, the largest channel difference
    between the two images, smoothed (``UNCHANGED_BLUR``), gives the edit's share: none below
    ``levels[0]`` grey levels, all of it above ``levels[1]``, linear between, so what the edit drew
    (tens of levels away from the picture) stays whole and its soft edge stays soft."""
    from scipy import ndimage

    original, edited = _aligned(original, edited)
    e = np.asarray(edited, dtype=np.float64)
    o = np.asarray(original, dtype=np.float64)
    difference = ndimage.gaussian_filter(np.abs(e - o).max(axis=2), max(0.5, UNCHANGED_BLUR * edited.width))
    lo, hi = levels
    share = np.clip((difference - lo) / (hi - lo), 0.0, 1.0)
    inside = np.asarray(mask, dtype=np.float32).reshape(edited.height, edited.width) > 0
    share = np.where(inside, share, 1.0)[..., None]
    return Image.fromarray((o + share * (e - o)).clip(0, 255).round().astype(np.uint8))
