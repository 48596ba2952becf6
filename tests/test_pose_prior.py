"""Pose priors (anny body and right hand) and the phenotype sampler."""
import numpy as np
import pytest
import torch

from pose2mesh.datasets.pose_prior import (
    AGE_PARAM_ANCHORS,
    AGE_YEARS_ANCHORS,
    ANNY_BODY_BONES,
    ANNY_HAND_BONES,
    HEIGHT_RANGE,
    PHENOTYPE_LABELS,
    BodyPosePrior,
    HandPosePrior,
    age_param_to_years,
    sample_phenotypes,
    years_to_age_param,
)
from pose2mesh.errors import Pose2MeshError

BODY_KEY_POSES = {
    "standing", "walk_contact", "walk_passing", "walk_toe_off", "run", "sitting", "squatting",
    "kneeling", "kneeling_one_knee", "bending_forward", "reaching_forward", "reaching_up",
    "reaching_side", "arms_raised", "crossing_arms", "lying_supine", "t_pose", "a_pose",
}
HAND_KEY_POSES = {"open", "relaxed", "fist", "grasp", "pinch", "point", "thumbs_up", "spread"}


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def body_prior():
    return BodyPosePrior()


@pytest.fixture(scope="module")
def hand_prior():
    return HandPosePrior()


def test_bone_labels_match_anny(anny_body, anny_hand):
    assert ANNY_BODY_BONES == tuple(anny_body.bone_labels)
    assert ANNY_HAND_BONES == tuple(anny_hand.bone_labels)
    assert BodyPosePrior(anny_body.bone_labels).num_bones == 104
    assert HandPosePrior(anny_hand.bone_labels).num_bones == 21


@pytest.mark.parametrize("prior_name, bones", [("body_prior", 104), ("hand_prior", 21)])
def test_shape_dtype_determinism(prior_name, bones, request):
    prior = request.getfixturevalue(prior_name)
    poses = prior.sample(64, generator(0))
    assert poses.shape == (64, bones, 3) and poses.dtype == torch.float32
    assert torch.isfinite(poses).all()
    assert torch.equal(poses, prior.sample(64, generator(0)))
    assert not torch.equal(poses, prior.sample(64, generator(1)))
    # the synthetic dataset's call
    other = prior.sample(8, generator=generator(0), key_pose_prob=0.0, noise_deg=20.0)
    assert other.shape == (8, bones, 3)


@pytest.mark.parametrize("prior_name", ["body_prior", "hand_prior"])
@pytest.mark.parametrize("key_pose_prob", [0.0, 0.7, 1.0])
def test_limits_respected(prior_name, key_pose_prob, request):
    prior = request.getfixturevalue(prior_name)
    poses = prior.sample(512, generator(3), key_pose_prob=key_pose_prob, noise_deg=30.0)
    eps = 1e-6
    clamped = prior.clamped[None, :, None]
    assert ((poses >= prior.lower - eps) | ~clamped).all()
    assert ((poses <= prior.upper + eps) | ~clamped).all()
    assert torch.equal(prior.clamp(prior.key_poses), prior.key_poses)  # key poses are legal


def test_anatomical_limits(body_prior):
    """Knees never hyperextend; hips flex forward far and extend little."""
    deg = torch.rad2deg
    for side in ("L", "R"):
        knee = body_prior.bone_labels.index(f"lowerleg01.{side}")
        hip = body_prior.bone_labels.index(f"upperleg01.{side}")
        assert deg(body_prior.lower[knee, 0]) >= -5 and deg(body_prior.upper[knee, 0]) >= 140
        assert deg(body_prior.lower[hip, 0]) <= -120 and deg(body_prior.upper[hip, 0]) <= 30
    # fingers, toes and eyes stay near rest
    minor = [i for i, bone in enumerate(body_prior.bone_labels)
             if bone.startswith(("finger", "toe", "eye"))]
    poses = body_prior.sample(512, generator(2), key_pose_prob=0.5)
    assert deg(poses[:, minor]).std() < 6


def test_key_poses_by_name(body_prior, hand_prior):
    assert set(body_prior.key_pose_names) == BODY_KEY_POSES
    assert set(hand_prior.key_pose_names) == HAND_KEY_POSES
    assert body_prior.key_pose("sitting").shape == (104, 3)
    assert hand_prior.key_pose("fist").shape == (21, 3)
    assert torch.count_nonzero(body_prior.key_pose("a_pose")) == 0
    with pytest.raises(Pose2MeshError, match="unknown key pose"):
        body_prior.key_pose("moonwalk")


def test_not_an_anny_rig():
    with pytest.raises(Pose2MeshError, match="root"):
        BodyPosePrior(["pelvis", "spine"])
    with pytest.raises(Pose2MeshError, match="no bone"):
        HandPosePrior(["root", "wrist.R"])


def _heads(model, poses):
    phenotype = torch.full((len(poses), 6), 0.5)
    with torch.no_grad():
        heads = model(pose_aa=poses, phenotype=phenotype).joints_m
    labels = list(model.bone_labels)
    return {label: heads[:, labels.index(label)] for label in labels}


