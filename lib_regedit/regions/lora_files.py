"""LoRA files for LoRA per region in the Python API and the command line (diffusers pipelines).

Two layouts of ``.safetensors`` are read, each matched against the pipeline's own layers:

- kohya (sd-scripts, what most SD 1.x LoRAs use): ``lora_unet_<layer>.lora_down.weight``,
  ``.lora_up.weight`` and ``.alpha``, with ``lora_te_``/``lora_te1_``/``lora_te2_`` for the text
  encoders; ``<layer>`` is the diffusers module path with its dots as underscores;
- PEFT (diffusers' own): ``unet.<module path>.lora_A.weight`` and ``.lora_B.weight`` (``text_encoder.``,
  ``text_encoder_2.`` for the text encoders).

The change a LoRA makes to a layer's weight is ``up @ down * alpha / rank * multiplier``
(:func:`layer_update`). The WebUI reads LoRAs with its own Lora extension (every format it knows),
not with this module. See ``lib_regedit/regions/loras.py`` for what applies where.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import RegEditError
from .loras import LoraSupport, LoraTag, low_rank_term

PARTS = {"unet": ("lora_unet_", "unet."), "text_encoder": ("lora_te_", "lora_te1_", "text_encoder."),
         "text_encoder_2": ("lora_te2_", "text_encoder_2.")}


@dataclass
class LayerLora:
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None

    @property
    def scale(self) -> float:
        return (self.alpha / self.down.shape[0]) if self.alpha is not None else 1.0

    def term(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """This layer's LoRA term of ``module(x)`` at multiplier 1, low-rank (down, then up)."""
        down, up = self.down.to(x.device, x.dtype), self.up.to(x.device, x.dtype)
        if isinstance(module, torch.nn.Conv2d):
            down = down if down.ndim == 4 else down[:, :, None, None]
            up = up if up.ndim == 4 else up[:, :, None, None]
            hidden = torch.nn.functional.conv2d(x, down, stride=module.stride, padding=module.padding,
                                                dilation=module.dilation)
            return torch.nn.functional.conv2d(hidden, up) * self.scale
        return torch.nn.functional.linear(torch.nn.functional.linear(x, down.flatten(1)), up.flatten(1)) * self.scale

    def update(self, weight: torch.Tensor) -> torch.Tensor:
        """This layer's weight change at multiplier 1, shaped like ``weight``."""
        updown = self.up.flatten(1).float() @ self.down.flatten(1).float()
        return (updown * self.scale).reshape(weight.shape)


def layer_update(layers: list[tuple[LayerLora, float]], weight: torch.Tensor) -> torch.Tensor | None:
    """The summed weight change of ``(layer LoRA, multiplier)`` pairs for one layer, or None."""
    total = None
    for lora, multiplier in layers:
        change = lora.update(weight) * multiplier
        total = change if total is None else total + change
    return total


def random_lora(model: torch.nn.Module, prefix: str, match, generator: torch.Generator, rank: int = 4,
                scale: float = 1.0, peft: bool = False) -> dict[str, torch.Tensor]:
    """A LoRA with random weights for the Linear layers of ``model`` whose module path ``match`` accepts,
    as the tensors of a file in kohya form (``prefix`` e.g. ``lora_unet_``, with ``alpha`` = rank) or
    PEFT's (``prefix`` e.g. ``unet.``): for benches and tests that need one without a download."""
    tensors = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and match(name):
            down = torch.randn(rank, module.in_features, generator=generator) * scale
            up = torch.randn(module.out_features, rank, generator=generator) * scale
            if peft:
                tensors[f"{prefix}{name}.lora_A.weight"], tensors[f"{prefix}{name}.lora_B.weight"] = down, up
            else:
                key = prefix + name.replace(".", "_")
                tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = down, up
                tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    return tensors


