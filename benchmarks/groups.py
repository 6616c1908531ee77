"""Global vs per-group vs discovered-group thresholds on real data (issue 6 evidence).

For every data set and grouping scheme one Inspector is fitted on the good training images (the
detector is the same for every scheme; only the group keys differ). The thresholds then come

* from good images only (the default rule: max of the good hold-out scores of the group), and
* F-beta-optimal (beta = 1 and 2), tuned on a stratified half of the test set ("validation") and
  scored on the other half,

and the script reports precision, recall, F1 and F2 of the verdicts on the test images (the
evaluation half for the tuned thresholds, and the same half for good-only thresholds, so the rows
compare), plus image AUROC of the raw and of the group-normalised scores.

Schemes: ``global`` (one threshold), ``pattern`` (a group key in the file name, e.g.
magnetic_tile's acquisition ``expN_``), ``discover`` (k-means on backbone embeddings, k by
silhouette).

    .venv/bin/python benchmarks/groups.py --sets magnetic_tile printbed

writes ``benchmarks/results/groups_<set>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_data import machine  # noqa: E402

from flawscope.config import InspectorConfig  # noqa: E402
from flawscope.data.dataset import labelled_samples  # noqa: E402
from flawscope.inspector import Inspector  # noqa: E402
from flawscope.metrics import image_metrics  # noqa: E402

PATTERNS = {"magnetic_tile": r"^(exp\d+)_"}


def score_test(insp: Inspector, samples: list[Any]) -> dict[str, Any]:
    """Scores, labels and group keys of every readable test image."""
    scores, labels, groups = [], [], []
    for batch in insp.predict_batches(samples):
        scores.append(batch.prediction.image_scores)
        labels += [s.label for s in batch.loaded.samples]
        groups += batch.groups
    return {"scores": np.concatenate(scores), "labels": np.asarray(labels), "groups": groups}


def verdict_metrics(th: Any, y: np.ndarray, s: np.ndarray, g: list[str]) -> dict[str, float]:
    """Precision, recall, F1, F2 and the fail rate of good images at group thresholds ``th``."""
    m = image_metrics(y, s, th.for_groups(g))
    fails = np.asarray(th.verdicts(s, g)) == "fail"
    return {
        "precision": m["precision"],
        "recall": m["recall"],
        "f1": m["f1"],
        "f2": m["f2"],
        "good_fail_rate": float(fails[y == 0].mean()),
    }


def run_scheme(root: Path, name: str, scheme: str, args: argparse.Namespace) -> dict[str, Any]:
    groups: dict[str, Any] = {"source": "none" if scheme == "global" else scheme}
    if scheme == "pattern":
        groups["pattern"] = PATTERNS[name]
    cfg = InspectorConfig.model_validate(
        {
            "model": {"name": args.model, "image_size": args.image_size},
            "training": {"progress": False, "seed": args.seed},
            "groups": groups,
        }
    )
    t0 = time.perf_counter()
    insp = Inspector.fit(root, cfg)
    fit_s = time.perf_counter() - t0
    test = score_test(insp, labelled_samples(root))
    y, s, g = test["labels"], test["scores"], np.asarray(test["groups"], dtype=object)
    idx = np.arange(len(y))
    val, ev = train_test_split(idx, test_size=0.5, stratify=y, random_state=args.seed)
    good_only = insp.thresholds
    out: dict[str, Any] = {
        "scheme": scheme,
        "fit_seconds": round(fit_s, 1),
        "groups": {k: int(v) for k, v in good_only.counts.items()},
        "groups_with_own_threshold": len(good_only.thresholds),
        "fallback_groups": good_only.fallback,
        "group_model": insp.group_model.describe() if insp.group_model is not None else None,
        "image_auroc_raw": float(roc_auc_score(y, s)),
        "image_auroc_normalised": float(roc_auc_score(y, good_only.normalise(s, list(g)))),
        "good_only_all_test": verdict_metrics(good_only, y, s, list(g)),
        "good_only_eval_half": verdict_metrics(good_only, y[ev], s[ev], list(g[ev])),
    }
    for beta in (1.0, 2.0):
        tuned, how = good_only.tune(y[val], s[val], list(g[val]), beta)
        out[f"f{beta:g}_tuned_eval_half"] = verdict_metrics(tuned, y[ev], s[ev], list(g[ev]))
        out[f"f{beta:g}_tuning"] = how
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["magnetic_tile", "printbed"])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--model", default="patchcore")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()
    for name in args.sets:
        root = Path(args.data) / name
        schemes = ["global"] + (["pattern"] if name in PATTERNS else []) + ["discover"]
        rows = []
        for scheme in schemes:
            row = run_scheme(root, name, scheme, args)
            rows.append(row)
            print(
                f"{name:14} {scheme:9} own thresholds {row['groups_with_own_threshold']:2}  "
                f"AUROC raw {row['image_auroc_raw']:.3f} norm {row['image_auroc_normalised']:.3f}  "
                + "  ".join(
                    f"{k.split('_')[0]}: F1 {row[k]['f1']:.3f} F2 {row[k]['f2']:.3f}"
                    for k in ("good_only_eval_half", "f1_tuned_eval_half", "f2_tuned_eval_half")
                ),
                flush=True,
            )
        result = {
            "benchmark": "groups",
            "command": "python " + " ".join(sys.argv),
            "dataset": name,
            "model": args.model,
            "image_size": args.image_size,
            "threshold_rule_good_only": "max of the group's good hold-out scores (min 10 images)",
            "evaluation": "stratified 50/50 split of the test set (seed): tune on one half, "
            "score the other; good_only_all_test uses every test image",
            "machine": machine(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "schemes": rows,
        }
        out = Path(args.results) / f"groups_{name}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
