"""Chebyshev spectral graph convolution (Defferrard et al. 2016; Pose2Mesh's graph layer).

A layer of order K maps features x (N, B, C_in) on an N-node graph to (N, B, C_out)::

    y = sum_{k=0}^{K-1} T_k(L) x W_k + b,
    T_0(L) x = x,   T_1(L) x = L x,   T_k(L) x = 2 L T_{k-1}(L) x - T_{k-2}(L) x,

with L the graph's rescaled Laplacian (N, N) (sparse, symmetric, spectrum in [-1, 1]), W_k
(C_in, C_out) and b (C_out,). Features are vertex-major, (N, B, C) contiguous (node, sample,
channel): viewed as the (N, B*C) matrix they meet the sparse L in one product for the whole
batch.

:func:`chebyshev_conv` is that formula with ordinary autograd: the reference, and the path
:class:`ChebConv` takes on CUDA, under autocast and in float64. On the CPU in float32
without autocast it takes the fused kernel of :mod:`pose2mesh.models.cheb_conv_fused`
(the same result up to round-off, tested against :func:`chebyshev_conv`; its docstring says
what it buys).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError
from pose2mesh.models.cheb_conv_fused import fused_chebyshev_conv


def chebyshev_conv(x: torch.Tensor, laplacian: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
    """``sum_k T_k(L) x W_k + b`` (module docstring) with ordinary autograd.

    Args:
        x: (N, B, C_in) features.
        laplacian: L, a sparse (N, N) tensor (float32, or float64 for float64 x); the
            recursion runs in its dtype with autocast off.
        weight: (K, C_in, C_out), W_k = ``weight[k]``; K >= 1.
        bias: (C_out,), in the dtype of ``weight``; the products ``T_k x W_k`` run in that
            dtype (or follow autocast).

    Returns:
        (N, B, C_out).
    """
    num_nodes = x.shape[0]

    def times_laplacian(features: torch.Tensor) -> torch.Tensor:  # L applied on the node axis
        return torch.sparse.mm(laplacian, features.view(num_nodes, -1)).view(features.shape)

    with torch.autocast(x.device.type, enabled=False):
        terms = [x.to(laplacian.dtype).contiguous()]  # T_0 x
        if len(weight) > 1:
            terms.append(times_laplacian(terms[0]))  # T_1 x
        while len(terms) < len(weight):
            terms.append(2 * times_laplacian(terms[-1]) - terms[-2])  # T_k x
    # b + sum_k T_k x W_k
    return sum((term.to(weight.dtype) @ w for term, w in zip(terms, weight)), bias)


def _as_csr_arrays(laplacian) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(indptr, indices, data, n) of a square scipy sparse / torch sparse / dense matrix."""
    if isinstance(laplacian, torch.Tensor):
        laplacian = laplacian.to_dense() if laplacian.layout != torch.strided else laplacian
        laplacian = laplacian.detach().cpu().numpy()
    csr = sp.csr_matrix(laplacian, dtype=np.float32)
    if csr.shape[0] != csr.shape[1]:
        raise Pose2MeshError(f"a graph Laplacian must be square, got shape {csr.shape}")
    csr.sum_duplicates()
    csr.sort_indices()
    return csr.indptr, csr.indices, csr.data, csr.shape[0]


