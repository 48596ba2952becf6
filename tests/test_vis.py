"""Visualisation: skeleton drawing, mesh export, and rendering with every available backend."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set
from pose2mesh.vis import (
    canvas_shape_for_pose, draw_people, draw_skeleton, load_obj, read_image, render_meshes, render_side_view,
    save_obj, save_ply, write_image,
)
from pose2mesh.vis.draw2d import CANVAS_RGB, MISSING_RGB
from pose2mesh.vis.render import PALETTE_RGB, rasterize_software, rotate_about_vertical

FIXTURE = "/work/shared/fixtures/h36m_joint_input_from_pose2mesh_release.npy"
BACKGROUND = (40, 60, 80)
FOCAL, PRINCPT, SIZE = 500.0, (160.0, 120.0), (240, 320)


def uv_sphere(radius=0.5, centre=(0.0, 0.0, 3.0), rings=24, segments=48):
    """Closed, outward-wound UV sphere: (V, 3) vertices, (F, 3) faces."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.outer(np.cos(theta), np.ones_like(phi)),
                     np.outer(np.sin(theta), np.sin(phi))], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + centre
    faces = []
    index = lambda r, s: 1 + r * segments + s % segments
    for s in range(segments):
        faces.append((0, index(0, s + 1), index(0, s)))
        bottom = len(vertices) - 1
        faces.append((bottom, index(rings - 2, s), index(rings - 2, s + 1)))
        for r in range(rings - 2):
            a, b, c, d = index(r, s), index(r, s + 1), index(r + 1, s), index(r + 1, s + 1)
            faces += [(a, b, d), (a, d, c)]
    return vertices, np.array(faces, dtype=np.int64)


def projected_disc(centre, radius, focal=FOCAL, princpt=PRINCPT):
    """Image centre and (approximate) radius in pixels of a sphere's silhouette."""
    x, y, z = centre
    return (focal * x / z + princpt[0], focal * y / z + princpt[1]), focal * radius / np.sqrt(
        z * z - radius * radius)


def background_image():
    return np.full(SIZE + (3,), BACKGROUND, dtype=np.uint8)


def changed(image):
    return np.any(image != np.array(BACKGROUND, np.uint8), axis=-1)


def check_sphere_render(image, centre=(0.1, -0.05, 3.0), radius=0.5):
    """Mesh pixels fill the sphere's silhouette and nothing outside it."""
    (cu, cv), r_px = projected_disc(centre, radius)
    rows, cols = np.mgrid[:SIZE[0], :SIZE[1]]
    distance = np.hypot(cols - cu, rows - cv)
    mask = changed(image)
    assert mask[distance < 0.97 * r_px - 1].all()
    assert not mask[distance > 1.03 * r_px + 1].any()


# ------------------------------------------------------------------------------ 2D drawing


def test_draw_skeleton_on_canvas_marks_missing_joints():
    pose = np.load(FIXTURE).astype(np.float32)
    joints = np.concatenate([pose, np.ones((17, 1), np.float32)], 1)
    joints[13, 2] = 0.0  # L_Wrist missing
    image = draw_skeleton(None, joints, "human36")
    height, width = canvas_shape_for_pose(pose)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert height > pose[:, 1].max() and width > pose[:, 0].max()
    x, y = (int(v) for v in pose[13])
    patch = image[y - 6:y + 7, x - 6:x + 7].reshape(-1, 3)
    assert np.any(np.all(patch == MISSING_RGB, axis=1))  # red cross at the missing joint
    x, y = (int(v) for v in pose[12])
    patch = image[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3)
    assert not np.any(np.all(patch == MISSING_RGB, axis=1))
    assert np.all(image[-5:, -5:] == CANVAS_RGB)


