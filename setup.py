"""Installs the ``pose2mesh`` library from ``lib/`` (``pip install -e .``)."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
REQUIREMENTS = [
    line.strip()
    for line in (ROOT / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="pose2mesh",
    version="0.1.0",
    description="Config-driven 2D pose to 3D human/hand mesh recovery (Pose2Mesh re-creation)",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    install_requires=REQUIREMENTS,
)
