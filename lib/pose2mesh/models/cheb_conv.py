"""Chebyshev spectral graph convolution on a vertex-major batch.

Layout: features are ``(N, B, C)`` contiguous (node, sample, channel). Viewed as the matrix
``(N, B*C)`` they are multiplied by the sparse ``(N, N)`` Laplacian in one call, with no
permute or copy per Chebyshev order; viewed as ``(N*B, C)`` they meet the ``(C, C_out)``
weights in one dense matrix product.

A layer computes ``y = sum_k T_k(L) x W_k + b`` (Chebyshev polynomials ``T_0 = I``,
``T_1 = L``, ``T_k = 2 L T_{k-1} - T_{k-2}``) with one of two equivalent orderings:

* **basis** (output wider than input): the recursion ``x_k = T_k(L) x`` on the input
  channels, accumulating ``out += x_k W_k`` -- no concatenation of the K terms;
* **Clenshaw** (output no wider than input): ``y_k = x W_k`` first, then
  ``sum_k T_k(L) y_k`` by Clenshaw's backward recurrence on the (fewer) output channels.

Both run their K-1 sparse products on ``min(C_in, C_out)`` channels. The sparse part is one
autograd function per direction that saves no tensors: ``L`` is symmetric, so the backward
of the basis recursion is a Clenshaw sum and vice versa. Sparse products run in float32 (or
float64 for float64 inputs) with autocast disabled; dense products follow autocast.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other floating dtype (bf16, fp16, fp32) becomes fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _spmm(laplacian: torch.Tensor, x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``alpha * L @ x`` as a new tensor. ``laplacian``: sparse CSR (N, N); x: (N, M).

    On the CPU, ``addmm(out, L, x, beta=0, out=out)`` into a fresh buffer reaches MKL's
    sparse kernel directly and is ~2-3x faster than ``L @ x`` (which zero-fills and then
    accumulates); other devices use the plain sparse product.
    """
    if x.device.type == "cpu":
        out = torch.empty_like(x)
        return torch.addmm(out, laplacian, x, beta=0.0, alpha=alpha, out=out)
    out = torch.sparse.mm(laplacian, x)
    return out.mul_(alpha) if alpha != 1.0 else out


def _basis(laplacian: torch.Tensor, x: torch.Tensor, order: int) -> list[torch.Tensor]:
    """``[T_1(L) x, ..., T_{order-1}(L) x]`` by the three-term recursion. x: (N, M)."""
    terms = []
    previous, current = x, None
    for k in range(1, order):
        if k == 1:
            current = _spmm(laplacian, x)
        else:
            previous, current = current, _spmm(laplacian, current, alpha=2.0).sub_(previous)
        terms.append(current)
    return terms


def _clenshaw(laplacian: torch.Tensor, coefficients: list[torch.Tensor | None]) -> torch.Tensor:
    """``sum_k T_k(L) y_k`` for ``coefficients = [y_0, ..., y_{K-1}]`` (each (N, M); y_0 may
    be None for zero), by Clenshaw's recurrence ``b_k = y_k + 2 L b_{k+1} - b_{k+2}``,
    result ``y_0 + L b_1 - b_2``. Needs K >= 2; returns a new tensor."""
    after_next, following = None, None  # b_{k+2}, b_{k+1}
    for k in range(len(coefficients) - 1, 0, -1):
        if following is None:
            current = coefficients[k]  # only read from here on
        else:
            current = _spmm(laplacian, following, alpha=2.0).add_(coefficients[k])
            if after_next is not None:
                current.sub_(after_next)
        after_next, following = following, current
    result = _spmm(laplacian, following)
    if coefficients[0] is not None:
        result.add_(coefficients[0])
    if after_next is not None:
        result.sub_(after_next)
    return result


class _ChebyshevBasis(torch.autograd.Function):
    """x (N, M) -> (T_1(L) x, ..., T_{K-1}(L) x); backward is a Clenshaw sum."""

    @staticmethod
    def forward(ctx, x, laplacian, order):
        ctx.laplacian, ctx.input_dtype = laplacian, x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            return tuple(_basis(laplacian, x.to(laplacian.dtype), order))

    @staticmethod
    def backward(ctx, *grads):  # grads are materialized: zeros for unused outputs
        grad_x = _clenshaw(ctx.laplacian, [None] + [g.to(ctx.laplacian.dtype) for g in grads])
        return grad_x.to(ctx.input_dtype), None, None


