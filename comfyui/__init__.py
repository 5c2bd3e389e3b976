"""RegEdit's ComfyUI node pack. ComfyUI loads it through the repository's top-level ``__init__.py`` (clone or
link the repository into ``ComfyUI/custom_nodes/``); the AUTOMATIC1111 WebUI and Forge never import it."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./comfyui/web"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
