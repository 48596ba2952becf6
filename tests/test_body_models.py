"""Body models: anny body/hand, smpl and mano (fake official-layout files), regressors."""
import dataclasses
import math
import sys

import numpy as np
import pytest
import torch
from fake_smpl import write_fake_mano, write_fake_smpl
from pose2mesh.body_models import BODY_MODEL_NAMES, build_body_model
from pose2mesh.body_models.anny_model import build_anny_hand
from pose2mesh.body_models.base import BodyOutput
from pose2mesh.body_models.decimated import DecimatedBodyModel
from pose2mesh.body_models.legacy_pickle import load_legacy_pickle
from pose2mesh.body_models.regressor_asset import save_regressor_asset
from pose2mesh.body_models.smplx_models import mano_model_path, smpl_model_path
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import MANO

ANNY_PHENOTYPES = ["gender", "age", "muscle", "weight", "height", "proportions"]


def random_params(model, batch_size, seed=0, pose_scale=0.3):
    generator = torch.Generator().manual_seed(seed)
    params = model.zero_params(batch_size)
    params["pose_aa"] = pose_scale * torch.randn(params["pose_aa"].shape, generator=generator)
    if "phenotype" in params:
        params["phenotype"] = torch.rand(params["phenotype"].shape, generator=generator)
    else:
        params["shape"] = torch.randn(params["shape"].shape, generator=generator)
    params["transl_m"] = torch.randn(params["transl_m"].shape, generator=generator)
    return params


def state_size(model):
    return sum(value.numel() for value in model.state_dict().values())


def one_line_error(match, call, *args, **kwargs):
    with pytest.raises(Pose2MeshError, match=match) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_unknown_model_name_lists_names():
    message = one_line_error("unknown body model 'smplx'", build_body_model, "smplx")
    assert all(name in message for name in BODY_MODEL_NAMES)


def test_unknown_topologies():
    one_line_error("notoes_collapse10pc", build_body_model, "anny", topology="smpl")
    one_line_error("only 'default'", build_body_model, "anny_hand", topology="notoes")
    one_line_error("only 'default'", build_body_model, "smpl", topology="notoes")


# ----------------------------------------------------------------------------------- anny

@pytest.mark.parametrize(
    "fixture, num_vertices, num_faces, num_bones",
    [("anny_body", 13718, 27420, 104), ("anny_hand", 1609, 3196, 21)],
)
def test_anny_sizes_and_types(request, fixture, num_vertices, num_faces, num_bones):
    model = request.getfixturevalue(fixture)
    assert model.num_vertices == num_vertices
    assert model.faces.shape == (num_faces, 3) and model.faces.dtype == torch.int64
    assert int(model.faces.max()) == num_vertices - 1
    assert model.rest_vertices_m.shape == (num_vertices, 3)
    assert model.rest_vertices_m.dtype == torch.float32
    assert len(model.bone_labels) == num_bones and model.bone_labels[0] == "root"
    assert model.phenotype_labels == ANNY_PHENOTYPES
    assert model.param_shapes == {"pose_aa": (num_bones, 3), "phenotype": (6,), "transl_m": (3,)}
    zero = model.zero_params(2)
    assert zero["pose_aa"].abs().sum() == 0 and torch.all(zero["phenotype"] == 0.5)
    assert state_size(model) < 100  # no mesh data in checkpoints (anny keeps a few anchors)


@pytest.mark.parametrize("fixture", ["anny_body", "anny_hand"])
def test_anny_zero_pose_is_rest(request, fixture):
    model = request.getfixturevalue(fixture)
    vertices = model(**model.zero_params(2)).vertices_m
    assert vertices.dtype == torch.float32
    torch.testing.assert_close(vertices, model.rest_vertices_m.expand(2, -1, -1), atol=1e-6, rtol=0)
    # The zero pose is anny's reference pose: the template re-oriented bone by bone, a
    # standing body within 2 cm of anny's raw template at phenotype 0.5.
    template = model.anny.get_rest_vertices(
        model.anny.get_phenotype_blendshape_coefficients()
    )[0]
    assert (vertices[0] - template).norm(dim=-1).max() < 0.02
    size_m = float((vertices[0].max(0).values - vertices[0].min(0).values).max())
    assert 1.5 < size_m < 1.9 if fixture == "anny_body" else 0.1 < size_m < 0.3


