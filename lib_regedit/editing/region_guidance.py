"""Multi-region guidance (MRGD, Li et al. 2024, §3.1, Eq. 2-4, Alg. 1 lines 17-19).

At each guided step, the predicted clean latents of the pair (x̂0^S, x̂0^T, from the noise prediction
after classifier-free guidance) are decoded and segmented with each region's phrase K_i by a
differentiable segmenter Φ (CLIPSeg), and three losses are summed with MRGD's weights:

- RS, region-specific (Eq. 2): Σ_j Σ_i ‖M_i^j − M_i^j ⊗ m_i‖², each region's segmentation outside its
  box's prior mask m_i, in both images;
- IS, inter-image similarity (Eq. 3): InfoNCE between the regions' masks in I^S and I^T: a region's
  mask in I^T is pulled to the same region's mask in I^S and pushed from the others';
- IP, inherent preservation (Eq. 4): ‖M ⊗ (I^S − I^T)‖² + ‖M ⊗ (z^S − z^T)‖² over the inherent
  regions' boxes M, in pixels and in latents.

Each loss is a mean over its pixels (so the weights do not depend on the image size), and the
gradient moves x̂0 by −(1 − ᾱ_t)·λ·∇L, the noise prediction by the matching amount, so any sampler
takes it (the update is made where the noise prediction leaves the UNet). K_i is the region's
keywords when given, otherwise its prompt. The pure losses are tested on small tensors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..backward import lean
from ..masks import area_mask

INFONCE_TEMPERATURE = 0.1


def predicted_x0(x: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x̂0 = (z_t − √(1−ᾱ_t) ε) / √ᾱ_t, for samplers whose prediction is the noise."""
    return (x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def noise_shift(grad: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Δε = √ᾱ_t √(1−ᾱ_t) ∇L: the change of ε that moves x̂0 by −(1 − ᾱ_t) ∇L."""
    return alpha_bar.sqrt() * (1 - alpha_bar).sqrt() * grad


def rs_loss(masks: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Eq. 2 for one image: (R, H, W) masks and their (R, H, W) prior masks -> Σ_i mean((M_i − M_i m_i)²)."""
    if masks.shape[0] == 0:
        return masks.sum() * 0
    outside = masks - masks * priors
    return (outside ** 2).flatten(1).mean(1).sum()


def is_loss(source: torch.Tensor, target: torch.Tensor, temperature: float = INFONCE_TEMPERATURE) -> torch.Tensor:
    """Eq. 3: InfoNCE between corresponding region masks (R, H, W) of I^S and I^T, both directions."""
    if source.shape[0] < 2:
        return source.sum() * 0
    s = F.normalize(source.flatten(1), dim=1)
    t = F.normalize(target.flatten(1), dim=1)
    logits = s @ t.T / temperature
    labels = torch.arange(len(s), device=s.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def ip_loss(image_s, image_t, z_s, z_t, mask_image: torch.Tensor, mask_latent: torch.Tensor) -> torch.Tensor:
    """Eq. 4: the inherent region's change between the images, in pixels and in latents (means over M)."""
    def masked_mean(a, b, m):
        m = m.to(a.dtype)
        weight = m.sum() * a.shape[-3]
        return ((a - b) ** 2 * m).sum() / weight.clamp(min=1.0)

    return masked_mean(image_s, image_t, mask_image) + masked_mean(z_s, z_t, mask_latent)


@dataclass
class GuidedPair:
    """What the losses read for one document: per image, the region phrases and boxes (x, y, w, h and
    the shape, None for a box), and which regions correspond across the pair; the inherent boxes."""

    source_phrases: list[str]
    source_boxes: list[tuple]
    target_phrases: list[str]
    target_boxes: list[tuple]
    corresponding: list[tuple[int, int]]  # (source region, target region)
    inherent_boxes: list[tuple]


def guided_pair(pair_documents) -> GuidedPair:
    """The phrases K_i and prior boxes of R^S and R^T (object regions), from ``split_pair``."""
    def phrases(doc):
        return [", ".join(r.keywords) if r.keywords else r.prompt for r in doc.object_regions]

    def boxes(doc):
        return [(r.x, r.y, r.w, r.h, r.shape) for r in doc.object_regions]

    source, target = pair_documents.source, pair_documents.target
    corresponding = [(c, j) for j, c in enumerate(pair_documents.counterparts) if c is not None]
    inherent = [boxes(target)[j] for j, kind in enumerate(pair_documents.kinds) if kind == "inherent"]
    return GuidedPair(phrases(source), boxes(source), phrases(target), boxes(target), corresponding, inherent)


def _box_masks(boxes, h, w, device, dtype) -> torch.Tensor:
    if not boxes:
        return torch.zeros(0, h, w, device=device, dtype=dtype)
    return torch.stack([(area_mask(b[:4], b[4] if len(b) > 4 else None, h, w) > 0.5).to(device, dtype) for b in boxes])


@dataclass
class RegionGuidance:
    pair: GuidedPair
    segmenter: object
    decode: object  # latents (B, C, h, w) -> images (B, 3, H, W) in [0, 1], differentiable
    weights: tuple[float, float, float]  # λ_rs, λ_is, λ_ip
    until: float = 1.0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model: object = None  # the VAE ``decode`` runs, made lean while differentiated (``lib_regedit/backward``)

    def losses(self, x0_s: torch.Tensor, x0_t: torch.Tensor,
               images: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The three losses for one pair of predicted clean latents (1, C, h, w) each (``images``: their
        decodes, when the caller made them)."""
        images = self.decode(torch.cat([x0_s, x0_t])) if images is None else images
        image_s, image_t = images[:1], images[1:]
        h, w = images.shape[-2:]
        p = self.pair
        m_s = self.segmenter(image_s, p.source_phrases)[0] if p.source_phrases else images.new_zeros(0, h, w)
        m_t = self.segmenter(image_t, p.target_phrases)[0] if p.target_phrases else images.new_zeros(0, h, w)
        priors_s = _box_masks(p.source_boxes, h, w, images.device, images.dtype)
        priors_t = _box_masks(p.target_boxes, h, w, images.device, images.dtype)
        rs = rs_loss(m_s, priors_s) + rs_loss(m_t, priors_t)
        if p.corresponding:
            si, ti = zip(*p.corresponding)
            is_ = is_loss(m_s[list(si)], m_t[list(ti)])
        else:
            is_ = rs * 0
        inherent_image = _box_masks(p.inherent_boxes, h, w, images.device, images.dtype).amax(0, keepdim=True) \
            if p.inherent_boxes else images.new_zeros(1, h, w)
        lh, lw = x0_s.shape[-2:]
        inherent_latent = _box_masks(p.inherent_boxes, lh, lw, x0_s.device, x0_s.dtype).amax(0, keepdim=True) \
            if p.inherent_boxes else x0_s.new_zeros(1, lh, lw)
        ip = ip_loss(image_s, image_t, x0_s, x0_t, inherent_image, inherent_latent)
        return {"rs": rs, "is": is_, "ip": ip}

    def gradient(self, x0_s: torch.Tensor, x0_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """∇L for x̂0^S and x̂0^T, and the losses' values.

        With the VAE known (``model``), its decoder's graph is kept for one image at a time: both images
        are decoded without a graph, the losses' gradient taken to the images, then each image decoded
        again with its graph, lean (``lib_regedit/backward``), and that gradient carried through it to its
        latent. The chain rule gives the same gradient as one batched pass, for half the decoder's graph
        and one more decode (``docs/memory.md``)."""
        started = time.perf_counter()
        with torch.enable_grad():
            xs = x0_s.detach().float().requires_grad_(True)
            xt = x0_t.detach().float().requires_grad_(True)
            if self.model is None:
                parts = self.losses(xs, xt)
                total = sum(weight * parts[name] for weight, name in zip(self.weights, ("rs", "is", "ip")))
                grad_s, grad_t = torch.autograd.grad(total, [xs, xt], allow_unused=True)
            else:
                with torch.no_grad():
                    images = self.decode(torch.cat([xs, xt])).requires_grad_(True)
                parts = self.losses(xs, xt, images)
                total = sum(weight * parts[name] for weight, name in zip(self.weights, ("rs", "is", "ip")))
                grad_images, grad_s, grad_t = torch.autograd.grad(total, [images, xs, xt], allow_unused=True)
                if grad_images is not None:
                    through = []
                    with lean(self.model):
                        for row, x in enumerate((xs, xt)):
                            (g,) = torch.autograd.grad(self.decode(x), [x], grad_images[row:row + 1])
                            through.append(g)
                    grad_s = through[0] if grad_s is None else grad_s + through[0]
                    grad_t = through[1] if grad_t is None else grad_t + through[1]
        grad_s = torch.zeros_like(xs) if grad_s is None else grad_s
        grad_t = torch.zeros_like(xt) if grad_t is None else grad_t
        values = {k: float(v.detach()) for k, v in parts.items()}
        self.seconds += time.perf_counter() - started
        return grad_s.to(x0_s.dtype), grad_t.to(x0_t.dtype), values

    def summary(self) -> str:
        if not self.history:
            return "multi-region guidance: no step guided"
        first, last = self.history[0], self.history[-1]
        fmt = lambda d: ", ".join(f"{k.upper()} {d[k]:.4f}" for k in ("rs", "is", "ip"))  # noqa: E731
        return (f"multi-region guidance: {len(self.history)} guided steps, {self.seconds:.1f} s; first step "
                f"{fmt(first)}; last {fmt(last)}")
