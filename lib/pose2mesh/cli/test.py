"""Evaluate trained weights (and the mean-pose baseline) on the config's test set.

    pose2mesh-test --cfg asset/yaml/<config>.yml [--gpu 0,1] [--weights FILE]
                   [--exp_dir DIR] [KEY VALUE ...]
    python main/test.py ...                                  (the same command)

Prints MPJPE, PA-MPJPE, MPVPE, PA-MPVPE (mm) beside the baseline's and writes
``result/metrics.json`` (OBJ samples under ``vis/`` with ``TEST.vis True``).
"""
from __future__ import annotations

import argparse

from pose2mesh.cli import experiment_parser
from pose2mesh.config import load_config
from pose2mesh.engine.cpu_memory import enable_huge_page_allocations
from pose2mesh.errors import exit_on_user_error


def parse_args(argv=None) -> argparse.Namespace:
    parser = experiment_parser(__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None, help="checkpoint file or folder (default: TEST.weight_path)")
    parser.add_argument("--no_memory_reuse", action="store_true",
                        help="on CPU, leave glibc's malloc as it is (default: keep freed memory "
                             "for reuse, pose2mesh.engine.cpu_memory.keep_freed_memory)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    enable_huge_page_allocations()  # before torch allocates; THP_MEM_ALLOC_ENABLE=0 opts out
    cfg = load_config(args.cfg, args.opts)  # config errors come before the slow torch import
    from pose2mesh.engine.evaluator import run_test

    run_test(cfg, gpu=args.gpu, weights=args.weights, exp_dir=args.exp_dir,
             reuse_freed_memory=not args.no_memory_reuse)


if __name__ == "__main__":
    main()
