"""Several training datasets mixed as the original does (DATA_FORMATS 1.10).

The mix has ``max_len * n`` items (``max_len`` = the longest dataset). Every position draws its
dataset uniformly at random, independently of the index; within that dataset it takes
``index mod max_len`` folded modulo the dataset's length, and positions that fall into the
final incomplete repetition of a shorter dataset take a uniformly random index instead. The
draws are a pure function of (SEED, epoch): :meth:`MixedDataset.set_epoch` redraws them (and
forwards the epoch to every dataset).

Items of different datasets hold different keys (SMPL parameters and cameras of one,
keypoints of another), so a batch cannot be collated by the default collate function. Use
:meth:`MixedDataset.collate_fn` as the DataLoader's ``collate_fn``: it groups the items by
source and collates each group under keys ``"<source>/<key>"`` (plus ``"mixed_sources"``, the
(n,) item count per source). The result is a flat dict of tensors, so moving it to the device
is unchanged. :meth:`MixedDataset.prepare_batch` then runs each source's ``prepare_batch`` on its
group and concatenates the prepared sub-batches in source order (the keys all sources share:
the training contract). Samples therefore come out grouped by source, which no loss depends on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import default_collate

from pose2mesh.datasets.base import Pose2MeshDataset
from pose2mesh.errors import Pose2MeshError

SOURCE_KEY = "mixed_sources"
_MIX_DOMAIN = 7


class MixedDataset(Pose2MeshDataset):
    """Equal-length random mix of training datasets.

    Args:
        datasets: the datasets of ``DATASET.train_list`` (the first one is the main dataset:
            its joint sets, body model and model name define the mix).
        seed: ``cfg.SEED``.
    """

    def __init__(self, datasets: list[Pose2MeshDataset], seed: int = 0):
        if not datasets:
            raise Pose2MeshError("MixedDataset needs at least one dataset")
        main = datasets[0]
        for other in datasets[1:]:
            for attr in ("joint_set", "target_joint_set", "body_model_name", "model_name"):
                if getattr(other, attr) != getattr(main, attr):
                    raise Pose2MeshError(
                        f"cannot mix {main.name} and {other.name}: different {attr} "
                        f"({getattr(main, attr)!r} vs {getattr(other, attr)!r})"
                    )
        for dataset in datasets:
            if len(dataset) == 0:
                raise Pose2MeshError(f"cannot mix the empty dataset {dataset.name}")
        self.datasets = list(datasets)
        self.name = "+".join(d.name for d in datasets)
        self.split = main.split
        self.joint_set, self.target_joint_set = main.joint_set, main.target_joint_set
        self.body_model_name, self.model_name = main.body_model_name, main.model_name
        self.max_len = max(len(d) for d in datasets)
        self.seed = int(seed)
        self._draw(epoch=0)

    def __len__(self) -> int:
        return self.max_len * len(self.datasets)

    def _draw(self, epoch: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([_MIX_DOMAIN, self.seed % 2**63, epoch]))
        size = len(self)
        self.sources = rng.integers(len(self.datasets), size=size)
        position = np.arange(size) % self.max_len
        lengths = np.array([len(d) for d in self.datasets])[self.sources]
        full = (self.max_len // lengths) * lengths
        random_index = (rng.random(size) * lengths).astype(np.int64)
        self.indices = np.where(position < full, position % lengths, random_index)

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)
        self._draw(epoch)

    def end_epoch(self, epoch: int) -> None:
        """Forward the end of a training epoch (filter counts are logged per dataset)."""
        for dataset in self.datasets:
            if hasattr(dataset, "end_epoch"):
                dataset.end_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        source = int(self.sources[index])
        item = self.datasets[source][int(self.indices[index])]
        return {"source": source, "item": item}

    def collate_fn(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """Group items by source: ``{"<s>/<key>": collated, ..., "mixed_sources": (n,) counts}``."""
        batch: dict[str, torch.Tensor] = {}
        counts = np.zeros(len(self.datasets), dtype=np.int64)
        for source in range(len(self.datasets)):
            group = [entry["item"] for entry in items if entry["source"] == source]
            counts[source] = len(group)
            if group:
                for key, value in default_collate(group).items():
                    batch[f"{source}/{key}"] = value
        batch[SOURCE_KEY] = torch.from_numpy(counts)
        return batch

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, torch.Tensor], body_model) -> dict[str, torch.Tensor]:
        """Prepare every source's group with its own dataset; concatenate in source order."""
        prepared = []
        for source, dataset in enumerate(self.datasets):
            prefix = f"{source}/"
            group = {key[len(prefix) :]: value for key, value in batch.items() if key.startswith(prefix)}
            if group:
                prepared.append(dataset.prepare_batch(group, body_model))
        if not prepared:
            raise Pose2MeshError(f"{self.name}: empty batch")
        keys = [key for key in prepared[0] if all(key in part for part in prepared)]
        return {key: torch.cat([part[key] for part in prepared], dim=0) for key in keys}

    def evaluate_batch(self, outputs, batch, body_model):
        raise Pose2MeshError(f"{self.name} is a training mix; evaluate on DATASET.test_list[0]")
