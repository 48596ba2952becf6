"""Write a tiny instance of every benchmark in its official on-disk format.

    python tools/make_fixtures.py OUT_DIR [--smpl_dir DIR --mano_dir DIR] [--seed 0]

The writers are test code: the package ``tests/fixtures/`` (its docstring lists the files and
what is deliberately bad in them), which ``tests/conftest.py`` calls directly. This command
line runs the same writers; point ``DATA_DIR``, ``SMPL_DIR`` and ``MANO_DIR`` at OUT_DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# tests/ is not a package: pytest puts it on sys.path for the tests, this does the same.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures import write_fixtures  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "out_dir", help="folder to write data/, smplpytorch/, manopth/ and fixture_manifest.json into"
    )
    parser.add_argument("--smpl_dir", default=None, help="existing SMPL model folder (default: write fake models)")
    parser.add_argument("--mano_dir", default=None, help="existing MANO model folder (default: write fake models)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = write_fixtures(args.out_dir, args.smpl_dir, args.mano_dir, seed=args.seed)
    print(f"fixtures written to {Path(args.out_dir).absolute()}")
    print(json.dumps({k: v for k, v in manifest.items() if isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
