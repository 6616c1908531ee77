"""Lightning training shared by the trainable networks."""

from flawscope.training.loop import fit_network
from flawscope.training.module import ReconstructionModule
from flawscope.training.vae_module import VAEModule

__all__ = ["ReconstructionModule", "VAEModule", "fit_network"]
