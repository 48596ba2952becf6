"""The fused CPU kernel of :class:`~pose2mesh.models.cheb_conv.ChebConv`.

:func:`fused_chebyshev_conv` computes what :func:`~pose2mesh.models.cheb_conv.chebyshev_conv`
computes, ``y = sum_k T_k(L) up(x) W_k + b`` (``up`` repeating every node ``repeats``
times), with a hand-written backward and in-place buffers. ChebConv runs it on the CPU in
float32 without autocast; everywhere else it runs the plain function. It works in one dtype
throughout (float32 there; float64 in the tests, which check its outputs and gradients
against the plain function for K = 1..5, several batch sizes, channel shapes and repeats).

What it buys: ``python tools/benchmark.py --phases pose2mesh_train pose2mesh_infer`` (batch
64, the 6,890-vertex mesh, PoseNet 4096 x 2 + MeshNet) against the same run with
``ChebConv.fused_cpu_kernel = False`` in its phase processes (a main script that sets it at
module level and calls ``benchmark.main()``: the spawned phases re-run it), alternating, two
runs each, on a 2-core Xeon (AVX-512) busy with other training jobs, so only the ratios are
figures, not the times (training steps took 28-60 s there; 12.0 s in the README's quiet
runs). The fused kernel makes the whole training step 1.74x / 1.66x faster (34.3 s against
59.8 s; 27.6 s against 45.9 s), inference at batch 64 1.53x / 1.82x faster (5.55 s against
8.47 s; 4.11 s against 7.50 s), and cuts peak RSS from 7.8 to 4.6 GB in training, 2.5 to
2.0 GB in inference.

Layout: features are ``(N, B, C)`` contiguous (node, sample, channel). Viewed as the matrix
``(N, B*C)`` they are multiplied by the sparse ``(N, N)`` Laplacian in one call, with no
permute or copy per Chebyshev order; viewed as ``(N*B, C)`` they meet the ``(C, C_out)``
weights in one dense matrix product. A layer of order K >= 2 is one autograd function
(:class:`_ChebyshevConv`) whose forward uses one of two equivalent orderings:

* **basis** (output wider than input): the recursion ``x_k = T_k(L) x`` on the input
  channels, accumulating ``out += x_k W_k`` in place;
* **Clenshaw** (output no wider than input): ``y_k = x W_k`` first, then
  ``sum_k T_k(L) y_k`` by Clenshaw's backward recurrence on the (fewer) output channels,
  computed in place in the ``y_k`` buffers (one MKL call per step, ``b_k = y_k + 2 L b_{k+1}``).

Backward saves only x: ``L`` is symmetric, so with ``g_k = T_k(L) g`` (the basis recursion on
the output gradient g) ``grad_x = sum_k g_k W_k^T`` (in-place ``addmm_``) and
``grad_W_k = (g_k^T x)^T`` (4-17x faster than ``x^T g_k`` for narrow outputs).

**Upsampled inputs** (``repeats = r > 1``): MeshNet feeds each block the previous level's
output with every node repeated r = 2 times (the repetition matrix P, (N, n)). Since
``up(x) W = up(x W)``, a Clenshaw layer multiplies the coarse x by the weights, and the
repetition goes into the sparse operators instead of into buffers: the first Clenshaw step
``b_{K-2} = [P | L P] [z_{K-2}; 2 z_{K-1}]`` is one sparse product straight from the coarse
products, and ``b_{K-1} = P z_{K-1}`` is never formed (:func:`_repeated_clenshaw`). Backward
folds the gradient onto the coarse nodes with ``(L P)^T`` (:func:`_folded_basis`), so only
``T_1 g .. T_{K-2} g`` exist at full size. The dense products of such a layer cost 1/r as
much (MeshNet's dense work falls by ~24%), the repeated input is never stored, and at order 3
the layer makes two full-size buffers in forward instead of three.

Allocation (2-core AVX2 CPU, 6,890-vertex mesh, B = 64): the cost is dominated by fresh
large allocations as much as by arithmetic (with 4 KB pages, allocating and filling a
level-0 (N*B, 128) buffer takes ~130 ms, about what a 128x128 product into it takes; huge
pages cut that ~5x; ``tools/benchmark.py --phases gemm``), so the scheme minimizes new
buffers: the Clenshaw steps and the gradient accumulation run in place. Concatenating the K
terms into one ``(N*B, K*C)`` operand for a single product was measured slower: the product
is only ~10% faster than K in-place ``addmm_`` calls, while the extra K-fold buffer costs
more in page faults than it saves.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from pose2mesh.errors import Pose2MeshError

if TYPE_CHECKING:
    from pose2mesh.models.cheb_conv import GraphLaplacian


def fused_chebyshev_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         graph: GraphLaplacian, repeats: int = 1) -> torch.Tensor:
    """``sum_k T_k(L) up(x) W_k + b`` as new node-major rows (N*B, C_out), on the CPU.

    Args:
        x: (N / repeats, B, C_in) contiguous; each node stands for ``repeats`` consecutive
            nodes of the graph (``up(x) = x.repeat_interleave(repeats, 0)``, not stored).
        weight: (K, C_in, C_out), K >= 1; bias: (C_out,); both in the dtype of x.
        graph: the level's ``GraphLaplacian`` (N nodes).
        repeats: r >= 1.

    The forward ordering is the basis recursion when C_out > C_in, else Clenshaw (module
    docstring); K = 1 ignores the graph (one product on the coarse nodes, then the repeat).
    """
    num_nodes, batch, in_channels = x.shape
    if len(weight) == 1:
        out = torch.addmm(bias, x.view(num_nodes * batch, in_channels), weight[0])
        return _repeat_nodes(out, repeats, batch)
    propagates_input = weight.shape[-1] > in_channels
    if propagates_input and repeats > 1:  # T_k(L) acts on the repeated input
        x, repeats = x.repeat_interleave(repeats, dim=0), 1
    laplacian = graph.matrix(x.dtype)
    operators = repeat_operators(graph, repeats, x.dtype) if repeats > 1 else None
    return _ChebyshevConv.apply(x, weight, bias, laplacian, propagates_input, repeats, operators)


class RepeatOperators(NamedTuple):
    """Sparse CSR operators of a level's Laplacian L (N, N) combined with the repetition P
    (N, n) that repeats each of n coarse nodes ``N / n`` times (:func:`repeat_operators`).

    Attributes:
        stacked: ``[P | L P]`` (N, 2n): applied to two stacked coarse operands.
        folded_laplacian: ``(L P)^T = P^T L`` (n, N).
    """

    stacked: torch.Tensor
    folded_laplacian: torch.Tensor


def repeat_operators(graph: GraphLaplacian, repeats: int,
                     dtype: torch.dtype = torch.float32) -> RepeatOperators:
    """The :class:`RepeatOperators` of ``graph``'s Laplacian and a ``repeats``-fold node
    repetition, on the graph's device in ``dtype`` (built once, cached on the graph)."""
    return graph.cached(("repeat_operators", dtype, repeats),
                        lambda: _build_repeat_operators(graph.matrix(dtype), repeats))


