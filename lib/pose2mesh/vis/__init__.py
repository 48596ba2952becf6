"""Visualisation: 2D skeletons, headless mesh rendering, mesh export.

Importing this package does not import pyrender/OpenGL; that happens on the first pyrender
render (see :mod:`pose2mesh.vis.render`).
"""
from pose2mesh.vis.draw2d import (
    canvas_shape_for_pose, draw_people, draw_skeleton, read_image, write_image,
)
from pose2mesh.vis.mesh_io import load_obj, save_obj, save_ply
from pose2mesh.vis.render import BACKENDS, render_meshes, render_side_view

__all__ = [
    "BACKENDS", "canvas_shape_for_pose", "draw_people", "draw_skeleton", "load_obj", "read_image",
    "render_meshes", "render_side_view", "save_obj", "save_ply", "write_image",
]
