"""Headless mesh rendering over an image: pyrender (EGL, then OSMesa) or a NumPy rasterizer.

:func:`render_meshes` always returns a picture and says which backend drew it:

* ``"pyrender-egl"`` -- pyrender on an EGL context (GPU, or Mesa llvmpipe on a CPU);
* ``"pyrender-osmesa"`` -- pyrender on Mesa's OSMesa software GL;
* ``"software"`` -- :func:`rasterize_software`, a vectorised NumPy z-buffer rasterizer
  (per-pixel Lambert shading of interpolated vertex normals).

PyOpenGL binds its platform when ``OpenGL`` is first imported, so one process can use only one
of EGL/OSMesa. ``backend="auto"`` therefore decides once per process: a platform named in
``PYOPENGL_PLATFORM`` (or already bound by an earlier import of OpenGL) is used as is;
otherwise a short subprocess tries to make an EGL context (~0.5 s, so a broken driver cannot
crash this process), and OSMesa is used when it fails. With ``"auto"``, any error while
setting up or rendering with pyrender falls back to the software rasterizer (logged warning);
a backend asked for by name raises Pose2MeshError instead. Costs on a 2-core CPU: the probe
~0.5 s and importing pyrender ~2 s, once per process.

Conventions: vertices are in the camera frame (OpenCV: x right, y down, z forward), in metres;
``focal`` / ``princpt`` in pixels with pixel (col, row) centred at (col, row), the convention of
:func:`pose2mesh.camera.project_perspective`. Images are RGB uint8.
"""
from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
from typing import Sequence

import numpy as np

from pose2mesh.errors import Pose2MeshError

logger = logging.getLogger(__name__)

BACKENDS = ("pyrender-egl", "pyrender-osmesa", "software")
_PLATFORM_OF = {"pyrender-egl": "egl", "pyrender-osmesa": "osmesa"}

# Distinct, light body colours (RGB 0-255), used in turn for the people of a picture.
PALETTE_RGB = (
    (166, 189, 219), (250, 176, 122), (152, 214, 160), (226, 160, 214), (240, 220, 130),
    (170, 170, 240), (240, 150, 150), (140, 210, 210),
)
CANVAS_RGB = (255, 255, 255)
AMBIENT = 0.35
# Directional lights: (direction of travel in the camera frame, strength). A key light from
# the upper left, a weaker fill from the right and a dim light along the viewing direction.
LIGHTS = (((0.5, 0.6, 1.0), 0.55), ((-0.8, 0.1, 0.6), 0.25), ((0.0, 0.0, 1.0), 0.2))
_NEAR = 1e-3  # faces with a vertex closer than this to the camera plane are not drawn
_MAX_CELLS = 1_000_000  # candidate pixels examined at once by the software rasterizer (~100 MB)

_EGL_PROBE = r"""
import ctypes
from OpenGL import EGL, arrays
from OpenGL._opaque import opaque_pointer_cls
def ext(name, restype):
    address = EGL.eglGetProcAddress(name)
    return ctypes.CFUNCTYPE(restype)(address) if address else None
query = ext("eglQueryDevicesEXT", EGL.EGLBoolean)
if query is None:
    display = EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)
else:
    count = EGL.EGLint()
    assert query(0, None, ctypes.pointer(count)) and count.value > 0
    devices = (opaque_pointer_cls("EGLDeviceEXT") * count.value)()
    assert query(count.value, devices, ctypes.pointer(count))
    display = ext("eglGetPlatformDisplayEXT", EGL.EGLDisplay)(0x313F, devices[0], None)
assert EGL.eglInitialize(display, ctypes.c_long(), ctypes.c_long())
config, found = (EGL.EGLConfig * 1)(), ctypes.c_long()
assert EGL.eglChooseConfig(display, arrays.GLintArray.asArray([
    EGL.EGL_SURFACE_TYPE, EGL.EGL_PBUFFER_BIT, EGL.EGL_RENDERABLE_TYPE, EGL.EGL_OPENGL_BIT,
    EGL.EGL_DEPTH_SIZE, 24, EGL.EGL_NONE]), config, 1, found) and found.value > 0
assert EGL.eglBindAPI(EGL.EGL_OPENGL_API)
context = EGL.eglCreateContext(display, config[0], EGL.EGL_NO_CONTEXT, arrays.GLintArray.asArray([
    EGL.EGL_CONTEXT_MAJOR_VERSION, 4, EGL.EGL_CONTEXT_MINOR_VERSION, 1,
    EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL.EGL_NONE]))
assert context and EGL.eglMakeCurrent(display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, context)
EGL.eglTerminate(display)
"""


