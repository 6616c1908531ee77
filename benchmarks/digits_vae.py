"""Seed 001's MNIST one-digit-out protocol, on scikit-learn's bundled handwritten digits.

Usage (from the repository root):

    .venv/bin/python benchmarks/digits_vae.py [--epochs 50] [--digits 0 1 ... 9]
        [--latent 2 32] [--iw-samples 128] [--seed 0] [--threads 2]
        [--out benchmarks/results/vae_digits.json]

``--threads`` sets ``torch.set_num_threads``. Use 1 when another job is busy on a 2-core machine:
there, 2 threads made each training step about 25 times slower (threads waiting on each other).
The full run (10 digits x 2 latent sizes, 50 epochs) took 585 s with 1 thread.

Tonnaer et al. (IJCNN 2019; Sec. 3.4.1 and 3.5.1 of the extended version, chapter 3 of
L. Tonnaer's thesis) train a VAE on nine MNIST digits and score the tenth as the anomaly, for
each digit, with latent dimension 2 or 32 (two 3x3 conv blocks of 32 and 64 filters, 64 hidden
units, 50 epochs), and report image AUROC of the negative ELBO. MNIST cannot be downloaded here,
so this runs the same protocol on ``sklearn.datasets.load_digits`` (1797 real 8x8 handwritten
digits, grey values 0..16, scaled to [0, 1] and bilinearly up-sampled to 16x16 because flawscope's
smallest input side is 16 px; two pooling blocks then leave a 4x4 map).

For each anomalous digit d: a stratified split (``--test-size``, default 30 %) of all images;
the VAE trains on the train split's images of the nine other digits (15 % of them held out for
early stopping), and is tested on the whole test split (normal: the nine digits, anomalous: d).
Both scores, the negative ELBO and the negative IWAE estimate (Burda et al., ICLR 2016), come
from the same ``--iw-samples`` posterior samples of the real :class:`VAEDetector`. The table
goes to stdout, the JSON (command, data set, machine, date, settings, table) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

#: image AUROC of the negative ELBO on MNIST, Table 3.3 of the thesis chapter (for reference
#: only: other data, 28x28 images, 54,000 training images)
PAPER_MNIST_AUROC = {
    2: [0.96, 0.73, 0.97, 0.94, 0.73, 0.92, 0.95, 0.77, 0.92, 0.66],
    32: [0.81, 0.09, 0.92, 0.87, 0.78, 0.86, 0.87, 0.51, 0.89, 0.58],
}


def load_digit_images(size: int = 16) -> tuple[torch.Tensor, np.ndarray]:
    """All of scikit-learn's digits as ``(1797, 1, size, size)`` float32 in [0, 1], and labels.

    The 8x8 images (values 0..16) are divided by 16 and bilinearly resized to ``size``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.from_numpy(data.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")
        x = x.clamp(0.0, 1.0)
    return x.contiguous(), data.target.astype(np.int64)


def split_indices(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / test indices of the whole data set (the same for every digit)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


def run_digit(
    digit: int,
    latent_dim: int,
    images: torch.Tensor,
    labels: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    epochs: int = 50,
    iw_samples: int = 128,
    seed: int = 0,
    filters: tuple[int, ...] = (32, 64),
    hidden: int = 64,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Train the ``vae`` detector with ``digit`` as the anomaly; AUROC of both scores.

    Args:
        digit: the anomalous class (0..9).
        latent_dim: L of the VAE.
        images: ``(N, 1, S, S)`` float32 in [0, 1]; labels: ``(N,)`` digit labels.
        train_idx, test_idx: disjoint index arrays into ``images``.

    Returns:
        ``digit``, ``latent_dim``, ``auroc_elbo``, ``auroc_iwae`` (image AUROC, anomaly =
        positive), the image counts, ``epochs_run`` and ``fit_seconds``.
    """
    from sklearn.metrics import roc_auc_score

    from flawscope.config import ModelConfig, ScoringConfig, TrainingConfig
    from flawscope.models.vae import VAEDetector

    rng = np.random.default_rng(seed)
    normal = train_idx[labels[train_idx] != digit]
    normal = rng.permutation(normal)
    n_val = max(1, round(0.15 * len(normal)))
    val, train = normal[:n_val], normal[n_val:]
    model = ModelConfig(
        name="vae",
        image_size=images.shape[-1],
        channels=1,
        params={
            "filters": list(filters),
            "hidden": hidden,
            "latent_dim": latent_dim,
            "iw_samples": iw_samples,
        },
    )
    training = TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        progress=False,
        accelerator="cpu",
        devices=1,
    )
    det = VAEDetector(model, training, ScoringConfig(sigma=0.0))
    t0 = time.perf_counter()
    det.fit(images[train], images[val])
    fit_s = time.perf_counter() - t0
    neg_elbo, neg_iwae = [], []
    for i in range(0, len(test_idx), 256):
        s = det.score_details(images[test_idx[i : i + 256]])
        neg_elbo.append(s.neg_elbo)
        neg_iwae.append(s.neg_iwae)
    y = (labels[test_idx] == digit).astype(int)
    e, w = np.concatenate(neg_elbo), np.concatenate(neg_iwae)
    return {
        "digit": digit,
        "latent_dim": latent_dim,
        "auroc_elbo": round(float(roc_auc_score(y, e)), 4),
        "auroc_iwae": round(float(roc_auc_score(y, w)), 4),
        "mean_neg_elbo_normal": round(float(e[y == 0].mean()), 2),
        "mean_neg_iwae_normal": round(float(w[y == 0].mean()), 2),
        "train_images": len(train),
        "val_images": len(val),
        "test_normal": int((y == 0).sum()),
        "test_anomalous": int(y.sum()),
        "epochs_run": len(det.history.get("val_loss", [])),
        "fit_seconds": round(fit_s, 1),
    }


def format_table(rows: list[dict[str, Any]], latents: list[int]) -> str:
    """Markdown table: one row per digit, ELBO / IWAE AUROC per latent size, paper's MNIST."""
    head = ["digit"]
    for d in latents:
        head += [f"L={d} ELBO", f"L={d} IWAE"]
    head += [f"paper MNIST L={d}" for d in latents if d in PAPER_MNIST_AUROC]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["digit"], r["latent_dim"]): r for r in rows}
    digits = sorted({r["digit"] for r in rows})
    for g in [*digits, "mean"]:
        cells = [str(g)]
        for d in latents:
            for key in ("auroc_elbo", "auroc_iwae"):
                vals = [by[(k, d)][key] for k in digits if (k, d) in by]
                v = by.get((g, d), {}).get(key) if g != "mean" else np.mean(vals)
                cells.append("–" if v is None else f"{v:.3f}")
        for d in latents:
            if d in PAPER_MNIST_AUROC:
                ref = PAPER_MNIST_AUROC[d]
                v = ref[g] if g != "mean" else np.mean([ref[k] for k in digits])
                cells.append(f"{v:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the protocol for the chosen digits and latent sizes; print and write the results."""
    from real_data import machine  # benchmarks/ is on sys.path when this runs as a script

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--latent", type=int, nargs="+", default=[2, 32])
    ap.add_argument("--iw-samples", type=int, default=128)
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vae_digits.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from flawscope import __version__

    started = time.perf_counter()
    images, labels = load_digit_images(16)
    train_idx, test_idx = split_indices(labels, args.test_size, args.seed)
    rows = []
    for digit in args.digits:
        for latent in args.latent:
            r = run_digit(
                digit,
                latent,
                images,
                labels,
                train_idx,
                test_idx,
                epochs=args.epochs,
                iw_samples=args.iw_samples,
                seed=args.seed,
            )
            print(
                f"digit {digit} L={latent}: AUROC ELBO {r['auroc_elbo']:.3f} "
                f"IWAE {r['auroc_iwae']:.3f} ({r['epochs_run']} epochs, {r['fit_seconds']} s)",
                flush=True,
            )
            rows.append(r)
    table = format_table(rows, args.latent)
    print(table)
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "dataset": {
            "name": "sklearn.datasets.load_digits (UCI optical handwritten digits, test part)",
            "images": len(labels),
            "preprocessing": "values/16 -> [0, 1], bilinear 8x8 -> 16x16",
            "split": f"stratified, test_size={args.test_size}, random_state={args.seed}",
            "train": "train-split images of the nine normal digits, 15 % of them held out "
            "for early stopping",
            "test": "whole test split; anomalous = the left-out digit",
        },
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flawscope_version": __version__,
        "settings": {
            "epochs": args.epochs,
            "early_stopping_patience": 8,
            "batch_size": 64,
            "learning_rate": 1e-3,
            "filters": [32, 64],
            "hidden": 64,
            "latent_dims": args.latent,
            "likelihood": "gaussian, fixed sigma 1/sqrt(2)",
            "iw_samples": args.iw_samples,
            "digits": args.digits,
            "seed": args.seed,
        },
        "paper_mnist_auroc_elbo": {str(k): v for k, v in PAPER_MNIST_AUROC.items()},
        "rows": rows,
        "table": table,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out} ({result['total_seconds']} s)")
    return result


if __name__ == "__main__":
    main()