class GraphLaplacian(nn.Module):
    """A fixed symmetric (N, N) graph operator (the rescaled Laplacian) for ChebConv.

    The CSR arrays are non-persistent buffers (they follow ``.to(device)`` and DataParallel
    replication but stay out of ``state_dict``: the graph comes from the mesh hierarchy, not
    from checkpoints). The torch sparse matrix, and the operators the fused kernel derives
    from it, are built once per (device, dtype) and cached; the cache is shared by
    DataParallel replicas and cleared when the module moves.

    Args:
        laplacian: (N, N) symmetric matrix: scipy sparse, torch sparse or dense array.
    """

    def __init__(self, laplacian):
        super().__init__()
        indptr, indices, data, num_nodes = _as_csr_arrays(laplacian)
        self.num_nodes = num_nodes
        self.register_buffer("crow_indices", torch.from_numpy(indptr.astype(np.int64)),
                             persistent=False)
        self.register_buffer("col_indices", torch.from_numpy(indices.astype(np.int64)),
                             persistent=False)
        self.register_buffer("values", torch.from_numpy(data.astype(np.float32)),
                             persistent=False)
        self._matrices: dict = {}

    def _apply(self, fn, recurse=True):
        self._matrices = {}
        return super()._apply(fn, recurse)

    def __getstate__(self):  # pickling / deepcopy: drop the derived sparse matrices
        return {**self.__dict__, "_matrices": {}}

    def cached(self, key: tuple, build):
        """``build()``, a sparse tensor (or tuple of them) derived from this Laplacian on the
        buffers' device, made once per ``key`` and device and kept until the module moves.
        Built with torch's UserWarnings about sparse tensors silenced ("sparse CSR support is
        in beta state", "sparse invariant checks are implicitly disabled")."""
        key = (self.values.device, *key)
        value = self._matrices.get(key)
        if value is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                value = self._matrices[key] = build()
        return value

    def matrix(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (N, N) sparse CSR tensor on the buffers' device in ``dtype``."""
        return self.cached((dtype,), lambda: torch.sparse_csr_tensor(
            self.crow_indices, self.col_indices, self.values.to(dtype),
            size=(self.num_nodes, self.num_nodes), check_invariants=False,
        ))

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, nnz={self.values.numel()}"


class ChebConv(nn.Module):
    """Chebyshev graph convolution of order K on vertex-major features.

    ``forward(x, repeats=1)``: x (N / repeats, B, C_in) -> (N, B, C_out),
    ``sum_{k<K} T_k(L) up(x) W_k + b`` (module docstring) where ``up`` repeats every node
    ``repeats`` times (``x.repeat_interleave(repeats, 0)``; the fused kernel computes it
    without storing it), followed by batch norm over channels when ``batch_norm``
    (statistics over all N*B rows; in eval mode the running statistics are folded into the
    weights and bias, so there is no extra pass over the output) and an in-place ReLU when
    ``relu``. Parameters: ``weight`` (K, C_in, C_out), ``bias`` (C_out,) -- the same count as
    the original's ``Linear(K*C_in, C_out)``, initialized like it
    (uniform +-sqrt(2/(K*C_in+C_out)), zero bias).

    The convolution runs :func:`~pose2mesh.models.cheb_conv_fused.fused_chebyshev_conv` on
    the CPU in float32 without autocast (while the class attribute ``fused_cpu_kernel`` is
    True; set it False for an A/B of the fused kernel), else :func:`chebyshev_conv`.

    Args:
        laplacian: the level's :class:`GraphLaplacian` (shared by every layer on the level).
        in_channels, out_channels: C_in, C_out.
        order: K >= 1 (K=1 ignores the graph).
        batch_norm: apply ``BatchNorm1d(C_out)`` after the convolution.
        relu: apply ReLU last, in place on the (N*B, C_out) rows (a ReLU on the returned
            (N, B, C_out) view would make autograd copy the whole gradient in backward).
    """

    fused_cpu_kernel = True

    def __init__(self, laplacian: GraphLaplacian, in_channels: int, out_channels: int,
                 order: int = 3, batch_norm: bool = True, relu: bool = False):
        super().__init__()
        if order < 1:
            raise Pose2MeshError(f"Chebyshev order must be >= 1, got {order}")
        self.laplacian = laplacian
        self.in_channels, self.out_channels, self.order = in_channels, out_channels, order
        scale = math.sqrt(2.0 / (order * in_channels + out_channels))
        self.weight = nn.Parameter(torch.empty(order, in_channels, out_channels).uniform_(-scale, scale))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.bn = nn.BatchNorm1d(out_channels) if batch_norm else None
        self.relu = relu

    def forward(self, x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        num_nodes, batch, in_channels = x.shape
        if num_nodes * repeats != self.laplacian.num_nodes or in_channels != self.in_channels:
            nodes = "N" if repeats == 1 else f"N/{repeats}"
            raise Pose2MeshError(
                f"ChebConv expects ({nodes}={self.laplacian.num_nodes // repeats}, B, "
                f"C={self.in_channels}) features, got {tuple(x.shape)}"
            )
        weight, bias, bn = self.weight, self.bias, self.bn
        if bn is not None and not bn.training and bn.running_mean is not None:
            weight, bias = self._folded_batch_norm()  # no separate pass over the output
            bn = None
        device_type = x.device.type
        autocast = torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if autocast else x.dtype
        weight, bias = weight.to(dtype), bias.to(dtype)
        fused_pays = device_type == "cpu" and dtype == torch.float32 and not autocast  # tested there
        if fused_pays and self.fused_cpu_kernel:
            out = fused_chebyshev_conv(x.contiguous(), weight, bias, self.laplacian, repeats)
        else:
            if repeats > 1:
                x = x.repeat_interleave(repeats, dim=0)
            sparse_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
            laplacian = self.laplacian.matrix(sparse_dtype)
            out = chebyshev_conv(x, laplacian, weight, bias).view(-1, self.out_channels)
        if bn is not None:
            out = bn(out)
        if self.relu:
            out = torch.relu_(out)
        return out.view(self.laplacian.num_nodes, batch, self.out_channels)

    def _folded_batch_norm(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight (K, C_in, C_out) and bias (C_out,) of the convolution followed by the batch
        norm with its running statistics (eval mode): ``bn(conv(x; W, b)) = conv(x; W s,
        (b - mean) s + beta)`` with ``s = gamma / sqrt(var + eps)``."""
        bn = self.bn
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = (self.bias - bn.running_mean) * scale
        if bn.bias is not None:
            bias = bias + bn.bias
        return self.weight * scale, bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, order={self.order}, relu={self.relu}"