def read_lora(path: os.PathLike, field: str = "lora") -> dict[str, LayerLora]:
    """The LoRA's layers, keyed by their name in the file without the tensor part (``lora_unet_...`` or
    ``unet.down_blocks...``)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise RegEditError(field, f"{path} does not exist", "give a LoRA .safetensors file")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise RegEditError(field, f"{path.name} could not be read ({type(exc).__name__})",
                           "give a LoRA saved as .safetensors") from None
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        for suffix, role in ((".lora_down.weight", "down"), (".lora_up.weight", "up"), (".alpha", "alpha"),
                             (".lora_A.weight", "down"), (".lora_B.weight", "up")):
            if key.endswith(suffix):
                parts.setdefault(key[:-len(suffix)], {})[role] = tensor
                break
    layers = {name: LayerLora(p["down"], p["up"], float(p["alpha"]) if "alpha" in p else None)
              for name, p in parts.items() if "down" in p and "up" in p}
    if not layers:
        raise RegEditError(field, f"{path.name} holds no LoRA layers",
                           "give a LoRA in kohya (lora_down/lora_up) or PEFT (lora_A/lora_B) form")
    return layers


class DiffusersLoras(LoraSupport):
    """LoRA per region on a diffusers pipeline. ``files``: LoRA name (as written in ``<lora:NAME>``) ->
    ``.safetensors`` path. Files are read when a tag first names them."""

    def __init__(self, pipe, files: dict[str, os.PathLike]):
        self.pipe = pipe
        self.files = {str(k): Path(v) for k, v in files.items()}
        self.loaded: dict[str, dict[tuple[str, str], LayerLora]] = {}
        self.modules: dict[tuple[str, str], torch.nn.Module] = {}
        self.names: dict[int, tuple[str, str]] = {}  # id(module) -> (part, module path)
        self.aliases: dict[str, tuple[str, str]] = {}  # file layer name -> (part, module path)
        for part, prefixes in PARTS.items():
            model = getattr(pipe, part, None)
            if model is None:
                continue
            for path, module in model.named_modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                    self.modules[(part, path)] = module
                    self.names[id(module)] = (part, path)
                    for prefix in prefixes:
                        name = prefix + (path.replace(".", "_") if prefix.startswith("lora_") else path)
                        self.aliases[name] = (part, path)

    @classmethod
    def from_folder(cls, pipe, folder: os.PathLike, field: str = "--lora-dir") -> "DiffusersLoras":
        """Every ``.safetensors`` in ``folder``, named by its file name without the extension (as the
        WebUI's ``models/Lora`` folder)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise RegEditError(field, f"{folder} is not a folder", "give the folder that holds your LoRA files")
        return cls(pipe, {p.stem: p for p in sorted(folder.glob("*.safetensors"))})

    def load(self, name: str, field: str) -> dict[tuple[str, str], LayerLora]:
        if name not in self.loaded:
            if name not in self.files:
                known = ", ".join(sorted(self.files)) or "none"
                raise RegEditError(field, f"no LoRA named {name!r} (known: {known})",
                                   "write the name of one of the LoRA files given (its file name without .safetensors)")
            layers = read_lora(self.files[name], field)
            matched = {self.aliases[k]: v for k, v in layers.items() if k in self.aliases}
            if not matched:
                raise RegEditError(field, f"none of the layers of LoRA {name!r} match this model",
                                   "use a LoRA made for this model (kohya's or PEFT's layer names for SD 1.x in the "
                                   "Python API; the WebUI reads every LoRA format it knows)")
            self.loaded[name] = matched
        return self.loaded[name]

    def check(self, tags: list[LoraTag], field: str) -> None:
        for tag in tags:
            self.load(tag.name, field)

    def _layers(self, tags: list[LoraTag], part_filter, te: bool) -> dict[tuple[str, str], list]:
        out: dict[tuple[str, str], list] = {}
        for tag in tags:
            for key, lora in self.load(tag.name, "lora").items():
                if part_filter(key[0]):
                    out.setdefault(key, []).append((lora, tag.te if te else tag.unet))
        return out

    @contextlib.contextmanager
    def _merged(self, layers: dict[tuple[str, str], list]):
        """The layers' weights with their changes added; the exact weights back afterwards."""
        saved = []
        try:
            with torch.no_grad():
                for key, pairs in layers.items():
                    module = self.modules[key]
                    saved.append((module, module.weight.detach().clone()))
                    module.weight.add_(layer_update(pairs, module.weight).to(module.weight.dtype))
            yield
        finally:
            with torch.no_grad():
                for module, weight in saved:
                    module.weight.copy_(weight)

    def encoding(self, tags: list[LoraTag]):
        return self._merged(self._layers(tags, lambda part: part != "unet", te=True))

    @contextlib.contextmanager
    def _hooked(self, layers: dict[tuple[str, str], list]):
        """Each layer's output plus its low-rank LoRA terms (forward hooks, removed afterwards): cheaper
        per pass than merging whole weight matrices in and out."""
        def hook_for(pairs):
            def hook(module, args, out):
                for lora, multiplier in pairs:
                    out = out + lora.term(module, args[0]) * multiplier
                return out
            return hook

        handles = [self.modules[key].register_forward_hook(hook_for(pairs)) for key, pairs in layers.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def unet_pass(self, tags: list[LoraTag]):
        return self._hooked(self._layers(tags, lambda part: part == "unet", te=False))

    def projection(self, tags: list[LoraTag]):
        layers = self._layers(tags, lambda part: part == "unet", te=False)

        def delta(linear: torch.nn.Module, context: torch.Tensor) -> torch.Tensor | None:
            pairs = layers.get(self.names.get(id(linear)))
            if not pairs:
                return None
            return low_rank_term(context, layer_update(pairs, linear.weight))
        return delta
