"""The ComfyUI adapter: what RegEdit's ComfyUI nodes (``comfyui/nodes.py``) run, over the model interface.

ComfyUI is one more host of the engine: :mod:`lib_regedit.backends.comfy_checkpoint` implements the
model interface on its MODEL, CLIP and VAE, and :mod:`lib_regedit.backends.comfy_backend` patches a clone
of its ``ModelPatcher``. ComfyUI's own modules are imported inside this package's functions only, so the
engine imports without ComfyUI.
"""
