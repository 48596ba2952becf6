"""ChebConv: hand-computed values on a 3-node path graph, layout/batch checks against a dense
reference, gradients, autocast, buffers and caching."""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph import rescaled_laplacian
from pose2mesh.models.cheb_conv import ChebConv, GraphLaplacian

SQRT2 = math.sqrt(2.0)


def path_graph() -> GraphLaplacian:
    """Path 0 - 1 - 2: degrees (1, 2, 1), so L = -D^-1/2 A D^-1/2 has -1/sqrt(2) on the
    four off-diagonal entries."""
    adjacency = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32))
    laplacian = rescaled_laplacian(adjacency)
    expected = -np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]]) / SQRT2
    np.testing.assert_allclose(laplacian.toarray(), expected, rtol=1e-6)
    return GraphLaplacian(laplacian)


def set_weights(conv: ChebConv, weights: list[list[list[float]]], bias: list[float]) -> None:
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights))
        conv.bias.copy_(torch.tensor(bias))


# x = (1, 2, 3) on the path, one sample, one channel. By hand, with s = 1/sqrt(2):
#   T0 x = (1, 2, 3)
#   T1 x = L x = -s (2, 1 + 3, 2) = (-sqrt2, -2 sqrt2, -sqrt2)
#   L T1 x = -s (-2 sqrt2, -sqrt2 - sqrt2, -2 sqrt2) = (2, 2, 2)
#   T2 x = 2 L T1 x - T0 x = (4 - 1, 4 - 2, 4 - 3) = (3, 2, 1)
X = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)  # (N, B, C)


@pytest.mark.parametrize("order, expected", [
    # W0 = 2, W1 = -1, bias 0.25:  2 T0 - T1 + 0.25
    (2, [2 + SQRT2 + 0.25, 4 + 2 * SQRT2 + 0.25, 6 + SQRT2 + 0.25]),
    # W0 = 2, W1 = -1, W2 = 0.5, bias 0.25:  2 T0 - T1 + 0.5 T2 + 0.25
    (3, [2 + SQRT2 + 1.5 + 0.25, 4 + 2 * SQRT2 + 1.0 + 0.25, 6 + SQRT2 + 0.5 + 0.25]),
])
def test_hand_computed_single_channel(order, expected):
    conv = ChebConv(path_graph(), 1, 1, order=order, batch_norm=False)
    assert not conv.propagates_input  # 1 -> 1 channel: Clenshaw ordering
    set_weights(conv, [[[2.0]], [[-1.0]], [[0.5]]][:order], [0.25])
    out = conv(X)
    assert out.shape == (3, 1, 1)
    np.testing.assert_allclose(out.detach().view(-1).numpy(), expected, rtol=1e-6)


def test_hand_computed_widening_layer_uses_basis_recursion():
    # 1 -> 2 channels: channel 0 as above (K=3), channel 1 = T0 + T1 + T2 with bias -1:
    # (1 - sqrt2 + 3, 2 - 2 sqrt2 + 2, 3 - sqrt2 + 1) - 1 = (3 - sqrt2, 3 - 2 sqrt2, 3 - sqrt2)
    conv = ChebConv(path_graph(), 1, 2, order=3, batch_norm=False)
    assert conv.propagates_input
    set_weights(conv, [[[2.0, 1.0]], [[-1.0, 1.0]], [[0.5, 1.0]]], [0.25, -1.0])
    out = conv(X).detach().view(3, 2).numpy()
    np.testing.assert_allclose(out[:, 0], [3.75 + SQRT2, 5.25 + 2 * SQRT2, 6.75 + SQRT2], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], [3 - SQRT2, 3 - 2 * SQRT2, 3 - SQRT2], rtol=1e-6, atol=1e-6)


def random_graph(num_nodes: int = 9, seed: int = 0) -> tuple[GraphLaplacian, torch.Tensor]:
    rng = np.random.default_rng(seed)
    adjacency = np.triu((rng.random((num_nodes, num_nodes)) < 0.35).astype(np.float32), 1)
    adjacency = sp.csr_matrix(adjacency + adjacency.T)
    laplacian = rescaled_laplacian(adjacency)
    return GraphLaplacian(laplacian), torch.from_numpy(laplacian.toarray()).double()


