"""Chebyshev spectral graph convolution on a vertex-major batch.

Layout: features are ``(N, B, C)`` contiguous (node, sample, channel). Viewed as the matrix
``(N, B*C)`` they are multiplied by the sparse ``(N, N)`` Laplacian in one call, with no
permute or copy per Chebyshev order; viewed as ``(N*B, C)`` they meet the ``(C, C_out)``
weights in one dense matrix product.

A layer computes ``y = sum_k T_k(L) x W_k + b`` (Chebyshev polynomials ``T_0 = I``,
``T_1 = L``, ``T_k = 2 L T_{k-1} - T_{k-2}``) as one autograd function per layer
(:class:`_ChebyshevConv`) whose forward uses one of two equivalent orderings:

* **basis** (output wider than input): the recursion ``x_k = T_k(L) x`` on the input
  channels, accumulating ``out += x_k W_k`` in place;
* **Clenshaw** (output no wider than input): ``y_k = x W_k`` first, then
  ``sum_k T_k(L) y_k`` by Clenshaw's backward recurrence on the (fewer) output channels,
  computed in place in the ``y_k`` buffers (one MKL call per step, ``b_k = y_k + 2 L b_{k+1}``).

Backward saves only x: ``L`` is symmetric, so with ``g_k = T_k(L) g`` (the basis recursion on
the output gradient g) ``grad_x = sum_k g_k W_k^T`` (in-place ``addmm_``) and
``grad_W_k = (g_k^T x)^T``. Sparse products run in float32 (or float64 for float64 inputs)
with autocast disabled; dense products follow autocast.

**Upsampled inputs** (``forward(x, repeats=r)``): MeshNet feeds each block the previous
level's output with every node repeated r = 2 times (the repetition matrix P, (N, n)). Since
``up(x) W = up(x W)``, a Clenshaw layer multiplies the coarse x by the weights, and the
repetition goes into the sparse operators instead of into buffers: the first Clenshaw step
``b_{K-2} = [P | L P] [z_{K-2}; 2 z_{K-1}]`` is one sparse product straight from the coarse
products, and ``b_{K-1} = P z_{K-1}`` is never formed (:func:`_repeated_clenshaw`). Backward
folds the gradient onto the coarse nodes with ``(L P)^T`` (:func:`_folded_basis`), so only
``T_1 g .. T_{K-2} g`` exist at full size. The dense products of such a layer cost 1/r as
much (MeshNet's dense work falls by ~24%), the repeated input is never stored, and at order 3
the layer makes two full-size buffers in forward instead of three. The result equals the
layer applied to ``x.repeat_interleave(r, 0)`` up to round-off.

Performance notes (2-core AVX2 CPU, 6,890-vertex mesh, B = 64): the cost is dominated by
fresh large allocations as much as by arithmetic (with 4 KB pages, allocating and filling a
level-0 (N*B, 128) buffer takes ~130 ms, about what a 128x128 product into it takes; the huge
pages that importing pose2mesh turns on cut that ~5x; ``tools/benchmark.py --phases gemm``),
so the scheme
minimizes new buffers: the Clenshaw steps and the gradient accumulation run in place, and
the ReLU runs in place inside the layer (a ReLU on the returned view would make autograd
clone the whole gradient). Concatenating
the K terms into one ``(N*B, K*C)`` operand for a single product was measured slower: the
product is only ~10% faster than K in-place ``addmm_`` calls, while the extra K-fold buffer
costs more in page faults than it saves.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pose2mesh.errors import Pose2MeshError


class RepeatOperators(NamedTuple):
    """Sparse CSR operators of a level's Laplacian L (N, N) combined with the repetition P
    (N, n) that repeats each of n coarse nodes ``N / n`` times (:meth:`GraphLaplacian.repeat_operators`).

    Attributes:
        stacked: ``[P | L P]`` (N, 2n): applied to two stacked coarse operands.
        folded_laplacian: ``(L P)^T = P^T L`` (n, N).
    """

    stacked: torch.Tensor
    folded_laplacian: torch.Tensor


@contextlib.contextmanager
def _sparse_warnings_silenced():
    """Silence torch's UserWarnings about building sparse tensors ("sparse CSR support is in
    beta state", "sparse invariant checks are implicitly disabled")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other floating dtype (bf16, fp16, fp32) becomes fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _spmm(laplacian: torch.Tensor, x: torch.Tensor, alpha: float = 1.0,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """``alpha * L @ x`` as a new (R, M) tensor, or written into ``out`` (R, M) contiguous.
    ``laplacian``: sparse CSR (R, N); x: (N, M).

    On the CPU, ``addmm(out, L, x, beta=0, out=out)`` into a fresh buffer reaches MKL's
    sparse kernel directly and is ~2-3x faster than ``L @ x`` (which zero-fills and then
    accumulates); other devices use the plain sparse product.
    """
    if x.device.type == "cpu":
        if out is None:
            out = x.new_empty(laplacian.shape[0], x.shape[1])
        return torch.addmm(out, laplacian, x, beta=0.0, alpha=alpha, out=out)
    product = torch.sparse.mm(laplacian, x)
    if alpha != 1.0:
        product.mul_(alpha)
    return product if out is None else out.copy_(product)


def _spmm_accumulate_(target: torch.Tensor, laplacian: torch.Tensor, x: torch.Tensor,
                      alpha: float) -> torch.Tensor:
    """``target += alpha * L @ x`` in place and returned; target, x: (N, M) contiguous.

    On the CPU one MKL call (``beta=1``) writes into ``target`` with no temporary.
    """
    if target.device.type == "cpu":
        return torch.addmm(target, laplacian, x, alpha=alpha, out=target)
    return target.add_(torch.sparse.mm(laplacian, x), alpha=alpha)


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


def _clenshaw_(laplacian: torch.Tensor, coefficients: list[torch.Tensor]) -> torch.Tensor:
    """``sum_k T_k(L) y_k`` for ``coefficients = [y_0, ..., y_{K-1}]`` (each (N, M)
    contiguous, K >= 2), by Clenshaw's recurrence ``b_k = y_k + 2 L b_{k+1} - b_{k+2}``,
    result ``y_0 + L b_1 - b_2``. Overwrites the coefficients (``b_k`` in place of ``y_k``)
    and returns the result in the storage of ``y_0``, so it allocates nothing.
    """
    after_next, following = None, coefficients[-1]  # b_{k+2}, b_{k+1}
    for k in range(len(coefficients) - 2, -1, -1):
        current = coefficients[k]
        _clenshaw_step_(current, laplacian, following, after_next, k)
        after_next, following = following, current
    return following


def _clenshaw_step_(current: torch.Tensor, laplacian: torch.Tensor, following: torch.Tensor,
                    after_next: torch.Tensor | None, k: int) -> None:
    """One Clenshaw step in place: ``current`` (holding ``y_k``, or its repetition) becomes
    ``b_k = y_k + a L b_{k+1} - b_{k+2}`` with a = 2, or a = 1 for the last step (k = 0).
    All (N*B, C) or (N, M) contiguous tensors of one size; ``after_next`` (b_{k+2}) may be
    None (zero, or already subtracted by the caller)."""
    nodes = laplacian.shape[0]
    _spmm_accumulate_(current.view(nodes, -1), laplacian, following.view(nodes, -1),
                      alpha=1.0 if k == 0 else 2.0)
    if after_next is not None:
        current.sub_(after_next)


def _repeated_clenshaw(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       laplacian: torch.Tensor, operators: RepeatOperators, repeats: int,
                       batch: int) -> torch.Tensor:
    """``sum_k T_k(L) P (rows W_k) + bias`` as a new (N*B, C_out) tensor in the sparse dtype,
    where P repeats each of the n coarse nodes ``repeats`` times (N = repeats * n).

    rows: (n*B, C_in) node-major; weight (K, C_in, C_out) with K >= 2; bias (C_out,).
    Clenshaw's recurrence with ``z_k = rows W_k`` on the coarse nodes, keeping
    ``b_{K-1} = P z_{K-1}`` implicit: ``b_{K-2} = [P | L P] [z_{K-2}; s z_{K-1}]`` (s = 2, or
    1 when K = 2 and b_0 is the result) is one sparse product with the (N, 2n) operator
    straight from the coarse products, and the next step uses ``P (z_{K-3} - z_{K-1})``
    (in fp32 one in-place product over ``2 z_{K-1}``). No coarse product is repeated into a
    buffer of its own except the one that starts each remaining step, and the bias is added
    in the repeat that starts the last step.
    """
    order, out_channels = len(weight), weight.shape[-1]
    coarse_nodes = rows.shape[0] // batch
    sparse_dtype = laplacian.dtype
    pair = rows.new_empty(2, rows.shape[0], out_channels)  # [z_{K-2}; s z_{K-1}]
    if order == 2:
        torch.addmm(bias, rows, weight[0], out=pair[0])
        torch.mm(rows, weight[1], out=pair[1])
    else:
        torch.mm(rows, weight[-2], out=pair[0])
        torch.mm(rows, 2.0 * weight[-1], out=pair[1])
    pair = pair.to(sparse_dtype).view(2 * coarse_nodes, -1)
    following = pair.new_empty(coarse_nodes * repeats * batch, out_channels)  # b_{K-2}
    _spmm(operators.stacked, pair, out=following.view(coarse_nodes * repeats, -1))
    after_next = None  # b_{k+2}; None while it is the implicit P z_{K-1}
    for k in range(order - 3, -1, -1):
        if after_next is None and rows.dtype == sparse_dtype:  # z_k - z_{K-1}, over 2 z_{K-1}
            z = pair[coarse_nodes:].view(-1, out_channels).addmm_(rows, weight[k], beta=-0.5)
        else:
            z = (rows @ weight[k]).to(sparse_dtype)
            if after_next is None:
                z.sub_(pair[coarse_nodes:].view(z.shape), alpha=0.5)
        current = _repeat_nodes(z, repeats, batch, bias.to(sparse_dtype) if k == 0 else None)
        _clenshaw_step_(current, laplacian, following, after_next, k)
        after_next, following = following, current
    return following


def _folded_basis(laplacian: torch.Tensor, folded_laplacian: torch.Tensor, g: torch.Tensor,
                  order: int, repeats: int) -> list[torch.Tensor]:
    """``[P^T T_k(L) g for k < order]``, each (n, M), for node-major g (N, M), where ``P^T``
    sums each coarse node's ``repeats`` consecutive rows.

    Only ``T_1 g .. T_{K-2} g`` are formed at full size; each folded term comes from the
    (n, N) operator ``(L P)^T = P^T L``: ``P^T T_k g = 2 (L P)^T T_{k-1} g - P^T T_{k-2} g``
    (``P^T T_1 g = (L P)^T g``).
    """
    full = [g] + _basis(laplacian, g, order - 1)
    folded = [_fold_nodes(g, repeats)]
    for k in range(1, order):
        term = _spmm(folded_laplacian, full[k - 1], alpha=1.0 if k == 1 else 2.0)
        if k >= 2:
            term.sub_(folded[k - 2])
        folded.append(term)
    return folded


def _repeat_nodes(rows: torch.Tensor, repeats: int, batch: int,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """Node-major rows (n*B, C) -> a new (n*repeats*B, C) tensor with every node's B rows
    repeated ``repeats`` times in a row, plus ``bias`` (C,) when given, in the same pass
    (``rows`` itself when ``repeats == 1`` and there is no bias)."""
    if repeats == 1 and bias is None:
        return rows
    nodes, channels = rows.shape[0] // batch, rows.shape[1]
    out = rows.new_empty(nodes * repeats * batch, channels)
    source = rows.view(nodes, 1, batch, channels).expand(-1, repeats, -1, -1)
    target = out.view(nodes, repeats, batch, channels)
    if bias is None:
        target.copy_(source)
    else:
        torch.add(source, bias, out=target)
    return out


def _fold_nodes(node_major: torch.Tensor, repeats: int) -> torch.Tensor:
    """(n*repeats, M) -> a new (n, M): each node's ``repeats`` consecutive rows summed (the
    adjoint of repeating every node ``repeats`` times)."""
    copies = node_major.view(-1, repeats, node_major.shape[1])
    folded = copies[:, 0] + copies[:, 1]  # two-operand adds: ~2x faster than sum(1) here
    for copy in range(2, repeats):
        folded += copies[:, copy]
    return folded


def _combine(terms: list[torch.Tensor], weights: list[torch.Tensor],
             out: torch.Tensor) -> torch.Tensor:
    """``out += sum_k terms[k] @ weights[k]`` in place (in-place ``addmm_`` is ~1.5x faster
    than accumulating out of place); terms (R, C), weights (C, C'), out (R, C')."""
    for term, weight in zip(terms, weights):
        out.addmm_(term.to(out.dtype), weight)
    return out


class _ChebyshevConv(torch.autograd.Function):
    """``y = sum_k T_k(L) up(x) W_k + b`` for order K >= 2 (see the module docstring), where
    ``up`` repeats every node ``repeats`` times.

    x: (n, B, C_in) with ``n * repeats = N`` (the Laplacian's size), weight: (K, C_in, C_out),
    bias: (C_out,), all in the dense dtype (the autocast dtype or the input's); ``laplacian``
    in the sparse dtype; returns (N*B, C_out) in the dense dtype. ``input_side`` picks the
    forward ordering (basis or Clenshaw; the basis ordering needs ``repeats == 1``);
    ``operators`` are the level's :class:`RepeatOperators` when ``repeats > 1``. Only x is
    saved: backward runs the basis recursion on the output gradient g (L is symmetric),
    folded onto the n input nodes (``P^T``), ``grad_x = sum_k P^T T_k(L) g W_k^T`` and
    ``grad_W_k = x^T P^T T_k(L) g``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, laplacian, input_side, repeats, operators):
        ctx.laplacian, ctx.repeats, ctx.operators = laplacian, repeats, operators
        ctx.save_for_backward(x, weight)
        num_nodes, batch, in_channels = x.shape
        rows = x.view(num_nodes * batch, in_channels)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if repeats > 1:
                result = _repeated_clenshaw(rows, weight, bias, laplacian, operators, repeats, batch)
                return result.to(x.dtype)
            out = torch.addmm(bias, rows, weight[0])
            if input_side:
                terms = _basis(laplacian, x.view(num_nodes, -1).to(laplacian.dtype), len(weight))
                return _combine([t.view(rows.shape) for t in terms], weight[1:], out)
            products = [out] + [rows @ w for w in weight[1:]]
            coefficients = [y.to(laplacian.dtype).view(num_nodes, -1) for y in products]
            result = _clenshaw_(laplacian, coefficients).view(out.shape)
            if result.data_ptr() == out.data_ptr():  # y_0's own storage: no copy pass
                return out
            return out.copy_(result)  # autocast: y_0 was cast to the sparse dtype

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        num_nodes, batch, in_channels = x.shape
        grad_x = grad_weight = grad_bias = None
        with torch.autocast(device_type=x.device.type, enabled=False):
            node_major = grad.view(num_nodes * ctx.repeats, -1).to(ctx.laplacian.dtype)
            if ctx.repeats == 1:
                terms = [grad] + [t.view(grad.shape).to(grad.dtype)
                                  for t in _basis(ctx.laplacian, node_major, len(weight))]
            else:  # folded onto the n input nodes: (n*B, C_out) each
                terms = _folded_basis(ctx.laplacian, ctx.operators.folded_laplacian, node_major,
                                      len(weight), ctx.repeats)
                terms = [t.view(-1, grad.shape[1]).to(grad.dtype) for t in terms]
            if ctx.needs_input_grad[0]:
                grad_x = _combine(terms[1:], [w.t() for w in weight[1:]], terms[0] @ weight[0].t())
                grad_x = grad_x.view(x.shape)
            if ctx.needs_input_grad[1]:
                rows = x.view(num_nodes * batch, in_channels)  # g^T x: fast for thin g
                grad_weight = torch.stack([term.t() @ rows for term in terms]).transpose(1, 2)
            if ctx.needs_input_grad[2]:
                grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias, None, None, None, None


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

    def _cached(self, key: tuple, build):
        """``build()``, made once per ``key`` and kept until the module moves."""
        value = self._matrices.get(key)
        if value is None:
            value = self._matrices[key] = build()
        return value

    def matrix(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (N, N) sparse CSR tensor on the buffers' device in ``dtype``."""
        return self._cached((self.values.device, dtype), lambda: self._build_matrix(dtype))

    def _build_matrix(self, dtype: torch.dtype) -> torch.Tensor:
        with _sparse_warnings_silenced():
            return torch.sparse_csr_tensor(
                self.crow_indices, self.col_indices, self.values.to(dtype),
                size=(self.num_nodes, self.num_nodes), check_invariants=False,
            )

    def repeat_operators(self, repeats: int, dtype: torch.dtype = torch.float32) -> RepeatOperators:
        """The :class:`RepeatOperators` of this Laplacian and a ``repeats``-fold node
        repetition, on the buffers' device in ``dtype`` (built once, cached like :meth:`matrix`)."""
        return self._cached((self.values.device, dtype, repeats),
                            lambda: self._build_repeat_operators(repeats, dtype))

    def _build_repeat_operators(self, repeats: int, dtype: torch.dtype) -> RepeatOperators:
        num_nodes, device = self.num_nodes, self.values.device
        if num_nodes % repeats:
            raise Pose2MeshError(f"a {num_nodes}-node graph is not a {repeats}x repetition of a coarser one")
        coarse_nodes = num_nodes // repeats
        rows = torch.repeat_interleave(torch.arange(num_nodes, device=device), self.crow_indices.diff())
        propagated = torch.stack([rows, self.col_indices // repeats])  # L P: columns merged
        fine = torch.arange(num_nodes, device=device)
        repeated = torch.stack([fine, fine // repeats])  # P
        values = self.values.to(dtype)

        def csr(indices, entries, shape):
            with _sparse_warnings_silenced():
                return torch.sparse_coo_tensor(indices, entries, shape).coalesce().to_sparse_csr()

        offset = torch.tensor([[0], [coarse_nodes]], device=device)
        stacked = csr(torch.cat([repeated, propagated + offset], dim=1),
                      torch.cat([values.new_ones(num_nodes), values]), (num_nodes, 2 * coarse_nodes))
        folded = csr(propagated.flip(0), values, (coarse_nodes, num_nodes))
        return RepeatOperators(stacked, folded)

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, nnz={self.values.numel()}"


class ChebConv(nn.Module):
    """Chebyshev graph convolution of order K on vertex-major features.

    ``forward(x, repeats=1)``: x (N / repeats, B, C_in) -> (N, B, C_out),
    ``sum_{k<K} T_k(L) up(x) W_k + b`` where ``up`` repeats every node ``repeats`` times
    (``x.repeat_interleave(repeats, 0)``, computed without storing it; module docstring),
    followed by batch norm over channels when ``batch_norm`` (statistics over all N*B rows;
    in eval mode the running statistics are folded into the weights and bias, so there is no
    extra pass over the output) and an in-place ReLU when ``relu``.
    Parameters: ``weight`` (K, C_in, C_out), ``bias`` (C_out,) -- the same count as the
    original's ``Linear(K*C_in, C_out)``, initialized like it (uniform +-sqrt(2/(K*C_in+C_out)),
    zero bias).

    Args:
        laplacian: the level's :class:`GraphLaplacian` (shared by every layer on the level).
        in_channels, out_channels: C_in, C_out.
        order: K >= 1 (K=1 ignores the graph).
        batch_norm: apply ``BatchNorm1d(C_out)`` after the convolution.
        relu: apply ReLU last, in place on the (N*B, C_out) rows (a ReLU on the returned
            (N, B, C_out) view would make autograd copy the whole gradient in backward).
    """

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

    @property
    def propagates_input(self) -> bool:
        """True: recursion on the input channels (basis); False: Clenshaw on the outputs."""
        return self.out_channels > self.in_channels

    def forward(self, x: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        num_nodes, batch, in_channels = x.shape
        if num_nodes * repeats != self.laplacian.num_nodes or in_channels != self.in_channels:
            nodes = "N" if repeats == 1 else f"N/{repeats}"
            raise Pose2MeshError(
                f"ChebConv expects ({nodes}={self.laplacian.num_nodes // repeats}, B, "
                f"C={self.in_channels}) features, got {tuple(x.shape)}"
            )
        x = x.contiguous()
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):  # cast once, not once per order
            x = x.to(torch.get_autocast_dtype(device_type))
        weight, bias, bn = self.weight, self.bias, self.bn
        if bn is not None and not bn.training and bn.running_mean is not None:
            weight, bias = self._folded_batch_norm()  # no separate pass over the output
            bn = None
        weight, bias = weight.to(x.dtype), bias.to(x.dtype)
        if self.order == 1:
            out = torch.addmm(bias, x.view(num_nodes * batch, in_channels), weight[0])
            out = _repeat_nodes(out, repeats, batch)
        else:
            if self.propagates_input and repeats > 1:  # T_k(L) acts on the repeated input
                x, repeats = x.repeat_interleave(repeats, dim=0), 1
            sparse_dtype = _compute_dtype(x.dtype)
            laplacian = self.laplacian.matrix(sparse_dtype)
            operators = self.laplacian.repeat_operators(repeats, sparse_dtype) if repeats > 1 else None
            out = _ChebyshevConv.apply(x, weight, bias, laplacian, self.propagates_input, repeats,
                                       operators)
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
        return (f"{self.in_channels}, {self.out_channels}, order={self.order}, "
                f"mode={'basis' if self.propagates_input else 'clenshaw'}, relu={self.relu}")
