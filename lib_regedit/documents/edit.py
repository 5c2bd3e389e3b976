"""The edit half of a region document: one document describes a source image and a target image
that differ in one or more regions (MRGD, Li et al. 2024, §3.1 and Alg. 1).

Each region has an edit role (``edit``):

- ``"inherent"`` (default): in both images, and kept as it was;
- ``"add"``: in the target only (its ``prompt`` is what to add);
- ``"remove"``: in the source only (its ``prompt`` is what is there);
- ``"change"``: its ``prompt`` in the source, its ``target_prompt`` in the target.

A document is a pair when some region has a role other than ``inherent``. The document-level
``target_prompt`` is the target's whole-image prompt; without it the source's prompt is rewritten
(``lib_regedit/editing/pair_documents.py``). The ``edit`` object holds the attention control
(prompt-to-prompt per region, MRGD Eq. 5) and the optional multi-region guidance::

    "edit": {"cross_replace": {"background": 1.0, "foreground": 1.0, "pair": 0.0},
             "tau": 0.5,
             "self_replace": {"background": 0.5, "foreground": 0.7, "pair": 0.3, "whole": 0.2},
             "self_downscale": 4,
             "guidance": {"enabled": false, "rs": 1000, "is": 2000, "ip": 300, "until": 1.0},
             "inversion": "negative", "keep_outside": null, "paste_outside": true,
             "add_init_noise": null}

``cross_replace`` and ``self_replace`` are fractions of the steps during which the target reads the
source's cross- and self-attention maps: ``background`` for r_bg, ``foreground`` for inherent object
regions, ``pair`` for a changed region's source/target pair, ``whole`` for r_total. ``tau`` is when
r_total stops taking the source's maps (MRGD Eq. 5, τ = 0.5). Self-attention maps are replaced in
layers at most latent / ``self_downscale`` on a side (prompt-to-prompt's ≤ 16² for SD's 64² latent).
The defaults come from MRGD's reference settings except ``cross_replace.pair``: 0.0 here, 0.6 there.
On ShapesWorld (docs/region-editing.md) a changed region that reads its source's maps kept the old
attribute in 2 of 32 changes with DDIM and 4 of 32 with DPM++ on a Karras schedule; with 0.0 every
change was right, the kept objects stayed at least as often, and SSIM-i fell by 0.008. Its structure
still comes from the self-attention maps (``self_replace.pair``) and the shared start. ``guidance``
weights are MRGD §4.1's λ_rs, λ_is, λ_ip, applied while the fraction of steps done is below ``until``.
``inversion`` is read when the source is a real picture (img2img, ``edit-regions --image``): "negative"
(negative-prompt inversion, fast), "nulltext" (null-text inversion, slow, closest) or "ddim"
(``lib_regedit.inversion``). ``keep_outside`` keeps the source (a picture's reconstruction) outside
the edited boxes, grown by a margin, at every step (Avrahami et al. 2023, *Blended Latent
Diffusion*; ``lib_regedit/editing/keep_outside.py``, ``real_edit.py``); false is MRGD's attention
control alone; unset (null) is the document version's default: on for a picture, and for a
generated pair from document version 4 (``RegionDocument.keeps_outside``). ``paste_outside`` then
pastes the picture itself back outside them (false: the model's own pixels). ``add_init_noise`` is
the seed noise's share in an added region's start with layout init (the target sketch's inversion
around the added box, ``lib_regedit/editing/pair_start.py``); unset (null) is the document version's
default: 0.1 from version 6 where the pair keeps the source outside, the document's ``init_noise``
otherwise and before (``RegionDocument.added_init_noise``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import RegEditError
from .fields import get_bool, get_number, reject_unknown

EDIT_ROLES = ("inherent", "add", "remove", "change")
EDIT_FIELDS = ("cross_replace", "tau", "self_replace", "self_downscale", "guidance", "inversion", "keep_outside",
               "paste_outside", "add_init_noise")
INVERSIONS = ("negative", "ddim", "nulltext")
CROSS_FIELDS = ("background", "foreground", "pair")
SELF_FIELDS = ("background", "foreground", "pair", "whole")
EDIT_GUIDANCE_FIELDS = ("enabled", "rs", "is", "ip", "until")


@dataclass(frozen=True)
class CrossReplace:
    background: float = 1.0
    foreground: float = 1.0
    pair: float = 0.0  # MRGD's reference: 0.6 (module docstring)


@dataclass(frozen=True)
class SelfReplace:
    background: float = 0.5
    foreground: float = 0.7
    pair: float = 0.3
    whole: float = 0.2


@dataclass(frozen=True)
class EditGuidance:
    """Multi-region guidance (MRGD Eq. 2-4): λ_rs, λ_is, λ_ip from MRGD §4.1."""

    enabled: bool = False
    rs: float = 1000.0
    is_: float = 2000.0
    ip: float = 300.0
    until: float = 1.0

    def to_dict(self) -> dict:
        return {"enabled": self.enabled, "rs": self.rs, "is": self.is_, "ip": self.ip, "until": self.until}


@dataclass(frozen=True)
class EditOptions:
    cross_replace: CrossReplace = CrossReplace()
    tau: float = 0.5
    self_replace: SelfReplace = SelfReplace()
    self_downscale: int = 4
    guidance: EditGuidance = EditGuidance()
    inversion: str = "negative"
    keep_outside: bool | None = None  # None: the document version's (RegionDocument.keeps_outside)
    paste_outside: bool = True
    add_init_noise: float | None = None  # None: the document version's (RegionDocument.added_init_noise)

    def to_dict(self, full: bool = False) -> dict:
        data = {"cross_replace": asdict(self.cross_replace), "tau": self.tau,
                "self_replace": asdict(self.self_replace), "self_downscale": self.self_downscale,
                "guidance": self.guidance.to_dict(), "inversion": self.inversion,
                "keep_outside": self.keep_outside, "paste_outside": self.paste_outside,
                "add_init_noise": self.add_init_noise}
        if full:
            return data
        default = EditOptions().to_dict(full=True)
        out = {}
        for key, value in data.items():
            if isinstance(value, dict):
                changed = {k: v for k, v in value.items() if v != default[key][k]}
                if key == "guidance" and changed:
                    changed = {"enabled": value["enabled"], **changed}
                if changed:
                    out[key] = changed
            elif value != default[key]:
                out[key] = value
        return out


def _fractions(obj: Any, field: str, cls, names):
    if obj is None:
        return cls()
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type(obj).__name__}",
                           "write fractions of the steps, e.g. {" + ", ".join(f'"{n}": 0.5' for n in names) + "}")
    reject_unknown(obj, names, field)
    default = cls()
    return cls(**{n: get_number(obj, n, field, default=getattr(default, n), lo=0.0, hi=1.0) for n in names})


def _guidance(obj: Any, field: str) -> EditGuidance:
    if obj is None:
        return EditGuidance()
    if isinstance(obj, bool):
        return EditGuidance(enabled=obj)
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type(obj).__name__}",
                           'write true, or {"enabled": true, "rs": 1000, "is": 2000, "ip": 300}')
    reject_unknown(obj, EDIT_GUIDANCE_FIELDS, field)
    d = EditGuidance()
    return EditGuidance(
        enabled=get_bool(obj, "enabled", field, default=True),
        rs=get_number(obj, "rs", field, default=d.rs, lo=0.0, hi=1e6),
        is_=get_number(obj, "is", field, default=d.is_, lo=0.0, hi=1e6),
        ip=get_number(obj, "ip", field, default=d.ip, lo=0.0, hi=1e6),
        until=get_number(obj, "until", field, default=d.until, lo=0.0, hi=1.0, lo_open=True),
    )


def parse_edit_options(obj: Any, field: str = "edit") -> EditOptions:
    if obj is None:
        return EditOptions()
    if not isinstance(obj, dict):
        raise RegEditError(field, f"expected an object, got {type(obj).__name__}",
                           'write {"tau": 0.5, "cross_replace": {...}, "self_replace": {...}}')
    reject_unknown(obj, EDIT_FIELDS, field)
    downscale = get_number(obj, "self_downscale", field, default=4, lo=1, hi=64)
    if downscale != int(downscale):
        raise RegEditError(f"{field}.self_downscale", f"{downscale:g} is not a whole number", "write 1, 2, 4 or 8")
    return EditOptions(
        cross_replace=_fractions(obj.get("cross_replace"), f"{field}.cross_replace", CrossReplace, CROSS_FIELDS),
        tau=get_number(obj, "tau", field, default=0.5, lo=0.0, hi=1.0),
        self_replace=_fractions(obj.get("self_replace"), f"{field}.self_replace", SelfReplace, SELF_FIELDS),
        self_downscale=int(downscale),
        guidance=_guidance(obj.get("guidance"), f"{field}.guidance"),
        inversion=_inversion(obj.get("inversion"), f"{field}.inversion"),
        keep_outside=None if obj.get("keep_outside") is None else get_bool(obj, "keep_outside", field, default=True),
        paste_outside=get_bool(obj, "paste_outside", field, default=True),
        add_init_noise=None if obj.get("add_init_noise") is None else get_number(obj, "add_init_noise", field,
                                                                                 lo=0.0, hi=1.0),
    )


def _inversion(value: Any, field: str) -> str:
    if value is None:
        return "negative"
    if value not in INVERSIONS:
        raise RegEditError(field, f"{value!r} is not an inversion",
                           "use negative (fast, the default), nulltext (slow, closest) or ddim (the baseline)")
    return value
