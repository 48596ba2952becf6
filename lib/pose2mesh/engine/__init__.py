"""Training and evaluation engine.

- :mod:`~pose2mesh.engine.trainer`: :class:`Trainer` and :func:`run_training` (main/train.py);
- :mod:`~pose2mesh.engine.evaluator`: :class:`Evaluator`, the mean-pose baseline and
  :func:`run_test` (main/test.py);
- :mod:`~pose2mesh.engine.builders`: device, body model, hierarchy, model, optimizer,
  scheduler, datasets and loaders from the config;
- :mod:`~pose2mesh.engine.checkpoint`: atomic checkpoint files, RNG state, resume lookup;
- :mod:`~pose2mesh.engine.distributed`: DataParallel / DistributedDataParallel helpers;
- :mod:`~pose2mesh.engine.experiment`: ``experiment/exp_<time>/`` folders;
- :mod:`~pose2mesh.engine.logging`: text log, TensorBoard scalars, PNG curves.

The command lines over it are :mod:`pose2mesh.cli` (``pose2mesh-train``, ``pose2mesh-test``).

Submodules are imported on use (``from pose2mesh.engine.trainer import run_training``) so
that importing the package stays cheap.
"""
