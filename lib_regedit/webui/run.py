"""One WebUI generation's RegEdit state, in one object on the generation (``p``): created in ``process``,
dropped in ``postprocess``, success or failure. Nothing else of RegEdit's lives on ``p``, except the
X/Y/Z plot's values (``p._regedit_xyz``), which the plot writes on its own copy before ``process``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Run:
    session: Any = None  # region prompts or an edit pair (``session.WebUISession``)
    lime: Any = None  # LIME's two passes (``lime.webui_lime.LimeSession``)
    drag: Any = None  # the drag document, for the composite
    drag_growth: Any = None  # its brush handles' growth on the init image (drag/grow.py), for the composite
    picture_edit: Any = None  # a picture's region edit document, for the paste outside its boxes
    checkpoint: Any = None  # the model interface for this generation (``checkpoints.current``)
    layout: list | None = None  # layout init's inverted sketches, the same for every batch
    preview: bool = False
    lime_user_mask: Any = field(default=None)  # the user's inpaint mask, read before LIME's blend replaces it
    lime_mask_read: bool = False
    guidance_noted: bool = False
    printed: set = field(default_factory=set)  # notes printed once per generation


def run_of(p) -> Run:
    """This generation's state (a fresh one if ``process`` has not made it: a hook called out of order)."""
    run = getattr(p, "_regedit_run", None)
    if run is None:
        run = p._regedit_run = Run()
    return run


def start(p) -> Run:
    p._regedit_run = Run()
    return p._regedit_run


def end(p) -> None:
    p._regedit_run = None
