"""SupportRegressor: joints through the regressor's support equal the full product."""
import pytest
import torch

from pose2mesh.body_models.joint_regression import SupportRegressor


@pytest.mark.parametrize("zero_columns", [True, False])
def test_support_regressor_matches_full_product(zero_columns):
    generator = torch.Generator().manual_seed(0)
    matrix = torch.rand(5, 40, generator=generator, dtype=torch.float64)
    if zero_columns:
        matrix[:, torch.rand(40, generator=generator) < 0.8] = 0.0
        matrix[:, 7] = 0.0
        matrix[2, 7] = 0.25  # a column weighted by one joint only stays in the support
    regressor = SupportRegressor(matrix)
    expected_support = int((matrix != 0).any(dim=0).sum())
    assert regressor.weights.shape == (5, expected_support)
    assert 7 in regressor.vertex_index.tolist()

    vertices = torch.randn(3, 40, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    joints = regressor(vertices)
    reference = torch.einsum("jv,bvc->bjc", matrix.float().double(), vertices)
    torch.testing.assert_close(joints, reference)
    assert joints.dtype == torch.float64

    upstream = torch.randn(3, 5, 3, generator=generator, dtype=torch.float64)
    (grad,) = torch.autograd.grad(joints, vertices, upstream)
    (reference_grad,) = torch.autograd.grad(reference, vertices, upstream)
    torch.testing.assert_close(grad, reference_grad)
    if zero_columns:  # vertices outside the support get no gradient
        outside = (matrix == 0).all(dim=0)
        assert float(grad[:, outside].abs().max()) == 0.0
