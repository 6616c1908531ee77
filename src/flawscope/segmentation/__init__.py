"""Background segmentation with the U-Net of seed 003 (thesis sections 3.6.3, 3.7; Listing A.1).

:class:`UNetSegmenter` trains the network on image/mask pairs, saves and loads it, and predicts
foreground masks of images of any size; :class:`UNet` is the network itself.
"""

from flawscope.segmentation.segmenter import UNetSegmenter
from flawscope.segmentation.unet import FILTERS, UNet

__all__ = ["FILTERS", "UNet", "UNetSegmenter"]
