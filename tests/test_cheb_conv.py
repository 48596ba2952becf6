"""ChebConv: hand-computed values on a 3-node path graph (both paths), the fused CPU kernel
against the plain ``chebyshev_conv`` (outputs and gradients), which path runs where, batch
norm, autocast, buffers and caching."""
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
from pose2mesh.models import cheb_conv
from pose2mesh.models.cheb_conv import ChebConv, GraphLaplacian, chebyshev_conv
from pose2mesh.models.cheb_conv_fused import fused_chebyshev_conv, repeat_operators

SQRT2 = math.sqrt(2.0)


@pytest.fixture(params=["fused", "plain"])
def kernel(request, monkeypatch):
    """Runs a test once with ChebConv's fused CPU kernel (float32 inputs on the CPU take it)
    and once with every layer on the plain path."""
    monkeypatch.setattr(ChebConv, "fused_cpu_kernel", request.param == "fused")
    return request.param


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls of the fused kernel made by ChebConv."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return fused_chebyshev_conv(*args, **kwargs)

    monkeypatch.setattr(cheb_conv, "fused_chebyshev_conv", counted)
    return calls


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
    # W0 = 2, bias 0.25:  2 T0 + 0.25
    (1, [2.25, 4.25, 6.25]),
    # W0 = 2, W1 = -1, bias 0.25:  2 T0 - T1 + 0.25
    (2, [2 + SQRT2 + 0.25, 4 + 2 * SQRT2 + 0.25, 6 + SQRT2 + 0.25]),
    # W0 = 2, W1 = -1, W2 = 0.5, bias 0.25:  2 T0 - T1 + 0.5 T2 + 0.25
    (3, [2 + SQRT2 + 1.5 + 0.25, 4 + 2 * SQRT2 + 1.0 + 0.25, 6 + SQRT2 + 0.5 + 0.25]),
])
def test_hand_computed_single_channel(kernel, order, expected):
    # 1 -> 1 channel: the fused kernel's Clenshaw ordering
    conv = ChebConv(path_graph(), 1, 1, order=order, batch_norm=False)
    set_weights(conv, [[[2.0]], [[-1.0]], [[0.5]]][:order], [0.25])
    out = conv(X)
    assert out.shape == (3, 1, 1)
    np.testing.assert_allclose(out.detach().view(-1).numpy(), expected, rtol=1e-6)


def test_hand_computed_widening_layer(kernel):
    # 1 -> 2 channels (the fused kernel's basis recursion): channel 0 as above (K=3),
    # channel 1 = T0 + T1 + T2 with bias -1:
    # (1 - sqrt2 + 3, 2 - 2 sqrt2 + 2, 3 - sqrt2 + 1) - 1 = (3 - sqrt2, 3 - 2 sqrt2, 3 - sqrt2)
    conv = ChebConv(path_graph(), 1, 2, order=3, batch_norm=False)
    set_weights(conv, [[[2.0, 1.0]], [[-1.0, 1.0]], [[0.5, 1.0]]], [0.25, -1.0])
    out = conv(X).detach().view(3, 2).numpy()
    np.testing.assert_allclose(out[:, 0], [3.75 + SQRT2, 5.25 + 2 * SQRT2, 6.75 + SQRT2], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], [3 - SQRT2, 3 - 2 * SQRT2, 3 - SQRT2], rtol=1e-6, atol=1e-6)


def test_hand_computed_upsampled_input(kernel):
    # repeats=3: one coarse node standing for the three path nodes, value 1 on each.
    # T0 = (1, 1, 1), T1 = L 1 = -s (1, 2, 1), T2 = 2 L T1 - T0 = (2 - 1, 2 - 1, 2 - 1).
    conv = ChebConv(path_graph(), 1, 1, order=3, batch_norm=False)
    set_weights(conv, [[[2.0]], [[-1.0]], [[0.5]]], [0.25])
    out = conv(torch.ones(1, 1, 1), repeats=3)
    expected = [2 + 1 / SQRT2 + 0.5 + 0.25, 2 + SQRT2 + 0.5 + 0.25, 2 + 1 / SQRT2 + 0.5 + 0.25]
    np.testing.assert_allclose(out.detach().view(-1).numpy(), expected, rtol=1e-6)


def random_graph(num_nodes: int = 9, seed: int = 0) -> GraphLaplacian:
    rng = np.random.default_rng(seed)
    adjacency = np.triu((rng.random((num_nodes, num_nodes)) < 0.35).astype(np.float32), 1)
    adjacency = sp.csr_matrix(adjacency + adjacency.T)
    return GraphLaplacian(rescaled_laplacian(adjacency))


