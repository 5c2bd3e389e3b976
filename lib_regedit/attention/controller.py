"""The controller composes effects over each :class:`AttentionCall`; the generation state holds what
one generation needs and is dropped when it ends.

Order of composition, for every call (each stage in effect order):

1. ``prepare(call)``: effects that change the inputs, in this order: key/value replacement
   (RegionDrag's mutual self-attention: target queries read the source's keys and values), token
   masking (LIME's regularisation: -inf on unrelated tokens inside the RoI), self-attention
   reweighting (KSSA, MRGD §3.2: keyword positions). They add to ``call.extras["bias"]`` or replace
   ``call.k``/``call.v``.
2. ``compute(call)``: the first effect that returns a tensor produces the output. Region fusion
   lives here, and in an edit pair its prompt-to-prompt form (MRGD Eq. 5: the target's regions read
   the source's cross-attention maps) and self-attention map injection.
3. ``observe(call, out)``: effects that read. Attention-map capture (previews, keyword selection),
   differentiable capture for layout guidance (keeping the graph) and LIME's RoI capture live here.

No effect knows whether it runs in the WebUI or in diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .call import AttentionCall, RowLayout, attend


class Effect:
    """Base class: every hook is optional."""

    name = "effect"

    def begin_unet_call(self, state: "GenerationState") -> None:
        pass

    def prepare(self, call: AttentionCall) -> None:
        pass

    def compute(self, call: AttentionCall) -> torch.Tensor | None:
        return None

    def observe(self, call: AttentionCall, out: torch.Tensor) -> None:
        pass

    def applies_to(self, call: AttentionCall) -> bool:
        return True


@dataclass
class GenerationState:
    """Everything one generation needs, created when it starts and dropped when it ends."""

    total_steps: int = 1
    step: int = 0
    latent_hw: tuple[int, int] = (64, 64)
    rows: RowLayout | None = None
    context: torch.Tensor | None = None  # the current UNet call's text context, for effects that read rows
    cond_reference: torch.Tensor | None = None
    uncond_reference: torch.Tensor | None = None
    cond_first: bool = True
    info: dict = field(default_factory=dict)
    projections: dict = field(default_factory=dict)
    fixed_rows: RowLayout | None = None  # set by a caller that builds every UNet call itself (inversion)
    # LoRA per region (``lib_regedit/regions/loras.py``), keyed by id() of a region's context tensor:
    context_deltas: dict = field(default_factory=dict)  # its LoRA term of each key/value projection
    context_passes: dict = field(default_factory=dict)  # () -> context manager around its latent-mode pass

    def projected(self, layer: str, context: torch.Tensor, project) -> tuple[torch.Tensor, torch.Tensor]:
        """A text context through ``layer``'s key and value projections, computed once per generation
        (weights and contexts do not change while it runs) and shared by every effect. A context being
        optimised (null-text inversion) is projected afresh at each call, with its gradient."""
        if context.requires_grad:
            return project(context)
        key = (layer, id(context))
        if key not in self.projections:
            with torch.no_grad():  # constants even inside a guidance pass, which differentiates z only
                self.projections[key] = (context, project(context))  # holding the context keeps its id unique
        return self.projections[key][1]

    def forget(self, contexts) -> None:
        """Drop the cached projections of ``contexts`` (a per-step context that will not come back)."""
        ids = {id(c) for c in contexts if c is not None}
        for key in [k for k in self.projections if k[1] in ids]:
            del self.projections[key]

    def classify_rows(self, context: torch.Tensor | None, batch: int) -> RowLayout:
        """Which rows of this UNet call are cond, read from the text context each row carries.

        A row whose context equals a row of the sampler's conditional tensor is cond; one equal to
        the unconditional tensor is uncond. When a row matches both (identical prompts) or neither,
        a full batch falls back to the sampler's order (``cond_first``), otherwise it counts as cond.
        """
        if self.fixed_rows is not None and self.fixed_rows.size == batch:
            return self.fixed_rows
        if context is None or self.cond_reference is None:
            return RowLayout.all_cond(batch)
        cond_hits = _matches(context, self.cond_reference)
        uncond_hits = _matches(context, self.uncond_reference) if self.uncond_reference is not None else \
            torch.zeros_like(cond_hits)
        n_cond = self.cond_reference.shape[0]
        n_uncond = 0 if self.uncond_reference is None else self.uncond_reference.shape[0]
        cond, uncond = [], []
        for row in range(batch):
            c, u = bool(cond_hits[row]), bool(uncond_hits[row])
            if c == u and batch == n_cond + n_uncond:
                c = row < n_cond if self.cond_first else row >= n_uncond
                u = not c
            (cond if c or not u else uncond).append(row)
        return RowLayout(tuple(cond), tuple(uncond))


def _matches(context: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each row of ``context`` (B, T, C): does it equal some row of ``reference`` (R, T', C)?
    Only the common prefix of tokens is compared, since the WebUI pads cond and uncond to a common
    length by repeating chunks."""
    t = min(context.shape[1], reference.shape[1])
    if context.shape[-1] != reference.shape[-1]:
        return torch.zeros(context.shape[0], dtype=torch.bool)
    # Compared in the coarser of the two dtypes: a half-precision UNet is handed the sampler's float32
    # conditioning cast to fp16/bf16 (A1111's upcast sampling, Forge, the model interface's ``eps``), and
    # that cast is exact only one way. Casting the float32 reference down rounds it the same way.
    dtype = max(context.dtype, reference.dtype, key=lambda d: torch.finfo(d).eps if d.is_floating_point else 0.0)
    a = context[:, :t].to(dtype).reshape(context.shape[0], 1, -1)
    b = reference[:, :t].to(a.device, dtype).reshape(1, reference.shape[0], -1)
    return (a == b).all(-1).any(-1).cpu()


class Controller:
    """Holds the effects of one generation and composes them over each attention call."""

    def __init__(self, effects: list[Effect], state: GenerationState):
        self.effects = list(effects)
        self.state = state
        self.enabled = True

    def begin_unet_call(self, context: torch.Tensor | None, batch: int, latent_hw: tuple[int, int],
                        rows: RowLayout | None = None) -> None:
        """A UNet call starts; ``rows`` when the backend is told the layout (Forge), else read from ``context``.
        A caller's ``fixed_rows`` (an inversion building every call itself) come first either way."""
        self.state.latent_hw = latent_hw
        fixed = self.state.fixed_rows is not None and self.state.fixed_rows.size == batch
        self.state.rows = rows if rows is not None and rows.size == batch and not fixed \
            else self.state.classify_rows(context, batch)
        self.state.context = context
        for effect in self.effects:
            effect.begin_unet_call(self.state)

    def wants(self, is_cross: bool) -> bool:
        """Whether any effect may act on this kind of call (backends skip the rest cheaply)."""
        return self.enabled and any(getattr(e, "cross" if is_cross else "self_", True) for e in self.effects)

    def attend(self, call: AttentionCall) -> torch.Tensor:
        if call.project_context is not None:
            project, layer = call.project_context, call.layer
            call.project_context = lambda context: self.state.projected(layer, context, project)
        active = [e for e in self.effects if e.applies_to(call)]
        for effect in active:
            effect.prepare(call)
        out = None
        for effect in active:
            out = effect.compute(call)
            if out is not None:
                break
        if out is None:
            out = attend(call.q, call.k, call.v, call.extras.get("bias"), call.scale)
        for effect in active:
            effect.observe(call, out)
        return out
