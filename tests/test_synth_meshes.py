"""CAD part meshes: parametric parts, the mesh loader, crease-aware normals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from flawscope.data.synthetic.cad.meshes import (
    PARTS,
    box_part,
    brick_part,
    holder_plane,
    load_part,
    make_part,
    shading_normals,
)
from flawscope.errors import ConfigError, DataError


@pytest.mark.parametrize(
    ("name", "size"), [("brick", (31.8, 15.8, 11.3)), ("box", (40.0, 30.0, 20.0))]
)
def test_parametric_parts_are_watertight_and_sized(name: str, size: tuple) -> None:
    part = make_part(name)
    mesh = trimesh.Trimesh(part.vertices, part.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward winding
    lo, hi = part.vertices.min(axis=0), part.vertices.max(axis=0)
    np.testing.assert_allclose(hi - lo, size, atol=0.02)
    assert lo[2] == pytest.approx(0.0, abs=1e-9)  # rests on the holder
    np.testing.assert_allclose((lo + hi)[:2] / 2, 0.0, atol=1e-9)  # centred on z
    assert part.radius == pytest.approx(np.linalg.norm(hi - lo) / 2, rel=0.02)


def test_brick_has_eight_studs_and_the_box_is_printed() -> None:
    brick = brick_part()
    mesh = trimesh.Trimesh(brick.vertices, brick.faces, process=False)
    assert len(mesh.split(only_watertight=True)) == 1 + 8  # body + studs
    assert brick.finish == "moulded" and box_part().finish == "printed"
    small = brick_part((2, 2))
    assert len(trimesh.Trimesh(small.vertices, small.faces, process=False).split()) == 1 + 4


def test_unknown_part_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown part 'gear'.*brick, box"):
        make_part("gear")
    assert PARTS == ("brick", "box")


@pytest.mark.parametrize("suffix", [".stl", ".off", ".ply", ".obj"])
def test_mesh_files_round_trip(tmp_path: Path, suffix: str) -> None:
    box = trimesh.creation.box((10.0, 20.0, 5.0))
    box.apply_translation([3.0, -4.0, 7.0])  # not resting, not centred
    path = tmp_path / f"part{suffix}"
    box.export(path)
    part = load_part(path)
    assert part.name == "part" and len(part.faces) == 12
    np.testing.assert_allclose(part.vertices.min(axis=0), [-5, -10, 0], atol=1e-5)
    np.testing.assert_allclose(part.vertices.max(axis=0), [5, 10, 5], atol=1e-5)
    in_m = load_part(path, units="m")  # a file in metres is scaled to mm
    np.testing.assert_allclose(in_m.vertices.max(axis=0), [5000, 10000, 5000], rtol=1e-5)


def test_loader_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as missing:
        load_part(tmp_path / "nope.stl")
    assert "\n" not in str(missing.value)
    (tmp_path / "junk.stl").write_bytes(b"\x00garbage\x01" * 7)
    with pytest.raises(DataError, match="junk.stl") as junk:
        load_part(tmp_path / "junk.stl")
    assert "\n" not in str(junk.value)
    (tmp_path / "part.step").write_text("ISO-10303-21;")
    with pytest.raises(DataError, match="unsupported type .step"):
        load_part(tmp_path / "part.step")
    (tmp_path / "empty.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(DataError, match="empty.off"):
        load_part(tmp_path / "empty.off")
    with pytest.raises(ConfigError, match="unknown mesh units 'ft'"):
        load_part(tmp_path / "junk.stl", units="ft")
    with pytest.raises(ConfigError, match="unknown finish 'shiny'"):
        load_part(tmp_path / "junk.stl", finish="shiny")


def test_normals_are_split_at_creases_and_smooth_on_curves() -> None:
    cube = trimesh.creation.box((2.0, 2.0, 2.0))
    v, f, n = shading_normals(cube.vertices, cube.faces)
    assert len(v) == 24  # 8 corners x 3 faces: flat shading
    face_n = trimesh.Trimesh(v, f, process=False).face_normals
    np.testing.assert_allclose(n[f].mean(axis=1), face_n, atol=1e-9)
    cyl = trimesh.creation.cylinder(radius=1.0, height=2.0, sections=32)
    v, f, n = shading_normals(cyl.vertices, cyl.faces)
    side = np.abs(v[:, 2]) > 0.99  # rim vertices: one copy on the side, one on the cap
    radial = n[side & (np.abs(n[:, 2]) < 0.5)]
    np.testing.assert_allclose(np.linalg.norm(radial[:, :2], axis=1), 1.0, atol=1e-6)
    assert len(v) > len(cyl.vertices)


def test_holder_plane_faces_up() -> None:
    v, f = holder_plane(50.0, cells=4)
    normals = trimesh.Trimesh(v, f, process=False).face_normals
    np.testing.assert_allclose(normals, [[0, 0, 1]] * len(f), atol=1e-12)
    assert np.ptp(v[:, 0]) == pytest.approx(100.0)
