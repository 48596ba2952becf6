"""Joint regression that reads only the vertices a regressor weights."""
from __future__ import annotations

import torch


class SupportRegressor(torch.nn.Module):
    """A (J, V) joint regressor applied through its support: the vertices it weights.

    Joint regressors weight few vertices (anny's human36 regressor: 146 of 6,890), so
    gathering those K vertices and multiplying a (J, K) matrix gives the same joints as the
    full (J, V) product without a pass over the whole mesh (and without the transposed copy
    of it that a (J, V) x (B, V, 3) product makes). A regressor that weights every vertex is
    applied as it is.

    Args:
        matrix: (J, V) regressor.

    Buffers: ``weights`` (J, K) float32 (the support columns, in vertex order) and
    ``vertex_index`` (K,) int64.
    """

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        matrix = torch.as_tensor(matrix, dtype=torch.float32)
        vertex_index = (matrix != 0).any(dim=0).nonzero().squeeze(1)
        self.num_vertices = int(matrix.shape[1])
        self.register_buffer("vertex_index", vertex_index, persistent=False)
        self.register_buffer("weights", matrix[:, vertex_index].contiguous(), persistent=False)

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, C) vertices (any unit) -> (B, J, C) joints, in the unit, dtype and on the
        device of ``vertices``; differentiable with respect to ``vertices``."""
        if len(self.vertex_index) < self.num_vertices:
            vertices = vertices.index_select(1, self.vertex_index.to(vertices.device))
        return torch.matmul(self.weights.to(vertices), vertices)
