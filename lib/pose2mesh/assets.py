"""Where the run-time assets are: the package data of ``pose2mesh._assets``.

The repository's ``asset/`` folder is installed as the package ``pose2mesh._assets``
(``setup.py``: ``package_dir`` maps it, ``package_data`` lists the run-time files), so an
editable install (``pip install -e .``) finds the files in ``asset/`` and a wheel install finds
its own copies in ``site-packages/pose2mesh/_assets/``, both through
:func:`importlib.resources.files`. This module is the one place that knows it; every default
asset location of the library is one of the names below.

- :data:`JOINT_REGRESSOR_DIR`: the anny joint regressors (``asset/joint_regressors``;
  :mod:`pose2mesh.body_models.regressor_asset`),
- :data:`POSE_LIBRARY_PATH`: the retargeted CMU pose library (``asset/mocap``;
  :mod:`pose2mesh.mocap.library`),
- :data:`PRETRAINED_DIR`: the shipped pretrained models (``asset/pretrained``;
  :mod:`pose2mesh.pretrained`),
- :func:`config_path`: a shipped YAML config (``asset/yaml``), e.g. those the demo falls
  back to.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSET_PACKAGE = "pose2mesh._assets"


def asset_root() -> Path:
    """The folder holding the installed assets (``asset/`` of an editable install).

    Raises:
        ImportError: the package was installed without ``pose2mesh._assets`` (reinstall it),
            or from an archive whose files are not on disk (install the wheel with pip).
    """
    try:
        root = resources.files(ASSET_PACKAGE)
    except ModuleNotFoundError:
        raise ImportError(
            f"{ASSET_PACKAGE} is not installed (an install made before the assets became "
            "package data?); reinstall pose2mesh: `pip install -e .` in the repository, or "
            "its wheel") from None
    if not isinstance(root, Path):
        raise ImportError(
            f"{ASSET_PACKAGE} is not a folder on disk ({root!r}); install pose2mesh with pip "
            "(an unpacked wheel or `pip install -e .`), not from a zip archive")
    return root


def asset_path(*parts: str) -> Path:
    """``<asset root>/<parts...>``, e.g. ``asset_path("yaml", "x.yml")`` (it may not exist)."""
    return asset_root().joinpath(*parts)


def config_path(name: str) -> Path:
    """The shipped YAML config ``name`` (``asset/yaml/<name>``)."""
    return asset_path("yaml", name)


JOINT_REGRESSOR_DIR = asset_path("joint_regressors")
POSE_LIBRARY_PATH = asset_path("mocap", "cmu_anny_poses.npz")
PRETRAINED_DIR = asset_path("pretrained")
