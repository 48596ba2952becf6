"""The shipped pretrained models (asset/pretrained/): present, safe to load, small, and
accurate on held-out real motion, far better than the mean-pose baseline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pose2mesh.assets import PRETRAINED_DIR
from pose2mesh.pretrained import PRETRAINED_JOINT_SETS, check_pretrained, pretrained_path

BUDGET_MB = 80.0


def test_shipped_files_load_safely_in_fp16_within_the_budget():
    from pose2mesh.engine.checkpoint import load_checkpoint

    total = sum(path.stat().st_size for path in PRETRAINED_DIR.glob("*.pth.tar")) / 1e6
    assert total <= BUDGET_MB
    for joint_set in PRETRAINED_JOINT_SETS:
        checkpoint = load_checkpoint(check_pretrained(joint_set))
        floats = [v for v in checkpoint["model_state_dict"].values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float16 for v in floats)
        assert "pretrained" in checkpoint["source"] and checkpoint["epoch"] >= 1


@pytest.mark.parametrize("joint_set", PRETRAINED_JOINT_SETS)
def test_shipped_model_beats_the_mean_pose_on_held_out_real_motion(joint_set):
    """64 frames of CMU subject 006 (never trained on), ground-truth 2D: the network's mesh
    must be far closer than the training-set mean mesh (a broken model is not)."""
    from pose2mesh.config import load_config
    from pose2mesh.engine import builders
    from pose2mesh.engine.checkpoint import load_model_weights, saved_config
    from pose2mesh.engine.distributed import DistContext
    from pose2mesh.engine.evaluator import Evaluator

    path = pretrained_path(joint_set)
    cfg = load_config(saved_config(path), [
        "MODEL.posenet_pretrained", "False", "SYNTHETIC.test_split", "real_motion",
        "DATASET.use_gt_input", "True", "DATASET.debug_max_samples", "64", "SYNTHETIC.train_size", "512"])
    device = torch.device("cpu")
    parts = builders.build_run_parts(cfg, device)
    load_model_weights(parts.model, path)
    ctx = DistContext()
    evaluator = Evaluator(parts.test_set, builders.build_test_loader(cfg, parts.test_set, ctx, device),
                          parts.body_model, device=device, ctx=ctx)
    metrics = evaluator.evaluate(parts.model)
    baseline = evaluator.evaluate_mean_baseline(
        parts.train_set, builders.build_baseline_loader(cfg, parts.train_set, ctx, device))
    for name in ("MPJPE", "PA-MPJPE", "MPVPE"):
        assert metrics[name] < 0.6 * baseline[name], (name, metrics, baseline)


def test_demo_without_weights_or_experiments_runs_the_shipped_model(anny_body, tmp_path):
    """A fresh clone: no experiment/ folder. A 2D pose gives the full fitted body and its
    parameter file, with the shipped human36 model."""
    from pose2mesh.demo import DemoRunner, resolve_model

    cfg, weights = resolve_model("human36", search_roots=[tmp_path / "experiment"])
    assert weights == pretrained_path("human36")
    runner = DemoRunner.from_config(cfg, weights)
    from pose2mesh.datasets.pose_prior import BodyPosePrior

    body = runner.output_body  # a plausible input: a walking anny body seen from the front
    pose = np.ones((17, 3))
    with torch.no_grad():
        verts = body(pose_aa=BodyPosePrior(body.bone_labels).key_pose("walk_contact")[None]).vertices_m
        joints = body.regress_joints(verts, "human36")[0].numpy()
    pose[:, 0] = 500 + 300 * joints[:, 0]   # front view: x right, z up
    pose[:, 1] = 500 - 300 * joints[:, 2]
    pose[:, 2] = 1.0
    result = runner.run([pose], tmp_path / "out")
    assert result.people[0].mesh_m.shape == (anny_body.num_vertices, 3)
    record = json.loads((tmp_path / "out" / "demo_mesh_0_anny.json").read_text())
    assert len(record["pose_aa_rad"]) == len(anny_body.bone_labels)
    assert result.people[0].error_px < 12.0  # pixels, on a ~500 px tall body
    assert np.isfinite(result.people[0].mesh_m).all()


def test_evaluation_tool_scores_a_lifter_checkpoint_on_its_lifted_joints(tmp_path):
    """tools/evaluate_pretrained.py on a (random) HGN checkpoint: one row per split and 2D
    input, joint metrics only (no mesh, no fitted-body subset), the parameter count, and the
    mean-pose baseline beside it."""
    import importlib.util
    from pathlib import Path

    from pose2mesh.config import load_config
    from pose2mesh.engine import builders
    from pose2mesh.models import count_parameters

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "asset" / "yaml" / "HGN_human36J_train_synthetic.yml", ["MODEL.hgn_hidden", "8"])
    body_model = builders.build_body_model(cfg, torch.device("cpu"))
    model = builders.build_network(cfg, builders.build_hierarchy(cfg, body_model))
    path = tmp_path / "hgn.pth.tar"
    torch.save({"epoch": 1, "model_state_dict": model.state_dict(), "config": cfg.dump()}, path)
    spec = importlib.util.spec_from_file_location("evaluate_pretrained", repo / "tools" / "evaluate_pretrained.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = tool.evaluate("tiny hgn", path, ["DATASET.debug_max_samples", "16", "SYNTHETIC.train_size", "256"],
                         fit_samples=256, device=torch.device("cpu"))
    assert [(row["split"], row["input"]) for row in rows] == [
        (split, name) for split in tool.SPLITS for name in tool.INPUTS]
    for row in rows:
        assert set(row["network"]) == {"MPJPE", "PA-MPJPE"} and "fitted_body_fit_subset" not in row
        assert row["parameters"] == count_parameters(model) and row["num_samples"] == 16
        assert row["baseline"]["MPJPE"] > 0
    assert "lifted joints" in tool.markdown(rows)
