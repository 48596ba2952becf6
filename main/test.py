"""Evaluate trained weights (and the mean-pose baseline) on the config's test set (the
command of ``pose2mesh-test``).

    python main/test.py --cfg asset/yaml/<config>.yml [--gpu 0,1] [--weights FILE]
                        [--exp_dir DIR] [KEY VALUE ...]

Arguments and outputs: :mod:`pose2mesh.cli.test`.
"""
from pose2mesh.cli.test import main, parse_args  # noqa: F401  (no torch import before main())

if __name__ == "__main__":
    main()
