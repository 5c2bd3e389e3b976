"""ComfyUI's entry to RegEdit (``custom_nodes/sd-webui-regedit``): the node pack in ``comfyui/``.

The AUTOMATIC1111 WebUI and WebUI Forge load ``scripts/`` and never import this file; nor do the engine,
its tests and command line."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)  # the engine, lib_regedit, imports as in the WebUI; appended, so nothing of ComfyUI is shadowed

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
if __package__ and "comfy" in sys.modules:  # inside ComfyUI, which imports this folder as a package; not
    # when pytest, whose rootdir this is, collects the folder as a package of tests
    from .comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402,F811

WEB_DIRECTORY = "./comfyui/web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
