"""Joint sets match the official Pose2Mesh definitions (DATA_FORMATS.md 1.2)."""
import numpy as np
import pytest

from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import JOINT_SETS, add_pelvis_and_neck, get_joint_set


@pytest.mark.parametrize(
    "name, count, root, n_edges, n_flip, n_eval",
    [("human36", 17, 0, 16, 6, 14), ("coco", 19, 17, 19, 8, 19), ("smpl", 24, 0, 23, 9, 24),
     ("mano", 21, 0, 20, 0, 21)],
)
def test_sizes(name, count, root, n_edges, n_flip, n_eval):
    joint_set = get_joint_set(name)
    assert joint_set.num_joints == count
    assert joint_set.root == root
    assert len(joint_set.skeleton) == n_edges
    assert len(joint_set.flip_pairs) == n_flip
    assert len(joint_set.eval_joints) == n_eval


def test_official_orders():
    assert get_joint_set("human36").eval_joints == (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
    assert get_joint_set("human36").joint_names[9:11] == ("Nose", "Head")
    coco = get_joint_set("coco")
    assert coco.joint_names[17:] == ("Pelvis", "Neck")
    assert (5, 6) not in coco.skeleton and (11, 12) not in coco.skeleton
    assert get_joint_set("smpl").joint_names[12] == "Neck"
    assert len(get_joint_set("mano").extra_graph_edges) == 16


@pytest.mark.parametrize("name", sorted(JOINT_SETS))
def test_graph_and_flip(name):
    joint_set = JOINT_SETS[name]
    adjacency = joint_set.graph_adjacency()
    assert np.array_equal(adjacency, adjacency.T)
    assert np.all(np.diag(adjacency) == 1)
    expected_edges = set(joint_set.skeleton + joint_set.flip_pairs + joint_set.extra_graph_edges)
    expected_edges = {tuple(sorted(e)) for e in expected_edges}
    assert (adjacency.sum() - joint_set.num_joints) / 2 == len(expected_edges)
    order = joint_set.flip_permutation()
    assert np.array_equal(order[order], np.arange(joint_set.num_joints))
    for names_i, names_j in [(joint_set.joint_names[i], joint_set.joint_names[j]) for i, j in joint_set.flip_pairs]:
        assert names_i.replace("L_", "R_") == names_j.replace("L_", "R_")


def test_pelvis_and_neck_average_all_columns():
    coco17 = np.zeros((17, 3))
    coco17[11] = [0, 0, 1.0]
    coco17[12] = [2, 4, 0.5]
    coco17[5] = [1, 1, 0.2]
    coco17[6] = [3, 1, 0.4]
    coco19 = add_pelvis_and_neck(coco17)
    assert coco19.shape == (19, 3)
    np.testing.assert_allclose(coco19[17], [1, 2, 0.75])
    np.testing.assert_allclose(coco19[18], [2, 1, 0.3])


def test_unknown_names():
    with pytest.raises(Pose2MeshError, match="unknown joint set 'h36'"):
        get_joint_set("h36")
    with pytest.raises(Pose2MeshError, match="not in joint set"):
        get_joint_set("coco").index("Torso")
