"""Datasets: the synthetic anny set, the real benchmarks, mixing, noise and transforms."""
from pose2mesh.datasets import amass, coco, freihand, human36m, muco, pw3d, surreal  # noqa: E402,F401  (register the benchmarks)
