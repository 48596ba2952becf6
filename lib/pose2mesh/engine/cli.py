"""The command-line arguments main/train.py and main/test.py share (no torch import)."""
from __future__ import annotations

import argparse


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``--cfg``, ``--gpu``, ``--exp_dir`` and trailing ``KEY VALUE`` config
    overrides (``opts``); scripts add their own options to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", required=True, help="experiment config (YAML)")
    parser.add_argument("--gpu", default="", help="CUDA devices for DataParallel, e.g. 0,1 (default: cfg.DEVICE)")
    parser.add_argument("--exp_dir", default=None, help="output folder (default: OUTPUT_ROOT/exp_<time>)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser
