"""lib_regedit: region-level control for Stable Diffusion (SD 1.x, SDXL).

The engine never imports the WebUI's ``modules``; ``scripts/`` is the only glue to AUTOMATIC1111.
"""

from . import quiet
from .errors import RegEditError

quiet.install()

__all__ = ["RegEditError"]
__version__ = "0.1.0"