def plain_rows(x: torch.Tensor, graph: GraphLaplacian, weight: torch.Tensor,
               bias: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """The library's plain convolution of the repeated input, as (N*B, C_out) rows."""
    fine = x.repeat_interleave(repeats, dim=0)
    return chebyshev_conv(fine, graph.matrix(x.dtype), weight, bias).reshape(-1, weight.shape[-1])


@pytest.mark.parametrize("channels", [(4, 6), (6, 4), (5, 5)])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("repeats", [1, 2, 3])
def test_fused_kernel_matches_plain_output_and_gradients(channels, order, batch, repeats):
    """The fused kernel against ``chebyshev_conv`` in float64 on a sparse 12-node Laplacian:
    output and the gradients of input, weight and bias, for both forward orderings (C_in <
    C_out: basis, C_in >= C_out: Clenshaw), orders 2 (the stacked operator gives the result
    directly for repeated inputs), 3 and 4-5 (further recurrence steps) and 1 (no graph),
    and inputs upsampled by repetition (products on the coarse nodes, the repetition in
    the sparse operators, gradients folded back)."""
    graph = random_graph(num_nodes=12, seed=3)
    torch.manual_seed(100 * order + 10 * channels[0] + batch)
    in_channels, out_channels = channels
    x = torch.randn(12 // repeats, batch, in_channels, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(order, in_channels, out_channels, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(12 * batch, out_channels, dtype=torch.float64)

    fused = fused_chebyshev_conv(x, weight, bias, graph, repeats)
    fused_grads = torch.autograd.grad(fused, (x, weight, bias), upstream)
    plain = plain_rows(x, graph, weight, bias, repeats)
    plain_grads = torch.autograd.grad(plain, (x, weight, bias), upstream)
    assert fused.shape == plain.shape == (12 * batch, out_channels)
    torch.testing.assert_close(fused, plain)
    for actual, expected in zip(fused_grads, plain_grads):
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("channels", [(3, 5), (5, 3)])
@pytest.mark.parametrize("repeats", [1, 2])
def test_gradcheck_float64(channels, repeats):
    """Both paths' gradients against finite differences: the fused kernel's hand-written
    backward (in x, weight and bias) and the plain layer (float64 runs it)."""
    graph = random_graph(num_nodes=6, seed=1)
    torch.manual_seed(0)
    x = torch.randn(6 // repeats, 2, channels[0], dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, *channels, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(channels[1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *inputs: fused_chebyshev_conv(*inputs, graph, repeats), (x, weight, bias))
    conv = ChebConv(graph, *channels, order=3, batch_norm=False).double()
    assert torch.autograd.gradcheck(lambda features: conv(features, repeats), (x,))


@pytest.mark.parametrize("channels", [(4, 6), (6, 4), (5, 5)])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("repeats", [1, 3])
def test_layer_paths_agree_in_float32(channels, order, batch_norm, repeats):
    """The public layer in float32, fused against plain: output and gradients of the input
    and every parameter, with the in-place ReLU, batch norm in training mode and in eval
    mode (folded into the weights), on upsampled inputs."""
    graph = random_graph(num_nodes=12, seed=4)
    torch.manual_seed(10 * order + channels[0])
    conv = ChebConv(graph, *channels, order=order, batch_norm=batch_norm, relu=True)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(12 // repeats, 3, channels[0])
    upstream = torch.randn(12, 3, channels[1])

    def run(fused: bool, train: bool):
        layer = copy.deepcopy(conv).train(train)
        layer.fused_cpu_kernel = fused
        inputs = x.clone().requires_grad_()
        out = layer(inputs, repeats)
        out.backward(upstream)
        return [out, inputs.grad] + [p.grad for p in layer.parameters()]

    for train in (True, False):
        fused, plain = run(True, train), run(False, train)
        assert len(fused) == len(plain) == 2 + len(list(conv.parameters()))
        for actual, expected in zip(fused, plain):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_fused_kernel_runs_on_cpu_float32_only(fused_calls, monkeypatch):
    """The fused kernel where it is tested and pays (CPU, float32, no autocast); the plain
    path in float64, under autocast and with the switch off."""
    graph = random_graph()
    conv = ChebConv(graph, 4, 4, order=3)
    x = torch.randn(graph.num_nodes, 2, 4)
    conv(x)
    assert fused_calls == [x.shape]
    conv.double()(x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv.float()(x)
    monkeypatch.setattr(ChebConv, "fused_cpu_kernel", False)
    conv(x)
    assert fused_calls == [x.shape]


@pytest.mark.parametrize("channels", [(4, 6), (6, 4), (5, 5)])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_samples_do_not_mix(kernel, channels, order):
    graph = random_graph()
    torch.manual_seed(order)
    conv = ChebConv(graph, *channels, order=order, batch_norm=False)
    x = torch.randn(graph.num_nodes, 3, channels[0])
    out = conv(x)
    assert out.shape == (graph.num_nodes, 3, channels[1]) and out.dtype == torch.float32
    for sample in range(3):  # each sample alone gives its slice of the batched output
        torch.testing.assert_close(conv(x[:, sample:sample + 1]), out[:, sample:sample + 1])
    x2 = x.clone()
    x2[:, 1] += 1.0  # changing sample 1 leaves samples 0 and 2 unchanged
    torch.testing.assert_close(conv(x2)[:, [0, 2]], out[:, [0, 2]])


def test_batch_norm_over_nodes_and_samples(kernel):
    graph = random_graph()
    conv = ChebConv(graph, 4, 3, order=3, batch_norm=True).train()
    x = torch.randn(graph.num_nodes, 5, 4)
    pre = plain_rows(x, graph, conv.weight.detach(), conv.bias.detach())
    expected = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + conv.bn.eps)
    torch.testing.assert_close(conv(x).reshape(-1, 3), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype, fused", [(torch.float64, False), (torch.float32, True),
                                          (torch.float32, False)])
def test_eval_batch_norm_folded_into_weights(affine, dtype, fused, monkeypatch):
    """Eval mode folds the running statistics into W and b: same output (and gradients) as
    the convolution followed by F.batch_norm with those statistics (float64: the plain path,
    exactly; float32: each path)."""
    monkeypatch.setattr(ChebConv, "fused_cpu_kernel", fused)
    graph = random_graph()
    torch.manual_seed(2)
    conv = ChebConv(graph, 4, 3, order=3, batch_norm=True, relu=True).to(dtype).eval()
    conv.bn = torch.nn.BatchNorm1d(3, affine=affine).to(dtype).eval()
    conv.bn.running_mean.normal_()
    conv.bn.running_var.uniform_(0.5, 2.0)
    if affine:
        with torch.no_grad():
            conv.bn.weight.normal_()
            conv.bn.bias.normal_()
    x = torch.randn(graph.num_nodes, 5, 4, dtype=dtype)
    pre = plain_rows(x, graph, conv.weight.detach(), conv.bias.detach())
    bn = conv.bn
    expected = torch.relu(torch.nn.functional.batch_norm(
        pre, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps))
    tolerance = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(conv(x).reshape(-1, 3), expected, **tolerance)
    if affine:
        conv(x).sum().backward()
        assert conv.weight.grad is not None and bn.weight.grad is not None


@pytest.mark.parametrize("channels, repeats", [((8, 16), 1), ((16, 8), 1), ((16, 8), 2)])
def test_autocast_bf16_cpu_close_to_float32(channels, repeats):
    """Under autocast (the plain path) the output is bf16 and close to float32 (the fused
    kernel), and the gradients are finite."""
    graph = random_graph(num_nodes=12)
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


def test_buffers_state_dict_cache_and_copies(kernel):
    graph = random_graph()
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


@pytest.mark.parametrize("repeats", [1, 2])
def test_wrong_input_shape_is_a_user_error(kernel, repeats):
    graph = random_graph(num_nodes=12)
    conv = ChebConv(graph, 4, 4)
    with pytest.raises(Pose2MeshError, match=rf"ChebConv expects \(N/{repeats}=6" if repeats > 1
                       else r"ChebConv expects \(N=12"):
        conv(torch.randn(12 // repeats + 1, 2, 4), repeats)
    with pytest.raises(Pose2MeshError, match="C=4"):
        conv(torch.randn(12 // repeats, 2, 5), repeats)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    """On CUDA (the plain path) output and input gradient match the CPU's fused kernel;
    fp16 autocast stays finite."""
    graph = random_graph()
    for channels in [(4, 6), (6, 4)]:
        conv = ChebConv(graph, *channels, order=3, batch_norm=False)
        x = torch.randn(graph.num_nodes, 3, channels[0], requires_grad=True)
        expected = conv(x)
        expected.sum().backward()
        conv.to("cuda")
        x_cuda = x.detach().to("cuda").requires_grad_()
        out = conv(x_cuda)
        out.sum().backward()
        torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(x_cuda.grad.cpu(), x.grad, rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.float16):
            assert torch.isfinite(conv(x.detach().to("cuda"))).all()


def test_repeat_operators_match_dense_products():
    """[P | L P] and (L P)^T against dense matrices built from the definition of P."""
    graph = random_graph(num_nodes=12, seed=5)
    laplacian = graph.matrix(torch.float64).to_dense()
    for repeats in (2, 3, 4):
        operators = repeat_operators(graph, repeats, torch.float64)
        repetition = torch.eye(12 // repeats, dtype=torch.float64).repeat_interleave(repeats, dim=0)
        torch.testing.assert_close(operators.stacked.to_dense(),
                                   torch.cat([repetition, laplacian @ repetition], dim=1))
        torch.testing.assert_close(operators.folded_laplacian.to_dense(),
                                   (laplacian @ repetition).t())
        assert repeat_operators(graph, repeats, torch.float64) is operators  # cached
    with pytest.raises(Pose2MeshError, match="not a 5x repetition"):
        repeat_operators(graph, 5)
