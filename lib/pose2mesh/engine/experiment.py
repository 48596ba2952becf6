"""Experiment output folders: ``<OUTPUT_ROOT>/exp_<YYYY-mm-dd_HH-MM-SS_micro>/``.

Layout of one experiment::

    exp_.../checkpoint/   checkpoint{epoch}.pth.tar, best.pth.tar, final.pth.tar
    exp_.../graph/        loss and error curves (PNG)
    exp_.../vis/          sample OBJ files (TEST.vis)
    exp_.../result/       metrics.json
    exp_.../tb/           TensorBoard event files
    exp_.../log.txt       text log

Folders are created with an exclusive ``mkdir``: an existing folder is never deleted or
reused by a new run, and two runs started in the same microsecond get distinct names
(``_1``, ``_2``, ... suffixes).

A run that fails before writing anything to a folder it created (no ``--exp_dir``, not a
resume) removes that folder again (:func:`remove_unused_experiment`), so failed runs leave no
empty ``exp_*`` folders behind; a folder the user named, or one holding any output, is kept.

A training run holds an exclusive lock on its folder (``flock`` on ``<exp>/.lock``, which
also records the holder's PID) until the process ends: a second run on the same folder stops
with one line naming the holder. The kernel releases the lock of a process that dies, even by
``kill -9``, so a stale lock file never blocks the next run.
"""
from __future__ import annotations

import datetime
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from pose2mesh.engine.checkpoint import latest_checkpoint
from pose2mesh.engine.distributed import DistContext, broadcast_object
from pose2mesh.errors import Pose2MeshError

SUBDIRS = ("checkpoint", "graph", "vis", "result", "tb")
LOCK_NAME = ".lock"
STARTUP_FILES = (LOCK_NAME, "config.yaml", "log.txt")  # what every run writes before its work
_HELD_LOCKS: dict[str, object] = {}  # folder -> open lock file, kept for the process lifetime
EXP_PREFIX = "exp_"
_NAME_PATTERN = re.compile(r"exp_(?P<stamp>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6})(?:_(?P<suffix>\d+))?")


@dataclass(frozen=True)
class ExperimentDirs:
    """Paths of one experiment's output folders (all exist once created). ``created``: this
    run made the folder (a fresh ``exp_*``, not ``--exp_dir`` nor a resumed one)."""

    root: Path
    created: bool = field(default=False, compare=False)

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def graph(self) -> Path:
        return self.root / "graph"

    @property
    def vis(self) -> Path:
        return self.root / "vis"

    @property
    def result(self) -> Path:
        return self.root / "result"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def log_file(self) -> Path:
        return self.root / "log.txt"

    def make_subdirs(self) -> "ExperimentDirs":
        for name in SUBDIRS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        return self


