"""Pose2Mesh demo: a 2D pose file (or a detector's JSON) -> 3D mesh, pictures and OBJ files.

    pose2mesh-demo --input_pose people.json --joint_set coco --output_dir out
    python demo/run.py --input_pose demo/sample_inputs/sample_human36.npy --joint_set human36
    python demo/run.py --input_pose people.json --joint_set coco --input_img photo.jpg
    python demo/run.py --input_pose x.npy --cfg asset/yaml/<config>.yml --weights ckpt.pth.tar \
        MODEL.topology notoes_collapse10pc

Writes demo_pose2d.png, demo_mesh.png, demo_mesh_side.png, demo_mesh_<i>.obj and (anny
bodies) demo_mesh_<i>_anny.json with the fitted body's parameters to --output_dir, and logs,
per person, the camera fit's mean reprojection error and the renderer.
The pipeline (model lookup, camera, focal length) is described in ``pose2mesh.demo``.
``pose2mesh-demo`` looks for trained checkpoints under ``./experiment/``; ``demo/run.py``
(the same command) also under the repository's ``experiment/``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pose2mesh.errors import Pose2MeshError, exit_on_user_error

DEFAULT_SEARCH_ROOTS = (Path("experiment"),)
"""Folders whose ``*/checkpoint/`` are searched for trained weights (relative: the working
directory)."""
JOINT_SETS = ("human36", "coco", "smpl", "mano")
RENDERERS = ("auto", "pyrender-egl", "pyrender-osmesa", "software")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input_pose", required=True,
                        help=".npy (J,2)/(J,3)/(P,J,2|3) in pixels, or .json (COCO keypoint "
                             "results or OpenPose)")
    parser.add_argument("--joint_set", choices=JOINT_SETS, default=None,
                        help="joint order of the input (default: the --cfg's input joint set, "
                             "else human36)")
    parser.add_argument("--input_img", default=None, help="image to draw on (default: white canvas)")
    parser.add_argument("--cfg", default=None,
                        help="model config (default: the config saved in the checkpoint)")
    parser.add_argument("--weights", default=None,
                        help="checkpoint file or experiment folder (default: the newest matching "
                             "checkpoint under experiment/*/checkpoint/, else the shipped "
                             "pretrained model of asset/pretrained/)")
    parser.add_argument("--output_dir", default="demo/result", help="output folder (created)")
    parser.add_argument("--gpu", default="", help="CUDA device, e.g. 0 (default: cfg.DEVICE)")
    parser.add_argument("--focal_px", type=float, default=None,
                        help="rendering focal length in pixels (default: 40 deg field of view "
                             "across the longer image side)")
    parser.add_argument("--renderer", choices=RENDERERS, default="auto",
                        help="mesh renderer (auto: pyrender EGL, else OSMesa, else software)")
    parser.add_argument("--raw_mesh", action="store_true",
                        help="render and save the network's own mesh instead of the anny body "
                             "fitted to it (default for anny models: fit the full body)")
    parser.add_argument("--fit_iterations", type=int, default=40,
                        help="refinement steps of the body fit (default 40)")
    parser.add_argument("--no_fit_2d", action="store_true",
                        help="fit the body to the network's mesh only (default: it also follows "
                             "the input 2D pose through a robust reprojection term)")
    parser.add_argument("--fit_2d_weight", type=float, default=None,
                        help="weight of the body fit's 2D reprojection term against its 3D terms "
                             "(default: pose2mesh.body_fit.DEFAULT_KEYPOINT_WEIGHT, printed in "
                             "the log)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.focal_px is not None and not args.focal_px > 0:
        parser.error(f"--focal_px must be positive, got {args.focal_px}")
    if args.fit_iterations < 0:
        parser.error(f"--fit_iterations must be >= 0, got {args.fit_iterations}")
    if args.fit_2d_weight is not None and not args.fit_2d_weight >= 0:
        parser.error(f"--fit_2d_weight must be >= 0, got {args.fit_2d_weight}")
    return args


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    demo_logger = logging.getLogger("pose2mesh")
    demo_logger.addHandler(handler)
    demo_logger.setLevel(logging.INFO)


@exit_on_user_error
def main(argv=None, *, search_roots=DEFAULT_SEARCH_ROOTS) -> None:
    """Run the demo on ``argv`` (default: ``sys.argv[1:]``); ``search_roots``: see
    :data:`DEFAULT_SEARCH_ROOTS`."""
    args = parse_args(argv)
    from pose2mesh.config import load_config
    from pose2mesh.pose_input import load_pose_file
    from pose2mesh.vis import read_image

    joint_set = args.joint_set
    if joint_set is None:
        joint_set = load_config(args.cfg).DATASET.input_joint_set if args.cfg else "human36"
        if joint_set not in JOINT_SETS:
            raise Pose2MeshError(f"{args.cfg}: unknown DATASET.input_joint_set '{joint_set}'")
    # Input problems are reported before the (slow) model is loaded.
    people = load_pose_file(args.input_pose, joint_set)
    image = read_image(args.input_img) if args.input_img else None
    from pose2mesh.demo import usable_people

    usable_people(people, args.input_pose)
    output_dir = Path(args.output_dir)
    try:  # before the (slow) model load and rendering
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise Pose2MeshError(f"{output_dir}: cannot create the output folder ({err.strerror or err})") from None

    _setup_logging()
    from pose2mesh.demo import DemoRunner, resolve_model

    cfg, weights = resolve_model(joint_set, cfg_path=args.cfg, weights=args.weights,
                                 opts=args.opts,
                                 search_roots=search_roots)
    runner = DemoRunner.from_config(cfg, weights, gpu=args.gpu, focal_px=args.focal_px,
                                    renderer=args.renderer, fit_body=not args.raw_mesh,
                                    fit_iterations=args.fit_iterations,
                                    fit_2d=not args.no_fit_2d,
                                    fit_2d_weight=args.fit_2d_weight)
    runner.run(people, args.output_dir, image=image, source=args.input_pose)


if __name__ == "__main__":
    main()
