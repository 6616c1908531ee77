"""Synthetic data generators.

:mod:`flawscope.data.synthetic.printed_layers` renders procedural top-down images of FDM
3D-printed layers with injected defects and pixel masks, a stand-in for the seed-000 layer photos
used by the embedded demo and the tests. :mod:`flawscope.data.synthetic.parts` renders grey
bricks on cluttered, unevenly lit backgrounds with exact foreground and defect masks (the hard
segmentation case of seed 003): ``render_part``, ``write_parts_dataset``.
"""

from flawscope.data.synthetic.printed_layers import DEFECT_TYPES, render_layer, write_dataset

__all__ = ["DEFECT_TYPES", "render_layer", "write_dataset"]
