"""pose2mesh: recover 3D human (or hand) pose and a full body mesh from 2D keypoints.

Importing the package turns on PyTorch's transparent-huge-page CPU allocations
(``THP_MEM_ALLOC_ENABLE=1``, unless the variable is already set; ``0`` opts out). MeshNet
allocates activations of hundreds of MB per layer, and with 4 KB pages their first touch
dominates: on a 2-core VM, allocating and filling a 232 MB activation takes ~130 ms with
4 KB pages and ~24 ms with huge pages (``python tools/benchmark.py --phases gemm``, with and
without ``THP_MEM_ALLOC_ENABLE=0``), and a CPU training step gets ~1.3x faster. PyTorch reads the variable
at its first large allocation, so import pose2mesh before creating big tensors.
"""
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from pose2mesh.errors import Pose2MeshError  # noqa: E402  (after the allocator setting)

__version__ = "0.1.0"
__all__ = ["Pose2MeshError", "__version__"]
