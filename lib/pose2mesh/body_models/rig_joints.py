"""Rig joints of anny: the reference joints the shipped anny joint regressors are fitted to.

Every joint of a joint set is defined from anny's posed skeleton and mesh, as a *linear*
function of the posed bone heads (B, NB, 3) and vertices (B, V, 3):

- ``bones``: the mean of the posed heads of the named bones (a bone's head is the joint it
  rotates about);
- ``landmark``: one of anny's own surface keypoints (``anny.KeypointsRegressor.coco``, a fixed
  vertex blend) -- used for the face (nose, eyes, ears);
- ``crown``: the top-of-head vertex (highest vertex of the template mesh);
- ``tip``: a fingertip vertex -- among the vertices skinned mainly to the named distal finger
  bone, the one farthest along that bone (from its parent's head to its head) in the template.

Definitions (anny bone names; ``.L`` = subject's left, world +x):

- human36: Pelvis = root head; Hips = upperleg01 heads; Knees = lowerleg01 heads;
  Ankles = foot heads; Torso = spine02 head; Neck = neck01 head (base of the neck);
  Nose = anny ``nose`` landmark; Head = crown; Shoulders = upperarm01 heads;
  Elbows = lowerarm01 heads; Wrists = wrist heads.
- coco: Nose/Eyes/Ears = anny landmarks; Shoulders, Elbows, Wrists, Hips, Knees, Ankles as
  human36; Pelvis = mean of the hips, Neck = mean of the shoulders (DATA_FORMATS 1.2).
- smpl: Pelvis = root head; Hips, Knees, Ankles as human36; Torso = spine03 head;
  Spine = spine02 head; Chest = spine01 head; Toes = mean of the five toe?-1 heads (ball of
  the foot); Neck = neck01 head; Thorax = mean of the clavicle and shoulder01 heads (middle
  of the clavicle); Head = head-bone head; Shoulders, Elbows, Wrists as human36;
  Hands = mean of the finger2-1..finger5-1 heads (knuckles).
- mano (right-hand model ``anny-hand.R``): Wrist = wrist.R head; Thumb_1..3 = finger1-1..3
  heads; Thumb_4 = thumb tip; Index/Middle/Ring/Pinky_1..3 = finger2..5-1..3 heads (the
  metacarpophalangeal, proximal and distal interphalangeal joints); *_4 = fingertips.

Caveat: anny's bone heads are blendshapes of their own, not blends of the mesh vertices, and
they move relative to the mesh as the phenotype changes -- most at the knees, whose head
sits ~7 cm above the mesh's knee at height 0 and ~5 cm below it at height 1 (hips and
spine ~1 cm). A fixed vertex regressor follows the mesh, so it cannot match these joints
exactly for every body shape (tools/fit_joint_regressors.py reports by how much).
"""
from __future__ import annotations

from dataclasses import dataclass

import anny
import torch

from pose2mesh.body_models.anny_model import AnnyModel
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set


@dataclass(frozen=True)
class RigJoint:
    """One joint definition: ``kind`` in {"bones", "landmark", "crown", "tip"} and the bone
    names (``bones``, ``tip``) or anny keypoint label (``landmark``) it reads."""

    kind: str
    sources: tuple[str, ...] = ()


def _bones(*labels: str) -> RigJoint:
    return RigJoint("bones", labels)


def _sided(side: str) -> dict[str, RigJoint]:
    """Limb joints of one side ("L"/"R") shared by human36, coco and smpl."""
    return {
        "Hip": _bones(f"upperleg01.{side}"), "Knee": _bones(f"lowerleg01.{side}"),
        "Ankle": _bones(f"foot.{side}"), "Shoulder": _bones(f"upperarm01.{side}"),
        "Elbow": _bones(f"lowerarm01.{side}"), "Wrist": _bones(f"wrist.{side}"),
        "Toe": _bones(*(f"toe{t}-1.{side}" for t in range(1, 6))),
        "Thorax": _bones(f"clavicle.{side}", f"shoulder01.{side}"),
        "Hand": _bones(*(f"finger{f}-1.{side}" for f in range(2, 6))),
        "Eye": RigJoint("landmark", ("left_eye" if side == "L" else "right_eye",)),
        "Ear": RigJoint("landmark", ("left_ear" if side == "L" else "right_ear",)),
    }


_CENTRAL = {
    "human36": {"Pelvis": _bones("root"), "Torso": _bones("spine02"), "Neck": _bones("neck01"),
                "Nose": RigJoint("landmark", ("nose",)), "Head": RigJoint("crown")},
    "coco": {"Nose": RigJoint("landmark", ("nose",)),
             "Pelvis": _bones("upperleg01.L", "upperleg01.R"),
             "Neck": _bones("upperarm01.L", "upperarm01.R")},
    "smpl": {"Pelvis": _bones("root"), "Torso": _bones("spine03"), "Spine": _bones("spine02"),
             "Chest": _bones("spine01"), "Neck": _bones("neck01"), "Head": _bones("head")},
}

_MANO_FINGERS = {"Thumb": 1, "Index": 2, "Middle": 3, "Ring": 4, "Pinky": 5}