def _timestamp() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def create_experiment(output_root: str | os.PathLike, exp_dir: str | os.PathLike | None = None) -> ExperimentDirs:
    """Create the folders of a new experiment (or complete those of ``exp_dir``).

    Args:
        output_root: parent folder of the ``exp_*`` folders (cfg.OUTPUT_ROOT).
        exp_dir: an explicit experiment folder; it may already exist (its files are kept).
    Returns:
        The folders; ``created`` is True for a new ``exp_*`` folder (never for ``exp_dir``).
    Raises:
        Pose2MeshError: the folder cannot be created (names the path and the reason).
    """
    try:
        if exp_dir is not None:
            return ExperimentDirs(Path(exp_dir)).make_subdirs()
        root = Path(output_root)
        root.mkdir(parents=True, exist_ok=True)
        base = EXP_PREFIX + _timestamp()
        for suffix in range(10_000):
            candidate = root / (base if suffix == 0 else f"{base}_{suffix}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return ExperimentDirs(candidate, created=True).make_subdirs()
    except OSError as err:
        raise Pose2MeshError(f"cannot create the experiment folder under {output_root}: {err.strerror}") from None
    raise Pose2MeshError(f"cannot find a free experiment folder name under {output_root}")


def _creation_order(path: Path) -> tuple[str, int]:
    """Sort key of an ``exp_<timestamp>[_<n>]`` folder: timestamp, then collision suffix
    (other ``exp_*`` names sort as the oldest)."""
    match = _NAME_PATTERN.fullmatch(path.name)
    if match is None:
        return "", 0
    return match["stamp"], int(match["suffix"] or 0)


def latest_experiment_with_checkpoint(output_root: str | os.PathLike) -> ExperimentDirs:
    """The newest ``exp_*`` folder under ``output_root`` that holds a checkpoint file.

    Raises:
        Pose2MeshError: no such folder (so ``--resume_training`` has nothing to resume).
    """
    root = Path(output_root)
    candidates = sorted(root.glob(EXP_PREFIX + "*"), key=_creation_order, reverse=True) if root.is_dir() else []
    for candidate in candidates:
        if any((candidate / "checkpoint").glob("*.pth.tar")):
            return ExperimentDirs(candidate)
    raise Pose2MeshError(
        f"--resume_training: no experiment folder with a checkpoint under {root} (pass --exp_dir)"
    )


def prepare_experiment(
    output_root: str | os.PathLike,
    ctx: DistContext,
    *,
    exp_dir: str | os.PathLike | None = None,
    resume: bool = False,
    training: bool = True,
) -> tuple[ExperimentDirs, Path | None]:
    """The run's experiment folder, agreed by every rank (rank 0 decides).

    New run: a fresh ``exp_*`` folder under ``output_root`` (``created`` True: see
    :func:`remove_unused_experiment`) or ``exp_dir``; a training run
    refuses an ``exp_dir`` that already holds checkpoints. Resume: ``exp_dir`` or the newest
    experiment with a checkpoint, and its newest checkpoint (returned second, else None).

    Raises:
        Pose2MeshError: on every rank, when rank 0 cannot settle the folder.
    """
    answer = None
    if ctx.is_main:
        try:
            answer = ("ok",) + _find_or_create(output_root, exp_dir, resume=resume, training=training)
        except Pose2MeshError as err:
            answer = ("error", str(err))
    answer = broadcast_object(answer, ctx)
    if answer[0] == "error":
        raise Pose2MeshError(answer[1])
    _, root, checkpoint, created = answer
    return ExperimentDirs(Path(root), created=created), (Path(checkpoint) if checkpoint else None)


def remove_unused_experiment(exp: ExperimentDirs, log=None) -> bool:
    """After a failed run: delete its folder if the run created it (``exp.created``) and it
    holds only what every run writes at start -- the empty sub-folders, ``config.yaml``,
    ``log.txt`` and the lock. A checkpoint, a metric, a curve, a picture or any file someone
    else put there keeps the folder, as does a user's ``--exp_dir`` or a resumed experiment.
    Nothing is deleted recursively: files are unlinked by name, folders removed only empty.

    Returns:
        Whether the folder was removed (``log``, a logger, is told first).
    """
    root = exp.root
    if not exp.created or root.is_symlink() or not root.is_dir():
        return False
    for path in root.iterdir():
        if path.is_symlink():
            return False
        if path.name in SUBDIRS and path.is_dir():
            if any(path.iterdir()):
                return False
        elif path.name not in STARTUP_FILES or not path.is_file():
            return False
    if log is not None:
        log.info("removing %s: the run stopped before writing any output there", root)
    release_experiment(root)
    try:
        for name in STARTUP_FILES:
            (root / name).unlink(missing_ok=True)
        for name in SUBDIRS:
            if (root / name).is_dir():
                (root / name).rmdir()
        root.rmdir()
    except OSError:  # something appeared meanwhile: keep what is left
        return False
    return True


def lock_experiment(root: str | os.PathLike) -> None:
    """Take the exclusive lock of an experiment folder for this process (see the module
    docstring); Pose2MeshError naming the holder when another live process has it."""
    import fcntl

    root = Path(root).resolve()
    if str(root) in _HELD_LOCKS:
        return
    handle = open(root / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _wait_for_holder_line(handle)
        handle.close()
        raise Pose2MeshError(
            f"{root} is in use by another run ({holder}); wait for it to finish or choose "
            "another --exp_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _HELD_LOCKS[str(root)] = handle


def _wait_for_holder_line(handle, timeout_s: float = 2.0) -> str:
    """The ``pid N on host`` line of the process holding the lock file ``handle``.

    The holder writes its line just after it takes the lock, so a run that lost a race may
    read an empty file or the line of a dead earlier holder for a moment: read again until
    the line names a live process (or one on another host, which cannot be checked), for at
    most ``timeout_s`` seconds, then report what the file holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        handle.seek(0)
        holder = handle.read().strip()
        if _names_live_process(holder) or time.monotonic() > deadline:
            return holder or "unknown process"
        time.sleep(0.01)


def _names_live_process(holder: str) -> bool:
    match = re.fullmatch(r"pid (\d+) on (.+)", holder)
    if match is None:
        return False
    if match.group(2) != socket.gethostname():
        return True
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def release_experiment(root: str | os.PathLike) -> None:
    """Give up this process's lock of ``root`` (a no-op when it holds none)."""
    handle = _HELD_LOCKS.pop(str(Path(root).resolve()), None)
    if handle is not None:
        handle.close()


def _find_or_create(output_root, exp_dir, *, resume: bool, training: bool) -> tuple[str, str | None, bool]:
    if training and exp_dir:
        Path(exp_dir).mkdir(parents=True, exist_ok=True)
        lock_experiment(exp_dir)  # before looking at its checkpoints: no two runs see them
    if resume:
        exp = ExperimentDirs(Path(exp_dir)) if exp_dir else latest_experiment_with_checkpoint(output_root)
        lock_experiment(exp.root)
        checkpoint = latest_checkpoint(exp.checkpoint) if exp.checkpoint.is_dir() else None
        if checkpoint is None:
            raise Pose2MeshError(f"--resume_training: no checkpoint in {exp.checkpoint}")
        exp.make_subdirs()
        return str(exp.root), str(checkpoint), False
    if training and exp_dir and any(Path(exp_dir, "checkpoint").glob("*.pth.tar")):
        raise Pose2MeshError(
            f"--exp_dir {exp_dir} already holds checkpoints; add --resume_training to continue it "
            "or choose another folder"
        )
    exp = create_experiment(output_root, exp_dir)
    if training:
        lock_experiment(exp.root)
    return str(exp.root), None, exp.created
