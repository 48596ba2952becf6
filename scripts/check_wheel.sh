#!/usr/bin/env bash
# Checks that pose2mesh works as an installed wheel, away from the repository:
#   1. builds the wheel from a clean copy of the checkout (tracked and untracked, not ignored,
#      files: no stale build/ folder can leak into it);
#   2. installs it into a fresh virtual environment that reuses this Python's packages
#      (--system-site-packages: torch and the requirements, already installed) and checks
#      that the venv's pose2mesh and its assets are the wheel's, not an editable install;
#   3. from a folder outside the repository, writes the demo's sample inputs with the
#      installed package, runs `pose2mesh-demo` on the two-person COCO file with the shipped
#      coco model, checks that it exits 0 and writes the OBJ files (and nothing into its
#      working folder), and checks that `pose2mesh-train` and `pose2mesh-test` start.
# Usage: bash scripts/check_wheel.sh               all three steps
#        bash scripts/check_wheel.sh --wheel DIR     step 1 only: write the wheel into DIR
# PYTHON=... selects the interpreter (default: python).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
WHEEL_ONLY=""
if [ "${1:-}" = "--wheel" ]; then
    WHEEL_ONLY="$(mkdir -p "${2:?--wheel needs a folder}" && cd "$2" && pwd)"
elif [ $# -gt 0 ]; then
    echo "usage: bash scripts/check_wheel.sh [--wheel DIR]" >&2; exit 2
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pose2mesh_wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS

echo "[check_wheel] copying the checkout to $WORK/src"
mkdir -p "$WORK/src"
"$PYTHON" - "$REPO" "$WORK/src" <<'EOF'
import shutil, subprocess, sys
from pathlib import Path

repo, dest = Path(sys.argv[1]), Path(sys.argv[2])
try:
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], check=True, capture_output=True).stdout
    names = list(filter(None, listed.decode().split("\0")))
except (OSError, subprocess.CalledProcessError):  # not a git checkout: skip outputs and caches
    skip = {".git", "build", "dist", "experiment", "data", "__pycache__", ".pytest_cache"}
    names = [str(path.relative_to(repo)) for path in repo.rglob("*")
             if not skip & set(path.relative_to(repo).parts)
             and not any(part.endswith(".egg-info") for part in path.parts)]
for name in names:
    source = repo / name
    if source.is_file():  # tracked files deleted in the working tree are skipped
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
EOF

echo "[check_wheel] building the wheel"
"$PYTHON" -m pip wheel -q --no-deps -w "$WORK/wheelhouse" "$WORK/src"
WHEEL="$(ls "$WORK"/wheelhouse/pose2mesh-*.whl)"
ls -l "$WHEEL" | awk '{printf "[check_wheel] %s: %.1f MB\n", $NF, $5 / 1e6}'
if [ -n "$WHEEL_ONLY" ]; then
    cp "$WHEEL" "$WHEEL_ONLY/" && echo "[check_wheel] wrote $WHEEL_ONLY/$(basename "$WHEEL")"; exit 0
fi

echo "[check_wheel] installing it into a fresh virtual environment"
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
VENV_PY="$WORK/venv/bin/python"
# --force-reinstall: an editable pose2mesh of the base environment is left where it is
# (pip does not uninstall outside the venv); the venv gets the wheel's copy.
# The requirements come from the base environment (scripts/install.sh installed them).
"$VENV_PY" -m pip install -q --force-reinstall --no-deps "$WHEEL"

mkdir -p "$WORK/run"
cd "$WORK/run"  # outside the repository: nothing repo-relative can be found from here
"$VENV_PY" - "$WORK/venv" <<'EOF'
import sys
from pathlib import Path

import pose2mesh
from pose2mesh.assets import JOINT_REGRESSOR_DIR, POSE_LIBRARY_PATH, PRETRAINED_DIR, asset_root

venv = Path(sys.argv[1]).resolve()
package = Path(pose2mesh.__file__).resolve()
print(f"[check_wheel] pose2mesh: {package}\n[check_wheel] assets: {asset_root()}")
for path in (package, asset_root()):
    if venv not in path.resolve().parents:
        sys.exit(f"[check_wheel] FAIL: {path} is not inside the venv {venv} "
                 "(an editable install leaks into it)")
for path in (*JOINT_REGRESSOR_DIR.glob("*.npz"), POSE_LIBRARY_PATH,
             *PRETRAINED_DIR.glob("*.pth.tar")):
    assert path.is_file(), path
assert len(list(JOINT_REGRESSOR_DIR.glob("*.npz"))) >= 4 and len(list(PRETRAINED_DIR.glob("*.pth.tar"))) == 2
assert not (asset_root() / "figures").exists(), "figures must not ship"
EOF

for command in pose2mesh-train pose2mesh-test; do
    "$WORK/venv/bin/$command" --help >/dev/null
done
# demo/sample_inputs/ is generated (git-ignored): write it with the installed package (its
# joint regressors and mocap library), then the demo reads one file copied out of it.
"$VENV_PY" "$REPO/demo/make_sample_inputs.py" --out_dir "$WORK/inputs" >/dev/null
cp "$WORK/inputs/sample_coco_results.json" "$WORK/people.json"
echo "[check_wheel] running pose2mesh-demo in $WORK/run"
"$WORK/venv/bin/pose2mesh-demo" --input_pose "$WORK/people.json" --joint_set coco \
    --output_dir "$WORK/out"
for name in demo_mesh_0.obj demo_mesh_1.obj demo_mesh.png demo_pose2d.png; do
    [ -s "$WORK/out/$name" ] || { echo "[check_wheel] FAIL: $WORK/out/$name was not written"; exit 1; }
done
if [ -e "$WORK/run/experiment" ] || [ -n "$(ls -A "$WORK/run")" ]; then
    echo "[check_wheel] FAIL: the demo wrote into its working folder"; exit 1
fi
echo "[check_wheel] OK: the wheel's demo wrote $(ls "$WORK/out" | tr '\n' ' ')($((SECONDS - start)) s)"
