"""The command lines, installed as console scripts (``setup.py``) and run by the scripts:

- ``pose2mesh-train`` = ``python main/train.py`` (:mod:`pose2mesh.cli.train`),
- ``pose2mesh-test`` = ``python main/test.py`` (:mod:`pose2mesh.cli.test`),
- ``pose2mesh-demo`` = ``python demo/run.py`` (:mod:`pose2mesh.cli.demo`).

Each module's ``main(argv=None)`` parses the arguments, turns a
:class:`~pose2mesh.errors.Pose2MeshError` into one line and exit status 2, and imports torch
only after its process-wide choices (huge-page CPU allocations, logged, opt-out) are made;
importing these modules imports no torch. :func:`experiment_parser` holds the arguments
training and testing share.
"""
from __future__ import annotations

import argparse


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``--cfg``, ``--gpu``, ``--exp_dir`` and trailing ``KEY VALUE`` config
    overrides (``opts``); the commands add their own options to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", required=True, help="experiment config (YAML)")
    parser.add_argument("--gpu", default="", help="CUDA devices for DataParallel, e.g. 0,1 (default: cfg.DEVICE)")
    parser.add_argument("--exp_dir", default=None, help="output folder (default: OUTPUT_ROOT/exp_<time>)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser
