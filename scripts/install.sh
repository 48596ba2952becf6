#!/usr/bin/env bash
# Installs pose2mesh and everything it needs into the current Python environment.
#   - system libraries for headless rendering (Mesa EGL/OSMesa), when run as root with apt-get;
#   - PyTorch: kept if already installed (install a CUDA build yourself first to use a GPU),
#     otherwise torch==2.13.0;
#   - requirements.txt, pyrender without its PyOpenGL 3.1.0 pin, and the package itself;
#   - warms anny's one-time model cache (1-3 minutes on a new machine, ~1 s afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libosmesa6 libgl1-mesa-dri libgl1 >/dev/null
fi

python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0"
python -m pip install -q -r requirements.txt
python -m pip install -q --no-deps "pyrender==0.1.45"
python -m pip install -q --no-deps -e .
python -m pose2mesh.body_models.warmup