def test_draw_skeleton_over_image_keeps_input():
    photo = np.random.default_rng(0).integers(0, 255, size=(700, 600, 3), dtype=np.uint8)
    original = photo.copy()
    joints = np.load(FIXTURE)
    out = draw_skeleton(photo, joints, get_joint_set("human36"))
    np.testing.assert_array_equal(photo, original)
    assert out.shape == photo.shape and np.any(out != photo)
    with pytest.raises(ValueError, match="expected \\(19"):
        draw_skeleton(photo, joints, "coco")


def test_draw_people_labels_several_people_in_their_mesh_colours():
    joints = np.concatenate([np.load(FIXTURE), np.ones((17, 1))], 1)
    shifted = joints + [300.0, 0.0, 0.0]
    hw = canvas_shape_for_pose(np.stack([joints, shifted]))
    one = draw_people(None, [joints], get_joint_set("human36"), hw, [0])
    np.testing.assert_array_equal(one, draw_skeleton(None, joints, "human36", canvas_hw=hw))
    two = draw_people(None, [joints, shifted], get_joint_set("human36"), hw, [3, 5])
    skeletons = draw_skeleton(draw_skeleton(None, joints, "human36", canvas_hw=hw), shifted,
                              "human36", canvas_hw=hw)
    labelled = np.any(two != skeletons, axis=-1)
    assert labelled.any() and not labelled[int(joints[:, 1].min()):].any()  # above the people
    for k in range(2):
        assert np.all(two[labelled] == PALETTE_RGB[k], axis=-1).any()


def test_draw_hand():
    hand = np.random.default_rng(1).uniform(20, 200, size=(21, 2))
    assert draw_skeleton(None, hand, "mano").shape[2] == 3


def test_image_io_round_trip(tmp_path):
    image = np.random.default_rng(2).integers(0, 255, size=(30, 40, 3), dtype=np.uint8)
    path = write_image(tmp_path / "sub" / "img.png", image)
    np.testing.assert_array_equal(read_image(path), image)
    assert sorted(p.name for p in path.parent.iterdir()) == ["img.png"]  # no temp files left
    with pytest.raises(Pose2MeshError, match="nope.png: image file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(Pose2MeshError, match="bad.png: cannot read"):
        read_image(tmp_path / "bad.png")


# ------------------------------------------------------------------------------ mesh files


def test_obj_round_trip(tmp_path):
    vertices, faces = uv_sphere()
    path = save_obj(tmp_path / "out" / "mesh.obj", vertices.astype(np.float32), faces)
    loaded_vertices, loaded_faces = load_obj(path)
    np.testing.assert_allclose(loaded_vertices, vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded_faces, faces)
    assert [p.name for p in path.parent.iterdir()] == ["mesh.obj"]


def test_load_obj_polygons_and_index_forms(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text("# quad\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\n"
                    "f 1/1/1 2/2/1 3/3/1 4/4/1\nf -4 -3 -2\n")
    vertices, faces = load_obj(path)
    assert vertices.shape == (4, 3)
    np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3], [0, 1, 2]])


