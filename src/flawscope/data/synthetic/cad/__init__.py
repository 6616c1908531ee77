"""Synthetic training data from CAD: render a part's mesh like the stereo scanner of seed 003.

Seed 003 (thesis on LEGO brick inspection, section 3.5) rendered the CAD model of its bricks in
Blender along two camera paths that mimic an ATOS stereo scanner (two cameras looking at the
brick, a spotlight, Cycles at 50 samples per pixel, denoised), rendered a mask per image, and
trained its U-Net and detector on real, synthetic and mixed data; its lesson (5.2, 6.1) is that
synthetic data helps only when realistic: surface texture, lighting, range of brightness,
backgrounds. This package renders a part (a mesh file or a parametric brick or printed box,
:mod:`.meshes`) on a textured holder with clutter (:mod:`.scene`), seen by a stereo rig moving
along orbit arcs (:mod:`.cameras`), with mesh or render defects (:mod:`.defects`), by either

* the light renderer (:mod:`.raster`, :mod:`.gbuffer`, :mod:`.shading`, :mod:`.textures`,
  :mod:`.sensor`): a NumPy z-buffer rasteriser with Lambert + Blinn-Phong shading under a
  spotlight, shadow-mapped soft shadows, procedural bump textures, gamma and sensor noise; or
* Blender (:mod:`.blender`, optional extra ``flawscope[blender]``): the same scene in Cycles.

Masks always come from the rasteriser's G-buffer (exact for both). :func:`write_renders` writes
the MVTec-style folder with foreground and defect masks (:mod:`.dataset`).

Public API: :func:`write_renders`, :func:`write_demo_renders`, :data:`DEFECT_TYPES`,
:data:`PARTS`, :data:`RENDERERS`.
"""

from flawscope.data.synthetic.cad.dataset import (
    FOREGROUND_DIR,
    RigSettings,
    render_pair,
    resolve_part,
    station_rig,
    write_demo_renders,
    write_renders,
)
from flawscope.data.synthetic.cad.defects import DEFECT_TYPES
from flawscope.data.synthetic.cad.meshes import PARTS
from flawscope.data.synthetic.cad.render import RENDERERS
from flawscope.data.synthetic.cad.scene import SceneSettings

__all__ = [
    "DEFECT_TYPES",
    "FOREGROUND_DIR",
    "PARTS",
    "RENDERERS",
    "RigSettings",
    "SceneSettings",
    "render_pair",
    "resolve_part",
    "station_rig",
    "write_demo_renders",
    "write_renders",
]