def test_key_poses_look_like_their_names(anny_body, body_prior):
    """Joint positions (world: +x left, -y front, +z up) of a few key poses."""
    names = ["standing", "sitting", "squatting", "lying_supine", "arms_raised", "walk_contact"]
    h = _heads(anny_body, torch.stack([body_prior.key_pose(n) for n in names]))
    z = {k: v[..., 2] for k, v in h.items()}
    standing, sitting, squatting, lying, raised, walking = range(6)
    for side in ("L", "R"):
        hip, knee, ankle = (f"upperleg01.{side}", f"lowerleg01.{side}", f"foot.{side}")
        assert z["head"][standing] > z[hip][standing] > z[knee][standing] > z[ankle][standing]
        # sitting: thighs horizontal and forward, shins vertical
        assert abs(z[knee][sitting] - z[hip][sitting]) < 0.1
        assert h[knee][sitting, 1] < h[hip][sitting, 1] - 0.3
        assert abs(h[ankle][sitting, 1] - h[knee][sitting, 1]) < 0.1
        # squatting: hips down near knee height, knees in front of the ankles
        assert z[hip][squatting] < z[knee][squatting] + 0.15
        assert h[knee][squatting, 1] < h[ankle][squatting, 1]
        # arms raised: wrists above the head
        assert z[f"wrist.{side}"][raised] > z["head"][raised]
    lying_extent = torch.stack([v[lying] for v in h.values()])
    assert np.ptp(lying_extent[:, 2].numpy()) < 0.45  # flat
    assert np.ptp(lying_extent[:, 1].numpy()) > 1.3  # long along y
    # walk_contact leads with the left foot
    assert h["foot.L"][walking, 1] < h["foot.R"][walking, 1] - 0.3


def test_mirroring_reflects_the_body(anny_body, body_prior):
    poses = body_prior.sample(8, generator(5), mirror_prob=0.0)
    mirrored = body_prior.mirror(poses)
    assert torch.allclose(body_prior.mirror(mirrored), poses)
    h, hm = _heads(anny_body, poses), _heads(anny_body, mirrored)
    reflect = torch.tensor([-1.0, 1.0, 1.0])
    for label, twin in (("foot.L", "foot.R"), ("wrist.R", "wrist.L"), ("head", "head"),
                        ("lowerarm01.L", "lowerarm01.R")):
        error = (hm[twin] - h[label] * reflect).norm(dim=-1)
        assert error.max() < 0.02, (label, error)


def test_hand_fist_closes_and_open_extends(anny_hand, hand_prior):
    poses = torch.stack([hand_prior.key_pose(n) for n in ("open", "fist", "point")])
    h = _heads(anny_hand, poses)
    open_, fist, point = range(3)

    def reach(label, i):  # distance from the wrist to a distal joint
        return (h[label][i] - h["wrist.R"][i]).norm()

    for finger in (3, 4, 5):
        assert reach(f"finger{finger}-3.R", fist) < 0.75 * reach(f"finger{finger}-3.R", open_)
    assert reach("finger2-3.R", point) > 0.9 * reach("finger2-3.R", open_)


def test_phenotypes():
    adults = sample_phenotypes(2000, generator(0))
    assert adults.shape == (2000, len(PHENOTYPE_LABELS)) and adults.dtype == torch.float32
    assert adults.min() >= 0 and adults.max() <= 1
    assert torch.equal(adults, sample_phenotypes(2000, generator(0)))
    age = adults[:, PHENOTYPE_LABELS.index("age")]
    years = age_param_to_years(age)
    assert years.min() >= 18 - 1e-3 and years.max() <= 80 + 1e-3
    assert age.min() >= 0.77 - 1e-6
    height = adults[:, PHENOTYPE_LABELS.index("height")]
    assert height.min() >= HEIGHT_RANGE[0] and height.max() <= HEIGHT_RANGE[1]
    for label in ("gender", "muscle", "weight", "proportions"):
        column = adults[:, PHENOTYPE_LABELS.index(label)]
        assert column.min() < 0.05 and column.max() > 0.95
    everyone = sample_phenotypes(2000, generator(0), all_ages=True)
    all_years = age_param_to_years(everyone[:, PHENOTYPE_LABELS.index("age")])
    assert all_years.min() < 10 and all_years.max() > 80


def test_age_calibration_matches_anny():
    """The age anchors are anny's own calibration (anny/data/shape_calibration)."""
    from anny.paths import get_anny_root_dir

    data = torch.load(get_anny_root_dir() / "data" / "shape_calibration" / "boys.pth",
                      weights_only=True)["morphological_age_mapping"]
    assert np.allclose(data["anny_age_anchors"].numpy(), AGE_PARAM_ANCHORS)
    assert np.allclose(data["morphological_age_anchors"].numpy(), AGE_YEARS_ANCHORS)
    years = torch.tensor([0.5, 18.0, 40.0, 100.0])
    assert torch.allclose(age_param_to_years(years_to_age_param(years)), years, atol=1e-4)