class _ChebyshevSum(torch.autograd.Function):
    """(y_0, ..., y_{K-1}) each (N, M) -> sum_k T_k(L) y_k; backward is the basis recursion."""

    @staticmethod
    def forward(ctx, laplacian, *coefficients):
        ctx.laplacian = laplacian
        ctx.input_dtypes = [y.dtype for y in coefficients]
        with torch.autocast(device_type=coefficients[0].device.type, enabled=False):
            return _clenshaw(laplacian, [y.to(laplacian.dtype) for y in coefficients])

    @staticmethod
    def backward(ctx, grad):
        grad = grad.to(ctx.laplacian.dtype)
        terms = [grad] + _basis(ctx.laplacian, grad, len(ctx.input_dtypes))
        return (None, *(t.to(dtype) for t, dtype in zip(terms, ctx.input_dtypes)))


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
    from checkpoints). The torch sparse matrix is built once per (device, dtype) and cached;
    the cache is shared by DataParallel replicas and cleared when the module moves.

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

    def matrix(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (N, N) sparse CSR tensor on the buffers' device in ``dtype``."""
        key = (self.values.device, dtype)
        matrix = self._matrices.get(key)
        if matrix is None:
            with warnings.catch_warnings():  # "sparse CSR support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                matrix = torch.sparse_csr_tensor(
                    self.crow_indices, self.col_indices, self.values.to(dtype),
                    size=(self.num_nodes, self.num_nodes), check_invariants=False,
                )
            self._matrices[key] = matrix
        return matrix

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, nnz={self.values.numel()}"


class ChebConv(nn.Module):
    """Chebyshev graph convolution of order K on vertex-major features.

    ``forward(x)``: x (N, B, C_in) -> (N, B, C_out), ``sum_{k<K} T_k(L) x W_k + b``,
    followed by batch norm over channels when ``batch_norm`` (statistics over all N*B rows).
    Parameters: ``weight`` (K, C_in, C_out), ``bias`` (C_out,) -- the same count as the
    original's ``Linear(K*C_in, C_out)``, initialized like it (uniform +-sqrt(2/(K*C_in+C_out)),
    zero bias).

    Args:
        laplacian: the level's :class:`GraphLaplacian` (shared by every layer on the level).
        in_channels, out_channels: C_in, C_out.
        order: K >= 1 (K=1 ignores the graph).
        batch_norm: apply ``BatchNorm1d(C_out)`` after the convolution.
    """

    def __init__(self, laplacian: GraphLaplacian, in_channels: int, out_channels: int,
                 order: int = 3, batch_norm: bool = True):
        super().__init__()
        if order < 1:
            raise Pose2MeshError(f"Chebyshev order must be >= 1, got {order}")
        self.laplacian = laplacian
        self.in_channels, self.out_channels, self.order = in_channels, out_channels, order
        scale = math.sqrt(2.0 / (order * in_channels + out_channels))
        self.weight = nn.Parameter(torch.empty(order, in_channels, out_channels).uniform_(-scale, scale))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.bn = nn.BatchNorm1d(out_channels) if batch_norm else None

    @property
    def propagates_input(self) -> bool:
        """True: recursion on the input channels (basis); False: Clenshaw on the outputs."""
        return self.out_channels > self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num_nodes, batch, in_channels = x.shape
        if num_nodes != self.laplacian.num_nodes or in_channels != self.in_channels:
            raise Pose2MeshError(
                f"ChebConv expects (N={self.laplacian.num_nodes}, B, C={self.in_channels}) "
                f"features, got {tuple(x.shape)}"
            )
        x = x.contiguous()
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):  # cast once, not once per order
            x = x.to(torch.get_autocast_dtype(device_type))
        rows = x.view(num_nodes * batch, in_channels)
        if self.order == 1:
            out = torch.addmm(self.bias, rows, self.weight[0])
        elif self.propagates_input:
            laplacian = self.laplacian.matrix(_compute_dtype(x.dtype))
            terms = _ChebyshevBasis.apply(x.view(num_nodes, -1), laplacian, self.order)
            out = torch.addmm(self.bias, rows, self.weight[0])
            for k, term in enumerate(terms, start=1):  # in place: ~1.5x faster than addmm
                out.addmm_(term.view(-1, in_channels).to(out.dtype), self.weight[k].to(out.dtype))
        else:
            laplacian = self.laplacian.matrix(_compute_dtype(x.dtype))
            coefficients = [torch.addmm(self.bias, rows, self.weight[0])]
            coefficients += [rows @ self.weight[k] for k in range(1, self.order)]
            out = _ChebyshevSum.apply(
                laplacian, *(y.view(num_nodes, -1) for y in coefficients)
            ).to(rows.dtype)
        out = out.reshape(num_nodes * batch, self.out_channels)
        if self.bn is not None:
            out = self.bn(out)
        return out.view(num_nodes, batch, self.out_channels)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, order={self.order}, "
                f"mode={'basis' if self.propagates_input else 'clenshaw'}")
