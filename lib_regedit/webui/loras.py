"""LoRA per region in the WebUI, through its built-in Lora extension (``extensions-builtin/Lora``, whose
``networks`` module ``webui/checkpoints.py`` passes in; nothing here imports the WebUI).

The WebUI applies the main prompt's ``<lora:...>`` to the whole model: ``networks.loaded_networks``
lists them, and each patched layer merges that list into its weights when it runs (and restores its
backup when the list changes). A region's LoRAs (``lib_regedit/regions/loras.py``):

- are loaded as their own network objects (not the ones the main prompt may hold), so a region's
  multipliers never touch the main prompt's;
- for encoding the region's prompt, and for a latent-mode region pass, are appended to
  ``loaded_networks`` for the duration and taken out again (the layers then merge the main list
  back on their next run: "switched per pass and restored");
- in attention mode give the key and value projections' term from each network module's own
  ``calc_updown`` (any LoRA type the extension reads: LoRA, LoHa, LoKr, ...).
"""

from __future__ import annotations

import contextlib

from ..errors import RegEditError
from ..regions.loras import LoraSupport, LoraTag, low_rank_term


class WebUILoras(LoraSupport):
    def __init__(self, networks):
        self.networks = networks
        self.nets: dict[str, object] = {}

    def _on_disk(self, name: str):
        nw = self.networks
        entry = nw.available_network_aliases.get(name) or nw.available_networks.get(name)
        if entry is None:  # a file added since the list was read
            nw.list_available_networks()
            entry = nw.available_network_aliases.get(name) or nw.available_networks.get(name)
        return entry

    def check(self, tags: list[LoraTag], field: str) -> None:
        for tag in tags:
            if tag.name in self.nets:
                continue
            entry = self._on_disk(tag.name)
            if entry is None:
                raise RegEditError(field, f"no LoRA named {tag.name!r}",
                                   "write the name the Lora tab shows (its file name in models/Lora without the "
                                   "extension); press the tab's refresh button after adding a file")
            try:
                net = self.networks.load_network(tag.name, entry)
            except Exception as exc:  # noqa: BLE001 - the extension raises plain errors on files it cannot read
                raise RegEditError(field, f"LoRA {tag.name!r} could not be read ({type(exc).__name__}: {exc})"[:300],
                                   "use a LoRA file the WebUI's Lora tab can load") from None
            if not net.modules:
                raise RegEditError(field, f"none of the layers of LoRA {tag.name!r} match this checkpoint",
                                   "use a LoRA made for this checkpoint's architecture (SD 1.x or SDXL)")
            self.nets[tag.name] = net

    @contextlib.contextmanager
    def _added(self, tags: list[LoraTag]):
        nw = self.networks
        saved = list(nw.loaded_networks)
        added = []
        for tag in tags:
            net = self.nets[tag.name]
            net.te_multiplier, net.unet_multiplier, net.dyn_dim = tag.te, tag.unet, None
            added.append(net)
        nw.loaded_networks[:] = saved + added
        try:
            yield
        finally:
            nw.loaded_networks[:] = saved

    def encoding(self, tags: list[LoraTag]):
        return self._added(tags)

    def unet_pass(self, tags: list[LoraTag]):
        return self._added(tags)

    def projection(self, tags: list[LoraTag]):
        def delta(linear, context):
            name = getattr(linear, "network_layer_name", None)
            total = None
            for tag in tags:
                net = self.nets[tag.name]
                module = net.modules.get(name) if name else None
                if module is None:
                    continue
                net.unet_multiplier = tag.unet  # one network object may serve two regions at two weights
                updown, bias = module.calc_updown(linear.weight)
                term = low_rank_term(context, updown.reshape(linear.weight.shape), bias)
                total = term if total is None else total + term
            return total
        return delta
