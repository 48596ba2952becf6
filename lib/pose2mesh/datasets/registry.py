"""Dataset registry: ``DATASET.train_list`` / ``test_list`` names to dataset classes."""
from __future__ import annotations

from collections.abc import Callable

from pose2mesh.errors import Pose2MeshError

# name -> factory(cfg, split, body_model) -> Pose2MeshDataset
_FACTORIES: dict[str, Callable] = {}


def register_dataset(name: str):
    """Class/function decorator adding a dataset factory under ``name``."""

    def decorator(factory):
        _FACTORIES[name] = factory
        return factory

    return decorator


def dataset_names() -> list[str]:
    return sorted(_FACTORIES)


def build_dataset(cfg, name: str, split: str, body_model):
    """Build the dataset ``name`` for ``split`` ("train" | "test").

    Args:
        body_model: the experiment's BodyModel (the synthetic set reads its bone labels;
            real sets read its regressors).
    Raises:
        Pose2MeshError: unknown dataset name (the message lists the known ones).
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise Pose2MeshError(f"unknown dataset '{name}'; expected one of {dataset_names()}") from None
    return factory(cfg, split, body_model)


@register_dataset("Synthetic")
def _build_synthetic(cfg, split, body_model):
    from pose2mesh.datasets.synthetic import Synthetic

    return Synthetic(cfg, split, bone_labels=list(body_model.bone_labels))
