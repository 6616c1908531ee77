"""Preprocessing: colour conversion and resizing (later: background segmentation, CLAHE, tiling)."""
