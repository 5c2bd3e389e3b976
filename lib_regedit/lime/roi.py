"""Finding LIME's region of interest (LIME, Simsar et al. 2025, §3.1).

The outputs of the UNet's attention layers at one step of a first pass are upsampled to one grid,
concatenated and L2-normalised per position; k-means on them segments the image into ``k`` parts.
The parts that hold the positions where the edit tokens' cross-attention peaks are the RoI,
optionally grown by whole cells (``grow``: ours, not the paper's; the WebUI's inpainting calls it mask
padding): on a small latent the segments follow an object's inside and miss its edge.

With the image's superpixels (``segments``; LIME's ``pick: "object"``, ours) the peak is looked for
only inside the superpixel where the edit tokens' attention is highest on average
(:func:`object_cells`): the object the words attend as a whole, not a spike on the rim of another
object that shares a colour or a shape.

:func:`second_peak` says how sure that pick is: the edit tokens' attention at the best place apart
from its peak, as a fraction of the peak. From :data:`UNCERTAIN` up the words point at two places
(on ShapesWorld, typically two objects that share a colour or a shape), and the callers tell the
user to check the preview and give the region.

Pure functions on tensors: :class:`~lib_regedit.attention.effects.roi_capture.RoiCapture` collects
the features and maps during the first pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import RegEditError


@dataclass
class Roi:
    mask: torch.Tensor  # bool (h, w)
    labels: torch.Tensor  # long (h, w): the k-means segmentation
    attention: torch.Tensor  # float (h, w): the edit tokens' mean cross-attention
    seconds: float  # time spent clustering (PCA included)

    @property
    def second_peak(self) -> float:
        return second_peak(self.attention)

    @property
    def uncertain(self) -> bool:
        return self.second_peak >= UNCERTAIN


MAX_OBJECT_SHARE = 0.3  # a superpixel larger than this share of the image is background, not an object
PEAK_SHARE = 0.5  # the peak's place: the cells connected to the peak at this share of it or more
UNCERTAIN = 0.7  # a second place this strong makes the found region uncertain (chosen on the eval's pairs 1-60: docs/lime.md)


def feature_matrix(features: list[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
    """(h·w, C): each (C, h', w') feature map upsampled (bilinear) to ``hw``, concatenated along the
    channels and L2-normalised per position."""
    up = [F.interpolate(f[None].float(), size=hw, mode="bilinear", align_corners=True)[0] for f in features]
    x = torch.cat(up, 0).flatten(1).T
    return F.normalize(x, dim=1)


def reduce_dimension(x: torch.Tensor, max_dim: int) -> torch.Tensor:
    """The first ``max_dim`` principal components of ``x`` (N, C) when C is larger, else ``x``."""
    if x.shape[1] <= max_dim or x.shape[0] <= max_dim:
        return x
    centred = x - x.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(centred, q=max_dim, center=False, niter=2)
    return centred @ v


def cluster(x: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """k-means labels of the rows of ``x`` (scikit-learn, on the CPU)."""
    from sklearn.cluster import KMeans

    n = x.shape[0]
    if k > n:
        raise RegEditError("lime.clusters", f"k = {k} is larger than the {n} feature points of this image",
                           f"use at most {n} clusters (default 8)")
    return KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(x.double().cpu().numpy())


def pick_clusters(labels: torch.Tensor, attention: torch.Tensor, points: int,
                  within: torch.Tensor | None = None) -> torch.Tensor:
    """The union of the clusters holding the ``points`` positions of highest ``attention`` (among the
    ``within`` cells when given)."""
    if within is not None and within.any():
        attention = torch.where(within, attention.float(), torch.tensor(float("-inf")))
        points = min(points, int(within.sum()))
    top = attention.flatten().topk(min(points, attention.numel())).indices
    chosen = labels.flatten()[top].unique()
    return torch.isin(labels, chosen)


def grow_mask(mask: torch.Tensor, cells: int) -> torch.Tensor:
    """``mask`` with every cell within ``cells`` cells (a square neighbourhood) of it added."""
    if cells <= 0:
        return mask
    return F.max_pool2d(mask.float()[None, None], 2 * cells + 1, stride=1, padding=cells)[0, 0] > 0.5


def object_cells(attention: torch.Tensor, segments: np.ndarray, max_share: float = MAX_OBJECT_SHARE) -> torch.Tensor:
    """Bool, ``attention``'s (h, w) grid: the cells touched by the segment of ``segments`` (labels on any
    finer grid, e.g. superpixels) whose mean ``attention`` (upsampled to it) is highest, among the
    segments no larger than ``max_share`` of the image. All cells when every segment is larger."""
    hw = tuple(attention.shape[-2:])
    fine = F.interpolate(attention[None, None].float(), size=segments.shape, mode="bilinear",
                         align_corners=True)[0, 0].numpy()
    size = np.bincount(segments.ravel())
    mean = np.bincount(segments.ravel(), weights=fine.ravel(), minlength=len(size)) / np.maximum(size, 1)
    mean[(size == 0) | (size > max_share * segments.size)] = -np.inf
    if not np.isfinite(mean).any():
        return torch.ones(hw, dtype=torch.bool)
    best = torch.from_numpy(segments == int(mean.argmax())).float()
    return F.adaptive_avg_pool2d(best[None, None], hw)[0, 0] > 0


def find_roi(features: list[torch.Tensor], attention: torch.Tensor, *, clusters: int, points: int,
             max_dim: int = 64, hw: tuple[int, int] | None = None, seed: int = 0, grow: int = 0,
             segments: np.ndarray | None = None) -> Roi:
    """The RoI on the ``hw`` grid (default: ``attention``'s) from the captured features and the edit
    tokens' mean attention map (upsampled to ``hw``), grown by ``grow`` cells; with ``segments``
    (superpixel labels), the peak is taken inside the most attended one (:func:`object_cells`)."""
    hw = hw or tuple(attention.shape[-2:])
    if not features:
        raise RegEditError("lime", "no attention features were captured at the feature step",
                           "check that the model has attention layers at the feature resolutions")
    started = time.perf_counter()
    x = reduce_dimension(feature_matrix(features, hw), max_dim)
    labels = torch.from_numpy(cluster(x, clusters, seed)).long().reshape(hw)
    seconds = time.perf_counter() - started
    attention = F.interpolate(attention[None, None].float(), size=hw, mode="bilinear", align_corners=True)[0, 0]
    within = object_cells(attention, segments) if segments is not None else None
    return Roi(grow_mask(pick_clusters(labels, attention, points, within), grow), labels, attention, seconds)


def second_peak(attention: torch.Tensor, share: float = PEAK_SHARE) -> float:
    """The highest local maximum of ``attention`` (h, w) away from its peak's place, as a fraction of
    the peak (0 when there is none, or the map is flat). The peak's place: the cells at ``share`` of
    the peak or more connected to it (diagonals too). Only local maxima count, so the slope of the
    peak's own blob is not a second place."""
    from scipy import ndimage

    a = attention.detach().float().cpu().numpy()
    peak = float(a.max())
    if not np.isfinite(peak) or peak <= 0:
        return 0.0
    parts, _ = ndimage.label(a >= share * peak, structure=np.ones((3, 3)))
    maxima = (a == ndimage.maximum_filter(a, size=3, mode="nearest")) & (parts != parts.flat[int(a.argmax())])
    return float(a[maxima].max() / peak) if maxima.any() else 0.0


def uncertainty_note(roi: Roi, fix: str) -> str | None:
    """What to tell the user when the found region is uncertain (``fix``: how to give the region in
    the caller's terms), else None."""
    second = roi.second_peak
    if second < UNCERTAIN:
        return None
    return (f"LIME: the edit words point at two places (the second at {second:.0%} of the first), so "
            f"the region it found may be on the wrong object. Check the region preview; if it is wrong, {fix}")
