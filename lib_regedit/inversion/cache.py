"""Inversions cached per image, model, prompts and settings, so a second edit of the same photo skips
the inversion: in memory with a size bound (the WebUI), and on disk on request (the command line).
Only finished inversions are stored; a cancelled or failed one leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .invert import Inversion
from .null_sets import NullSet

DEFAULT_MEMORY_MB = 512


def image_digest(image) -> str:
    """The pixels, size and mode of a PIL image, hashed."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.size}".encode())
    h.update(np.ascontiguousarray(np.asarray(image)).tobytes())
    return h.hexdigest()


def inversion_key(image, model_id: str, source_document: str, negative_prompt: str, method: str, steps: int,
                  guidance_scale: float, settings: dict | None = None) -> str:
    """Everything an inversion depends on. ``source_document`` is the source side's region document
    (its JSON): the prompts, boxes and fusion settings the inversion ran with. The CFG scale only
    changes null-text's result, and ``settings`` its options."""
    parts = {"image": image_digest(image), "model": model_id, "source": source_document,
             "negative": negative_prompt or "", "method": method, "steps": int(steps),
             "cfg": float(guidance_scale) if method == "nulltext" else None, "settings": settings or {}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class InversionCache:
    """Least recently used first out, within ``max_bytes`` (an inversion larger than the bound is not
    kept). ``folder``: also written to and read from disk, one file per key."""

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_MB << 20, folder: str | Path | None = None):
        self.max_bytes = int(max_bytes)
        self.folder = Path(folder) if folder else None
        self._items: OrderedDict[str, Inversion] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return sum(item.nbytes for item in self._items.values())

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._evict()

    def get(self, key: str) -> Inversion | None:
        item = self._items.get(key)
        if item is None and self.folder is not None:
            item = _load(self.folder / f"{key}.pt")
            if item is not None:
                self._remember(key, item)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: str, item: Inversion) -> None:
        item.key = key
        self._remember(key, item)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f"{key}.pt.partial"
            torch.save(_to_dict(item), partial)
            partial.replace(self.folder / f"{key}.pt")  # whole files only

    def clear(self) -> None:
        self._items.clear()

    def _remember(self, key: str, item: Inversion) -> None:
        self._items[key] = item
        self._items.move_to_end(key)
        self._evict()

    def _evict(self) -> None:
        while self._items and self.nbytes > self.max_bytes:
            self._items.popitem(last=False)


def _to_dict(item: Inversion) -> dict:
    sets = None if item.null_sets is None else [
        {"total": s.total, "background": s.background, "regions": list(s.regions)} for s in item.null_sets]
    return {"method": item.method, "steps": item.steps, "guidance_scale": item.guidance_scale,
            "latent": item.latent, "null_sets": sets, "seconds": item.seconds, "unet_rows": item.unet_rows,
            "losses": item.losses, "key": item.key}


def _load(path: Path) -> Inversion | None:
    if not path.is_file():
        return None
    data = torch.load(path, map_location="cpu", weights_only=True)
    sets = None if data["null_sets"] is None else [
        NullSet(s["total"], s["background"], tuple(s["regions"])) for s in data["null_sets"]]
    return Inversion(data["method"], data["steps"], data["guidance_scale"], data["latent"], sets, data["seconds"],
                     data["unet_rows"], list(data["losses"]), data["key"])
