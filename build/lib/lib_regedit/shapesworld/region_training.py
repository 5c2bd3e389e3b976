"""Region-fused cross-attention in training (``train.py --region-training P``).

Measured on the step-5600 model: a region prompt could not draw an object where the seed's noise did
not already put one. With "a red circle" in a box on the left and "a blank background" around it, the
image came out blank for every seed, while the plain prompt drew the circle on the right. The model
had only ever seen one caption for the whole image, so its cross-attention set *what* to draw and
the noise set *where*.

This trains it the way region prompting drives it. A share ``P`` of each batch's captioned scenes
runs every cross-attention layer as attention-mode region fusion does at inference (MultiDiffusion's
normalised weights, Bar-Tal et al. 2023; MRGD Eq. 1, ``lib_regedit.masks.fusion_weights``): pixels in
an object's box attend to that object's phrase ("a red circle"), pixels outside every box to the
blank caption (the eval's "a blank background" region), and with probability 1/2 the whole caption
joins everywhere at weight 0.5 (r_total, which joins after 30% of the steps at inference). Two
variants were tried and not shipped (TRAINING.md): loosened boxes (``--region-loosen``) and rows
whose background is their own caption (``--region-own-background``). The loss is the usual noise loss, and the other
rows train as before, so plain prompting is kept.

No parameter is added: the same UNet learns that a local text context decides local content, which
large checkpoints already do and which region prompting relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..masks import box_coverage
from .data import BLANK_CAPTION, COLOURS, SHAPES, scene_for

MAX_OBJECTS = 3
WHOLE_WEIGHT = 0.5
EPS = 1e-4  # as masks.fusion_weights
LOOSE_MAX = 2.0  # default growth of loosen(), per side


def phrases() -> list[str]:
    """Every object phrase, then the blank caption: the source contexts, encoded once per step."""
    return [f"a {c} {s}" for c in COLOURS for s in SHAPES] + [BLANK_CAPTION]


def phrase_index(colour: str, shape: str) -> int:
    return list(COLOURS).index(colour) * len(SHAPES) + SHAPES.index(shape)


def scene_targets(seed: int, n: int):
    """For the ``n`` training scenes of dataset ``seed``: each object slot's phrase index (n, 3), -1
    where there is no object, and its exact box (n, 3, 4)."""
    index = torch.full((n, MAX_OBJECTS), -1, dtype=torch.long)
    boxes = torch.zeros(n, MAX_OBJECTS, 4)
    for i in range(n):
        for j, obj in enumerate(scene_for(seed, i).objects):
            index[i, j] = phrase_index(obj.colour, obj.shape)
            boxes[i, j] = torch.tensor(obj.box)
    return index, boxes


def loosen(boxes: torch.Tensor, max_scale: float = LOOSE_MAX) -> torch.Tensor:
    """Each (x, y, w, h) box grown by a random factor in [1, ``max_scale``] per axis, at a random
    offset that keeps the object inside, clipped to the image (users draw boxes larger than the
    object). Tried against duplicated objects in plain prompts; it did not help (TRAINING.md)."""
    x, y, w, h = boxes.unbind(-1)

    def grow(start, size):
        new = (size * (1 + torch.rand_like(size) * (max_scale - 1))).clamp(max=1.0)
        return (start - torch.rand_like(size) * (new - size)).clamp(min=0.0).minimum(1 - new), new

    (x, w), (y, h) = grow(x, w), grow(y, h)
    return torch.stack([x, y, w, h], -1)


def slot_masks(index: torch.Tensor, boxes: torch.Tensor, cells: int) -> torch.Tensor:
    """(B, 3, cells, cells) box masks, zero for empty slots."""
    return box_coverage(boxes, cells, cells) * (index >= 0)[..., None, None].to(boxes.dtype)


def weights(masks: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """MultiDiffusion's weights per row: ``masks`` (B, 3, h, w) object boxes, ``whole`` (B,) the
    r_total weight. Returns (B, 5, h·w): the three objects, the background (outside every box), the
    whole caption; they sum to 1 at every pixel."""
    b, k, h, w = masks.shape
    union = masks.amax(1)
    background = (1 - union) + EPS
    stacked = torch.cat([masks, background[:, None], whole.reshape(b, 1, 1, 1).expand(b, 1, h, w)], 1)
    return (stacked / stacked.sum(1, keepdim=True)).reshape(b, k + 2, h * w)


class Plan:
    """One step's region rows: which rows, their slot phrases and fusion weights per resolution."""

    def __init__(self, rows: torch.Tensor, index: torch.Tensor, masks: torch.Tensor, whole: torch.Tensor,
                 sources: torch.Tensor, own_background: torch.Tensor | None = None):
        self.rows = rows  # (R,) batch rows trained with region fusion
        self.index = index  # (R, 3) phrase index per object slot, -1 for none
        self.sources = sources  # (len(phrases()), T, C) encoded phrases, blank caption last
        self._masks = masks.float()  # (R, 3, H, W) at the latent resolution
        self._whole = whole
        # rows whose background is their own caption (no background region) rather than the blank one
        self._own_background = own_background if own_background is not None else \
            torch.zeros(len(rows), dtype=torch.bool)
        self._weights: dict = {}

    def weights(self, tokens: int) -> torch.Tensor:
        """(R, 5, tokens) at a layer with ``tokens`` positions (box coverage pools exactly)."""
        if tokens not in self._weights:
            side = self._masks.shape[-1]
            while side * side > tokens:
                side //= 2
            masks = F.adaptive_avg_pool2d(self._masks, side) if side != self._masks.shape[-1] else self._masks
            w = weights(masks, self._whole)
            own = self._own_background.to(w.dtype)[:, None]
            w[:, MAX_OBJECTS + 1] += w[:, MAX_OBJECTS] * own
            w[:, MAX_OBJECTS] *= 1 - own
            self._weights[tokens] = w
        return self._weights[tokens]