class _GLState:
    """What this process knows about its GL platform and its pyrender renderer."""

    platform: str | None = None  # "egl" / "osmesa" once chosen
    failed: str | None = None  # why pyrender is unusable in this process
    renderer = None  # pyrender.OffscreenRenderer, reused between calls


def egl_works(timeout_s: float = 30.0) -> bool:
    """Whether a fresh process can create an EGL OpenGL 4.1 context (subprocess probe)."""
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    try:
        done = subprocess.run([sys.executable, "-c", _EGL_PROBE], env=env, timeout=timeout_s,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _bound_platform() -> str | None:
    """The GL platform PyOpenGL is bound to in this process, or None if not imported yet."""
    if _GLState.platform is not None:
        return _GLState.platform
    if "OpenGL" in sys.modules:  # PyOpenGL's default without the variable is GLX (needs X)
        return os.environ.get("PYOPENGL_PLATFORM", "glx")
    return None


def _choose_platform() -> str | None:
    """'egl', 'osmesa' or None (pyrender unusable) for backend='auto'."""
    if _GLState.failed:
        return None
    chosen = _bound_platform() or os.environ.get("PYOPENGL_PLATFORM")
    if chosen is not None:
        return chosen if chosen in ("egl", "osmesa") else None
    return "egl" if egl_works() else "osmesa"


def _pyrender_renderer(platform: str, width: int, height: int):
    """The process's pyrender OffscreenRenderer on ``platform``, sized (width, height)."""
    if _GLState.renderer is None:
        os.environ["PYOPENGL_PLATFORM"] = platform
        _GLState.platform = platform
        if not hasattr(np, "infty"):  # pyrender 0.1.45 reads np.infty (gone in NumPy 2)
            np.infty = np.inf
        import pyrender

        _GLState.renderer = pyrender.OffscreenRenderer(width, height)
        atexit.register(_GLState.renderer.delete)
    renderer = _GLState.renderer
    renderer.viewport_width, renderer.viewport_height = width, height
    return renderer


def _light_pose_gl(direction_cv) -> np.ndarray:
    """4x4 OpenGL node pose whose -z axis points along an OpenCV-frame direction."""
    z_axis = -np.asarray(direction_cv, np.float64) * np.array([1.0, -1.0, -1.0])
    z_axis /= np.linalg.norm(z_axis)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z_axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x_axis = np.cross(helper, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x_axis, np.cross(z_axis, x_axis), z_axis], axis=1)
    return pose


def _render_pyrender(platform, meshes, colors, focal, princpt, height, width):
    """(rgb float (H, W, 3) in [0, 1], coverage (H, W) in [0, 1]) from pyrender."""
    renderer = _pyrender_renderer(platform, width, height)
    import pyrender
    import trimesh

    # pyrender's shader gamma-encodes its output (x ** (1 / 2.2)): linear base colours and
    # these light strengths give about the software rasterizer's brightness (measured).
    scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(AMBIENT,) * 3)
    flip_yz = np.array([1.0, -1.0, -1.0])  # OpenCV camera frame -> OpenGL camera frame
    far = 1.0
    for (vertices, faces), color in zip(meshes, colors):
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=(*(np.asarray(color) / 255.0) ** 2.2, 1.0), metallicFactor=0.0,
            roughnessFactor=0.8, alphaMode="OPAQUE")
        surface = trimesh.Trimesh(vertices * flip_yz, faces, process=False)
        scene.add(pyrender.Mesh.from_trimesh(surface, material=material, smooth=True))
        far = max(far, 2.0 * float(vertices[:, 2].max()) + 1.0)
    camera = pyrender.IntrinsicsCamera(focal[0], focal[1], princpt[0] + 0.5, princpt[1] + 0.5,
                                       znear=0.01, zfar=far)
    scene.add(camera, pose=np.eye(4))
    for direction, strength in LIGHTS:
        light = pyrender.DirectionalLight(color=np.ones(3), intensity=3.0 * strength)
        scene.add(light, pose=_light_pose_gl(direction))
    color, depth = renderer.render(scene, flags=pyrender.RenderFlags.RGBA)
    color = color.astype(np.float32) / 255.0
    if color.shape[2] == 4:  # framebuffer platforms (EGL): anti-aliased coverage in alpha
        return color[..., :3], color[..., 3]
    return color, (depth > 0).astype(np.float32)  # OSMesa reads back RGB only


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (right-hand winding)."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.stack([
        np.bincount(faces.ravel(), np.repeat(face_normals[:, axis], 3), len(vertices))
        for axis in range(3)
    ], axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _bucket_size(extent: np.ndarray) -> np.ndarray:
    """Box sizes grouped for batching: exact up to 8 pixels, then the next power of two."""
    extent = extent.astype(np.int64)
    power = np.left_shift(1, np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64))
    return np.where(extent <= 8, extent, power)


