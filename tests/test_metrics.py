"""Metrics: hand-computed MPJPE, PA invariance to similarity transforms, a closed-form PA case
and the no-reflection rule."""
from __future__ import annotations

import math

import pytest
import torch

from pose2mesh import metrics


def random_rotation(generator: torch.Generator) -> torch.Tensor:
    """A proper rotation (det +1) from the QR of a Gaussian matrix, float64."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def test_mpjpe_and_mpvpe_hand_computed():
    # sample 0: errors 0 and |(3, 4, 0)| = 5 -> mean 2.5
    # sample 1: errors |(1, 2, 2)| = 3 and |(0, 0, 1)| = 1 -> mean 2
    gt = torch.zeros(2, 2, 3)
    pred = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]],
                         [[1.0, 2.0, 2.0], [0.0, 0.0, 1.0]]])
    for fn in (metrics.mpjpe, metrics.mpvpe):
        result = fn(pred, gt)
        assert result.shape == (2,)
        torch.testing.assert_close(result, torch.tensor([2.5, 2.0]))


def test_mpjpe_does_not_root_align():
    gt = torch.randn(3, 14, 3)
    offset = torch.tensor([10.0, -20.0, 5.0])
    torch.testing.assert_close(metrics.mpjpe(gt + offset, gt),
                               torch.full((3,), float(offset.norm())))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pa_error_vanishes_for_any_similarity_transform(dtype):
    generator = torch.Generator().manual_seed(0)
    batch, num_points = 16, 17
    gt = torch.randn(batch, num_points, 3, generator=generator, dtype=torch.float64) * 300.0
    rotations = torch.stack([random_rotation(generator) for _ in range(batch)])
    scales = 0.3 + 2.7 * torch.rand(batch, generator=generator, dtype=torch.float64)  # 0.3..3
    shifts = torch.randn(batch, 1, 3, generator=generator, dtype=torch.float64) * 1000.0
    pred = scales[:, None, None] * gt @ rotations.transpose(1, 2) + shifts
    pred, gt = pred.to(dtype), gt.to(dtype)
    assert (metrics.mpjpe(pred, gt) > 10.0).all()
    tolerance = 1e-3 if dtype == torch.float32 else 1e-8
    assert (metrics.pa_mpjpe(pred, gt) < tolerance).all()
    assert (metrics.pa_mpvpe(pred, gt) < tolerance).all()
    aligned = metrics.rigid_align(pred, gt)
    assert aligned.dtype == dtype and aligned.shape == pred.shape


def test_pa_closed_form_rectangle_onto_square():
    # gt: square corners (+-1, +-1, 0); pred: rectangle (+-a, +-b, 0), same corner order,
    # then moved by an arbitrary rotation R0 and translation (PA is invariant to those).
    # Derivation (without R0): centred already, H = A^T B / 4 = diag(a, b, 0), so
    # U = V = I, S = (a, b, 0), R = I (the third axis is free for planar points; either
    # sign maps the z = 0 plane identically). var(A) = (4a^2 + 4b^2) / 4 = a^2 + b^2 and
    # c = (a + b) / (a^2 + b^2) -- which is also d/dc sum ((ca - 1)^2 + (cb - 1)^2) = 0.
    # Every corner then has the error sqrt((ca - 1)^2 + (cb - 1)^2).
    # a = 2, b = 1: c = 3/5, ca = 1.2, cb = 0.6 -> error sqrt(0.04 + 0.16) = sqrt(0.2).
    a, b = 2.0, 1.0
    signs = torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=torch.float64)
    gt = torch.cat([signs, torch.zeros(4, 1, dtype=torch.float64)], dim=1)[None]
    rectangle = gt * torch.tensor([a, b, 0.0], dtype=torch.float64)
    rotation = random_rotation(torch.Generator().manual_seed(3))
    pred = rectangle @ rotation.T + torch.tensor([5.0, -7.0, 2.0], dtype=torch.float64)
    c = (a + b) / (a * a + b * b)
    expected = math.sqrt((c * a - 1) ** 2 + (c * b - 1) ** 2)
    assert math.isclose(expected, math.sqrt(0.2), rel_tol=1e-12)
    torch.testing.assert_close(metrics.pa_mpjpe(pred, gt), torch.tensor([expected], dtype=torch.float64))
    aligned = metrics.rigid_align(pred, gt)[0]
    torch.testing.assert_close(aligned, rectangle[0] * c)


def test_mirrored_prediction_is_not_reflected():
    # A chiral, non-planar point set and its mirror image (x -> -x). A reflection would align
    # them exactly; a proper rotation cannot.
    generator = torch.Generator().manual_seed(7)
    gt = torch.randn(4, 10, 3, generator=generator, dtype=torch.float64) * 100.0
    pred = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    aligned = metrics.rigid_align(pred, gt)
    assert (metrics.pa_mpjpe(pred, gt) > 1.0).all()
    # the map from centred pred to centred aligned is linear (c R); its determinant is > 0
    a0 = pred - pred.mean(1, keepdim=True)
    b0 = aligned - aligned.mean(1, keepdim=True)
    linear = torch.linalg.lstsq(a0, b0).solution  # (B, 3, 3): a0 @ M = b0
    torch.testing.assert_close(a0 @ linear, b0)
    assert (torch.linalg.det(linear) > 0).all()
    # and it is a scaled rotation: M^T M = c^2 I
    gram = linear.transpose(1, 2) @ linear
    scale2 = gram.diagonal(dim1=1, dim2=2).mean(-1)
    torch.testing.assert_close(gram, scale2[:, None, None] * torch.eye(3, dtype=torch.float64))
