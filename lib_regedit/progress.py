"""Progress, the same in every command and in the Python API: tqdm bars on stderr, one bar per phase,
each with the phase's true total (UNet steps), named for what the phase does.

The phases: ``layout init`` (the sketch's inversion, when generate starts from the layout; skipped
when the same layout was inverted earlier in the process), ``sampling`` (generate, an edit pair),
``inverting`` and ``dragging`` (drag), ``finding the region`` and ``editing`` (edit; the first only
with LIME finding the region), ``inverting``, ``null-text`` and ``editing`` (a picture's region
edit; no ``inverting`` or ``null-text`` when the inversion comes from the cache).

A pipeline's own sampling bar is named with :func:`named_bar`; the other phases open theirs with
:func:`bar` (which follows the pipeline's progress-bar settings, so ``disable=True`` silences both),
or through :class:`PhaseBars` for a ``progress(done, total, phase)`` callback.
"""

from __future__ import annotations

import contextlib

from tqdm.auto import tqdm


def _config(pipe) -> dict:
    return dict(getattr(pipe, "_progress_bar_config", None) or {})


def bar(pipe, desc: str, total: int, disable: bool | None = None):
    """A tqdm bar for one phase of ``total`` steps, with ``pipe``'s progress-bar settings."""
    config = _config(pipe)
    config.update(desc=desc, total=total)
    if disable is not None:
        config["disable"] = disable
    return tqdm(**config)


@contextlib.contextmanager
def named_bar(pipe, desc: str, disable: bool | None = None):
    """Within the block, ``pipe``'s own sampling bar is called ``desc`` (and off with ``disable``)."""
    saved = _config(pipe)
    config = dict(saved, desc=desc)
    if disable is not None:
        config["disable"] = disable
    pipe.set_progress_bar_config(**config)
    try:
        yield
    finally:
        pipe.set_progress_bar_config(**saved)


class PhaseBars:
    """A ``progress(done, total, phase)`` callback drawing one bar per phase: a new phase closes the
    last one's bar and opens its own with its total."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self._bar = None
        self._phase = None

    def __call__(self, done: int, total: int, phase: str) -> None:
        if self._bar is None or phase != self._phase:
            self.close()
            self._bar = tqdm(total=total, desc=phase, disable=self.disable)
            self._phase = phase
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = self._phase = None
