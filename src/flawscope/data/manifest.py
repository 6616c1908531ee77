"""Group and batch keys of images: a manifest CSV, or a pattern in the file name.

A manifest is a CSV file with a header row and the columns ``path`` (required; relative paths
are relative to the manifest's folder), ``group`` (camera view or layer family), ``batch``
(production lot) and ``label`` (``good`` / ``0``, ``defective`` / ``defect`` / ``1``, or empty
for unknown); the last three are optional. Example::

    path,group,batch,label
    lot07/view03.png,view03,lot07,
    lot07/view04.png,view04,lot07,good
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from flawscope.data.dataset import Sample
from flawscope.errors import DataError

_LABELS = {"": -1, "good": 0, "0": 0, "defective": 1, "defect": 1, "bad": 1, "1": 1}


@dataclass(frozen=True)
class ManifestEntry:
    """What a manifest row says about one image: group, batch, label (-1 unknown, 0, 1)."""

    group: str = ""
    batch: str = ""
    label: int = -1


def read_manifest(path: Path | str) -> dict[Path, ManifestEntry]:
    """Read a manifest CSV into ``{resolved image path: entry}``.

    Raises:
        DataError: the file is missing or unreadable, has no ``path`` column, holds an unknown
            label, or lists the same image twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist", "check the --manifest path")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            columns = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"manifest {path} cannot be read ({exc})", "save it as UTF-8 CSV") from exc
    if "path" not in columns:
        raise DataError(
            f"manifest {path} has no 'path' column (columns: {', '.join(sorted(columns)) or '-'})",
            "write a header row: path,group,batch,label",
        )
    entries: dict[Path, ManifestEntry] = {}
    for line, row in enumerate(rows, start=2):
        raw = (row.get("path") or "").strip()
        if not raw:
            continue
        label_text = (row.get("label") or "").strip().lower()
        if label_text not in _LABELS:
            raise DataError(
                f"manifest {path} line {line}: unknown label {label_text!r}",
                "use good, defective or leave it empty",
            )
        image = Path(raw) if Path(raw).is_absolute() else path.parent / raw
        key = image.resolve()
        if key in entries:
            raise DataError(f"manifest {path} lists {raw} twice", "keep one row per image")
        entries[key] = ManifestEntry(
            (row.get("group") or "").strip(), (row.get("batch") or "").strip(), _LABELS[label_text]
        )
    return entries


def apply_manifest(
    samples: Sequence[Sample], manifest: dict[Path, ManifestEntry], batch: str = ""
) -> list[Sample]:
    """Samples with group, batch (and a label where it was unknown) from the manifest.

    Images the manifest does not list keep no group; their batch is ``batch``. A manifest's
    batch wins over ``batch``.
    """
    out = []
    for s in samples:
        e = manifest.get(s.path.resolve())
        if e is None:
            out.append(replace(s, batch=s.batch or batch))
            continue
        label = s.label if s.label != -1 else e.label
        out.append(replace(s, group=e.group, batch=e.batch or s.batch or batch, label=label))
    return out


def name_key(pattern: str | None, path: Path | str | None) -> str | None:
    """The key in a file name: the first group of ``pattern`` (or its whole match), else None.

    ``pattern`` is a regular expression searched in the file name (not the folders), e.g.
    ``"^(exp\\d+)_"`` gives ``"exp3"`` for ``exp3_num_12.jpg``.
    """
    if pattern is None or path is None:
        return None
    found = re.search(pattern, Path(path).name)
    if found is None:
        return None
    return found.group(1) if found.groups() else found.group(0)