def test_anny_small_topology():
    model = build_body_model("anny", topology="notoes_collapse3pc")
    assert model.num_vertices == 369 and len(model.bone_labels) == 104
    torch.testing.assert_close(model(**model.zero_params(1)).vertices_m[0], model.rest_vertices_m)


@pytest.mark.parametrize("fixture", ["anny_body", "anny_hand"])
def test_anny_batch_is_differentiable(request, fixture):
    model = request.getfixturevalue(fixture)
    params = {key: value.requires_grad_() for key, value in random_params(model, 3).items()}
    vertices = model(**params).vertices_m
    assert vertices.shape == (3, model.num_vertices, 3) and vertices.dtype == torch.float32
    assert not torch.allclose(vertices[0], vertices[1])
    vertices.square().sum().backward()
    for key, value in params.items():
        assert torch.isfinite(value.grad).all() and value.grad.abs().sum() > 0, key
    # also finite at the zero pose (axis-angle -> rotation is singular-looking at 0)
    pose = torch.zeros(1, *model.param_shapes["pose_aa"], requires_grad=True)
    model(pose_aa=pose).vertices_m.sum().backward()
    assert torch.isfinite(pose.grad).all()


def test_anny_samples_are_independent(anny_hand):
    params = random_params(anny_hand, 3, seed=1)
    batch = anny_hand(**params).vertices_m
    single = anny_hand(**{key: value[1:2] for key, value in params.items()}).vertices_m
    torch.testing.assert_close(batch[1:2], single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["anny_body", "anny_hand"])
def test_anny_root_rotation_is_global(request, fixture):
    """Bone 0 rotates the whole mesh about a fixed point, in world axes."""
    model = request.getfixturevalue(fixture)
    pose = torch.zeros(1, *model.param_shapes["pose_aa"])
    pose[0, 0, 2] = math.pi / 2
    rotated = model(pose_aa=pose).vertices_m[0]
    rot_z = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    offset = rotated - model.rest_vertices_m @ rot_z.T  # = (I - Rz) c for the centre c
    assert float((offset - offset.mean(0)).abs().max()) < 1e-5
    assert float(offset[:, 2].abs().max()) < 1e-5


def test_anny_translation(anny_hand):
    """The translation rides in the root transform: every vertex moves by it, and the
    gradient of the summed vertices with respect to it is the vertex count."""
    params = random_params(anny_hand, 2)
    params["transl_m"].requires_grad_(True)
    moved = anny_hand(**params).vertices_m
    moved.sum().backward()
    transl_m = params.pop("transl_m")
    torch.testing.assert_close(moved, anny_hand(**params).vertices_m + transl_m[:, None])
    torch.testing.assert_close(transl_m.grad, torch.full_like(transl_m, anny_hand.num_vertices))


def test_output_dtype_and_device_follow_model(anny_hand):
    params = {key: value.double() for key, value in random_params(anny_hand, 2).items()}
    vertices = anny_hand(**params).vertices_m
    assert vertices.dtype == torch.float32 and vertices.device == params["pose_aa"].device
    meta_pose = torch.zeros(1, 21, 3, device="meta")
    message = one_line_error("is on meta but the model is on cpu", anny_hand, pose_aa=meta_pose)
    assert message.startswith("anny_hand: pose_aa")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_anny_on_cuda():
    model = build_anny_hand().to("cuda")
    params = random_params(model, 2)
    vertices = model(**{key: value.cuda() for key, value in params.items()}).vertices_m
    assert vertices.device.type == "cuda" and vertices.dtype == torch.float32
    cpu = build_anny_hand()(**params).vertices_m
    torch.testing.assert_close(vertices.cpu(), cpu, atol=1e-5, rtol=0)


