"""2D detector-error models applied to ground-truth keypoints.

All draws come from an explicit ``torch.Generator`` so a fixed seed fixes the noise.
"""
from __future__ import annotations

import math

import torch


def detector_noise_px(
    num_samples: int,
    num_joints: int,
    *,
    std_px: float,
    outlier_prob: float,
    outlier_radius_px: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Offsets (pixels) that mimic a 2D keypoint detector.

    Every joint gets isotropic Gaussian jitter of ``std_px``; with probability
    ``outlier_prob`` a joint is instead displaced to a uniformly random point of a disc of
    radius ``outlier_radius_px`` (a gross detection error, e.g. a confused limb).

    Args:
        outlier_radius_px: (num_samples,) disc radius per sample, e.g. a fraction of the
            person's height in pixels.
    Returns:
        (num_samples, num_joints, 2) float32 offsets in pixels.
    """
    jitter = std_px * torch.randn((num_samples, num_joints, 2), generator=generator)
    is_outlier = torch.rand((num_samples, num_joints, 1), generator=generator) < outlier_prob
    angle = 2 * math.pi * torch.rand((num_samples, num_joints), generator=generator)
    radius = outlier_radius_px[:, None] * torch.sqrt(torch.rand((num_samples, num_joints), generator=generator))
    outlier = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    return torch.where(is_outlier, outlier, jitter).float()


# ------------------------------------------------------------------ original Pose2Mesh models
# (DATA_FORMATS 1.7). Both act in crop pixels of the (W, H) = (288, 384) virtual crop and use
# the torch RNG of the batch's device (or ``generator``), so they run batched inside
# ``prepare_batch``.

# Human3.6M detector-error statistics, H36M joint order: (mu_x, mu_y, sigma_x, sigma_y, weight)
# in pixels of a 256-px crop; ``weight`` is the probability that the joint is perturbed.
H36M_ERROR_STATS = (
    (-0.06, -2.37, 1.33, 2.13, 1.00),  # Pelvis
    (-0.83, -2.07, 3.41, 2.69, 1.00),  # R_Hip
    (-0.04, -1.01, 1.74, 2.20, 0.95),  # R_Knee
    (0.52, -3.40, 1.39, 2.14, 0.93),  # R_Ankle
    (0.78, -2.79, 3.26, 2.28, 1.00),  # L_Hip
    (0.42, -0.15, 1.53, 1.99, 0.94),  # L_Knee
    (-0.15, -3.78, 1.39, 2.39, 0.93),  # L_Ankle
    (-0.05, 0.10, 1.36, 1.74, 0.99),  # Torso
    (0.14, -2.56, 1.18, 1.15, 0.99),  # Neck
    (0.13, -0.26, 0.78, 0.59, 0.98),  # Nose
    (0.09, 0.49, 1.35, 0.87, 0.99),  # Head
    (-0.19, 0.31, 2.51, 1.48, 0.99),  # L_Shoulder
    (0.11, -0.60, 1.79, 1.76, 0.95),  # L_Elbow
    (-0.02, 0.88, 2.02, 2.10, 0.91),  # L_Wrist
    (0.52, -0.12, 2.23, 1.73, 0.99),  # R_Shoulder
    (0.06, -0.44, 1.93, 1.63, 0.95),  # R_Elbow
    (0.05, 0.16, 2.02, 2.24, 0.90),  # R_Wrist
)
H36M_STATS_CROP_PX = 256.0


def h36m_gaussian_offsets_px(
    batch_size: int,
    crop_w: int,
    crop_h: int,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-joint Gaussian 2D errors of the human36 input (model 1.7a).

    For joint j, ``e ~ N(mu_j, sigma_j)`` per axis, kept with probability ``weight_j``, then
    rescaled from the 256-px crop of the statistics to the (crop_w, crop_h) crop, i.e. by
    ``(crop_w / 256, crop_h / 256)`` (anisotropic, as the original).

    Returns:
        (batch_size, 17, 2) float32 offsets in crop pixels (add them after the crop affine,
        before the flip).
    """
    stats = torch.tensor(H36M_ERROR_STATS, dtype=torch.float32, device=device)
    mean, std, weight = stats[:, 0:2], stats[:, 2:4], stats[:, 4]
    shape = (batch_size, len(H36M_ERROR_STATS))
    normal = torch.randn((*shape, 2), generator=generator, device=device)
    keep = torch.rand(shape, generator=generator, device=device) < weight
    scale = torch.tensor([crop_w, crop_h], dtype=torch.float32, device=device) / H36M_STATS_CROP_PX
    return (mean + std * normal) * keep[..., None] * scale


# COCO keypoint model (1.7b). OKS sigmas / 10, COCO-17 order.
COCO_KEYPOINT_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
)
COCO_FLIP_PARTNER = (-1, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
_FACE, _SHOULDERS_ANKLES, _HIPS = (0, 1, 2, 3, 4), (5, 6, 15, 16), (11, 12)
_JITTER_GROUP = tuple(0 if j in (0, 13, 14, 15, 16) else (2 if j in _HIPS else 1) for j in range(17))
_MISS_GROUP = tuple(0 if j in _FACE else (1 if j in _SHOULDERS_ANKLES else 2) for j in range(17))
_INVERSION_PROB = tuple(0.01 if j < 5 else (0.03 if j < 11 else 0.06) for j in range(17))
# proposals the original draws per type: jitter, miss (per candidate centre), inversion, good
_NUM_JITTER, _NUM_MISS, _NUM_INVERSION, _NUM_GOOD = 500, 2000, 500, 125
_RADIUS_BINS = 16


def _keypoint_distance(area: torch.Tensor, sigma: torch.Tensor, similarity: float) -> torch.Tensor:
    """Distance at keypoint similarity k: sqrt(-2 area (2 sigma)^2 ln k); (B,), (17,) -> (B, 17)."""
    return torch.sqrt(-2.0 * area[:, None] * (2.0 * sigma) ** 2 * math.log(similarity))


def _excluded_half_angle(radius, distance, limit):
    """Half-width of the arc of a circle of ``radius`` around a centre whose points lie within
    ``limit`` of another centre at ``distance`` (angles measured from the direction to it).

    ``limit`` None means "within the proposal's own radius". Shapes broadcast; returns radians
    in [0, pi] (pi: the whole circle is excluded)."""
    safe_d = distance.clamp_min(1e-12)
    safe_r = radius.clamp_min(1e-12)
    if limit is None:  # |p - o| <= r  <=>  cos(theta) >= D / (2 r)
        cos_limit = safe_d / (2.0 * safe_r)
        coincident = distance < 1e-9  # every point is exactly r away: none is farther
        alpha = torch.arccos(cos_limit.clamp(-1.0, 1.0))
        return torch.where(coincident, torch.full_like(alpha, math.pi), alpha)
    cos_limit = (radius**2 + distance**2 - limit**2) / (2.0 * safe_r * safe_d)
    alpha = torch.arccos(cos_limit.clamp(-1.0, 1.0))
    return torch.where(distance < 1e-9, torch.zeros_like(alpha), alpha)


def _restricted_ring(center, other, has_other, r_low, r_high, limit, generator):
    """Proposal distribution of the original restricted to its acceptance region.

    Proposals are ``center + r (cos t, sin t)`` with t uniform and r uniform in [r_low, r_high];
    one survives if it lies farther than ``limit`` (or, with limit None, than its own r) from
    ``other`` (ignored where ``has_other`` is False).

    Returns:
        point (B, J, 2): one draw from the surviving region (radius from a 16-bin histogram of
        the acceptance along r, angle exact given r); acceptance (B, J): the probability that
        one proposal survives.
    """
    delta = other - center
    distance = delta.norm(dim=-1)
    grid = (torch.arange(_RADIUS_BINS, device=center.device, dtype=center.dtype) + 0.5) / _RADIUS_BINS
    radii = r_low[..., None] + (r_high - r_low)[..., None] * grid
    lim = None if limit is None else limit[..., None]
    alpha = _excluded_half_angle(radii, distance[..., None], lim)
    alpha = torch.where(has_other[..., None], alpha, torch.zeros_like(alpha))
    accept = 1.0 - alpha / math.pi  # (B, J, bins)
    acceptance = accept.mean(-1)

    u = torch.rand((*accept.shape[:-1], 3), generator=generator, device=center.device)
    cumulative = accept.cumsum(-1)
    bins = (u[..., 2:] * cumulative[..., -1:] >= cumulative).sum(-1).clamp_max(_RADIUS_BINS - 1)
    radius = r_low + (r_high - r_low) * (bins + u[..., 0]) / _RADIUS_BINS
    alpha_r = _excluded_half_angle(radius, distance, limit)
    alpha_r = torch.where(has_other, alpha_r, torch.zeros_like(alpha_r))
    towards_other = torch.atan2(delta[..., 1], delta[..., 0])
    angle = towards_other + alpha_r + u[..., 1] * (2 * math.pi - 2 * alpha_r)
    point = center + radius[..., None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    return point, acceptance


def _any_survives(acceptance, count, generator):
    """Whether at least one of ``count`` independent proposals survives: (B, J) bool."""
    p_any = 1.0 - (1.0 - acceptance).clamp(0.0, 1.0) ** count
    return torch.rand(acceptance.shape, generator=generator, device=acceptance.device) < p_any


def _type_probabilities(num_valid: torch.Tensor) -> torch.Tensor:
    """(B,) valid-keypoint counts -> (B, 17, 4) prior probabilities (jitter, miss, inversion, good)."""
    device = num_valid.device
    few, very_few = (num_valid <= 10)[:, None], (num_valid <= 5)[:, None]
    jitter_group = torch.tensor(_JITTER_GROUP, device=device)
    miss_group = torch.tensor(_MISS_GROUP, device=device)
    jitter_many = torch.tensor([0.10, 0.15, 0.20], device=device)[jitter_group]
    jitter_few = torch.tensor([0.15, 0.20, 0.25], device=device)[jitter_group]
    jitter = torch.where(few, jitter_few, jitter_many)
    miss_many = torch.tensor([0.02, 0.05, 0.10], device=device)[miss_group]
    miss_few = torch.tensor([0.10, 0.13, 0.15], device=device)[miss_group]
    miss_very_few = torch.tensor([0.15, 0.20, 0.25], device=device)[miss_group]
    miss = torch.where(very_few, miss_very_few, torch.where(few, miss_few, miss_many))
    inversion = torch.tensor(_INVERSION_PROB, device=device).expand_as(jitter)
    good = 1.0 - jitter - miss - inversion
    return torch.stack([jitter, miss, inversion, good], dim=-1)


# The original perturbs the joints in index order, writing each result back before the next
# one: a joint whose flip partner comes earlier (R_Eye ... R_Ankle, the second of each pair)
# sees that partner already perturbed, the others see it clean. No joint shares a pass with its
# partner, so two batched passes reproduce the order exactly.
_FIRST_PASS = tuple(j for j, p in enumerate(COCO_FLIP_PARTNER) if p < 0 or p > j)
_SECOND_PASS = tuple(j for j, p in enumerate(COCO_FLIP_PARTNER) if 0 <= p < j)


def _perturb_joints(gt, partner, partner_ok, sigma, area, prob, generator):
    """One error type drawn and placed for each of K joints (see :func:`synthesize_coco_pose`).

    Args:
        gt, partner: (B, K, 2) the joints and the current positions of their flip partners;
        partner_ok: (B, K) bool, the partner exists and is valid; sigma: (K,) OKS sigma / 10;
        area: (B,) crop pixels^2; prob: (B, K, 4) prior type probabilities.
    Returns:
        (B, K, 2) the chosen points, (0, 0) where every type failed, and (B, K) bool ``kept``.
    """
    device = gt.device
    d10, d50, d85 = (_keypoint_distance(area, sigma, k) for k in (0.10, 0.50, 0.85))
    zeros = torch.zeros_like(d50)

    jitter, a = _restricted_ring(gt, partner, partner_ok, d85, d50, None, generator)
    jitter_ok = _any_survives(a, _NUM_JITTER, generator)
    good, a = _restricted_ring(gt, partner, partner_ok, zeros, d85, None, generator)
    good_ok = _any_survives(a, _NUM_GOOD, generator)
    inversion, a = _restricted_ring(partner, gt, partner_ok, zeros, d50, None, generator)
    inversion_ok = partner_ok & _any_survives(a, _NUM_INVERSION, generator)

    miss_gt, a_gt = _restricted_ring(gt, partner, partner_ok, d50, d10, d50, generator)
    miss_p, a_p = _restricted_ring(partner, gt, partner_ok, d50, d10, d50, generator)
    count = torch.full_like(a_gt, float(_NUM_MISS))
    count_gt = torch.binomial(count, a_gt.clamp(0.0, 1.0), generator=generator)
    count_p = torch.binomial(count, a_p.clamp(0.0, 1.0), generator=generator)
    count_p = torch.where(partner_ok, torch.floor(count_p / 4.0), torch.zeros_like(count_p))
    pool = count_gt + count_p
    from_partner = torch.rand(pool.shape, generator=generator, device=device) * pool >= count_gt
    miss = torch.where(from_partner[..., None] & (pool > 0)[..., None], miss_p, miss_gt)
    miss_ok = pool > 0

    available = torch.stack([jitter_ok, miss_ok, inversion_ok, good_ok], dim=-1)
    prob = torch.where(available, prob, torch.zeros_like(prob))
    total = prob.sum(-1)
    kept = total > 0
    cumulative = prob.cumsum(-1)
    u = torch.rand(total.shape, generator=generator, device=device) * total
    choice = (u[..., None] >= cumulative).sum(-1).clamp_max(3)
    candidates = torch.stack([jitter, miss, inversion, good], dim=2)  # (B, K, 4, 2)
    chosen = torch.gather(candidates, 2, choice[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
    return torch.where(kept[..., None], chosen, torch.zeros_like(chosen)), kept


def synthesize_coco_pose(
    keypoints_px: torch.Tensor,
    valid: torch.Tensor,
    area_px2: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's PoseFix-style COCO keypoint error model (1.7b), batched.

    Per valid keypoint j (distances ``d_k`` at keypoint similarity k = 0.10, 0.50, 0.85 from
    the person's ``area`` and the OKS sigma / 10) one error type is drawn and a point of that
    type is placed:

    * jitter: around the ground truth, radius in [d85, d50];
    * miss: around the ground truth or the flip partner, radius in [d50, d10], farther than d50
      from the other centre (the partner's survivors enter the pool at a quarter of their count);
    * inversion: around the valid flip partner, radius in [0, d50];
    * good: around the ground truth, radius in [0, d85];
    * swap: never (no other people are given).

    Jitter, inversion and good points must lie farther than their own radius from the other
    candidate centre. Prior probabilities depend on the joint and on the number of valid
    keypoints (DATA_FORMATS 1.7b); a type without a surviving proposal gets probability 0 and
    the rest are renormalised. A keypoint whose every type failed becomes (0, 0) and
    ``kept`` False (as the original's (0, 0, 0)). Invalid keypoints are returned unchanged.

    As in the original, the joints are perturbed in index order and each result is written
    back before the next joint: the flip partner of the second joint of each left/right pair
    (R_Eye, R_Ear, ..., R_Ankle) is its twin's *perturbed* position (the centre of its
    inversion and miss proposals and of the exclusion test), while the first joint of a pair
    sees its twin clean. Partner validity is that of the input keypoints.

    The original draws 500 / 2000 / 500 / 125 proposals per type and keeps a random survivor.
    This does the same in closed form, which is ~1000x cheaper: the number of survivors is
    drawn from its binomial law with the exact acceptance probability, and the kept point from
    the proposal law restricted to the acceptance region (exact angle, radius on a 16-bin grid).

    Args:
        keypoints_px: (B, 17, 2) COCO-17 keypoints in crop pixels.
        valid: (B, 17) bool.
        area_px2: (B,) person area in crop pixels^2.
    Returns:
        (B, 17, 2) perturbed keypoints and (B, 17) bool ``kept``.
    """
    device = keypoints_px.device
    gt = keypoints_px.float()
    valid = valid.bool()
    sigma = torch.tensor(COCO_KEYPOINT_SIGMAS, device=device)
    area = area_px2.float().clamp_min(0.0)
    partner_index = torch.tensor([max(p, 0) for p in COCO_FLIP_PARTNER], device=device)
    has_partner = torch.tensor([p >= 0 for p in COCO_FLIP_PARTNER], device=device)
    partner_ok = has_partner & valid[:, partner_index]  # (B, 17)
    prob = _type_probabilities(valid.sum(dim=1))

    out = gt.clone()
    kept = torch.ones_like(valid)
    for joints in (_FIRST_PASS, _SECOND_PASS):
        idx = torch.tensor(joints, device=device)
        chosen, ok = _perturb_joints(
            gt[:, idx], out[:, partner_index[idx]], partner_ok[:, idx], sigma[idx], area, prob[:, idx], generator
        )
        out[:, idx] = torch.where(valid[:, idx, None], chosen, gt[:, idx])
        kept[:, idx] = ok | ~valid[:, idx]
    return out.to(keypoints_px.dtype), kept
