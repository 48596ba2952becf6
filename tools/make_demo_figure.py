"""The README's demo figure: input 2D pose, mesh overlay and side view of one demo run, side
by side, scaled to a common height.

    python demo/run.py --input_pose demo/sample_inputs/real_motion_human36.npy \
        --joint_set human36 --output_dir demo/result/real_motion
    python tools/make_demo_figure.py demo/result/real_motion asset/figures/real_motion_demo.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from pose2mesh.demo import MESH_IMAGE, POSE_IMAGE, SIDE_IMAGE
from pose2mesh.errors import exit_on_user_error
from pose2mesh.vis import read_image, write_image


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("demo_dir", type=Path, help="a demo output folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args(argv)
    panels = []
    for name in (POSE_IMAGE, MESH_IMAGE, SIDE_IMAGE):
        image = read_image(args.demo_dir / name)
        width = round(image.shape[1] * args.height / image.shape[0])
        panels.append(cv2.resize(image, (width, args.height), interpolation=cv2.INTER_AREA))
    write_image(args.out, np.concatenate(panels, axis=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
