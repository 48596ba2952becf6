"""Train PoseNet or Pose2Mesh from a config.

    pose2mesh-train --cfg asset/yaml/<config>.yml [--gpu 0,1] [--resume_training]
                    [--debug] [--seed 123] [--exp_dir DIR] [KEY VALUE ...]
    python main/train.py ...                                 (the same command)
    torchrun --nproc_per_node 2 main/train.py --cfg ...     (DistributedDataParallel)

Outputs go to ``<OUTPUT_ROOT>/exp_<time>/`` (or ``--exp_dir``): checkpoint/, graph/, vis/,
result/metrics.json, tb/ and log.txt.
"""
from __future__ import annotations

import argparse

from pose2mesh.cli import experiment_parser
from pose2mesh.config import load_config
from pose2mesh.engine.cpu_memory import enable_huge_page_allocations
from pose2mesh.errors import exit_on_user_error


def parse_args(argv=None) -> argparse.Namespace:
    parser = experiment_parser(__doc__.split("\n")[0])
    parser.add_argument("--resume_training", action="store_true",
                        help="continue the newest checkpoint of --exp_dir (default: the newest experiment)")
    parser.add_argument("--debug", action="store_true", help="tiny datasets, 2 epochs, no loader workers")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: cfg.SEED = 123)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    enable_huge_page_allocations()  # before torch allocates; THP_MEM_ALLOC_ENABLE=0 opts out
    opts = list(args.opts) + (["SEED", str(args.seed)] if args.seed is not None else [])
    cfg = load_config(args.cfg, opts)  # config errors come before the slow torch import
    from pose2mesh.engine.builders import debug_overrides
    from pose2mesh.engine.trainer import run_training

    if args.debug:
        cfg = load_config(args.cfg, debug_overrides(cfg) + opts)
    run_training(cfg, gpu=args.gpu, resume=args.resume_training, exp_dir=args.exp_dir)


if __name__ == "__main__":
    main()
