"""The JSON documents users write (region boxes, drag pairs, LIME settings), validated in one place.

The WebUI panels, the API (``alwayson_scripts``), the infotext and the Python API all read and write
these documents; every check raises :class:`lib_regedit.errors.RegEditError` naming the field.
"""

from .region import Region, RegionDocument, parse_region_document

__all__ = ["Region", "RegionDocument", "parse_region_document"]
from .drag import DragDocument, DragPair, MaskRegion, PolygonRegion, Stroke, parse_drag_document  # noqa: F401,E402
from .lime import LimeDocument, parse_lime_document  # noqa: F401,E402
