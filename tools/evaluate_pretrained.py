"""Accuracy of the shipped models (and any other checkpoints) on both test splits.

    python tools/evaluate_pretrained.py --out experiment/pretrained_metrics.json
    python tools/evaluate_pretrained.py --joint_sets human36 \
        --extra quickstart=experiment/quickstart_pose2mesh/checkpoint/final.pth.tar
    python tools/evaluate_pretrained.py --joint_sets --out experiment/lifters/metrics.json \
        --extra hgn=experiment/lifters/hgn/checkpoint/final.pth.tar ...   # lifters

For every model: the synthetic test split (prior poses, 2,000 samples) and the real-motion
test split (every frame of CMU subject 006, 1,443 samples), each with ground-truth 2D and
with detector-like noisy 2D (``SYNTHETIC.noise_2d gaussian``): MPJPE, PA-MPJPE, MPVPE,
PA-MPVPE (mm, human36 evaluation joints regressed from the mesh) of the raw network mesh,
the mean-pose baseline beside it, and -- on the first ``--fit_samples`` samples of each
split -- the anny body fitted to the network mesh (``pose2mesh.body_fit``) next to the raw
mesh on the same samples. A lifter checkpoint (PoseNet, HGN) is scored on its lifted joints
(MPJPE, PA-MPJPE; human36 evaluation joints of its input set). Prints a Markdown table and
writes the numbers (and each network's parameter count) as JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pose2mesh.errors import Pose2MeshError, exit_on_user_error

SPLITS = {"synthetic": ["SYNTHETIC.test_split", "synthetic"],
          "real_motion": ["SYNTHETIC.test_split", "real_motion"]}
INPUTS = {"GT 2D": ["DATASET.use_gt_input", "True"],
          "noisy 2D": ["DATASET.use_gt_input", "False", "SYNTHETIC.noise_2d", "gaussian"]}
METRICS = ("MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE")


def evaluate(name: str, weights: Path, opts: list[str], fit_samples: int, device) -> list[dict]:
    """Rows (dicts) for one checkpoint over every split and input."""
    import torch

    from pose2mesh.body_fit import AnnyBodyFitter, FittedPose2Mesh
    from pose2mesh.config import load_config
    from pose2mesh.engine import builders
    from pose2mesh.engine.checkpoint import load_model_weights, saved_config
    from pose2mesh.engine.distributed import DistContext
    from pose2mesh.engine.evaluator import Evaluator
    from pose2mesh.models import count_parameters

    saved = saved_config(weights)
    if saved is None:
        raise Pose2MeshError(f"{weights}: no saved config")
    predicts_mesh = (saved.get("MODEL") or {}).get("name") == "pose2mesh_net"
    subsets = ("all", "fit") if predicts_mesh and fit_samples > 0 else ("all",)
    rows = []
    for split, split_opts in SPLITS.items():
        for input_name, input_opts in INPUTS.items():
            base = ["MODEL.posenet_pretrained", "False", "DATASET.workers", "0",
                    "SYNTHETIC.test_size", "2000", "SYNTHETIC.train_size", "4000",
                    *split_opts, *input_opts, *opts]
            results = {}
            for subset in subsets:
                extra = ["DATASET.debug_max_samples", str(fit_samples)] if subset == "fit" else []
                cfg = load_config(saved, base + extra, source=f"the config saved in {weights}")
                torch.manual_seed(0)
                parts = builders.build_run_parts(cfg, device, with_train_set=subset == "all")
                load_model_weights(parts.model, weights)
                ctx = DistContext()
                evaluator = Evaluator(parts.test_set, builders.build_test_loader(cfg, parts.test_set, ctx, device),
                                      parts.body_model, device=device, ctx=ctx)
                if subset == "all":
                    results["network"] = evaluator.evaluate(parts.model)
                    results["baseline"] = evaluator.evaluate_mean_baseline(
                        parts.train_set, builders.build_baseline_loader(cfg, parts.train_set, ctx, device))
                    results["num_samples"] = len(parts.test_set)
                    results["parameters"] = count_parameters(parts.model)
                else:
                    fitter = AnnyBodyFitter(parts.body_model).to(device)
                    results["network_fit_subset"] = evaluator.evaluate(parts.model)
                    results["fitted_body_fit_subset"] = evaluator.evaluate(FittedPose2Mesh(parts.model, fitter))
                    results["num_fit_samples"] = len(parts.test_set)
            rows.append({"model": name, "split": split, "input": input_name, **results})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | split | input | what | " + " | ".join(METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(METRICS)]
    for row in rows:
        network = "network mesh" if "MPVPE" in row["network"] else "lifted joints"
        for what, key in ((network, "network"), ("mean-pose baseline", "baseline"),
                          (f"network mesh, first {row.get('num_fit_samples')}", "network_fit_subset"),
                          (f"fitted body, first {row.get('num_fit_samples')}", "fitted_body_fit_subset")):
            values = row.get(key)
            if values:
                cells = " | ".join(f"{values[m]:.1f}" if m in values else "" for m in METRICS)
                lines.append(f"| {row['model']} | {row['split']} ({row.get('num_samples')}) | {row['input']} | {what} | {cells} |")
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--joint_sets", nargs="*", default=["human36", "coco"])
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=CHECKPOINT",
                        help="more checkpoints to score the same way (their saved configs)")
    parser.add_argument("--fit_samples", type=int, default=256, help="0: no fitted-body rows")
    parser.add_argument("--out", default="experiment/pretrained_metrics.json")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)

    import torch

    from pose2mesh.pretrained import check_pretrained

    device = torch.device("cpu")
    models = [(f"shipped {j}", check_pretrained(j)) for j in args.joint_sets]
    for item in args.extra:
        name, _, path = item.partition("=")
        if not path:
            raise Pose2MeshError(f"--extra expects NAME=CHECKPOINT, got '{item}'")
        models.append((name, Path(path)))
    rows = []
    for name, weights in models:
        rows += evaluate(name, weights, list(args.opts), args.fit_samples, device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print(markdown(rows))


if __name__ == "__main__":
    main()