BODY_JOINT_SETS = ("human36", "coco", "smpl")
HAND_JOINT_SETS = ("mano",)


def rig_joint_definitions(joint_set_name: str) -> tuple[RigJoint, ...]:
    """The definition of every joint of ``joint_set_name``, in the joint set's order."""
    joint_set = get_joint_set(joint_set_name)
    if joint_set.name == "mano":
        table = {"Wrist": _bones("wrist.R")}
        for finger, number in _MANO_FINGERS.items():
            for k in range(1, 4):
                table[f"{finger}_{k}"] = _bones(f"finger{number}-{k}.R")
            table[f"{finger}_4"] = RigJoint("tip", (f"finger{number}-3.R",))
    else:
        table = dict(_CENTRAL[joint_set.name])
        for side in ("L", "R"):
            table.update({f"{side}_{name}": joint for name, joint in _sided(side).items()})
    return tuple(table[name] for name in joint_set.joint_names)


def posed_vertices_and_bone_heads(body_model: AnnyModel, pose_aa: torch.Tensor,
                                  phenotype: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an anny body model (``build_body_model("anny" | "anny_hand")``) and keep its
    skeleton: pose_aa (B, NB, 3) radians, phenotype (B, 6) -> vertices (B, V, 3) and posed
    bone heads (B, NB, 3), in metres (no translation)."""
    output = body_model.anny(pose_parameters=body_model.delta_transforms(pose_aa),
                             phenotype_kwargs=phenotype)
    return output["vertices"], output["bone_poses"][..., :3, 3]


class RigJointRegressor(torch.nn.Module):
    """Rig joints of one joint set for an anny body model, as two dense linear maps.

    ``forward(vertices, bone_heads)`` -> (B, J, 3) with
    ``joints = vertex_weights @ vertices + bone_weights @ bone_heads``
    (inputs from :func:`posed_vertices_and_bone_heads`).

    Attributes:
        vertex_weights: (J, V) float32 buffer (landmark, crown and tip joints).
        bone_weights: (J, NB) float32 buffer (``bones`` joints).
    """

    def __init__(self, body_model: AnnyModel, joint_set_name: str):
        super().__init__()
        model = body_model.anny
        labels = list(model.bone_labels)
        definitions = rig_joint_definitions(joint_set_name)
        num_vertices = int(model.template_vertices.shape[0])
        vertex_weights = torch.zeros(len(definitions), num_vertices, dtype=torch.float64)
        bone_weights = torch.zeros(len(definitions), len(labels), dtype=torch.float64)
        landmarks = None
        for j, joint in enumerate(definitions):
            if joint.kind == "bones":
                for label in joint.sources:
                    bone_weights[j, _bone_index(labels, label)] = 1.0 / len(joint.sources)
            elif joint.kind == "landmark":
                if landmarks is None:
                    landmarks = anny.KeypointsRegressor.coco(model)
                vertex_weights[j] = landmarks.regression_weights[
                    landmarks.labels.index(joint.sources[0])].double()
            elif joint.kind == "crown":
                vertex_weights[j, crown_vertex(model)] = 1.0
            elif joint.kind == "tip":
                vertex_weights[j, tip_vertex(model, joint.sources[0])] = 1.0
        self.joint_set_name = joint_set_name
        self.register_buffer("vertex_weights", vertex_weights.float(), persistent=False)
        self.register_buffer("bone_weights", bone_weights.float(), persistent=False)

    def forward(self, vertices: torch.Tensor, bone_heads: torch.Tensor) -> torch.Tensor:
        return (torch.einsum("jv,bvc->bjc", self.vertex_weights, vertices.float())
                + torch.einsum("jk,bkc->bjc", self.bone_weights, bone_heads.float()))


def _bone_index(labels: list[str], label: str) -> int:
    try:
        return labels.index(label)
    except ValueError:
        raise Pose2MeshError(f"rig joints: the anny rig has no bone '{label}'") from None


def crown_vertex(model: anny.Anny) -> int:
    """Index of the top-of-head vertex (largest z of the template mesh; anny is z-up)."""
    return int(torch.argmax(model.template_vertices[:, 2]))


def tip_vertex(model: anny.Anny, distal_bone: str) -> int:
    """Index of the fingertip vertex of ``distal_bone``: among vertices whose largest
    skinning weight is on that bone, the farthest along the bone's direction (from its
    parent's head to its head) in the template mesh."""
    labels = list(model.bone_labels)
    bone = _bone_index(labels, distal_bone)
    heads = model.template_bone_heads
    direction = heads[bone] - heads[model.bone_parents[bone]]
    main_bone = model.vertex_bone_indices.gather(
        1, model.vertex_bone_weights.argmax(dim=1, keepdim=True))[:, 0]
    candidates = torch.nonzero(main_bone == bone)[:, 0]
    if len(candidates) == 0:
        raise Pose2MeshError(f"rig joints: no vertex is skinned mainly to bone '{distal_bone}'")
    reach = (model.template_vertices[candidates] - heads[bone]) @ direction
    return int(candidates[torch.argmax(reach)])
