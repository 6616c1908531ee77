"""Manifest CSV (path,group,batch,label) and file-name keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from flawscope.data.dataset import Sample
from flawscope.data.manifest import apply_manifest, name_key, read_manifest
from flawscope.errors import DataError


def test_manifest_rows_attach_group_batch_and_label(tmp_path: Path) -> None:
    (tmp_path / "lot1").mkdir()
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "path,group,batch,label\n"
        "lot1/a.png,view1,lot1,\n"
        f"{tmp_path / 'lot1' / 'b.png'},view2,lot1,defective\n"
    )
    m = read_manifest(csv)
    samples = [
        Sample(tmp_path / "lot1" / "a.png"),
        Sample(tmp_path / "lot1" / "b.png"),
        Sample(tmp_path / "c.png"),
    ]
    a, b, c = apply_manifest(samples, m, batch="cli-lot")
    assert (a.group, a.batch, a.label) == ("view1", "lot1", -1)
    assert (b.group, b.batch, b.label) == ("view2", "lot1", 1)
    assert (c.group, c.batch) == ("", "cli-lot")  # not listed: no group, the CLI's batch


def test_manifest_with_only_a_path_column(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("path\nx.png\n")
    assert read_manifest(csv)[(tmp_path / "x.png").resolve()].group == ""


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("file,group\nx.png,a\n", "no 'path' column"),
        ("path,label\nx.png,maybe\n", "unknown label"),
        ("path\nx.png\nx.png\n", "twice"),
    ],
)
def test_bad_manifests_give_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text(text)
    with pytest.raises(DataError, match=needle) as err:
        read_manifest(csv)
    assert "\n" not in str(err.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def test_name_key_takes_the_first_group_or_the_match() -> None:
    assert name_key(r"^(exp\d+)_", "exp3_num_12.jpg") == "exp3"
    assert name_key(r"view\d+", "/a/b/part_view07.png") == "view07"
    assert name_key(r"^(exp\d+)_", "other.png") is None
    assert name_key(None, "exp3_num_12.jpg") is None