def batch_plan(rows: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor, sources: torch.Tensor, cells: int, *,
               loosen_to: float = 1.0, own_background: float = 0.0) -> Plan:
    """The plan of one training step: ``rows`` of the batch, their scenes' slot ``index`` and exact
    ``boxes``; r_total joins at ``WHOLE_WEIGHT`` on half of the rows; boxes loosened up to
    ``loosen_to`` per side (1: exact); a share ``own_background`` of rows without the blank caption."""
    whole = (torch.rand(len(rows)) < 0.5).float() * WHOLE_WEIGHT
    if loosen_to > 1:
        boxes = loosen(boxes, loosen_to)
    own = torch.rand(len(rows)) < own_background if own_background > 0 else None
    return Plan(rows, index, slot_masks(index, boxes, cells), whole, sources, own)


class RegionTrainingProcessor:
    """Cross-attention that fuses the plan's region sources on its rows and attends as usual elsewhere."""

    def __init__(self, holder: dict):
        self.holder = holder

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        batch, tokens, _ = hidden_states.shape
        heads = attn.heads

        def split(t):
            return t.view(t.shape[0], -1, heads, t.shape[-1] // heads).transpose(1, 2)

        q = split(attn.to_q(hidden_states))
        out = F.scaled_dot_product_attention(q, split(attn.to_k(encoder_hidden_states)),
                                             split(attn.to_v(encoder_hidden_states)))
        plan: Plan | None = self.holder.get("plan")
        if plan is not None and len(plan.rows):
            rows = plan.rows
            qr = q[rows]
            k_all, v_all = split(attn.to_k(plan.sources)), split(attn.to_v(plan.sources))
            w = plan.weights(tokens).to(q.dtype)  # (R, 5, N)
            blank = len(plan.sources) - 1
            fused = w[:, MAX_OBJECTS + 1][:, None, :, None] * out[rows]
            slots = [plan.index[:, j] for j in range(MAX_OBJECTS)] + \
                    [torch.full_like(plan.index[:, 0], blank)]
            for j, idx in enumerate(slots):
                present = idx >= 0
                if not present.any():
                    continue
                src = idx.clamp(min=0)
                part = F.scaled_dot_product_attention(qr, k_all[src], v_all[src])
                fused = fused + (w[:, j] * present[:, None].to(w.dtype))[:, None, :, None] * part
            out = out.clone()
            out[rows] = fused
        out = out.transpose(1, 2).reshape(batch, tokens, -1)
        return attn.to_out[1](attn.to_out[0](out))


def install(unet) -> dict:
    """Put :class:`RegionTrainingProcessor` on every cross-attention layer; returns the holder whose
    ``"plan"`` the training loop sets before each forward (None for plain steps)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    holder: dict = {"plan": None}
    unet.set_attn_processor({name: RegionTrainingProcessor(holder) if name.endswith("attn2.processor")
                             else AttnProcessor2_0() for name in unet.attn_processors})
    return holder
