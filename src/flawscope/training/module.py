"""LightningModule for reconstruction networks (autoencoders trained with MSE)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


class ReconstructionModule(L.LightningModule):
    """Trains ``network`` to reconstruct its ``(N, C, H, W)`` float32 input in ``[0, 1]`` with MSE.

    Optimiser: Adam (learning rate, weight decay) with ReduceLROnPlateau on ``val_loss``
    (seed 000: MSE + Adam; seed 002: weight decay and ReduceLROnPlateau).
    """

    def __init__(
        self,
        network: nn.Module,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        lr_patience: int = 3,
        lr_factor: float = 0.5,
    ) -> None:
        super().__init__()
        self.network = network
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_patience = lr_patience
        self.lr_factor = lr_factor
        self.loss_fn = nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch ``x`` (here the MSE of the reconstruction)."""
        return self.loss_fn(self.network(x), x)

    def _step(self, batch: tuple[torch.Tensor, ...], name: str) -> torch.Tensor:
        (x,) = batch
        loss = self.loss(x)
        self.log(name, loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train_loss")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val_loss")

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's dict format
        opt = torch.optim.Adam(
            self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.lr_factor, patience=self.lr_patience
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