def test_ply_binary_layout(tmp_path):
    vertices, faces = uv_sphere()
    colors = np.random.default_rng(3).integers(0, 255, size=vertices.shape, dtype=np.uint8)
    data = save_ply(tmp_path / "mesh.ply", vertices, faces, colors).read_bytes()
    header, body = data.split(b"end_header\n", 1)
    assert f"element vertex {len(vertices)}".encode() in header
    assert f"element face {len(faces)}".encode() in header
    rows = np.frombuffer(body[:len(vertices) * 15], dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
    face_rows = np.frombuffer(body[len(vertices) * 15:], dtype=[("n", "u1"), ("v", "<i4", 3)])
    np.testing.assert_allclose(rows["xyz"], vertices, atol=1e-6)
    np.testing.assert_array_equal(rows["rgb"], colors)
    assert np.all(face_rows["n"] == 3)
    np.testing.assert_array_equal(face_rows["v"], faces)


def test_mesh_write_errors(tmp_path):
    vertices, faces = uv_sphere()
    with pytest.raises(ValueError, match="face indices"):
        save_obj(tmp_path / "bad.obj", vertices, faces + len(vertices))
    (tmp_path / "file").write_text("")
    with pytest.raises(Pose2MeshError, match="cannot write"):
        save_obj(tmp_path / "file" / "mesh.obj", vertices, faces)


# ------------------------------------------------------------------------------ rendering


def test_software_render_fills_silhouette():
    vertices, faces = uv_sphere(centre=(0.1, -0.05, 3.0))
    image, backend = render_meshes([vertices], faces, FOCAL, PRINCPT, background_image(),
                                   backend="software")
    assert backend == "software" and image.shape == SIZE + (3,) and image.dtype == np.uint8
    check_sphere_render(image)
    # Lambert shading: the sphere is lit unevenly, and the key light comes from the upper left.
    (cu, cv), r_px = projected_disc((0.1, -0.05, 3.0), 0.5)
    brightness = image.astype(float).sum(-1)
    upper_left = brightness[int(cv - 0.5 * r_px), int(cu - 0.5 * r_px)]
    lower_right = brightness[int(cv + 0.5 * r_px), int(cu + 0.5 * r_px)]
    assert upper_left > lower_right + 30


def test_software_render_two_people_colours_and_occlusion():
    near, faces = uv_sphere(radius=0.4, centre=(-0.2, 0.0, 3.0))
    far, _ = uv_sphere(radius=0.4, centre=(0.3, 0.0, 4.0))
    colors = [(255, 0, 0), (0, 0, 255)]
    image, _ = render_meshes([near, far], faces, FOCAL, PRINCPT, SIZE, colors=colors,
                             backend="software")
    (near_u, _), _ = projected_disc((-0.2, 0.0, 3.0), 0.4)
    (far_u, _), _ = projected_disc((0.3, 0.0, 4.0), 0.4)
    near_px, far_px = image[120, int(near_u)], image[120, int(far_u) + 10]
    assert near_px[0] > 100 and near_px[1] == 0 and near_px[2] == 0  # red person
    assert far_px[2] > 100 and far_px[0] == 0 and far_px[1] == 0  # blue person
    overlap_u = int((near_u + far_u) / 2)  # both project here: the nearer one wins
    assert image[120, overlap_u][0] > 0 and image[120, overlap_u][2] == 0
    assert np.all(image[5, 5] == 255)  # white canvas


def test_alpha_blend_and_empty_inputs():
    vertices, faces = uv_sphere(centre=(0.1, -0.05, 3.0))
    opaque, _ = render_meshes([vertices], faces, FOCAL, PRINCPT, background_image(),
                              colors=[(255, 255, 255)], backend="software")
    half, _ = render_meshes([vertices], faces, FOCAL, PRINCPT, background_image(),
                            colors=[(255, 255, 255)], alpha=0.5, backend="software")
    inside = changed(opaque)
    expected = 0.5 * opaque[inside].astype(float) + 0.5 * np.array(BACKGROUND)
    assert np.abs(half[inside] - expected).max() <= 1.0
    image, backend = render_meshes([], faces, FOCAL, PRINCPT, background_image())
    assert backend == "none" and not changed(image).any()
    behind = vertices * [1, 1, -1]  # entirely behind the camera: nothing drawn, no error
    image, _ = render_meshes([behind], faces, FOCAL, PRINCPT, background_image(), backend="software")
    assert not changed(image).any()
    with pytest.raises(Pose2MeshError, match="unknown render backend"):
        render_meshes([vertices], faces, FOCAL, PRINCPT, SIZE, backend="vulkan")


def test_rasterizer_handles_large_triangles_and_both_windings():
    quad = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [1.0, 1.0, 2.0], [-1.0, 1.0, 2.0]])
    for faces in (np.array([[0, 1, 2], [0, 2, 3]]), np.array([[0, 2, 1], [0, 3, 2]])):
        rgb, coverage = rasterize_software([(quad, faces)], [(200, 200, 200)], (100.0, 100.0),
                                           (160.0, 120.0), 240, 320)
        # the square spans pixels 110..210 x 70..170 (centres on its edges count as inside)
        assert coverage[70:171, 110:211].all() and coverage.sum() == 101 * 101
        assert rgb[coverage > 0].min() > 0.5  # lit from the front whatever the winding


