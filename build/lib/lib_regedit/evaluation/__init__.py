"""ShapesWorld evaluation: a classical detector and the metrics of issue 4 (``python -m lib_regedit eval``)."""
