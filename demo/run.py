"""Pose2Mesh demo: a 2D pose file (or a detector's JSON) -> 3D mesh, pictures and OBJ files.

    python demo/run.py --input_pose demo/sample_inputs/sample_human36.npy --joint_set human36
    python demo/run.py --input_pose people.json --joint_set coco --input_img photo.jpg

The command of ``pose2mesh-demo`` (arguments and pipeline: :mod:`pose2mesh.cli.demo`); run
from the repository it also finds the checkpoints under the repository's ``experiment/``.
"""
from __future__ import annotations

from pathlib import Path

from pose2mesh.cli.demo import DEFAULT_SEARCH_ROOTS, parse_args  # noqa: F401  (parse_args: the arguments)
from pose2mesh.cli.demo import main as _main

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    _main(argv, search_roots=(*DEFAULT_SEARCH_ROOTS, REPO_ROOT / "experiment"))


if __name__ == "__main__":
    main()
