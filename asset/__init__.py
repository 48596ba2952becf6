"""The run-time assets, installed as the package data of ``pose2mesh._assets``.

``setup.py`` maps this folder to the package ``pose2mesh._assets`` and ships its joint
regressors, mocap pose library, pretrained models and YAML configs (not the figures) in the
wheel; the library finds them through :mod:`pose2mesh.assets`, never by a path relative to
the repository. No code lives here.
"""