def test_bad_parameters_give_one_line_errors(anny_body):
    message = one_line_error("pose_aa must have shape", anny_body, pose_aa=torch.zeros(2, 5))
    assert message == "anny: pose_aa must have shape (B, 104, 3), got (2, 5)"
    one_line_error(r"phenotype must have shape \(B, 6,?\)", anny_body,
                   pose_aa=torch.zeros(1, 104, 3), phenotype=torch.zeros(1, 5))
    one_line_error("'pose_aa' is required", anny_body, phenotype=torch.zeros(1, 6))
    one_line_error("unknown parameter", anny_body, pose_aa=torch.zeros(1, 104, 3), betas=1)
    one_line_error("must be a torch.Tensor", anny_body, pose_aa=np.zeros((1, 104, 3)))
    one_line_error("transl_m has batch size 3 but pose_aa has 2", anny_body,
                   pose_aa=torch.zeros(2, 104, 3), transl_m=torch.zeros(3, 3))
    one_line_error(
        "vertices must have shape", anny_body.regress_joints, torch.zeros(1, 10, 3), "human36"
    )


# ------------------------------------------------------------------- anny regressor assets

def test_anny_regressor_asset_is_loaded_lazily(tmp_path):
    hand = build_anny_hand(asset_dir=tmp_path)
    rng = np.random.default_rng(0)
    matrix = np.zeros((MANO.num_joints, hand.num_vertices), dtype=np.float32)
    for joint in range(MANO.num_joints):
        matrix[joint, rng.choice(hand.num_vertices, 3, replace=False)] = 1 / 3
    save_regressor_asset(tmp_path / "anny_hand_mano.npz", matrix, MANO.joint_names, 1.5, 4.0)

    regressor = hand.joint_regressor("mano")
    assert regressor.shape == (21, 1609) and regressor.dtype == torch.float32
    torch.testing.assert_close(regressor, torch.from_numpy(matrix))
    assert hand.joint_regressor("mano") is regressor  # cached
    vertices = hand(**random_params(hand, 2)).vertices_m
    joints = hand.regress_joints(vertices, "mano")
    assert joints.shape == (2, 21, 3)
    torch.testing.assert_close(joints, torch.from_numpy(matrix) @ vertices, atol=1e-5, rtol=0)
    assert state_size(hand) < 100  # the regressor buffer is not persistent


def test_anny_regressor_asset_errors(tmp_path):
    hand = build_anny_hand(asset_dir=tmp_path)
    message = one_line_error("not found", hand.joint_regressor, "mano")
    assert str(tmp_path / "anny_hand_mano.npz") in message
    assert "tools/fit_joint_regressors.py" in message
    one_line_error("unknown joint set 'h36m'", hand.joint_regressor, "h36m")

    names = list(MANO.joint_names)
    names[0], names[1] = names[1], names[0]
    path = tmp_path / "anny_hand_mano.npz"
    save_regressor_asset(path, np.eye(21, 1609), names, 1.0, 2.0)
    one_line_error("do not match joint set 'mano'", hand.joint_regressor, "mano")
    save_regressor_asset(path, np.eye(21, 100), MANO.joint_names, 1.0, 2.0)
    one_line_error(r"has shape \(21, 100\), expected \(21, 1609\)", hand.joint_regressor, "mano")


# ------------------------------------------------------------------------- legacy pickles

def test_legacy_pickle_loads_chumpy_files_without_chumpy(tmp_path):
    path = tmp_path / "model.pkl"
    written = write_fake_smpl(path)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    assert b"chumpy.ch" in path.read_bytes()  # the file really references chumpy classes
    loaded = load_legacy_pickle(path)
    assert "chumpy" not in sys.modules
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J", "kintree_table"):
        assert type(loaded[key]) is np.ndarray, key
        np.testing.assert_array_equal(loaded[key], written[key])
    assert loaded["J_regressor"].format == "csc"
    np.testing.assert_array_equal(loaded["J_regressor"].toarray(), written["J_regressor"].toarray())
    assert loaded["kintree_table"][0, 0] == 4294967295 and loaded["bs_style"] == "lbs"


