"""The found RoI snapped to the object it lands on (``snap``; ours, not LIME's).

LIME (Simsar et al. 2025, §3.1) takes whole k-means segments of the UNet's features. On a small
latent those segments follow part of an object's inside and a strip of the background beside it,
and the edit then changes half an object. The image knows better where its objects end: SLIC
superpixels (Achanta et al. 2012; scikit-image) follow its colour edges, and neighbours of one
colour are merged (a region adjacency graph cut at :data:`MERGE`), so an object SLIC cut in two
comes whole. A superpixel joins the region when at least :data:`SHARE` of it is in the found RoI,
and the rest of the found RoI is dropped (superpixel refinement of a coarse mask, as weakly
supervised segmentation does it). Each connected part of that region then becomes its bounding box:
the box a user would draw around the object, which leaves room for a new shape ("turn the circle
into a square" needs the corners) and which the ground-truth-box row of the LIME eval shows the edit
needs. The result is used as a drawn region is: edited in every latent cell it touches, pasted at
its own pixels.

The image is segmented at :data:`WORK_CELL` pixels per latent cell (64x64 for ShapesWorld's 16x16
latent, 256x256 for SD 1.x at 512), into one superpixel per :data:`CELLS_PER_SEGMENT` latent cells
(LIME's ``segment_cells``), so the same settings mean the same thing at every model's scale. About
2x2 cells a superpixel with a wider colour merge (version 3 of the LIME document; 4x4 cells merged
at 20 before) gives a triangle's tip a superpixel of its own, which the colour merge joins to the
triangle, where a coarser one mixed it with the background and the edit left the tip as it was
(docs/lime.md has the figures).

The same superpixels choose where the RoI is picked (LIME's ``pick``,
:func:`lib_regedit.lime.roi.object_cells`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..masks import mask_at
from .given_roi import touched_cells

SHARE = 0.35  # a superpixel joins the region when this share of it is in the found RoI
CELLS_PER_SEGMENT = 4  # latent cells per superpixel (about 2x2; LIME documents before version 3: 16)
WORK_CELL = 4  # pixels per latent cell at which the image is segmented
COMPACTNESS = 10.0  # SLIC's colour/space balance (scikit-image's default)
MERGE = 40.0  # neighbouring superpixels whose mean colours differ by less (RGB, of 255) are one
# (LIME's colour_merge; LIME documents before version 3: 20)


def superpixels(image: Image.Image, latent_hw: tuple[int, int], cells: int = CELLS_PER_SEGMENT,
                merge: float = MERGE) -> np.ndarray:
    """(h·WORK_CELL, w·WORK_CELL) SLIC labels of ``image`` resized to that grid, one superpixel per
    ``cells`` latent cells, neighbours of one colour merged (a region adjacency graph cut at ``merge``),
    numbered from 0."""
    from skimage import graph
    from skimage.segmentation import slic

    h, w = latent_hw
    small = np.asarray(image.convert("RGB").resize((w * WORK_CELL, h * WORK_CELL), Image.LANCZOS))
    labels = slic(small, n_segments=max(2, (h * w) // cells), compactness=COMPACTNESS, start_label=0)
    if labels.max() > labels.min():  # one segment (SLIC on noise gives one) has no neighbours to merge
        labels = graph.cut_threshold(labels, graph.rag_mean_color(small, labels), merge)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def box_each_part(region: np.ndarray) -> np.ndarray:
    """``region`` (bool) with each of its connected parts (diagonal neighbours connect) replaced by the
    part's bounding box."""
    from scipy import ndimage

    parts, _ = ndimage.label(region, structure=np.ones((3, 3)))
    out = np.zeros(region.shape, dtype=bool)
    for rows, cols in ndimage.find_objects(parts):
        out[rows, cols] = True
    return out


def snap_to_superpixels(image: Image.Image, roi: torch.Tensor, share: float = SHARE,
                        labels: np.ndarray | None = None) -> torch.Tensor:
    """The float (H, W) region at ``image``'s size: the boxes around the superpixels (``labels``, or
    :func:`superpixels` of ``image``) that ``roi`` (bool, at the latent's resolution) covers by at
    least ``share``; around ``roi`` itself when it covers none that much."""
    h, w = roi.shape
    labels = superpixels(image, (h, w)) if labels is None else labels
    inside = mask_at(roi.cpu(), labels.shape).numpy()
    size = np.bincount(labels.ravel())
    covered = np.bincount(labels.ravel(), weights=inside.ravel().astype(np.float64), minlength=len(size))
    chosen = covered / size >= share
    region = box_each_part(chosen[labels] if chosen.any() else inside)
    return mask_at(torch.from_numpy(region), (image.height, image.width)).float()


def snapped_roi(image: Image.Image, roi: torch.Tensor,
                labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent bool RoI, image float RoI): ``roi`` snapped (to ``labels`` when given), then used as a
    drawn region is (every latent cell it touches, and its pixels for the paste)."""
    pixels = snap_to_superpixels(image, roi, labels=labels)
    return touched_cells(pixels, tuple(roi.shape)), pixels
