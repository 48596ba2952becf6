"""Train PoseNet or Pose2Mesh from a config (the command of ``pose2mesh-train``).

    python main/train.py --cfg asset/yaml/<config>.yml [--gpu 0,1] [--resume_training]
                         [--debug] [--seed 123] [--exp_dir DIR] [KEY VALUE ...]
    torchrun --nproc_per_node 2 main/train.py --cfg ...     (DistributedDataParallel)

Arguments and outputs: :mod:`pose2mesh.cli.train`.
"""
from pose2mesh.cli.train import main, parse_args  # noqa: F401  (no torch import before main())

if __name__ == "__main__":
    main()
