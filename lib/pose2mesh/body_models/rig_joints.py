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

Other body topologies: the vertex landmarks (``landmark``, ``crown``, ``tip``) are defined on
the *reference* mesh of the model -- the default anny body (``topology="default"``; the right
hand has only its own mesh) -- because anny's keypoint weights index the MakeHuman base mesh
(``base_mesh_vertex_indices``), which the retopologised meshes (``notoes``,
``notoes_collapse*``) do not record: anny numbers their vertices 0..V-1 although, e.g., 10,989
of the 12,272 ``notoes`` template vertices coincide with default ones. On such a topology, every
default vertex a landmark blends is replaced by its closest point on the topology's surface
(a barycentric blend of one triangle's vertices), both meshes in the rest pose at phenotype
0.5 (``rest_vertices_m``); the landmark weights are composed with that correspondence, so
they stay a convex vertex blend. Bone joints need nothing: the rig is the same on every
topology.

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

from pose2mesh.body_models.anny_model import AnnyModel, build_anny_body
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


REFERENCE_TOPOLOGIES = {"anny": "default", "anny_hand": "hand"}
"""Model name -> the topology whose mesh the vertex landmarks are defined on."""

_VERTEX_KINDS = ("landmark", "crown", "tip")


class RigJointRegressor(torch.nn.Module):
    """Rig joints of one joint set for an anny body model, as two dense linear maps.

    ``forward(vertices, bone_heads)`` -> (B, J, 3) with
    ``joints = vertex_weights @ vertices + bone_weights @ bone_heads``
    (inputs: ``vertices_m`` and ``joints_m``, the posed bone heads, of the body model's
    :class:`~pose2mesh.body_models.base.BodyOutput`).

    Args:
        body_model: ``build_body_model("anny", topology=...)`` or ``build_body_model("anny_hand")``.
        joint_set_name: joint set to define.
        reference_model: the default-topology anny body, used for the vertex landmarks of
            another body topology (built here, about a second, when not given).

    Attributes:
        vertex_weights: (J, V) float32 buffer (landmark, crown and tip joints; each such row
            is non-negative and sums to one).
        bone_weights: (J, NB) float32 buffer (``bones`` joints).
    """

    def __init__(self, body_model: AnnyModel, joint_set_name: str,
                 reference_model: AnnyModel | None = None):
        super().__init__()
        labels = list(body_model.bone_labels)
        definitions = rig_joint_definitions(joint_set_name)
        bone_weights = torch.zeros(len(definitions), len(labels), dtype=torch.float64)
        for j, joint in enumerate(definitions):
            if joint.kind == "bones":
                for label in joint.sources:
                    bone_weights[j, _bone_index(labels, label)] = 1.0 / len(joint.sources)
        self.joint_set_name = joint_set_name
        self.register_buffer("vertex_weights", landmark_weights(
            body_model, definitions, reference_model).float(), persistent=False)
        self.register_buffer("bone_weights", bone_weights.float(), persistent=False)

    def forward(self, vertices: torch.Tensor, bone_heads: torch.Tensor) -> torch.Tensor:
        return (torch.einsum("jv,bvc->bjc", self.vertex_weights, vertices.float())
                + torch.einsum("jk,bkc->bjc", self.bone_weights, bone_heads.float()))


def landmark_weights(body_model: AnnyModel, definitions: tuple[RigJoint, ...],
                     reference_model: AnnyModel | None = None) -> torch.Tensor:
    """(J, V) float64 vertex weights of the vertex-landmark joints of ``definitions`` on
    ``body_model``'s mesh (zero rows for ``bones`` joints).

    On the reference topology (:data:`REFERENCE_TOPOLOGIES`) they are read from the mesh
    itself (:func:`reference_landmark_weights`); on another topology they are those of the
    reference mesh (``reference_model``, built when ``None``) transferred by
    :func:`transfer_vertex_weights`.
    """
    reference_topology = REFERENCE_TOPOLOGIES[body_model.name]
    if body_model.topology == reference_topology:
        return reference_landmark_weights(body_model.anny, definitions)
    needed = any(joint.kind in _VERTEX_KINDS for joint in definitions)
    if not needed:
        return torch.zeros(len(definitions), body_model.num_vertices, dtype=torch.float64)
    if reference_model is None:
        reference_model = build_anny_body(reference_topology)
    elif (reference_model.name, reference_model.topology) != (body_model.name, reference_topology):
        raise Pose2MeshError(
            f"rig joints: the reference model must be '{body_model.name}' on topology "
            f"'{reference_topology}', got '{reference_model.name}' on "
            f"'{reference_model.topology}'"
        )
    weights = reference_landmark_weights(reference_model.anny, definitions)
    return transfer_vertex_weights(weights, reference_model.rest_vertices_m,
                                   body_model.rest_vertices_m, body_model.faces)


def reference_landmark_weights(model: anny.Anny,
                               definitions: tuple[RigJoint, ...]) -> torch.Tensor:
    """(J, V) float64 vertex weights of the ``landmark``, ``crown`` and ``tip`` joints on an
    anny model whose mesh is the MakeHuman base mesh (default body, right hand), where anny's
    keypoint weights apply; zero rows for ``bones`` joints."""
    num_vertices = int(model.template_vertices.shape[0])
    weights = torch.zeros(len(definitions), num_vertices, dtype=torch.float64)
    keypoints = None
    for j, joint in enumerate(definitions):
        if joint.kind == "landmark":
            if keypoints is None:
                keypoints = anny.KeypointsRegressor.coco(model)
            weights[j] = keypoints.regression_weights[
                keypoints.labels.index(joint.sources[0])].double()
        elif joint.kind == "crown":
            weights[j, crown_vertex(model)] = 1.0
        elif joint.kind == "tip":
            weights[j, tip_vertex(model, joint.sources[0])] = 1.0
    return weights


def transfer_vertex_weights(weights: torch.Tensor, source_vertices_m: torch.Tensor,
                            target_vertices_m: torch.Tensor,
                            target_faces: torch.Tensor) -> torch.Tensor:
    """Carry vertex blends from a source mesh to a target mesh of the same body.

    Every source vertex used by ``weights`` is replaced by its closest point on the target
    surface, a barycentric blend of one target triangle (:func:`closest_surface_points`).

    Args:
        weights: (J, Vs) blends of source vertices.
        source_vertices_m: (Vs, 3) source mesh, metres.
        target_vertices_m: (Vt, 3) target mesh in the same pose and shape, metres.
        target_faces: (F, 3) int64 target triangles.
    Returns:
        (J, Vt) float64 blends of target vertices (row sums preserved).
    """
    weights = weights.double()
    used = torch.nonzero(weights.abs().sum(dim=0) > 0)[:, 0]
    corners, barycentric = closest_surface_points(
        source_vertices_m[used].double(), target_vertices_m.double(), target_faces)
    transferred = torch.zeros(len(weights), len(target_vertices_m), dtype=torch.float64)
    for corner in range(3):
        transferred.index_add_(1, corners[:, corner], weights[:, used] * barycentric[:, corner])
    return transferred


def closest_surface_points(points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor,
                           chunk_pairs: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Closest point of a triangle mesh to each query point (exact).

    Only the triangles that may hold a closer point than the nearest vertex are examined:
    those whose bounding sphere (about the centroid) comes within that vertex's distance.

    Args:
        points: (P, 3) queries.
        vertices: (V, 3) mesh vertices (same units and dtype as ``points``).
        faces: (F, 3) int64 triangles.
        chunk_pairs: most (point, triangle) distances screened at once (memory bound).
    Returns:
        corners (P, 3) int64 vertex indices of the closest triangle and barycentric (P, 3)
        non-negative coordinates summing to one: the closest point is
        ``(barycentric[:, :, None] * vertices[corners]).sum(1)``.
    """
    triangles = vertices[faces]  # (F, 3 corners, 3)
    centroids = triangles.mean(dim=1)
    radii = (triangles - centroids[:, None]).norm(dim=-1).amax(dim=1)
    # The screening runs in float32 (fast); the margin covers its rounding.
    margin = 1e-4 * float((vertices.amax(dim=0) - vertices.amin(dim=0)).norm())
    screen_vertices, screen_centroids = vertices.float(), centroids.float()
    query, face = [], []
    step = max(1, chunk_pairs // max(1, len(faces)))
    for start in range(0, len(points), step):
        chunk = points[start:start + step].float()
        nearest_vertex = torch.cdist(chunk, screen_vertices).amin(dim=1)
        reachable = (torch.cdist(chunk, screen_centroids) - radii.float()
                     <= nearest_vertex[:, None] + margin)
        pairs = torch.nonzero(reachable)
        query.append(pairs[:, 0] + start)
        face.append(pairs[:, 1])
    query, face = torch.cat(query), torch.cat(face)
    uv, distance = _closest_on_triangles(points[query], triangles[face])
    best = torch.full((len(points),), torch.inf, dtype=distance.dtype)
    best = best.scatter_reduce(0, query, distance, reduce="amin")
    # One winning pair per query (ties: any of them).
    winner = torch.empty(len(points), dtype=torch.int64)
    winner[query[distance == best[query]]] = torch.nonzero(distance == best[query])[:, 0]
    u, v = uv[winner].unbind(-1)
    barycentric = torch.stack([1 - u - v, u, v], dim=-1).clamp_min(0)
    return faces[face[winner]], barycentric / barycentric.sum(dim=-1, keepdim=True)


def _closest_on_triangles(points: torch.Tensor,
                          triangles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closest point of triangle ``triangles[n]`` (N, 3 corners, 3) to ``points[n]`` (N, 3):
    its coordinates (u, v) along the edges corner0->corner1 and corner0->corner2 (N, 2) and
    the distance (N,)."""
    origin = triangles[:, 0]
    edge1, edge2 = triangles[:, 1] - origin, triangles[:, 2] - origin
    e11, e12, e22 = (edge1 * edge1).sum(-1), (edge1 * edge2).sum(-1), (edge2 * edge2).sum(-1)
    offset = points - origin
    d1, d2 = (offset * edge1).sum(-1), (offset * edge2).sum(-1)
    # Projection on the plane: the 2x2 normal equations in (u, v).
    det = (e11 * e22 - e12 ** 2).clamp_min(1e-30)
    u, v = (e22 * d1 - e12 * d2) / det, (e11 * d2 - e12 * d1) / det
    inside = (u >= 0) & (v >= 0) & (u + v <= 1)
    # Outside the triangle the closest point lies on an edge: project, clamped, on each.
    t01 = (d1 / e11.clamp_min(1e-30)).clamp(0, 1)
    t02 = (d2 / e22.clamp_min(1e-30)).clamp(0, 1)
    t12 = ((d2 - d1 - e12 + e11) / (e11 - 2 * e12 + e22).clamp_min(1e-30)).clamp(0, 1)
    zero = torch.zeros_like(u)
    uv = torch.stack([torch.stack([u, v], -1), torch.stack([t01, zero], -1),
                      torch.stack([zero, t02], -1), torch.stack([1 - t12, t12], -1)], dim=1)
    uv[:, 0] = torch.where(inside[:, None], uv[:, 0], uv[:, 1])  # (N, 4 candidates, 2)
    closest = origin[:, None] + uv[..., :1] * edge1[:, None] + uv[..., 1:] * edge2[:, None]
    distance, which = (closest - points[:, None]).norm(dim=-1).min(dim=1)
    return uv[torch.arange(len(points)), which], distance


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
