"""The demo (demo/run.py over pose2mesh.demo): model lookup, outputs, camera fit, errors.

The network is a small randomly initialised Pose2Mesh model saved as a checkpoint in the
engine's format (no training). Its meshes are noise, so the geometry of the camera fit is
checked with an *oracle* model that returns a real anny body seen by a known camera.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pose2mesh.config import load_config
from pose2mesh.datasets.pose_prior import BodyPosePrior
from pose2mesh.demo import (
    DemoRunner,
    find_default_weights,
    fit_cameras,
    resolve_model,
)
from pose2mesh.engine import builders
from pose2mesh.engine.checkpoint import atomic_save
from pose2mesh.errors import Pose2MeshError
from pose2mesh.vis import load_obj, read_image
from pose2mesh.vis.draw2d import MISSING_RGB

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "demo" / "run.py"
FIXTURE = (Path(__file__).resolve().parents[2] / "shared" / "fixtures"
           / "h36m_joint_input_from_pose2mesh_release.npy")
CFG = REPO / "asset" / "yaml" / "pose2mesh_human36J_test_synthetic.yml"
COCO_CFG = REPO / "asset" / "yaml" / "pose2mesh_cocoJ_test_synthetic.yml"
SMALL_TOPOLOGY = "notoes_collapse10pc"
ERROR_LINE = re.compile(
    r"person (\d+): camera fit mean reprojection error ([0-9.]+) px .*; renderer (\S+)")
OUTPUTS = ("demo_pose2d.png", "demo_mesh.png", "demo_mesh_side.png", "demo_mesh_0.obj")

needs_fixture = pytest.mark.skipif(
    not FIXTURE.is_file(), reason=f"shared fixture {FIXTURE} absent (../shared next to the repo)")


def _topology() -> str:
    """The small anny topology when its joint regressors exist, else the default one."""
    assets = REPO / "asset" / "joint_regressors"
    ready = all((assets / f"anny_{SMALL_TOPOLOGY}_{js}.npz").is_file() for js in ("human36", "coco"))
    return SMALL_TOPOLOGY if ready else "default"


def _opts() -> list[str]:
    return ["MODEL.topology", _topology(), "MODEL.posenet_hidden", "64",
            "MODEL.posenet_pretrained", "False"]


def _save_random_checkpoint(cfg, body_model, hierarchy, path: Path, seed: int = 0):
    torch.manual_seed(seed)
    model = builders.build_network(cfg, hierarchy)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save({"epoch": 1, "model_state_dict": model.state_dict(), "config": cfg.dump()}, path)
    return model.eval()


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """A random-init human36 Pose2Mesh checkpoint at <tmp>/experiment/exp_demo/checkpoint/
    final.pth.tar, its config, body model and hierarchy."""
    root = tmp_path_factory.mktemp("demo")
    cfg = load_config(CFG, _opts())
    body_model = builders.build_body_model(cfg, torch.device("cpu"))
    hierarchy = builders.build_hierarchy(cfg, body_model)
    path = root / "experiment" / "exp_demo" / "checkpoint" / "final.pth.tar"
    model = _save_random_checkpoint(cfg, body_model, hierarchy, path)
    return SimpleNamespace(root=root, cfg=cfg, body_model=body_model, hierarchy=hierarchy,
                           path=path, model=model)


def _run_cli(*args, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, str(RUN), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------- oracle model
class OracleNet(torch.nn.Module):
    """Stands in for a trained network: returns a fixed root-relative mesh for every input
    (and, given ``network``, runs it first so that timings include the real forward pass)."""

    def __init__(self, mesh_m: torch.Tensor, network: torch.nn.Module | None = None):
        super().__init__()
        self.register_buffer("mesh_m", mesh_m)
        self.network = network

    def forward(self, pose2d):
        if self.network is not None:
            self.network(pose2d)
        return {"mesh_m": self.mesh_m.expand(pose2d.shape[0], -1, -1)}


# anny world (x = subject's left, y = back, z = up) -> a camera in front of the subject.
WORLD_TO_FRONT_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _posed_scene(body_model, key_pose: str, distance_m: float, focal_px: float, princpt_px,
                 joint_set: str = "human36", offset_m=(0.15, 0.1)):
    """A key-posed anny body ``distance_m`` in front of a pinhole camera, its pelvis
    ``offset_m`` off the optical axis. Returns (mesh (V, 3) relative to the human36 pelvis,
    camera axes, metres; the pelvis position (3,); the ``joint_set`` pixels (J, 2))."""
    prior = BodyPosePrior(body_model.bone_labels)
    with torch.no_grad():
        verts = body_model(pose_aa=prior.key_pose(key_pose)[None]).vertices_m
        verts_cam = verts[0] @ WORLD_TO_FRONT_CAMERA.T
        root = body_model.regress_joints(verts_cam[None], "human36")[0, 0]
        joints = body_model.regress_joints(verts_cam[None], joint_set)[0]
    position = torch.tensor([*offset_m, distance_m])
    joints_cam = joints - root + position
    uv = joints_cam[:, :2] / joints_cam[:, 2:] * focal_px + torch.tensor(princpt_px)
    return (verts_cam - root), position, uv.numpy().astype(np.float64)


def _with_confidence(uv, confidence=1.0):
    return np.concatenate([uv, np.full((len(uv), 1), confidence)], axis=1)


# ----------------------------------------------------------------------------- CLI, fixture
@needs_fixture
def test_cli_on_real_h36m_pose_writes_everything(demo_model, tmp_path):
    out = tmp_path / "result"
    done = _run_cli("--input_pose", FIXTURE, "--joint_set", "human36",
                    "--weights", demo_model.path, "--output_dir", out, "--raw_mesh")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    vertices, faces = load_obj(out / "demo_mesh_0.obj")
    assert len(vertices) == demo_model.body_model.num_vertices
    assert len(faces) == len(demo_model.body_model.faces)

    matches = ERROR_LINE.findall(done.stdout)
    assert len(matches) == 1, done.stdout
    person, error_px, renderer = matches[0]
    assert person == "0" and renderer in ("pyrender-egl", "pyrender-osmesa", "software")
    assert np.isfinite(float(error_px))

    # The logged error is the fitted camera's mean reprojection error of the joints that
    # the body model's regressor gives for the mesh written to the OBJ.
    pose = np.load(FIXTURE).astype(np.float64)
    runner = DemoRunner(demo_model.model, demo_model.body_model, "human36")
    mesh_m, joints_m, body_fit = runner.shape_output(runner.predict(pose[None]))
    assert body_fit is None and not (out / "demo_mesh_0_anny.json").exists()
    fit = fit_cameras(joints_m, _with_confidence(pose)[None])
    assert float(error_px) == pytest.approx(fit.error_px[0], abs=0.006)
    projected = fit.scale_px_per_m[0] * joints_m[0, :, :2] + fit.trans_px[0]
    assert np.linalg.norm(projected - pose, axis=1).mean() == pytest.approx(fit.error_px[0])

    # Mesh pixels inside the input pose's bounding box (white canvas elsewhere).
    mesh_rgb = read_image(out / "demo_mesh.png")
    (x0, y0), (x1, y1) = pose.min(0).astype(int), pose.max(0).astype(int)
    box = mesh_rgb[y0:y1 + 1, x0:x1 + 1]
    assert (box != 255).any(-1).mean() > 0.05
    assert (read_image(out / "demo_mesh_side.png") != 255).any()
    pose_rgb = read_image(out / "demo_pose2d.png")
    assert pose_rgb.shape == mesh_rgb.shape


# ----------------------------------------------------------------------------- bad input
def _bad_inputs(tmp_path):
    wrong_count = tmp_path / "sixteen.npy"
    np.save(wrong_count, np.ones((16, 2)) * 100)
    with_nan = tmp_path / "nan.npy"
    pose = np.random.default_rng(0).uniform(50, 400, (17, 2))
    pose[5, 1] = np.nan
    np.save(with_nan, pose)
    nobody = tmp_path / "nobody.json"
    nobody.write_text('{"version": 1.3, "people": []}')
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(1).uniform(50, 400, (17, 2)))
    return {
        "wrong joint count": (["--input_pose", wrong_count, "--joint_set", "human36"],
                              "expects 17 joints"),
        "NaN": (["--input_pose", with_nan, "--joint_set", "human36"], "NaN"),
        "JSON without people": (["--input_pose", nobody, "--joint_set", "coco"], "no people"),
        "missing pose file": (["--input_pose", tmp_path / "absent.npy"], "not found"),
        "unreadable image": (["--input_pose", good, "--input_img", nobody], "cannot read"),
    }


@pytest.mark.parametrize("case", ["wrong joint count", "NaN", "JSON without people",
                                  "missing pose file", "unreadable image"])
def test_bad_input_is_one_line_and_exit_code_2(case, tmp_path):
    args, expected = _bad_inputs(tmp_path)[case]
    done = _run_cli(*args, "--output_dir", tmp_path / "out", timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    named = args[3] if case == "unreadable image" else args[1]
    assert str(named) in lines[0]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- model lookup
def test_default_weights_are_found_by_joint_set_and_preference(demo_model, tmp_path):
    experiment = demo_model.root / "experiment"
    found = find_default_weights("human36", [experiment])
    assert found == demo_model.path
    assert find_default_weights("coco", [experiment]) is None

    # final beats best, best beats a newer numbered checkpoint.
    other = tmp_path / "experiment" / "exp_other" / "checkpoint"
    other.mkdir(parents=True)
    payload = {"epoch": 3, "model_state_dict": {}, "config": demo_model.cfg.dump()}
    atomic_save(payload, other / "checkpoint3.pth.tar")
    atomic_save(payload, other / "best.pth.tar")
    atomic_save(payload, other / "checkpoint4.pth.tar")
    assert find_default_weights("human36", [tmp_path / "experiment"]) == other / "best.pth.tar"
    atomic_save(payload, other / "final.pth.tar")
    assert find_default_weights("human36", [tmp_path / "experiment"]) == other / "final.pth.tar"

    # Without --cfg the checkpoint's own config is used (overrides still apply).
    cfg, weights = resolve_model("human36", search_roots=[experiment], opts=["SEED", "7"])
    assert weights == demo_model.path
    assert cfg.MODEL.topology == demo_model.cfg.MODEL.topology and cfg.SEED == 7
    assert cfg.MODEL.posenet_pretrained is False

    # With --cfg, a checkpoint of another network shape does not match.
    cfg_path = tmp_path / "other_shape.yml"
    cfg_path.write_text("DATASET: {input_joint_set: human36}\n"
                        "MODEL: {name: pose2mesh_net, posenet_hidden: 128}\n")
    with pytest.raises(Pose2MeshError, match="scripts/quickstart.sh"):
        resolve_model("human36", cfg_path=cfg_path, search_roots=[experiment],
                      pretrained_dir=tmp_path / "no_pretrained")


def test_shipped_pretrained_model_runs_when_nothing_else_is_found(demo_model, tmp_path):
    """No --weights, no experiment checkpoint: the shipped model for the joint set runs,
    with its own saved config; --weights still wins; a --cfg of another shape skips it."""
    from pose2mesh.engine.checkpoint import load_checkpoint
    from pose2mesh.pretrained import export_pretrained, pretrained_path

    shipped_dir = tmp_path / "pretrained"
    shipped = pretrained_path("human36", shipped_dir)
    shipped.parent.mkdir()
    atomic_save(export_pretrained(load_checkpoint(demo_model.path), "test"), shipped)
    nothing = tmp_path / "no_experiments"
    cfg, weights = resolve_model("human36", search_roots=[nothing], pretrained_dir=shipped_dir)
    assert weights == shipped and cfg.MODEL.topology == demo_model.cfg.MODEL.topology
    stored = load_checkpoint(shipped)["model_state_dict"].values()
    assert all(v.dtype == torch.float16 for v in stored if v.is_floating_point())
    _, weights = resolve_model("human36", weights=demo_model.path, search_roots=[nothing],
                               pretrained_dir=shipped_dir)
    assert weights == demo_model.path
    cfg_path = tmp_path / "other_shape.yml"
    cfg_path.write_text("DATASET: {input_joint_set: human36}\n"
                        "MODEL: {name: pose2mesh_net, posenet_hidden: 128}\n")
    with pytest.raises(Pose2MeshError, match="shipped pretrained model has another network shape"):
        resolve_model("human36", cfg_path=cfg_path, search_roots=[nothing], pretrained_dir=shipped_dir)
    # The fp16 file runs: same predictions as the float32 checkpoint within fp16 round-off.
    runner16 = DemoRunner.from_config(cfg, shipped, fit_body=False)
    runner32 = DemoRunner.from_config(cfg, demo_model.path, fit_body=False)
    pose = np.random.default_rng(3).uniform(100, 400, (1, 17, 2))
    torch.testing.assert_close(runner16.predict(pose), runner32.predict(pose), atol=2e-3, rtol=2e-2)


def test_missing_weights_and_mismatched_config_are_one_line_errors(demo_model, tmp_path):
    nothing = tmp_path / "nothing"
    with pytest.raises(Pose2MeshError, match=r"pretrained model .*pose2mesh_human36J_anny.pth.tar "
                       r"is missing; regenerate it with `bash tools/train_pretrained.sh human36`") as err:
        resolve_model("human36", search_roots=[nothing], pretrained_dir=nothing)
    assert "\n" not in str(err.value)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "pose2mesh_cocoJ_anny.pth.tar").write_text("not a checkpoint")
    with pytest.raises(Pose2MeshError, match=r"pose2mesh_cocoJ_anny.pth.tar is corrupt .*regenerate"):
        resolve_model("coco", search_roots=[nothing], pretrained_dir=corrupt)
    with pytest.raises(Pose2MeshError, match="main/train.py --cfg .*manoJ"):
        resolve_model("mano", search_roots=[nothing], pretrained_dir=nothing)
    with pytest.raises(Pose2MeshError, match="is for joint set 'human36'.*'coco'"):
        resolve_model("coco", cfg_path=CFG, weights=demo_model.path)
    with pytest.raises(Pose2MeshError, match="model weights not found: .*absent"):
        resolve_model("human36", weights=tmp_path / "absent.pth.tar")


# ----------------------------------------------------------------------------- geometry
def test_camera_fit_recovers_a_known_camera(demo_model, tmp_path):
    """A real anny body 4 m in front of a 1000 px pinhole camera: the closed-form fit
    reprojects its joints within a few pixels, places the mesh where it was, and the
    rendered mesh covers the input joints."""
    focal, princpt = 1000.0, (400.0, 300.0)
    mesh_m, position, uv = _posed_scene(demo_model.body_model, "walk_contact", 4.0, focal,
                                        princpt)
    runner = DemoRunner(OracleNet(mesh_m), demo_model.body_model, "human36", focal_px=focal)
    image = np.full((601, 801, 3), 255, np.uint8)  # principal point = image centre
    result = runner.run([_with_confidence(uv)], tmp_path, image=image, source="oracle")
    person = result.people[0]
    assert result.princpt_px == princpt
    # Weak perspective ignores the body's depth (walking: legs and arms fore and aft):
    # ~1% of the body's 450 px height; rendered with the true focal it nearly vanishes.
    assert person.error_px < 5.0 and person.render_error_px < 2.0
    assert person.scale_px_per_m == pytest.approx(focal / 4.0, rel=0.03)
    np.testing.assert_allclose(person.translation_m, position.numpy(), atol=0.12)
    assert not person.spread_fallback

    rendered = read_image(tmp_path / "demo_mesh.png")
    cols, rows = np.round(uv).astype(int).T
    assert (rendered[rows, cols] != 255).any(-1).mean() >= 15 / 17
    vertices, _ = load_obj(tmp_path / "demo_mesh_0.obj")
    np.testing.assert_allclose(vertices, person.mesh_cam_m, atol=1e-5)


def test_zero_confidence_joints_are_masked_and_drawn(demo_model, tmp_path):
    focal, princpt = 1000.0, (400.0, 300.0)
    mesh_m, _, uv = _posed_scene(demo_model.body_model, "t_pose", 4.0, focal, princpt,
                                 offset_m=(0.0, 0.0))
    runner = DemoRunner(OracleNet(mesh_m), demo_model.body_model, "human36", focal_px=focal)
    pose = _with_confidence(uv)
    wrist = 13  # L_Wrist
    results = []
    for junk in ((0.0, 0.0), (5000.0, -300.0)):
        pose[wrist, :2], pose[wrist, 2] = junk, 0.0
        results.append(runner.run([pose.copy()], tmp_path / str(junk[0]), source="missing"))
    first, second = (r.people[0] for r in results)
    assert first.scale_px_per_m == second.scale_px_per_m
    np.testing.assert_array_equal(first.trans_px, second.trans_px)
    assert first.error_px == second.error_px < 3.0
    # The filled-in wrist sits near where the real one is (mirrored arm), drawn as missing.
    assert np.linalg.norm(first.filled_pose_px[wrist, :2] - uv[wrist]) < 60
    pose_rgb = read_image(tmp_path / "0.0" / "demo_pose2d.png")
    assert (pose_rgb == MISSING_RGB).all(-1).any()


def test_several_people_get_their_own_mesh_and_obj(demo_model, tmp_path):
    """Two people (coco joints) side by side and one with no detected joint (skipped)."""
    focal, princpt = 1000.0, (400.0, 300.0)
    mesh_m, _, left = _posed_scene(demo_model.body_model, "standing", 5.0, focal, princpt,
                                   joint_set="coco", offset_m=(-0.5, 0.0))
    *_, right = _posed_scene(demo_model.body_model, "standing", 5.0, focal, princpt,
                             joint_set="coco", offset_m=(0.5, 0.0))
    runner = DemoRunner(OracleNet(mesh_m), demo_model.body_model, "coco", focal_px=focal)
    people = [_with_confidence(left), _with_confidence(right * 0.0, 0.0),
              _with_confidence(right)]
    image = np.full((601, 801, 3), 255, np.uint8)
    result = runner.run(people, tmp_path, image=image, source="people")
    assert [p.index for p in result.people] == [0, 2]
    assert sorted(p.name for p in tmp_path.glob("*.obj")) == ["demo_mesh_0.obj",
                                                             "demo_mesh_2.obj"]
    assert all(p.error_px < 3.0 for p in result.people)
    xs = [p.translation_m[0] for p in result.people]
    assert xs[0] == pytest.approx(-0.5, abs=0.1) and xs[1] == pytest.approx(0.5, abs=0.1)
    # Each person is drawn in their own colour where their joints are.
    rendered = read_image(tmp_path / "demo_mesh.png").astype(int)
    colours = [rendered[int(uv[17, 1]), int(uv[17, 0])] for uv in (left, right)]
    assert np.abs(colours[0] - colours[1]).sum() > 30


# ----------------------------------------------------------------------------- timing
def test_single_person_timing_with_model_loaded(demo_model, tmp_path, capsys):
    """Reports (does not assert) one demo call with the model loaded: the real checkpoint's
    forward pass, and an anny body as the mesh so that rendering costs what a trained
    model's output costs."""
    runner = DemoRunner.from_config(demo_model.cfg, demo_model.path)
    focal, princpt = 1000.0, (400.0, 300.0)
    mesh_m, _, uv = _posed_scene(demo_model.body_model, "standing", 4.0, focal, princpt)
    runner.model = OracleNet(mesh_m, network=runner.model).eval()
    pose = [_with_confidence(uv)]
    runner.run(pose, tmp_path / "warmup", source="timing")  # renderer start-up, caches
    start = time.perf_counter()
    result = runner.run(pose, tmp_path / "timed", source="timing")
    total_ms = (time.perf_counter() - start) * 1e3
    fit_runs = 200
    poses = np.stack(pose)
    joints = result.people[0].joints_m[None]
    start = time.perf_counter()
    for _ in range(fit_runs):
        fit_cameras(joints, poses)
    fit_ms = (time.perf_counter() - start) * 1e3 / fit_runs
    with capsys.disabled():
        stages = ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())
        print(f"\n[demo timing] topology {demo_model.cfg.MODEL.topology} "
              f"({demo_model.body_model.num_vertices} vertices), renderer {result.renderer}: "
              f"one person {total_ms:.0f} ms ({stages}); camera fit alone {fit_ms:.2f} ms")
    assert result.people[0].error_px < 3.0


