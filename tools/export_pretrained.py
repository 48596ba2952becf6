"""Write the shipped pretrained models (``asset/pretrained/``) from finished training runs.

    python tools/export_pretrained.py human36 coco

Reads ``experiment/pose2mesh_<joints>J_pretrained/checkpoint/final.pth.tar`` (written by
``tools/train_pretrained.sh``) and writes ``asset/pretrained/pose2mesh_<joints>J_anny.pth.tar``
with float16 weights, the training config and the epoch (format: ``pose2mesh.pretrained``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pose2mesh.assets import PRETRAINED_DIR
from pose2mesh.errors import Pose2MeshError, exit_on_user_error
from pose2mesh.pretrained import PRETRAINED_JOINT_SETS, pretrained_path


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("joint_sets", nargs="+", choices=PRETRAINED_JOINT_SETS)
    parser.add_argument("--experiment_root", default="experiment")
    parser.add_argument("--out_dir", default=str(PRETRAINED_DIR))
    args = parser.parse_args(argv)

    from pose2mesh.engine.checkpoint import atomic_save, load_checkpoint
    from pose2mesh.pretrained import export_pretrained

    for joints in args.joint_sets:
        source = Path(args.experiment_root) / f"pose2mesh_{joints}J_pretrained" / "checkpoint" / "final.pth.tar"
        if not source.is_file():
            raise Pose2MeshError(f"{source} not found: run `bash tools/train_pretrained.sh {joints}` first")
        shipped = export_pretrained(load_checkpoint(source), source=str(source))
        out = pretrained_path(joints, args.out_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(shipped, out)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, epoch {shipped['epoch']}, fp16)")


if __name__ == "__main__":
    main()
