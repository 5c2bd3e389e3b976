"""LoRA per region: ``<lora:name:weight>`` in a region's prompt applies that LoRA to that region only.

The WebUI's syntax, ``<lora:NAME>``, ``<lora:NAME:TE>``, ``<lora:NAME:TE:UNET>`` or ``<lora:NAME:TE:unet=W>``
(``TE``: the text encoder's multiplier, ``UNET``: the UNet's, by default the same). What "that region
only" means depends on how regions are made:

- **Attention mode** (one UNet pass; region fusion attends to each region's prompt inside its box):
  the region's prompt is encoded with the LoRA's text-encoder part, and the region's keys and values
  are projected with the LoRA's part of the cross-attention key and value projections
  (``to_k``/``to_v``: the text side of the UNet). The rest of the UNet is shared by all regions in
  one pass, so the LoRA's other layers do not apply: this is the part of a LoRA that can be tied to
  a region in one pass.
- **Latent mode** (one UNet pass per region, fused per MultiDiffusion): each region's pass runs with
  the whole LoRA, and the model is restored after the pass.

A backend supplies a :class:`LoraSupport` (the WebUI's built-in Lora networks, or LoRA files for
diffusers); the engine asks it to check the names before any work, to encode under a LoRA, for the
projection terms and for the latent-mode pass. Without one, the tags are left out of the text with a
note, as before. The main prompt's LoRAs apply to the whole image as the WebUI always does; a
region's LoRAs are added to them.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterable

import torch

from ..backends.lora_delta import ProjectionDelta
from ..errors import RegEditError

LORA_TAG = re.compile(r"<lora:([^<>]*)>", re.IGNORECASE)


@dataclass(frozen=True)
class LoraTag:
    name: str
    te: float = 1.0  # text-encoder multiplier
    unet: float = 1.0  # UNet multiplier

    def text(self) -> str:
        return f"<lora:{self.name}:{self.te:g}>" if self.te == self.unet else \
            f"<lora:{self.name}:{self.te:g}:{self.unet:g}>"


def lora_tags(prompt: str, field: str = "prompt") -> list[LoraTag]:
    """The ``<lora:...>`` tags of ``prompt`` (the WebUI's syntax); a malformed one raises
    :class:`RegEditError` naming ``field``."""
    out = []
    for body in LORA_TAG.findall(prompt or ""):
        parts = [p.strip() for p in body.split(":")]
        name, positional, named = parts[0], [], {}
        for part in parts[1:]:
            if "=" in part:
                key, _, value = part.partition("=")
                named[key.strip().lower()] = value.strip()
            else:
                positional.append(part)
        if not name:
            raise RegEditError(field, f"<lora:{body}> has no name", "write <lora:NAME:WEIGHT>, e.g. <lora:style:0.8>")
        try:
            te = float(named.get("te", positional[0] if positional else 1.0))
            unet = float(named.get("unet", positional[1] if len(positional) > 1 else te))
        except ValueError:
            raise RegEditError(field, f"<lora:{body}> has a weight that is not a number",
                               "write <lora:NAME:WEIGHT>, e.g. <lora:style:0.8>") from None
        out.append(LoraTag(name, te, unet))
    return out


class LoraSupport:
    """What a backend offers for LoRA per region. Subclasses implement the four methods."""

    def check(self, tags: list[LoraTag], field: str) -> None:
        """Raise :class:`RegEditError` naming ``field`` when a LoRA cannot be found or read."""
        raise NotImplementedError

    def encoding(self, tags: list[LoraTag]):
        """A context manager under which the text encoder runs with the LoRAs' text-encoder part."""
        return contextlib.nullcontext()

    def projection(self, tags: list[LoraTag]) -> ProjectionDelta:
        """The LoRAs' term of a cross-attention key or value projection (``to_k``/``to_v``)."""
        raise NotImplementedError

    def unet_pass(self, tags: list[LoraTag]):
        """A context manager under which one UNet pass runs with the whole LoRAs (latent mode)."""
        raise NotImplementedError


def low_rank_term(context: torch.Tensor, updown: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``context @ updown^T (+ bias)``: a linear layer's LoRA term."""
    return torch.nn.functional.linear(context, updown.to(context.device, context.dtype),
                                      None if bias is None else bias.to(context.device, context.dtype))


def summary(per_region: Iterable[tuple[int, list[LoraTag]]]) -> str:
    """``1: <lora:a:0.8>; 3: <lora:b:1>`` (regions counted from 1), for notes and logs."""
    return "; ".join(f"{i + 1}: {' '.join(t.text() for t in tags)}" for i, tags in per_region if tags)
