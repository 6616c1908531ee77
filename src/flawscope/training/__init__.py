"""Lightning training shared by the trainable networks."""

from flawscope.training.loop import fit_network
from flawscope.training.module import ReconstructionModule

__all__ = ["ReconstructionModule", "fit_network"]