def _build_repeat_operators(laplacian: torch.Tensor, repeats: int) -> RepeatOperators:
    num_nodes = laplacian.shape[0]
    if num_nodes % repeats:
        raise Pose2MeshError(f"a {num_nodes}-node graph is not a {repeats}x repetition of a coarser one")
    coarse_nodes = num_nodes // repeats
    values, device = laplacian.values(), laplacian.device
    fine = torch.arange(num_nodes, device=device)
    rows = torch.repeat_interleave(fine, laplacian.crow_indices().diff())
    propagated = torch.stack([rows, laplacian.col_indices() // repeats])  # L P: columns merged
    repeated = torch.stack([fine, fine // repeats])  # P

    def csr(indices, entries, shape):
        return torch.sparse_coo_tensor(indices, entries, shape).coalesce().to_sparse_csr()

    offset = torch.tensor([[0], [coarse_nodes]], device=device)
    stacked = csr(torch.cat([repeated, propagated + offset], dim=1),
                  torch.cat([values.new_ones(num_nodes), values]), (num_nodes, 2 * coarse_nodes))
    folded = csr(propagated.flip(0), values, (coarse_nodes, num_nodes))
    return RepeatOperators(stacked, folded)


def _spmm(laplacian: torch.Tensor, x: torch.Tensor, alpha: float = 1.0,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """``alpha * L @ x`` as a new (R, M) tensor, or written into ``out`` (R, M) contiguous.
    ``laplacian``: sparse CSR (R, N); x: (N, M).

    ``addmm(out, L, x, beta=0, out=out)`` into a fresh buffer reaches MKL's sparse kernel
    directly and is ~2-3x faster than ``L @ x`` (which zero-fills and then accumulates).
    """
    if out is None:
        out = x.new_empty(laplacian.shape[0], x.shape[1])
    return torch.addmm(out, laplacian, x, beta=0.0, alpha=alpha, out=out)


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
    None (zero, or already subtracted by the caller). ``addmm(..., out=current)`` with
    ``beta=1`` is one MKL call into ``current``, with no temporary."""
    nodes = laplacian.shape[0]
    target = current.view(nodes, -1)
    torch.addmm(target, laplacian, following.view(nodes, -1), alpha=1.0 if k == 0 else 2.0,
                out=target)
    if after_next is not None:
        current.sub_(after_next)


def _repeated_clenshaw(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       laplacian: torch.Tensor, operators: RepeatOperators, repeats: int,
                       batch: int) -> torch.Tensor:
    """``sum_k T_k(L) P (rows W_k) + bias`` as a new (N*B, C_out) tensor, where P repeats
    each of the n coarse nodes ``repeats`` times (N = repeats * n).

    rows: (n*B, C_in) node-major; weight (K, C_in, C_out) with K >= 2; bias (C_out,).
    Clenshaw's recurrence with ``z_k = rows W_k`` on the coarse nodes, keeping
    ``b_{K-1} = P z_{K-1}`` implicit: ``b_{K-2} = [P | L P] [z_{K-2}; s z_{K-1}]`` (s = 2, or
    1 when K = 2 and b_0 is the result) is one sparse product with the (N, 2n) operator
    straight from the coarse products, and the next step uses ``P (z_{K-3} - z_{K-1})``
    (one in-place product over ``2 z_{K-1}``). No coarse product is repeated into a buffer
    of its own except the one that starts each remaining step, and the bias is added in the
    repeat that starts the last step.
    """
    order, out_channels = len(weight), weight.shape[-1]
    coarse_nodes = rows.shape[0] // batch
    pair = rows.new_empty(2, rows.shape[0], out_channels)  # [z_{K-2}; s z_{K-1}]
    if order == 2:
        torch.addmm(bias, rows, weight[0], out=pair[0])
        torch.mm(rows, weight[1], out=pair[1])
    else:
        torch.mm(rows, weight[-2], out=pair[0])
        torch.mm(rows, 2.0 * weight[-1], out=pair[1])
    pair = pair.view(2 * coarse_nodes, -1)
    following = pair.new_empty(coarse_nodes * repeats * batch, out_channels)  # b_{K-2}
    _spmm(operators.stacked, pair, out=following.view(coarse_nodes * repeats, -1))
    after_next = None  # b_{k+2}; None while it is the implicit P z_{K-1}
    for k in range(order - 3, -1, -1):
        if after_next is None:  # z_k - z_{K-1}, in place over 2 z_{K-1}
            z = pair[coarse_nodes:].view(-1, out_channels).addmm_(rows, weight[k], beta=-0.5)
        else:
            z = rows @ weight[k]
        current = _repeat_nodes(z, repeats, batch, bias if k == 0 else None)
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
        out.addmm_(term, weight)
    return out


class _ChebyshevConv(torch.autograd.Function):
    """``y = sum_k T_k(L) up(x) W_k + b`` for order K >= 2 (see the module docstring), where
    ``up`` repeats every node ``repeats`` times.

    x: (n, B, C_in) with ``n * repeats = N`` (the Laplacian's size), weight: (K, C_in, C_out),
    bias: (C_out,), ``laplacian``, all in one dtype; returns (N*B, C_out). ``input_side``
    picks the forward ordering (basis or Clenshaw; the basis ordering needs ``repeats == 1``);
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
        if repeats > 1:
            return _repeated_clenshaw(rows, weight, bias, laplacian, operators, repeats, batch)
        out = torch.addmm(bias, rows, weight[0])
        if input_side:
            terms = _basis(laplacian, x.view(num_nodes, -1), len(weight))
            return _combine([t.view(rows.shape) for t in terms], weight[1:], out)
        products = [out] + [rows @ w for w in weight[1:]]
        _clenshaw_(laplacian, [y.view(num_nodes, -1) for y in products])  # result in out
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        num_nodes, batch, in_channels = x.shape
        grad_x = grad_weight = grad_bias = None
        node_major = grad.view(num_nodes * ctx.repeats, -1)
        if ctx.repeats == 1:
            basis = _basis(ctx.laplacian, node_major, len(weight))
            terms = [grad] + [t.view(grad.shape) for t in basis]
        else:  # folded onto the n input nodes: (n*B, C_out) each
            terms = _folded_basis(ctx.laplacian, ctx.operators.folded_laplacian, node_major,
                                  len(weight), ctx.repeats)
            terms = [t.view(-1, grad.shape[1]) for t in terms]
        if ctx.needs_input_grad[0]:
            grad_x = _combine(terms[1:], [w.t() for w in weight[1:]], terms[0] @ weight[0].t())
            grad_x = grad_x.view(x.shape)
        if ctx.needs_input_grad[1]:
            rows = x.view(num_nodes * batch, in_channels)  # g^T x: fast for thin g
            grad_weight = torch.stack([term.t() @ rows for term in terms]).transpose(1, 2)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias, None, None, None, None
