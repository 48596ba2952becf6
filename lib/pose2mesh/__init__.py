"""pose2mesh: recover 3D human (or hand) pose and a full body mesh from 2D keypoints.

Importing the package changes nothing in the process (no environment variable, no allocator
setting); the command lines make their CPU memory choices explicitly
(:mod:`pose2mesh.engine.cpu_memory`).
"""
from pose2mesh.errors import Pose2MeshError

__version__ = "0.1.0"
__all__ = ["Pose2MeshError", "__version__"]
