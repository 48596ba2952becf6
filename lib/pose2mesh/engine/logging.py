"""Run logging: a text log file, TensorBoard scalars and PNG curves (matplotlib, Agg).

Only the main process (rank 0) writes anything; other ranks get a logger that only shows
warnings and errors on the console and a :class:`RunRecorder` that does nothing.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

LOGGER_NAME = "pose2mesh"
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logger(log_file: Path | None, is_main: bool = True) -> logging.Logger:
    """The ``pose2mesh`` logger: console (through ``tqdm.write``, so progress bars stay
    intact) and ``log_file`` (appended, so a resumed run continues the same log)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
    console = _TqdmConsoleHandler()
    console.setFormatter(formatter)
    logger.addHandler(console)
    if is_main and log_file is not None:
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger


class _TqdmConsoleHandler(logging.Handler):
    """Console output that does not break an active tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def close_logger() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class RunRecorder:
    """TensorBoard scalars and PNG curves of one run (no-op when ``enabled`` is False).

    Args:
        tb_dir: TensorBoard event folder.
        graph_dir: folder of the PNG curves (``loss.png``, ``error.png``).
    """

    def __init__(self, tb_dir: Path, graph_dir: Path, enabled: bool = True):
        self.enabled = enabled
        self.graph_dir = Path(graph_dir)
        self._writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(tb_dir))

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        """Log ``{prefix}/{name}`` for every value."""
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(f"{prefix}/{name}", float(value), step)
        self._writer.flush()

    def plot_curves(self, train_history: Sequence[Mapping], test_history: Sequence[Mapping]) -> None:
        """Write ``loss.png`` (every training loss per epoch) and ``error.png`` (every test
        error per epoch, mm). Each history entry is ``{"epoch": e, name: value, ...}``."""
        if not self.enabled:
            return
        _plot(train_history, self.graph_dir / "loss.png", "training loss (epoch mean)", log_scale=True)
        _plot(test_history, self.graph_dir / "error.png", "test error (mm)", log_scale=False)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _plot(history: Sequence[Mapping], path: Path, title: str, log_scale: bool) -> None:
    """One curve per name over epochs; written atomically (the Figure API keeps no global
    pyplot state, and a fixed layout is much faster than tight_layout)."""
    if not history:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted({key for entry in history for key in entry if key != "epoch"})
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name in names:
        epochs, values = zip(*[(entry["epoch"], entry[name]) for entry in history if name in entry])
        axes.plot(epochs, values, marker="o", markersize=3, label=name)
    if log_scale and all(entry[name] > 0 for entry in history for name in names if name in entry):
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=80)
    tmp.replace(path)