def test_legacy_pickle_errors(tmp_path):
    one_line_error("model file not found", load_legacy_pickle, tmp_path / "absent.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    one_line_error("not a readable model pickle", load_legacy_pickle, tmp_path / "junk.pkl")


# -------------------------------------------------------------------------------- smpl

def test_smpl_from_official_layout(smpl_model_dir):
    model = build_body_model("smpl", smpl_dir=smpl_model_dir)
    content = load_legacy_pickle(smpl_model_path(smpl_model_dir, "neutral"))
    template = torch.from_numpy(content["v_template"]).float()
    assert model.num_vertices == 300 and model.faces.shape == (532, 3)
    assert model.faces.dtype == torch.int64
    assert model.param_shapes == {"pose_aa": (24, 3), "shape": (10,), "transl_m": (3,)}
    zero = model.zero_params(2)
    output = model(**zero)
    torch.testing.assert_close(output.vertices_m, template.expand(2, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(model.rest_vertices_m, template, atol=1e-6, rtol=0)
    joints = output.joints_m
    assert joints.shape == (2, 24, 3)
    expected = torch.from_numpy(content["J_regressor"].toarray()).float() @ template
    torch.testing.assert_close(joints[0], expected, atol=1e-6, rtol=0)
    assert model.state_dict() == {}  # licensed model data never enters checkpoints


def test_smpl_pose_and_gradients(smpl_model_dir):
    model = build_body_model("smpl", smpl_dir=smpl_model_dir)
    params = {key: value.requires_grad_() for key, value in random_params(model, 3).items()}
    output = model(**params)
    vertices, joints = output.vertices_m, output.joints_m
    assert vertices.shape == (3, 300, 3) and vertices.dtype == torch.float32
    # FK joints are the rest joints carried by the rigid bone transforms: the root joint
    # stays at its rest place plus the translation
    unposed = {**model.zero_params(3), "shape": params["shape"]}
    rest_root = model(**unposed).joints_m[:, 0]
    torch.testing.assert_close(joints[:, 0], rest_root + params["transl_m"], atol=1e-5, rtol=0)
    (vertices.square().sum() + joints.sum()).backward()
    for key, value in params.items():
        assert torch.isfinite(value.grad).all() and value.grad.abs().sum() > 0, key


def test_smpl_joint_regressors(smpl_model_dir, tmp_path):
    model = build_body_model("smpl", smpl_dir=smpl_model_dir, data_dir=tmp_path)
    assert model.joint_regressor("smpl").shape == (24, 300)
    message = one_line_error("joint regressor not found", model.joint_regressor, "human36")
    assert "J_regressor_h36m_correct.npy" in message and "data/Human36M/README.md" in message
    message = one_line_error("joint regressor not found", model.joint_regressor, "coco")
    assert "data/COCO/README.md" in message

    rng = np.random.default_rng(0)
    (tmp_path / "Human36M").mkdir()
    (tmp_path / "COCO").mkdir()
    np.save(tmp_path / "Human36M" / "J_regressor_h36m_correct.npy", rng.random((17, 300)))
    coco = rng.random((17, 300))
    np.save(tmp_path / "COCO" / "J_regressor_coco.npy", coco)
    assert model.joint_regressor("human36").shape == (17, 300)
    regressor = model.joint_regressor("coco")
    assert regressor.shape == (19, 300) and regressor.dtype == torch.float32
    np.testing.assert_allclose(regressor[17], (coco[11] + coco[12]) / 2, rtol=1e-6)
    np.testing.assert_allclose(regressor[18], (coco[5] + coco[6]) / 2, rtol=1e-6)
    one_line_error("no joint regressor for joint set 'mano'", model.joint_regressor, "mano")


def test_smpl_missing_files(tmp_path):
    message = one_line_error(
        "SMPL model file not found", build_body_model, "smpl", smpl_dir=tmp_path
    )
    expected = tmp_path / "smplpytorch/native/models/basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    assert str(expected) in message and "https://smpl.is.tue.mpg.de" in message
    message = one_line_error(
        "not found", build_body_model, "smpl", smpl_dir=tmp_path, gender="male"
    )
    assert "basicModel_m_lbs_10_207_0_v1.0.0.pkl" in message
    one_line_error("unknown gender 'x'", build_body_model, "smpl", smpl_dir=tmp_path, gender="x")


# -------------------------------------------------------------------------------- mano

def test_mano_from_official_layout(mano_model_dir):
    model = build_body_model("mano", mano_dir=mano_model_dir)
    content = load_legacy_pickle(mano_model_path(mano_model_dir))
    template = torch.from_numpy(content["v_template"]).float()
    assert model.num_vertices == 780
    assert model.param_shapes == {"pose_aa": (16, 3), "shape": (10,), "transl_m": (3,)}
    zero = model.zero_params(1)
    torch.testing.assert_close(model(**zero).vertices_m[0], template, atol=1e-6, rtol=0)

    params = random_params(model, 2)
    output = model(**params)
    vertices, joints = output.vertices_m, output.joints_m
    assert joints.shape == (2, 21, 3)
    tips = vertices[:, [745, 317, 444, 556, 673]]
    torch.testing.assert_close(joints[:, [4, 8, 12, 16, 20]], tips)
    fk = model(**{**params, "pose_aa": torch.zeros_like(params["pose_aa"])}).joints_m
    torch.testing.assert_close(joints[:, 0], fk[:, 0], atol=1e-5, rtol=0)  # wrist = root joint

    regressor = model.joint_regressor("mano")
    assert regressor.shape == (21, 780)
    for row, vertex in zip((4, 8, 12, 16, 20), (745, 317, 445, 556, 673), strict=True):
        assert regressor[row, vertex] == 1 and regressor[row].sum() == 1
    kinematic = torch.from_numpy(content["J_regressor"].toarray()).float()
    order = [0, 13, 14, 15, 1, 2, 3, 4, 5, 6, 10, 11, 12, 7, 8, 9]  # native rows, mano order
    torch.testing.assert_close(regressor[[0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]],
                               kinematic[order])
    one_line_error("no joint regressor for joint set 'smpl'", model.joint_regressor, "smpl")


def test_mano_pose_is_added_to_the_mean_pose(tmp_path):
    import smplx

    hands_mean = 0.2 * np.random.default_rng(3).standard_normal(45)
    content = write_fake_mano(mano_model_path(tmp_path), hands_mean=hands_mean)
    model = build_body_model("mano", mano_dir=tmp_path)
    template = torch.from_numpy(content["v_template"]).float()
    assert (model(**model.zero_params(1)).vertices_m[0] - template).abs().max() > 1e-3
    pose = torch.zeros(1, 16, 3)
    pose[0, 1:] = -torch.from_numpy(hands_mean).float().reshape(15, 3)
    torch.testing.assert_close(model(pose_aa=pose).vertices_m[0], template, atol=1e-6, rtol=0)

    # same vertices as smplx's own MANO forward (which adds the mean itself)
    params = random_params(model, 2)
    reference = smplx.MANO(str(mano_model_path(tmp_path)), data_struct=smplx.utils.Struct(
        **load_legacy_pickle(mano_model_path(tmp_path))), use_pca=False, flat_hand_mean=False)
    expected = reference(
        betas=params["shape"], global_orient=params["pose_aa"][:, 0],
        hand_pose=params["pose_aa"][:, 1:].flatten(1), transl=params["transl_m"],
    ).vertices
    torch.testing.assert_close(model(**params).vertices_m, expected, atol=1e-6, rtol=0)


def test_mano_missing_file(tmp_path):
    message = one_line_error(
        "MANO model file not found", build_body_model, "mano", mano_dir=tmp_path
    )
    assert str(tmp_path / "mano/models/MANO_RIGHT.pkl") in message
    assert "https://mano.is.tue.mpg.de" in message


def test_decimated_anny_has_exactly_the_requested_vertices(anny_body, decimated_anny):
    model = decimated_anny
    assert model.num_vertices == 6890 and model.faces.max() == 6889
    faces = model.faces
    assert not ((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])).any()
    assert len(torch.unique(model.keep_index)) == 6890
    generator = torch.Generator().manual_seed(0)
    params = anny_body.zero_params(2)
    params["pose_aa"] = 0.2 * torch.randn(params["pose_aa"].shape, generator=generator)
    params["phenotype"] = torch.rand(params["phenotype"].shape, generator=generator)
    params["transl_m"] = torch.randn(params["transl_m"].shape, generator=generator)
    # Only the kept vertices are computed (an anny model restricted to them), and they are
    # exactly the kept base vertices under any pose, shape and translation.
    assert model.subset_anny.template_vertices.shape == (6890, 3)
    torch.testing.assert_close(model(**params).vertices_m,
                               anny_body(**params).vertices_m[:, model.keep_index])
    regressor = model.joint_regressor("human36")
    assert regressor.shape == (17, 6890)
    torch.testing.assert_close(regressor.sum(1), anny_body.joint_regressor("human36").sum(1))
    again = DecimatedBodyModel(anny_body, 6890)
    assert torch.equal(again.faces, model.faces) and torch.equal(again.keep_index, model.keep_index)


# ------------------------------------------------------------------------ forward output

@pytest.fixture(scope="module")
def decimated_anny(anny_body):
    """The anny body decimated to SMPL's 6,890 vertices."""
    return DecimatedBodyModel(anny_body, 6890)


def _model_of(request, name):
    """The body model called ``name`` in the output tests (fixtures or fake SMPL/MANO)."""
    if name == "smpl":
        return build_body_model("smpl", smpl_dir=request.getfixturevalue("smpl_model_dir"))
    if name == "mano":
        return build_body_model("mano", mano_dir=request.getfixturevalue("mano_model_dir"))
    return request.getfixturevalue(name)


@pytest.mark.parametrize("name, num_vertices, num_joints", [
    ("anny_body", 13718, 104), ("anny_hand", 1609, 21), ("decimated_anny", 6890, 104),
    ("smpl", 300, 24), ("mano", 780, 21),
])
def test_forward_returns_vertices_and_kinematic_joints(request, name, num_vertices, num_joints):
    model = _model_of(request, name)
    output = model(**random_params(model, 2))
    assert type(output) is BodyOutput
    assert output.vertices_m.shape == (2, num_vertices, 3) == (2, model.num_vertices, 3)
    assert output.joints_m.shape == (2, num_joints, 3)
    assert output.vertices_m.dtype == output.joints_m.dtype == torch.float32
    with pytest.raises(dataclasses.FrozenInstanceError):
        output.vertices_m = output.joints_m


@pytest.mark.parametrize("fixture", ["anny_body", "anny_hand"])
def test_anny_joints_are_the_posed_bone_heads(request, fixture):
    """joints_m: the translations of anny's own posed bone transforms, moved by transl_m."""
    model = request.getfixturevalue(fixture)
    params = random_params(model, 2, seed=4)
    transl_m = params.pop("transl_m")
    raw = model.anny(pose_parameters=model.delta_transforms(params["pose_aa"]),
                     phenotype_kwargs=params["phenotype"])
    still = model(**params)
    assert torch.equal(still.joints_m, raw["bone_poses"][..., :3, 3])
    assert torch.equal(still.vertices_m, raw["vertices"])
    moved = model(**params, transl_m=transl_m)
    torch.testing.assert_close(moved.joints_m, still.joints_m + transl_m[:, None], atol=1e-6, rtol=0)
    torch.testing.assert_close(moved.vertices_m, still.vertices_m + transl_m[:, None],
                               atol=1e-6, rtol=0)


def test_decimated_joints_are_the_base_joints(anny_body, decimated_anny, smpl_model_dir):
    params = random_params(anny_body, 2, seed=5)
    torch.testing.assert_close(decimated_anny(**params).joints_m, anny_body(**params).joints_m)
    # a base without a vertex-subset model: its full forward, the kept vertices selected
    smpl = build_body_model("smpl", smpl_dir=smpl_model_dir)
    decimated = DecimatedBodyModel(smpl, 250)
    params = random_params(smpl, 2, seed=5)
    output, full = decimated(**params), smpl(**params)
    assert torch.equal(output.vertices_m, full.vertices_m[:, decimated.keep_index])
    assert torch.equal(output.joints_m, full.joints_m)


def test_smpl_joints_are_smplx_fk_joints(smpl_model_dir):
    """Vertices and joints_m equal smplx's own SMPL forward (its first 24 joints are the FK
    joints; the extra vertex joints it appends are pointed at vertex 0 for the fake mesh)."""
    import smplx
    from smplx.vertex_ids import vertex_ids

    model = build_body_model("smpl", smpl_dir=smpl_model_dir)
    path = smpl_model_path(smpl_model_dir, "neutral")
    reference = smplx.SMPL(str(path), data_struct=smplx.utils.Struct(**load_legacy_pickle(path)),
                           vertex_ids={key: 0 for key in vertex_ids["smplh"]})
    params = random_params(model, 3, seed=6)
    expected = reference(betas=params["shape"], global_orient=params["pose_aa"][:, 0],
                         body_pose=params["pose_aa"][:, 1:].flatten(1), transl=params["transl_m"])
    output = model(**params)
    torch.testing.assert_close(output.vertices_m, expected.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(output.joints_m, expected.joints[:, :24], atol=1e-6, rtol=0)
