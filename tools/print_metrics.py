"""Print ``result/metrics.json`` files side by side with their mean-pose baselines.

    python tools/print_metrics.py experiment/<run>/result/metrics.json [more.json ...]

For every file: each metric (mm), the baseline's value and the ratio model / baseline.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METRICS = ("MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE")


def format_metrics(path: Path) -> str:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"print_metrics: cannot read {path}: {err}") from None
    baseline = metrics.get("baseline", {})
    lines = [f"{path}", f"  {'metric':<9} {'model':>9} {'baseline':>9} {'ratio':>6}"]
    for name in METRICS:
        if name in metrics:
            base = baseline.get(name)
            ratio = f"{metrics[name] / base:6.2f}" if base else f"{'-':>6}"
            base_text = f"{base:9.2f}" if base is not None else f"{'-':>9}"
            lines.append(f"  {name:<9} {metrics[name]:9.2f} {base_text} {ratio}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("\n".join(format_metrics(path) for path in args.files))


if __name__ == "__main__":
    main(sys.argv[1:])