def test_side_view_turns_about_vertical_axis():
    slab = np.array([[x, y, z] for x in (-0.6, 0.6) for y in (-0.3, 0.3) for z in (2.9, 3.1)])
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    turned = rotate_about_vertical([slab], 90.0)[0]
    np.testing.assert_allclose(turned.mean(0), slab.mean(0), atol=1e-12)
    np.testing.assert_allclose(np.ptp(turned, 0), [0.2, 0.6, 1.2], atol=1e-12)
    front, _ = render_meshes([slab], faces, FOCAL, PRINCPT, background_image(), backend="software")
    side, backend = render_side_view([slab], faces, FOCAL, PRINCPT, background_image(),
                                     backend="software")
    assert backend == "software"
    width = lambda image: np.flatnonzero(np.any(image != 255, axis=(0, 2))).size
    assert np.all(side[0, 0] == 255)  # the side view is drawn on a white canvas
    front_width = np.flatnonzero(changed(front).any(0)).size
    assert front_width == pytest.approx(FOCAL * 1.2 / 2.9, abs=2)  # the near face
    assert width(side) < 0.3 * front_width


def test_software_render_speed_on_body_sized_mesh():
    """Reported, not asserted: a 640x480 frame of a ~27k-triangle mesh."""
    vertices, faces = uv_sphere(radius=0.9, centre=(0.0, 0.0, 3.0), rings=118, segments=118)
    start = time.perf_counter()
    image, _ = render_meshes([vertices], faces, 600.0, (320.0, 240.0), (480, 640),
                             backend="software")
    print(f"software render of {len(faces)} triangles at 640x480: "
          f"{(time.perf_counter() - start) * 1e3:.0f} ms")
    assert np.any(image != 255)


# pyrender backends bind OpenGL to one platform per process, so each runs in a subprocess.
_BACKEND_SCRIPT = """
import json, sys
import numpy as np
from pose2mesh.errors import Pose2MeshError
from pose2mesh.vis import render_meshes, render_side_view
scene = np.load(sys.argv[1])
args = ([scene["vertices"]], scene["faces"], float(scene["focal"]), scene["princpt"])
background = scene["background"]
try:
    image, used = render_meshes(*args, background, backend=sys.argv[2])
    side, side_used = render_side_view(*args, background, backend=sys.argv[2])
except Pose2MeshError as err:
    print(json.dumps({"unavailable": str(err)}))
    sys.exit(0)
reference, _ = render_meshes(*args, background, backend="software")
np.save(sys.argv[3], np.stack([image, reference, side]))
print(json.dumps({"used": used, "side_used": side_used}))
"""


@pytest.mark.parametrize("backend", ["auto", "pyrender-egl", "pyrender-osmesa"])
def test_pyrender_backends_in_subprocess(tmp_path, backend):
    vertices, faces = uv_sphere(centre=(0.1, -0.05, 3.0))
    scene = tmp_path / "scene.npz"
    np.savez(scene, vertices=vertices, faces=faces, focal=FOCAL, princpt=PRINCPT,
             background=background_image())
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
    out = tmp_path / "images.npy"
    done = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, str(scene), backend, str(out)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if "unavailable" in report:
        pytest.skip(report["unavailable"])
    if backend != "auto":
        assert report["used"] == report["side_used"] == backend
    else:
        assert report["used"] in ("pyrender-egl", "pyrender-osmesa", "software")
    image, reference, side = np.load(out)
    check_sphere_render(image)
    mask, ref_mask = changed(image), changed(reference)
    assert (mask & ref_mask).sum() / (mask | ref_mask).sum() > 0.97  # same pixel convention
    assert np.all(side[0, 0] == 255) and np.any(side != 255)