def _rasterize(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Z-buffer rasterization of projected triangles at pixel centres.

    Candidate pixels of every triangle's bounding box are tested in one vectorised pass per
    group of triangles with the same (rounded-up, see :func:`_bucket_size`) box size.

    Args:
        uv: (N, 2) pixel coordinates; depth: (N,) camera z; faces: (F, 3).
    Returns:
        ``(pixel, face, bary)``: flat indices (K,) of covered pixels, the visible face (K,)
        and its perspective-correct barycentric coordinates (K, 3) at each.
    """
    tri_uv, tri_z = uv[faces], depth[faces]
    x_lo = np.clip(np.ceil(tri_uv[..., 0].min(1)), 0, width - 1)
    x_hi = np.clip(np.floor(tri_uv[..., 0].max(1)), 0, width - 1)
    y_lo = np.clip(np.ceil(tri_uv[..., 1].min(1)), 0, height - 1)
    y_hi = np.clip(np.floor(tri_uv[..., 1].max(1)), 0, height - 1)
    p0, p1, p2 = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    edge1, edge2 = p1 - p0, p2 - p0
    area = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]  # twice the signed area
    inside_view = (tri_uv[..., 0].max(1) >= 0) & (tri_uv[..., 0].min(1) <= width - 1) & (
        tri_uv[..., 1].max(1) >= 0) & (tri_uv[..., 1].min(1) <= height - 1)
    keep = (tri_z.min(1) > _NEAR) & inside_view & (x_lo <= x_hi) & (y_lo <= y_hi) & (
        np.abs(area) > 1e-12)
    ids = np.flatnonzero(keep)
    bucket_w = _bucket_size(x_hi[ids] - x_lo[ids] + 1)
    bucket_h = _bucket_size(y_hi[ids] - y_lo[ids] + 1)
    group_key = bucket_w * (1 << 20) + bucket_h
    pixels, face_ids, depths, barys = [], [], [], []
    for key in np.unique(group_key):
        members = ids[group_key == key]
        box_w, box_h = int(key >> 20), int(key & ((1 << 20) - 1))
        step = max(1, _MAX_CELLS // (box_w * box_h))
        for start in range(0, len(members), step):
            t = members[start:start + step]
            px = (x_lo[t, None] + np.arange(box_w))[:, None, :]  # (T, 1, bw)
            py = (y_lo[t, None] + np.arange(box_h))[:, :, None]  # (T, bh, 1)
            a, b, c = (p[t][:, :, None, None] for p in (p0, p1, p2))  # (T, 2, 1, 1)
            inv_area = (1.0 / area[t])[:, None, None]
            w0 = ((c[:, 0] - b[:, 0]) * (py - b[:, 1]) - (c[:, 1] - b[:, 1]) * (px - b[:, 0]))
            w1 = ((a[:, 0] - c[:, 0]) * (py - c[:, 1]) - (a[:, 1] - c[:, 1]) * (px - c[:, 0]))
            w0, w1 = w0 * inv_area, w1 * inv_area
            w2 = 1.0 - w0 - w1
            hit = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9) & (px <= x_hi[t, None, None]) & (
                py <= y_hi[t, None, None])
            tri, row, col = np.nonzero(hit)
            face = t[tri]
            w = np.stack([w0[tri, row, col], w1[tri, row, col], w2[tri, row, col]], axis=1)
            w_over_z = w / tri_z[face]
            inv_depth = w_over_z.sum(1)
            pixels.append((py[tri, row, 0] * width + px[tri, 0, col]).astype(np.int64))
            face_ids.append(face)
            depths.append(1.0 / inv_depth)
            barys.append(w_over_z / inv_depth[:, None])
    if not pixels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    pixel, face, depth_frag = (np.concatenate(x) for x in (pixels, face_ids, depths))
    order = np.lexsort((depth_frag, pixel))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pixel[order[1:]] != pixel[order[:-1]]
    win = order[first]
    return pixel[win], face[win], np.concatenate(barys)[win]


def rasterize_software(meshes, colors, focal, princpt, height, width, smooth: bool = True):
    """Render triangle meshes with the NumPy rasterizer.

    Shading is Lambertian (ambient + :data:`LIGHTS`) with per-pixel interpolated vertex normals
    (``smooth``) or face normals, turned towards the camera so that either winding lights.
    Faces with a vertex closer than 1 mm to the camera plane are skipped (no clipping).

    Args:
        meshes: list of ((V, 3) camera-frame vertices, (F, 3) faces).
        colors: one RGB (0-255) per mesh.
    Returns:
        (rgb float32 (H, W, 3) in [0, 1], coverage float32 (H, W) 0/1).
    """
    vertices = np.concatenate([v for v, _ in meshes]).astype(np.float64)
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    faces = np.concatenate([f + o for (_, f), o in zip(meshes, offsets)]).astype(np.int64)
    face_color = np.concatenate([np.tile(np.asarray(color, np.float64) / 255.0, (len(f), 1))
                                 for (_, f), color in zip(meshes, colors)])
    z = vertices[:, 2]
    safe_z = np.where(np.abs(z) < 1e-12, 1e-12, z)
    uv = vertices[:, :2] / safe_z[:, None] * np.asarray(focal) + np.asarray(princpt)
    pixel, face, bary = _rasterize(uv, z, faces, height, width)

    tri = vertices[faces[face]]  # (K, 3, 3)
    face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    toward_camera = np.where((face_normal * tri.mean(1)).sum(1) > 0, -1.0, 1.0)
    if smooth:
        normal = (_vertex_normals(vertices, faces)[faces[face]] * bary[:, :, None]).sum(1)
    else:
        normal = face_normal
    normal *= toward_camera[:, None]
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    intensity = np.full(len(face), AMBIENT)
    for direction, strength in LIGHTS:
        direction = np.asarray(direction, np.float64) / np.linalg.norm(direction)
        intensity += strength * np.clip(-(normal @ direction), 0.0, None)
    rgb = np.zeros((height * width, 3), np.float32)
    coverage = np.zeros(height * width, np.float32)
    rgb[pixel] = np.clip(face_color[face] * intensity[:, None], 0.0, 1.0)
    coverage[pixel] = 1.0
    return rgb.reshape(height, width, 3), coverage.reshape(height, width)


def _background(image) -> np.ndarray:
    if isinstance(image, np.ndarray) and image.ndim == 3:
        if image.shape[2] != 3:
            raise ValueError(f"image must be RGB (H, W, 3), got {image.shape}")
        return np.asarray(image, dtype=np.uint8)
    height, width = (int(v) for v in image)
    return np.full((height, width, 3), CANVAS_RGB, dtype=np.uint8)


def render_meshes(
    vertices_list: Sequence[np.ndarray],
    faces,
    focal,
    princpt,
    image,
    colors: Sequence[Sequence[int]] | None = None,
    alpha: float = 1.0,
    backend: str = "auto",
) -> tuple[np.ndarray, str]:
    """Render meshes over an image (or a white canvas) with lighting.

    Args:
        vertices_list: one (V_i, 3) array per person, camera frame (OpenCV), metres.
        faces: (F, 3) shared by every mesh, or one (F_i, 3) array per mesh.
        focal: fx = fy, or (fx, fy) pixels; princpt: (cx, cy) pixels.
        image: RGB uint8 (H, W, 3) to draw over, or (H, W) for a white canvas.
        colors: RGB (0-255) per mesh; default cycles :data:`PALETTE_RGB`.
        alpha: opacity of the mesh over the image (1 = opaque).
        backend: ``"auto"`` (EGL, else OSMesa, else software) or one of :data:`BACKENDS`.
            A named pyrender backend that cannot run raises Pose2MeshError.
    Returns:
        (rgb uint8 (H, W, 3), name of the backend that rendered; "none" for no meshes).
    """
    if backend != "auto" and backend not in BACKENDS:
        raise Pose2MeshError(f"unknown render backend '{backend}'; expected auto or {BACKENDS}")
    background = _background(image)
    height, width = background.shape[:2]
    face_list = faces if isinstance(faces, (list, tuple)) else [faces] * len(vertices_list)
    meshes = [(np.asarray(v, np.float64), np.asarray(f, np.int64))
              for v, f in zip(vertices_list, face_list)]
    colors = list(colors) if colors is not None else [
        PALETTE_RGB[i % len(PALETTE_RGB)] for i in range(len(meshes))]
    focal_xy = tuple(float(f) for f in np.broadcast_to(np.asarray(focal, np.float64), (2,)))
    princpt_xy = (float(princpt[0]), float(princpt[1]))
    if not meshes:
        return background.copy(), "none"

    used = "software"
    rgb = coverage = None
    if backend != "software":
        platform = _choose_platform() if backend == "auto" else _PLATFORM_OF[backend]
        if backend != "auto":
            bound = _bound_platform()
            if bound is not None and bound != platform:
                raise Pose2MeshError(
                    f"render backend '{backend}' unavailable: this process already uses the "
                    f"'{bound}' OpenGL platform")
        if platform is not None:
            try:
                rgb, coverage = _render_pyrender(platform, meshes, colors, focal_xy, princpt_xy,
                                                 height, width)
                used = f"pyrender-{platform}"
            except Exception as err:  # any GL/driver failure: draw in software instead
                _GLState.failed = f"{type(err).__name__}: {err}".splitlines()[0]
                if backend != "auto":
                    raise Pose2MeshError(
                        f"render backend '{backend}' failed ({_GLState.failed})") from None
                logger.warning("pyrender (%s) failed (%s); using the software rasterizer",
                               platform, _GLState.failed)
    if rgb is None:
        rgb, coverage = rasterize_software(meshes, colors, focal_xy, princpt_xy, height, width)
    covered = coverage > 0
    weight = alpha * coverage[covered][:, None]
    blended = background[covered] * (1.0 - weight) + rgb[covered] * (255.0 * weight)
    out = background.copy()
    out[covered] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out, used


def rotate_about_vertical(vertices_list: Sequence[np.ndarray], angle_deg: float):
    """Rotate all meshes together by ``angle_deg`` about the camera's vertical (y) axis through
    the centre of their joint bounding box (positive = the right side turns towards the camera).
    Returns a list of (V_i, 3) float64 arrays."""
    stacked = np.concatenate([np.asarray(v, np.float64) for v in vertices_list])
    centre = 0.5 * (stacked.min(0) + stacked.max(0))
    theta = np.radians(angle_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    rotation = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
    return [(np.asarray(v, np.float64) - centre) @ rotation.T + centre for v in vertices_list]


def render_side_view(
    vertices_list: Sequence[np.ndarray],
    faces,
    focal,
    princpt,
    image,
    colors: Sequence[Sequence[int]] | None = None,
    angle_deg: float = 90.0,
    backend: str = "auto",
) -> tuple[np.ndarray, str]:
    """Render the meshes turned by ``angle_deg`` about the vertical axis through their centre,
    on a white canvas of the image's size (``image``: RGB array or (H, W)). Arguments and
    return value as :func:`render_meshes`."""
    size = image.shape[:2] if isinstance(image, np.ndarray) and image.ndim == 3 else image
    if not len(vertices_list):
        return _background(size), "none"
    turned = rotate_about_vertical(vertices_list, angle_deg)
    return render_meshes(turned, faces, focal, princpt, size, colors=colors, backend=backend)
