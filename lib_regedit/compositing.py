"""The original picture composited back around an edit, as the WebUI's inpainting does: pixels the
edit does not touch stay the original's exactly (RegionDrag, region edits of a picture)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def paste_back(original: Image.Image, edited: Image.Image, mask) -> Image.Image:
    """``edited`` where ``mask`` is 1, ``original`` where it is 0, blended in between. ``mask`` is
    (H, W) or (H, W, 1) in [0, 1] at the edit's size; the original is resized to that size first."""
    edited = edited.convert("RGB")
    original = original.convert("RGB")
    if original.size != edited.size:
        original = original.resize(edited.size, Image.LANCZOS)
    m = np.asarray(mask, dtype=np.float32).reshape(edited.height, edited.width, 1)
    out = np.asarray(original, dtype=np.float32) * (1 - m) + np.asarray(edited, dtype=np.float32) * m
    return Image.fromarray(out.round().astype(np.uint8))


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


MAX_UNKNOWNS = 8192  # pixels solved at once (about 0.1 s); a larger fill is solved at a coarser scale: the correction is smooth


def membrane(residual: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The harmonic (membrane) interpolation into ``inside`` (bool (h, w)) of ``residual`` ((h, w, c),
    read on the pixels next to ``inside``): zero Laplacian inside, equal to ``residual`` just outside;
    ``residual`` unchanged outside. Pérez et al. 2003, *Poisson Image Editing*: a seamless clone is the
    pasted pixels plus this correction (Farbman et al. 2009 compute it as a membrane)."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import spsolve

    h, w = inside.shape
    out = residual.astype(np.float64).copy()
    n = int(inside.sum())
    if n == 0:
        return out
    index = -np.ones((h, w), dtype=np.int64)
    index[inside] = np.arange(n)
    ys, xs = np.nonzero(inside)
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.zeros(n)]
    rhs = np.zeros((n, out.shape[2]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        valid = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        vals[0][valid] += 1.0  # a neighbour beyond the image's edge does not count (no flux there)
        k = np.nonzero(valid)[0]
        neighbour = index[ny[k], nx[k]]
        unknown = neighbour >= 0
        rows.append(k[unknown])
        cols.append(neighbour[unknown])
        vals.append(-np.ones(int(unknown.sum())))
        known = k[~unknown]
        rhs[known] += out[ny[known], nx[known]]
    matrix = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    solution = spsolve(matrix, rhs)
    out[ys, xs] = solution.reshape(n, -1)
    return out


def seamless_paste(original: Image.Image, edited: Image.Image, mask) -> Image.Image:
    """``edited`` inside ``mask`` ((H, W) in [0, 1], soft-edged) and ``original`` outside, with the
    edited pixels shifted by the membrane of their difference from the original around the mask, so
    the fill meets its surroundings without a step: a VAE decoder's mid-block attention shifts the
    tone of a whole decode when part of its latent changes, and a plain paste-back turns that shift
    into a rectangle's edge. Then blended across the mask's soft edge as :func:`paste_back`. Only the
    mask's bounding box (and a pixel around it) is computed."""
    edited = edited.convert("RGB")
    original = original.convert("RGB")
    if original.size != edited.size:
        original = original.resize(edited.size, Image.LANCZOS)
    out = np.array(original)
    m_full = np.asarray(mask, dtype=np.float32).reshape(edited.height, edited.width)
    ys, xs = np.nonzero(m_full > 0)
    if ys.size == 0:
        return Image.fromarray(out)
    y0, y1 = max(0, ys.min() - 1), min(out.shape[0], ys.max() + 2)
    x0, x1 = max(0, xs.min() - 1), min(out.shape[1], xs.max() + 2)
    m = m_full[y0:y1, x0:x1]
    a = out[y0:y1, x0:x1].astype(np.float32)
    b = np.asarray(edited, dtype=np.float32)[y0:y1, x0:x1]
    inside = m > 0
    residual = a - b
    h, w = inside.shape
    scale = 1
    while inside[::scale, ::scale].sum() > MAX_UNKNOWNS:
        scale *= 2
    if scale == 1:
        shift = membrane(residual, inside)
    else:  # the correction is smooth: solve it on every scale-th pixel and stretch it back
        coarse = membrane(residual[::scale, ::scale], inside[::scale, ::scale]).astype(np.float32)
        shift = np.stack([np.asarray(Image.fromarray(coarse[:, :, c], mode="F").resize((w, h), Image.BILINEAR))
                          for c in range(coarse.shape[2])], -1)
    fixed = np.where(inside[:, :, None], b + shift, b)
    blended = a + (fixed - a) * m[:, :, None]
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return Image.fromarray(out)
