"""Installs the ``pose2mesh`` library from ``lib/`` (``pip install -e .``, or a wheel).

The run-time assets of ``asset/`` are the package data of ``pose2mesh._assets`` (found through
``pose2mesh.assets``): the joint regressors, the retargeted mocap library, the pretrained
models and the YAML configs; the figures stay out. ``pose2mesh-train``, ``pose2mesh-test``
and ``pose2mesh-demo`` are the command lines of ``main/train.py``, ``main/test.py`` and
``demo/run.py``.
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
REQUIREMENTS = [
    line.strip()
    for line in (ROOT / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
ASSET_PACKAGE = "pose2mesh._assets"
ASSET_FILES = [
    "joint_regressors/*.npz",
    "mocap/*.npz",
    "mocap/README.md",
    "pretrained/*.pth.tar",
    "yaml/*.yml",
]

setup(
    name="pose2mesh",
    version="0.1.0",
    description="Config-driven 2D pose to 3D human/hand mesh recovery (Pose2Mesh re-creation)",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "lib", ASSET_PACKAGE: "asset"},
    packages=[*find_packages("lib"), ASSET_PACKAGE],
    package_data={ASSET_PACKAGE: ASSET_FILES},
    include_package_data=False,
    zip_safe=False,
    install_requires=REQUIREMENTS,
    extras_require={"test": ["pytest>=7"]},
    entry_points={
        "console_scripts": [
            "pose2mesh-train = pose2mesh.cli.train:main",
            "pose2mesh-test = pose2mesh.cli.test:main",
            "pose2mesh-demo = pose2mesh.cli.demo:main",
        ],
    },
)
