"""Evaluate trained weights (and the mean-pose baseline) on the config's test set.

    python main/test.py --cfg asset/yaml/<config>.yml [--gpu 0,1] [--weights FILE]
                        [--exp_dir DIR] [KEY VALUE ...]

Prints MPJPE, PA-MPJPE, MPVPE, PA-MPVPE (mm) beside the baseline's and writes
``result/metrics.json`` (OBJ samples under ``vis/`` with ``TEST.vis True``).
"""
from __future__ import annotations

import argparse

from pose2mesh.config import load_config
from pose2mesh.engine.cli import experiment_parser
from pose2mesh.errors import exit_on_user_error


def parse_args(argv=None) -> argparse.Namespace:
    parser = experiment_parser(__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None, help="checkpoint file or folder (default: TEST.weight_path)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)  # config errors come before the slow torch import
    from pose2mesh.engine.evaluator import run_test

    run_test(cfg, gpu=args.gpu, weights=args.weights, exp_dir=args.exp_dir)


if __name__ == "__main__":
    main()
