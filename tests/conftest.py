"""Shared pytest fixtures.

Body models: ``anny_body`` / ``anny_hand`` are built once per session (the first anny build
on a machine takes minutes and fills ~/.cache/anny; later builds take about a second).
``smpl_model_dir`` / ``mano_model_dir`` are folders laid out like the user's ``smplpytorch/``
and ``manopth/`` with small fake model files in the official (chumpy) pickle layout.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fake_smpl import write_fake_mano, write_fake_smpl
from pose2mesh.body_models import build_body_model
from pose2mesh.body_models.smplx_models import mano_model_path, smpl_model_path


@pytest.fixture(scope="session")
def anny_body():
    """The anny full body (13,718 vertices); shared, do not modify."""
    return build_body_model("anny")


@pytest.fixture(scope="session")
def anny_hand():
    """The anny right hand (1,609 vertices); shared, do not modify."""
    return build_body_model("anny_hand")


@pytest.fixture(scope="session")
def smpl_model_dir(tmp_path_factory):
    """A ``smpl_dir`` holding a fake neutral SMPL file (300 vertices, 24 joints)."""
    root = tmp_path_factory.mktemp("smplpytorch")
    write_fake_smpl(smpl_model_path(root, "neutral"))
    return root


@pytest.fixture(scope="session")
def mano_model_dir(tmp_path_factory):
    """A ``mano_dir`` holding a fake MANO_RIGHT file (780 vertices, 16 joints, zero mean pose)."""
    root = tmp_path_factory.mktemp("manopth")
    write_fake_mano(mano_model_path(root))
    return root


@pytest.fixture(scope="session")
def benchmark_fixtures(tmp_path_factory):
    """Tiny official-format instances of every benchmark, written once per session by
    :func:`fixtures.write_fixtures` (``tests/fixtures/``; fake SMPL/MANO files included).
    Attributes: ``root``, ``data_dir``, ``smpl_dir``, ``mano_dir`` and ``manifest`` (what each
    loader must find, as read back from the written ``fixture_manifest.json``)."""
    from fixtures import write_fixtures  # imported here: it loads the dataset modules

    root = tmp_path_factory.mktemp("benchmarks")
    write_fixtures(root)
    manifest = json.loads((root / "fixture_manifest.json").read_text())
    return SimpleNamespace(root=root, data_dir=root / "data", smpl_dir=root / "smplpytorch",
                           mano_dir=root / "manopth", manifest=manifest)
