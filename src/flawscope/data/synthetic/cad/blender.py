"""The Blender renderer: the same scene in Cycles (path tracing on the CPU), as in seed 003.

Seed 003 (section 3.5) rendered its CAD bricks with Blender's Cycles engine at 50 samples per
pixel with a denoiser, under one spotlight, seen by two cameras following the scanner's paths.
:class:`BlenderRenderer` builds the :class:`~flawscope.data.synthetic.cad.scene.Scene` in Blender
through its Python module ``bpy`` (optional extra ``flawscope[blender]``):

* every object as a mesh (metres; vertices split at creases, smooth shaded) with a Principled
  BSDF: base colour = albedo, roughness ``sqrt(2 / (shininess + 2))`` (the Blinn-Phong exponent
  as a GGX roughness), specular level from the highlight weight, and the texture as nodes
  (Noise Texture -> Bump for the grain and the fabric, Wave Texture bands along z -> Bump for FDM
  layer lines, a coarser Noise Texture scaling the base colour for the mottling);
* the spotlight (``spot_size = 2 cone``, ``spot_blend``, ``shadow_soft_size`` = lamp radius) with
  its power set so a white diffuse surface facing it at the part's centre has radiance
  ``look.brightness``; a uniform world for the fill light;
* the camera with the same pinhole model (36 mm sensor width, lens = focal_px x 36 / width);
* Cycles on the CPU, ``samples`` per pixel (default 50), OpenImageDenoise, at most 4 bounces,
  "Standard" view transform (sRGB), written as a 16-bit grey PNG and read back.

What Cycles adds over the light renderer: indirect light (inter-reflections between part,
holder and clutter, soft ambient occlusion in corners and holes), physically based GGX
highlights with Fresnel, area-light soft shadows. What it costs: seconds to minutes per image
on a CPU, against about a second. The masks still come from the rasteriser's G-buffer
(:mod:`~flawscope.data.synthetic.cad.render`), the scratch and the sensor effects are applied
afterwards as for the light renderer.

Installing: ``pip install 'flawscope[blender]'`` (bpy wheels exist for one Python version per
Blender release: bpy 4.2-5.0 for Python 3.11). bpy 5.0.1 declares ``numpy<2``, which conflicts
with this project's NumPy 2 stack; bpy itself runs with NumPy 2 for what is used here, so where
the resolver refuses, ``pip install --no-deps bpy==5.0.1`` works.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flawscope.data.synthetic.cad.cameras import Camera
from flawscope.data.synthetic.cad.gbuffer import GBuffer
from flawscope.data.synthetic.cad.meshes import shading_normals
from flawscope.data.synthetic.cad.scene import Material, Scene, SceneObject
from flawscope.errors import ConfigError, DataError

__all__ = ["BlenderRenderer", "import_bpy"]

_M = 1e-3  # metres per mm


def import_bpy() -> Any:
    """Import Blender's ``bpy`` module.

    Raises:
        ConfigError: bpy is not installed or cannot be loaded (one line naming the extra).
    """
    try:
        import bpy  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or a broken install (wrong Python, missing libs)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"the blender renderer needs Blender's Python module bpy, which cannot be imported "
            f"({reason})",
            "pip install 'flawscope[blender]' (Python 3.11), or use --renderer light",
        ) from exc
    return bpy


class BlenderRenderer:
    """Render scenes with Blender's Cycles on the CPU (see the module docstring).

    Args:
        samples: path-tracing samples per pixel (the thesis: 50).
        denoise: apply OpenImageDenoise (the thesis used a denoiser).
        bounces: maximum light bounces.
        threads: CPU threads (default: all cores).

    Raises:
        ConfigError: bpy is missing.
    """

    name = "blender"

    def __init__(
        self, samples: int = 50, denoise: bool = True, bounces: int = 4, threads: int | None = None
    ) -> None:
        self.bpy = import_bpy()
        self.samples = samples
        self.denoise = denoise
        self.bounces = bounces
        self.threads = threads or os.cpu_count() or 1

    # ---------------------------------------------------------------------------- scene
    def _reset(self) -> Any:
        import addon_utils  # type: ignore[import-not-found]  # ships with bpy

        bpy = self.bpy
        bpy.ops.wm.read_factory_settings(use_empty=True)
        addon_utils.enable("cycles", default_set=True)
        scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        c = scene.cycles
        c.device = "CPU"
        c.samples = self.samples
        c.use_adaptive_sampling = False
        c.use_denoising = self.denoise
        c.max_bounces = self.bounces
        c.diffuse_bounces = min(self.bounces, 3)
        c.glossy_bounces = min(self.bounces, 3)
        c.transmission_bounces = 0
        c.seed = 0
        scene.render.threads_mode = "FIXED"
        scene.render.threads = self.threads
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
        scene.render.film_transparent = False
        return scene

    def _material(self, name: str, m: Material) -> Any:
        bpy = self.bpy
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        bsdf = nodes["Principled BSDF"]
        bsdf.inputs["Roughness"].default_value = float(np.sqrt(2.0 / (m.shininess + 2.0)))
        bsdf.inputs["Specular IOR Level"].default_value = float(np.clip(m.specular * 1.2, 0, 1))
        coords = nodes.new("ShaderNodeTexCoord")
        # albedo mottling: a coarse noise scales the base colour around the albedo
        mottle = nodes.new("ShaderNodeTexNoise")
        mottle.inputs["Scale"].default_value = 1.0 / (8 * m.grain_mm * _M)
        links.new(coords.outputs["Object"], mottle.inputs["Vector"])
        ramp = nodes.new("ShaderNodeMapRange")
        ramp.inputs["From Min"].default_value = 0.3
        ramp.inputs["From Max"].default_value = 0.7
        ramp.inputs["To Min"].default_value = m.albedo * (1 - m.mottle)
        ramp.inputs["To Max"].default_value = m.albedo * (1 + m.mottle)
        links.new(mottle.outputs["Fac"], ramp.inputs["Value"])
        links.new(ramp.outputs["Result"], bsdf.inputs["Base Color"])
        if m.bump > 0:
            if m.finish == "printed":
                tex = nodes.new("ShaderNodeTexWave")
                tex.wave_type = "BANDS"
                tex.bands_direction = "Z"
                tex.wave_profile = "SIN"
                # Blender's bands: sin(20 x scale x z), so a period of one layer needs this scale
                tex.inputs["Scale"].default_value = 2 * np.pi / (20 * m.layer_mm * _M)
                height, distance = tex.outputs["Fac"], m.layer_mm * _M * 0.3
            else:
                tex = nodes.new("ShaderNodeTexNoise")
                tex.inputs["Scale"].default_value = 1.0 / (m.grain_mm * _M)
                tex.inputs["Detail"].default_value = 2.0
                height, distance = tex.outputs["Fac"], m.grain_mm * _M * 0.5
            links.new(coords.outputs["Object"], tex.inputs["Vector"])
            bump = nodes.new("ShaderNodeBump")
            bump.inputs["Strength"].default_value = float(min(m.bump * 2, 1.0))
            bump.inputs["Distance"].default_value = distance
            links.new(height, bump.inputs["Height"])
            links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
        return mat

    def _mesh(self, scene_bpy: Any, obj: SceneObject) -> None:
        bpy = self.bpy
        v, f, _ = shading_normals(obj.vertices, obj.faces, obj.crease_deg)
        mesh = bpy.data.meshes.new(obj.name)
        mesh.from_pydata((v * _M).tolist(), [], f.tolist())
        mesh.update()
        mesh.shade_smooth()
        mesh.materials.append(self._material(obj.name, obj.material))
        ob = bpy.data.objects.new(obj.name, mesh)
        scene_bpy.collection.objects.link(ob)

    @staticmethod
    def _matrix(m: np.ndarray) -> Any:
        """A mathutils 4x4 matrix from rows (a plain nested list would be read as columns)."""
        from mathutils import Matrix  # type: ignore[import-not-found]  # ships with bpy

        return Matrix([[float(x) for x in row] for row in m])

    def _camera(self, scene_bpy: Any, camera: Camera) -> None:
        bpy = self.bpy
        cam = bpy.data.cameras.new("camera")
        cam.sensor_fit = "HORIZONTAL"
        cam.sensor_width = 36.0
        cam.lens = camera.focal_px * 36.0 / camera.width
        cam.clip_start = 0.001
        cam.clip_end = 100.0
        ob = bpy.data.objects.new("camera", cam)
        r = camera.rotation  # rows: right, down, forward; Blender: x right, y up, looks along -z
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = r[0], -r[1], -r[2]
        m[:3, 3] = camera.position * _M
        ob.matrix_world = self._matrix(m)
        scene_bpy.collection.objects.link(ob)
        scene_bpy.camera = ob
        scene_bpy.render.resolution_x = camera.width
        scene_bpy.render.resolution_y = camera.height
        scene_bpy.render.resolution_percentage = 100

    def _light(self, scene_bpy: Any, scene: Scene) -> None:
        bpy = self.bpy
        light = scene.light
        lamp = bpy.data.lights.new("spot", type="SPOT")
        lamp.spot_size = float(np.radians(2 * light.cone_deg))
        lamp.spot_blend = float(light.blend)
        lamp.shadow_soft_size = float(light.radius_mm * _M)
        d = float(np.linalg.norm(light.position - scene.target)) * _M
        # radiance of a white diffuse surface = P / (4 pi d^2) / pi = brightness
        lamp.energy = float(scene.look.brightness * 4 * np.pi**2 * d * d)
        ob = bpy.data.objects.new("spot", lamp)
        forward = light.axis  # the lamp shines along its local -z
        z = -forward
        x = np.cross([0.0, 0.0, 1.0], z)
        x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0.0, 0.0])
        y = np.cross(z, x)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, light.position * _M
        ob.matrix_world = self._matrix(m)
        scene_bpy.collection.objects.link(ob)
        world = bpy.data.worlds.new("world")
        world.use_nodes = True
        background = world.node_tree.nodes["Background"]
        level = scene.look.brightness * scene.look.ambient * 0.7
        background.inputs["Color"].default_value = (level, level, level, 1.0)
        background.inputs["Strength"].default_value = 1.0
        scene_bpy.world = world

    # --------------------------------------------------------------------------- render
    def render(self, scene: Scene, camera: Camera, gb: GBuffer, supersample: int) -> np.ndarray:
        """Render with Cycles: ``(camera.height, camera.width)`` float32 in [0, 1] (sRGB).

        ``gb`` and ``supersample`` are not used (Cycles anti-aliases by sampling).

        Raises:
            DataError: Blender wrote no image.
        """
        s = self._reset()
        for obj in scene.objects:
            self._mesh(s, obj)
        self._light(s, scene)
        self._camera(s, camera)
        s.render.image_settings.file_format = "PNG"
        s.render.image_settings.color_mode = "BW"
        s.render.image_settings.color_depth = "16"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "render.png"
            s.render.filepath = str(path)
            self.bpy.ops.render.render(write_still=True)
            data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
        if data is None:
            raise DataError("Blender wrote no image", "check the Blender messages above")
        if data.ndim == 3:
            data = data[..., 0]
        scale = 65535.0 if data.dtype == np.uint16 else 255.0
        return (data.astype(np.float32) / scale).clip(0.0, 1.0)