# ----------------------------------------------------------------------------- sample inputs
def test_sample_inputs_are_generated_and_readable(tmp_path):
    script = REPO / "demo" / "make_sample_inputs.py"
    done = subprocess.run([sys.executable, str(script), "--out_dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from pose2mesh.pose_input import load_pose_file

    human36 = np.load(tmp_path / "sample_human36.npy")
    assert human36.shape == (17, 2) and human36.dtype == np.float32
    coco = load_pose_file(tmp_path / "sample_coco_results.json", "coco")
    openpose = load_pose_file(tmp_path / "sample_openpose.json", "coco")
    assert len(coco) == len(openpose) == 2
    for a, b in zip(coco, openpose):
        np.testing.assert_allclose(a[:, :2], b[:, :2], atol=0.01)
        np.testing.assert_array_equal(a[:, 2] > 0, b[:, 2] > 0)
    assert (coco[1][:, 2] == 0).sum() == 1  # the occluded left wrist
    mano = load_pose_file(tmp_path / "sample_mano.npy", "mano")
    assert mano[0].shape == (21, 3)
    real = load_pose_file(tmp_path / "real_motion_coco.json", "coco")
    assert len(real) == 3 and all((p[:, 2] > 0).all() for p in real)
    single = np.load(tmp_path / "real_motion_human36.npy")
    assert single.shape == (17, 2) and np.ptp(single[:, 1]) > 200  # a whole body, in pixels
    committed = REPO / "demo" / "sample_inputs"
    for name in ("sample_human36.npy", "sample_mano.npy"):
        if (committed / name).is_file():  # deterministic: same as the files in the repo
            np.testing.assert_allclose(np.load(committed / name), np.load(tmp_path / name),
                                       atol=0.05)


def test_fitted_full_body_and_its_parameter_file(demo_model, anny_body, tmp_path):
    """With the body fit the demo renders and saves the 13,718-vertex anny body fitted to the
    network's mesh, and demo_mesh_<i>_anny.json rebuilds exactly that OBJ."""
    import json

    from pose2mesh.body_fit import AnnyBodyFitter

    focal, princpt = 1000.0, (400.0, 300.0)
    mesh_m, _, uv = _posed_scene(demo_model.body_model, "walk_contact", 4.0, focal, princpt)
    fitter = AnnyBodyFitter(demo_model.body_model, anny_body, iterations=40)
    runner = DemoRunner(OracleNet(mesh_m), demo_model.body_model, "human36", focal_px=focal,
                        fitter=fitter)
    result = runner.run([_with_confidence(uv)], tmp_path, image=np.full((601, 801, 3), 255, np.uint8))
    person = result.people[0]
    assert person.error_px < 8.0
    vertices, faces = load_obj(tmp_path / "demo_mesh_0.obj")
    assert vertices.shape == (anny_body.num_vertices, 3) and len(faces) == len(anny_body.faces)
    record = json.loads((tmp_path / "demo_mesh_0_anny.json").read_text())
    assert record["bone_labels"] == list(anny_body.bone_labels) and record["fit_vertex_error_mm"] < 30
    params = {"pose_aa": torch.tensor(record["pose_aa_rad"])[None],
              "phenotype": torch.tensor([record["phenotype"][k] for k in anny_body.phenotype_labels])[None],
              "transl_m": torch.tensor(record["transl_m"])[None]}
    with torch.no_grad():
        rebuilt = anny_body(**params).vertices_m[0].numpy()
    np.testing.assert_allclose(rebuilt, vertices, atol=2e-4)
    assert record["camera"]["focal_px"] == focal


def test_body_fit_follows_the_input_2d_by_default(demo_model, tmp_path, caplog):
    """The network gets the limbs a little wrong (an oracle returning the key pose with every
    limb bone turned ~0.15 rad); the input 2D is the true pose seen by a pinhole camera. By
    default the body fit follows the 2D: the logged reprojection error drops well below the
    3D-only fit's (``fit_2d=False``, ``--no_fit_2d``) and the parameter file says so."""
    import json
    import logging

    from pose2mesh.body_fit import FIT_BONES, AnnyBodyFitter

    body = demo_model.body_model
    focal, princpt = 1000.0, (400.0, 300.0)
    _, _, uv = _posed_scene(body, "walk_contact", 4.0, focal, princpt)
    pose = BodyPosePrior(body.bone_labels).key_pose("walk_contact")[None]
    limbs = torch.zeros(len(body.bone_labels), 1)
    limbs[[body.bone_labels.index(b) for b in FIT_BONES[1:]]] = 1.0
    noise = torch.randn(pose.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        verts = body(pose_aa=pose + 0.15 * noise * limbs).vertices_m[0] @ WORLD_TO_FRONT_CAMERA.T
        network_mesh = verts - body.regress_joints(verts[None], "human36")[0, 0]
    fitter = AnnyBodyFitter(body, iterations=30)  # the small body as output: cheap
    errors = {}
    for fit_2d in (False, True):
        runner = DemoRunner(OracleNet(network_mesh), body, "human36", focal_px=focal,
                            fitter=fitter, fit_2d=fit_2d)
        out = tmp_path / str(fit_2d)
        # the handler goes on the pose2mesh logger itself: an engine test's setup_logger may
        # have stopped it propagating to the root logger caplog listens on
        logger = logging.getLogger("pose2mesh")
        logger.addHandler(caplog.handler)
        try:
            with caplog.at_level(logging.INFO, logger="pose2mesh"):
                errors[fit_2d] = runner.run([_with_confidence(uv)], out).people[0].error_px
        finally:
            logger.removeHandler(caplog.handler)
        record = json.loads((out / "demo_mesh_0_anny.json").read_text())
        assert record["fit_follows_2d"] is fit_2d
        assert record["camera_fit_error_px"] == pytest.approx(errors[fit_2d], abs=1e-3)
    assert errors[False] > 8.0 and errors[True] < 0.5 * errors[False], errors
    assert "following the 2D" in caplog.text


def test_fit_2d_flags_are_parsed():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_run", RUN)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    default = run.parse_args(["--input_pose", "x.npy"])
    assert not default.no_fit_2d and default.fit_2d_weight is None
    given = run.parse_args(["--input_pose", "x.npy", "--no_fit_2d", "--fit_2d_weight", "8"])
    assert given.no_fit_2d and given.fit_2d_weight == 8.0
    with pytest.raises(SystemExit):
        run.parse_args(["--input_pose", "x.npy", "--fit_2d_weight", "-1"])


@pytest.mark.parametrize("case", ["all joints on one pixel", "confident joints on one pixel"])
def test_degenerate_pose_is_refused_in_one_line(case, demo_model, tmp_path):
    pose = np.full((17, 3), 1.0)
    pose[:, :2] = 250.0
    if case == "confident joints on one pixel":
        pose[:8, :2] = np.random.default_rng(0).uniform(50, 400, (8, 2))
        pose[:8, 2] = 0.0  # the spread joints are undetected
    path = tmp_path / "degenerate.npy"
    np.save(path, pose)
    done = _run_cli("--input_pose", path, "--joint_set", "human36", "--weights", demo_model.path,
                    "--output_dir", tmp_path / "out", "--raw_mesh")
    assert done.returncode == 2, done.stdout[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "degenerate pose" in lines[0] and str(path) in lines[0]
    assert not list((tmp_path / "out").glob("*.obj")) if (tmp_path / "out").exists() else True


def test_non_finite_mesh_is_never_written(tmp_path):
    from pose2mesh.vis import save_obj

    vertices = np.zeros((3, 3))
    vertices[1, 0] = np.inf
    with pytest.raises(ValueError, match="1 vertices are not finite"):
        save_obj(tmp_path / "bad.obj", vertices, np.array([[0, 1, 2]]))
    assert not (tmp_path / "bad.obj").exists()


def test_load_model_api_returns_the_checkpoint_network(demo_model):
    from pose2mesh.api import load_model

    model, cfg = load_model(demo_model.path)
    assert cfg.MODEL.topology == demo_model.cfg.MODEL.topology and not model.training
    pose2d = torch.randn(2, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(pose2d)["mesh_m"], demo_model.model(pose2d)["mesh_m"])


@pytest.mark.parametrize("scale, expected", [(1e9, r"coordinate of \S+e\+11 px; pixel coordinates must lie within"),
                                             (1e37, "NaN or infinite")])
def test_huge_coordinates_are_refused_before_anything_is_rendered(scale, expected, tmp_path):
    path = tmp_path / "huge.npy"
    np.save(path, np.random.default_rng(0).uniform(50, 400, (17, 2)) * scale)
    done = _run_cli("--input_pose", path, "--joint_set", "human36", "--output_dir", tmp_path / "out", timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]) and str(path) in lines[0]


def test_text_file_named_npy_and_unwritable_output_are_one_line_errors(tmp_path):
    text = tmp_path / "pose.npy"
    text.write_text("1 2\n3 4\n")
    done = _run_cli("--input_pose", text, "--joint_set", "human36", "--output_dir", tmp_path / "out", timeout=60)
    assert done.returncode == 2 and "not a NumPy .npy file (no NumPy header)" in done.stderr
    assert "pickled" not in done.stderr
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(1).uniform(50, 400, (17, 2)))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    started = time.perf_counter()
    done = _run_cli("--input_pose", good, "--joint_set", "human36", "--output_dir", blocker / "out", timeout=60)
    assert done.returncode == 2 and "cannot create the output folder" in done.stderr.strip().splitlines()[-1]
    assert "model:" not in done.stdout  # refused before the model was loaded
    assert time.perf_counter() - started < 30
