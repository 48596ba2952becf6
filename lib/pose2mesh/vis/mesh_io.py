"""Mesh export (Wavefront OBJ, binary PLY) and a small OBJ reader.

Files are written atomically (temp file in the same folder, then rename), parent folders are
created, and a write failure is a one-line Pose2MeshError naming the path.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pose2mesh.atomic_io import atomic_write
from pose2mesh.errors import Pose2MeshError


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:mod:`pose2mesh.atomic_io`); creates parent
    folders. Raises Pose2MeshError naming the file when it cannot be written."""
    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, write)
    except OSError as err:
        raise Pose2MeshError(f"{path}: cannot write ({err.strerror or err})") from None


def _checked_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {vertices.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError(f"{int((~np.isfinite(vertices)).any(-1).sum())} vertices are not finite")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"face indices must lie in [0, {len(vertices)})")
    return vertices, faces.astype(np.int64)


def save_obj(path, vertices, faces) -> Path:
    """Write a triangle mesh as OBJ (``v x y z`` with 6 decimals, 1-based ``f i j k``).

    Args:
        vertices: (V, 3) positions (units kept as given, e.g. metres).
        faces: (F, 3) integer, 0-based vertex indices.
    """
    vertices, faces = _checked_mesh(vertices, faces)
    buffer = io.StringIO()
    np.savetxt(buffer, vertices, fmt="v %.6f %.6f %.6f")
    np.savetxt(buffer, faces + 1, fmt="f %d %d %d")
    return atomic_write_bytes(path, buffer.getvalue().encode("ascii"))


def save_ply(path, vertices, faces, colors=None) -> Path:
    """Write a binary little-endian PLY (float32 xyz, optional uint8 RGB per vertex,
    int32 triangle lists).

    Args:
        colors: optional (V, 3) uint8 vertex colours.
    """
    vertices, faces = _checked_mesh(vertices, faces)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != vertices.shape:
            raise ValueError(f"colors must be (V, 3) = {vertices.shape}, got {colors.shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex_rows = np.empty(len(vertices), dtype=fields)
    for axis, name in enumerate("xyz"):
        vertex_rows[name] = vertices[:, axis]
    if colors is not None:
        for axis, name in enumerate(("red", "green", "blue")):
            vertex_rows[name] = np.clip(colors[:, axis], 0, 255)
    face_rows = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_rows["n"] = 3
    face_rows["v"] = faces
    properties = "".join(
        f"property {'float' if kind == '<f4' else 'uchar'} {name}\n" for name, kind in fields
    )
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\n{properties}"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    data = header.encode("ascii") + vertex_rows.tobytes() + face_rows.tobytes()
    return atomic_write_bytes(path, data)


def load_obj(path) -> tuple[np.ndarray, np.ndarray]:
    """Read the vertices and faces of an OBJ file.

    Handles ``f a/b/c`` index forms and negative (relative) indices, and fan-triangulates
    polygons. Returns (V, 3) float64 vertices and (F, 3) int64 0-based faces.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise Pose2MeshError(f"{path}: cannot read OBJ file ({err})") from None
    vertices, faces = [], []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "v":
                vertices.append([float(v) for v in parts[1:4]])
            elif parts[0] == "f":
                ids = [int(p.split("/")[0]) for p in parts[1:]]
                ids = [i - 1 if i > 0 else len(vertices) + i for i in ids]
                faces.extend([ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1))
        except ValueError:
            raise Pose2MeshError(f"{path}:{number}: malformed OBJ line '{line.strip()}'") from None
    return (np.array(vertices, dtype=np.float64).reshape(-1, 3),
            np.array(faces, dtype=np.int64).reshape(-1, 3))