def dense_reference(conv: ChebConv, dense: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_k T_k(L) x W_k + b with explicit per-sample dense matrices, float64."""
    x = x.double()
    terms = [x]
    if conv.order > 1:
        terms.append(torch.einsum("nm,mbc->nbc", dense, x))
    for _ in range(2, conv.order):
        terms.append(2 * torch.einsum("nm,mbc->nbc", dense, terms[-1]) - terms[-2])
    weight = conv.weight.detach().double()
    return sum(t @ weight[k] for k, t in enumerate(terms)) + conv.bias.detach().double()


@pytest.mark.parametrize("channels", [(4, 6), (6, 4), (5, 5)])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_dense_reference_batched(channels, order):
    graph, dense = random_graph()
    torch.manual_seed(order)
    conv = ChebConv(graph, *channels, order=order, batch_norm=False)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(graph.num_nodes, 3, channels[0])
    out = conv(x)
    assert out.shape == (graph.num_nodes, 3, channels[1]) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), dense_reference(conv, dense, x), rtol=1e-5, atol=1e-5)
    # samples do not mix: changing sample 1 leaves samples 0 and 2 unchanged
    x2 = x.clone()
    x2[:, 1] += 1.0
    out2 = conv(x2)
    torch.testing.assert_close(out2[:, [0, 2]], out[:, [0, 2]])


def dense_reference_differentiable(dense: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                                   bias: torch.Tensor) -> torch.Tensor:
    """sum_k T_k(L) x W_k + b with dense T_k(L) matrices, differentiable in x, weight, bias."""
    identity = torch.eye(dense.shape[0], dtype=dense.dtype)
    polynomials = [identity, dense][:len(weight)]
    while len(polynomials) < len(weight):
        polynomials.append(2 * dense @ polynomials[-1] - polynomials[-2])
    return sum(torch.einsum("nm,mbc,cd->nbd", t, x, w) for t, w in zip(polynomials, weight)) + bias


@pytest.mark.parametrize("channels", [(4, 6), (6, 4), (5, 5)])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("relu", [False, True])
def test_output_and_gradients_match_dense_reference(channels, order, relu):
    """Forward and the gradients of input, weight and bias against dense autograd (float64),
    for both forward orderings (C_in < C_out: basis, C_in >= C_out: Clenshaw)."""
    graph, dense = random_graph()
    torch.manual_seed(10 * order + channels[0])
    conv = ChebConv(graph, *channels, order=order, batch_norm=False, relu=relu)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(graph.num_nodes, 3, channels[0], requires_grad=True)
    upstream = torch.randn(graph.num_nodes, 3, channels[1])
    out = conv(x)
    out.backward(upstream)

    x64 = x.detach().double().requires_grad_()
    weight64 = conv.weight.detach().double().requires_grad_()
    bias64 = conv.bias.detach().double().requires_grad_()
    expected = dense_reference_differentiable(dense, x64, weight64, bias64)
    if relu:
        expected = torch.relu(expected)
    expected.backward(upstream.double())
    for actual, reference in [(out, expected), (x.grad, x64.grad),
                              (conv.weight.grad, weight64.grad), (conv.bias.grad, bias64.grad)]:
        assert actual.shape == reference.shape
        torch.testing.assert_close(actual.double(), reference.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels", [(3, 5), (5, 3)])
def test_gradcheck_float64(channels):
    graph, _ = random_graph(num_nodes=6, seed=1)
    conv = ChebConv(graph, *channels, order=3, batch_norm=False).double()
    x = torch.randn(6, 2, channels[0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))


def test_batch_norm_over_nodes_and_samples():
    graph, dense = random_graph()
    conv = ChebConv(graph, 4, 3, order=3, batch_norm=True).train()
    x = torch.randn(graph.num_nodes, 5, 4)
    pre = dense_reference(conv, dense, x).float().reshape(-1, 3)
    expected = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + conv.bn.eps)
    torch.testing.assert_close(conv(x).reshape(-1, 3), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("affine", [True, False])
def test_eval_batch_norm_folded_into_weights(affine):
    """Eval mode folds the running statistics into W and b: same output (and gradients) as
    the convolution followed by F.batch_norm with those statistics."""
    graph, dense = random_graph()
    torch.manual_seed(2)
    conv = ChebConv(graph, 4, 3, order=3, batch_norm=True, relu=True).double().eval()
    conv.bn = torch.nn.BatchNorm1d(3, affine=affine).double().eval()
    conv.bn.running_mean.normal_()
    conv.bn.running_var.uniform_(0.5, 2.0)
    if affine:
        with torch.no_grad():
            conv.bn.weight.normal_()
            conv.bn.bias.normal_()
    x = torch.randn(graph.num_nodes, 5, 4, dtype=torch.float64)
    pre = dense_reference(conv, dense, x).reshape(-1, 3)
    bn = conv.bn
    expected = torch.relu(torch.nn.functional.batch_norm(
        pre, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps))
    torch.testing.assert_close(conv(x).reshape(-1, 3), expected)
    if affine:
        conv(x).sum().backward()
        assert conv.weight.grad is not None and bn.weight.grad is not None


@pytest.mark.parametrize("channels, repeats", [((8, 16), 1), ((16, 8), 1), ((16, 8), 2)])
def test_autocast_bf16_cpu_close_to_float32(channels, repeats):
    graph, _ = random_graph(num_nodes=12)
    torch.manual_seed(0)
    conv = ChebConv(graph, *channels, order=3, batch_norm=False)
    x = torch.randn(graph.num_nodes // repeats, 4, channels[0], requires_grad=True)
    reference = conv(x, repeats)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x, repeats)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=5e-2, atol=5e-2)
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_buffers_state_dict_cache_and_copies():
    graph, _ = random_graph()
    conv = ChebConv(graph, 4, 4, order=3)
    assert set(conv.state_dict()) == {"weight", "bias", "bn.weight", "bn.bias", "bn.running_mean",
                                      "bn.running_var", "bn.num_batches_tracked"}
    assert conv.weight.numel() + conv.bias.numel() == 3 * 4 * 4 + 4  # = Linear(K*C_in, C_out)
    assert graph.matrix() is graph.matrix()  # built once, reused every forward
    x = torch.randn(graph.num_nodes, 2, 4)
    conv.eval()
    out = conv(x)
    for clone in (copy.deepcopy(conv), pickle.loads(pickle.dumps(conv))):
        torch.testing.assert_close(clone(x), out)
    conv.double()  # moving/casting drops the cached matrices
    assert conv.laplacian.values.dtype == torch.float64
    torch.testing.assert_close(conv(x.double()).float(), out, rtol=1e-5, atol=1e-5)
    fresh = ChebConv(graph, 4, 4, order=3)
    fresh.load_state_dict(conv.state_dict())


def test_wrong_input_shape_is_a_user_error():
    graph, _ = random_graph()
    conv = ChebConv(graph, 4, 4)
    with pytest.raises(Pose2MeshError, match="ChebConv expects"):
        conv(torch.randn(graph.num_nodes + 1, 2, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    graph, _ = random_graph()
    for channels in [(4, 6), (6, 4)]:
        conv = ChebConv(graph, *channels, order=3, batch_norm=False)
        x = torch.randn(graph.num_nodes, 3, channels[0])
        expected = conv(x)
        conv.to("cuda")
        torch.testing.assert_close(conv(x.to("cuda")).cpu(), expected, rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.float16):
            assert torch.isfinite(conv(x.to("cuda"))).all()


@pytest.mark.parametrize("channels", [(6, 4), (5, 5), (4, 6)])
@pytest.mark.parametrize("order, repeats", [(1, 2), (2, 2), (3, 2), (4, 2), (5, 3), (3, 3)])
def test_repeated_nodes_input_equals_materialized_repeat(channels, order, repeats):
    """forward(x, repeats=r) (products on the coarse nodes, the repetition folded into the
    sparse operators, gradients folded back) gives the output and gradients of the layer on
    x.repeat_interleave(r, 0), for the Clenshaw ordering at orders 2 (the stacked operator
    gives the result directly), 3 and 4-5 (further recurrence steps), the basis ordering
    (which repeats x itself) and order 1."""
    graph, _ = random_graph(num_nodes=12, seed=3)
    torch.manual_seed(channels[0] + order)
    conv = ChebConv(graph, *channels, order=order, batch_norm=False, relu=True).double()
    with torch.no_grad():
        conv.bias.normal_()
    coarse = torch.randn(12 // repeats, 3, channels[0], dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(12, 3, channels[1], dtype=torch.float64)
    out = conv(coarse, repeats=repeats)
    out.backward(upstream)
    grads = (coarse.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone())
    conv.zero_grad()
    fine = coarse.detach().clone().requires_grad_()
    expected = conv(fine.repeat_interleave(repeats, dim=0))
    expected.backward(upstream)
    torch.testing.assert_close(out, expected)
    for actual, reference in zip(grads, (fine.grad, conv.weight.grad, conv.bias.grad)):
        torch.testing.assert_close(actual, reference)
    with pytest.raises(Pose2MeshError, match=rf"N/{repeats}={12 // repeats}"):
        conv(torch.randn(12, 3, channels[0], dtype=torch.float64), repeats=repeats)


def test_repeat_operators_match_dense_products():
    """[P | L P] and (L P)^T against dense matrices built from the definition of P."""
    graph, _ = random_graph(num_nodes=12, seed=5)
    laplacian = graph.matrix(torch.float64).to_dense()
    for repeats in (2, 3, 4):
        operators = graph.repeat_operators(repeats, torch.float64)
        repetition = torch.eye(12 // repeats, dtype=torch.float64).repeat_interleave(repeats, dim=0)
        torch.testing.assert_close(operators.stacked.to_dense(),
                                   torch.cat([repetition, laplacian @ repetition], dim=1))
        torch.testing.assert_close(operators.folded_laplacian.to_dense(),
                                   (laplacian @ repetition).t())
        assert graph.repeat_operators(repeats, torch.float64) is operators  # cached
    with pytest.raises(Pose2MeshError, match="not a 5x repetition"):
        graph.repeat_operators(5)
