"""The Lightning training loop: early stopping, best checkpoint, progress bar, any accelerator."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset, TensorDataset

from flawscope.config import TrainingConfig
from flawscope.preprocess.augment import AugmentedImages, Augmenter, EpochCounter

for _name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class LossHistory(Callback):
    """Records the epoch means of ``train_loss`` and ``val_loss``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        for key in self.history:
            value = trainer.callback_metrics.get(key)
            if value is not None:
                self.history[key].append(float(value))


def fit_network(
    module: L.LightningModule,
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: TrainingConfig,
    augment: bool = False,
) -> dict[str, list[float]]:
    """Train ``module`` on ``train`` images, early-stopping on ``val``; keep the best weights.

    Args:
        module: a LightningModule whose steps take ``(x,)`` batches and log ``val_loss``.
        train, val: ``(N, C, H, W)`` float32 tensors in ``[0, 1]``; N >= 1 each.
        cfg: epochs, batch size, patience, seed, ``accelerator``/``devices`` (passed to Lightning,
            so a GPU or several are used where present), augmentation settings.
        augment: augment the training images (``train`` must then be images: the caller
            decides, e.g. from ``cfg.augment``); ``val`` is never augmented.

    Returns:
        Loss history ``{"train_loss": [...], "val_loss": [...]}``, one value per epoch.
        On return ``module`` holds the weights of the epoch with the lowest ``val_loss``.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    generator = torch.Generator().manual_seed(cfg.seed)
    extra: list[Callback] = []
    train_set: Dataset = TensorDataset(train)
    if augment:
        train_set = AugmentedImages(train, Augmenter(cfg), cfg.seed)
        extra.append(EpochCounter(train_set))
    train_dl = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    val_dl = DataLoader(TensorDataset(val), batch_size=cfg.batch_size)
    return fit_keeping_best(
        module,
        train_dl,
        val_dl,
        [EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience), *extra],
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        enable_progress_bar=cfg.progress,
        deterministic="warn",
    )


def fit_keeping_best(
    module: L.LightningModule,
    train_dl: DataLoader,
    val_dl: DataLoader,
    callbacks: Sequence[Callback] = (),
    **trainer_options: Any,
) -> dict[str, list[float]]:
    """Fit ``module`` with Lightning and restore the weights of its lowest-``val_loss`` epoch.

    Shared by the image networks (:func:`fit_network`) and the 3D-ST teacher and students
    (:func:`flawscope.pointcloud.training.train_module`).

    Args:
        module: a LightningModule that logs ``train_loss`` and ``val_loss`` per epoch.
        train_dl, val_dl: the data loaders.
        callbacks: extra Lightning callbacks (e.g. early stopping).
        trainer_options: passed to ``lightning.Trainer`` (``max_epochs``, ``accelerator``,
            ``devices``, ``enable_progress_bar``, ...); no logger, no model summary, no sanity
            validation.

    Returns:
        ``{"train_loss": [...], "val_loss": [...]}``, one value per epoch; ``module`` is left in
        eval mode on the CPU with the best weights.
    """
    history = LossHistory()
    with tempfile.TemporaryDirectory(prefix="flawscope-ckpt-") as tmp:
        best = ModelCheckpoint(
            dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1, save_weights_only=True
        )
        trainer = L.Trainer(
            callbacks=[*callbacks, best, history],
            logger=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            **trainer_options,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*GPU available but not used.*")
            warnings.filterwarnings("ignore", ".*number of training batches.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            module.train()  # Lightning keeps the modes it finds; BatchNorm and dropout must train
            trainer.fit(module, train_dl, val_dl)
        if best.best_model_path:
            state = torch.load(Path(best.best_model_path), map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
    module.cpu().eval()
    return history.history
