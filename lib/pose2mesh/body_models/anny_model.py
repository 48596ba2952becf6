"""The anny body and right-hand models (the embedded default: no download, no licence form).

Both wrap ``anny.Anny(..., pose_parameterization="local-bone-world")`` in float32:

- ``pose_aa`` (B, NB, 3): one axis-angle delta rotation per bone (``bone_labels`` order).
  Bones 1.. rotate about their head, in the axes of their own reference frame (anny's
  ``local-bone`` convention, Blender style: y along the bone); bone 0 (the root) is the
  global orientation, a rotation in WORLD axes about the root bone's head.
- ``phenotype`` (B, 6) in [0, 1], in ``phenotype_labels`` order (gender, age, muscle, weight,
  height, proportions); 0.5 is the average body.
- ``transl_m`` (B, 3): added to every vertex and bone head.

The forward pass returns a :class:`~pose2mesh.body_models.base.BodyOutput`: the mesh vertices
and, as ``joints_m``, the posed heads of the NB bones (the points they rotate about).

All-zero ``pose_aa`` gives anny's reference pose: the rest skeleton with every bone turned to
its fixed reference orientation. Those orientations do not depend on the phenotype, so a pose
means the same joint angles for every body; at phenotype 0.5 this mesh is within ~1.5 cm of
anny's raw template (``rest_vertices_m`` is the zero-pose mesh at phenotype 0.5).
Frame: metres, z up, body facing -y.

Skinning: anny's ``warp_lbs`` (NVIDIA warp kernels) when ``warp`` is installed, else the
pure-torch ``lbs``; both are exact. On a 2-core CPU, batch 64, one thread, CPU time per
forward: body 110 ms (warp_lbs) vs 410 ms (lbs), forward+backward 310 vs 690 ms.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import roma
import torch

from pose2mesh.assets import JOINT_REGRESSOR_DIR
from pose2mesh.body_models.base import BodyModel, BodyOutput
from pose2mesh.body_models.regressor_asset import load_regressor_asset, regressor_asset_path
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set

ANNY_BODY_TOPOLOGIES: dict[str, str] = {
    "default": "anny",  # 13,718 vertices, 27,420 triangles
    "notoes": "notoes",  # 12,272 vertices
    "notoes_collapse10pc": "notoes_collapse10pc",  # 1,229 vertices
    "notoes_collapse5pc": "notoes_collapse5pc",  # 615 vertices
    "notoes_collapse3pc": "notoes_collapse3pc",  # 369 vertices
}
"""Our topology names -> anny topology strings. anny's smpl/smplx topologies are left out on
purpose: they download non-commercial data."""

HAND_TOPOLOGY = "hand"
"""Asset-name topology of the right-hand model (``anny_hand_<jointset>.npz``)."""


def _skinning_method() -> str:
    """``warp_lbs`` when warp is importable (faster, exact), else anny's torch ``lbs``."""
    if importlib.util.find_spec("warp") is None:
        return "lbs"
    import warp

    if warp.config.log_level == warp.LOG_INFO:  # keep warp's start-up banner out of logs
        warp.config.log_level = warp.LOG_WARNING
    return "warp_lbs"


class AnnyModel(BodyModel):
    """An anny model (body or right hand) behind the :class:`BodyModel` interface.

    Args:
        name: registry name (``"anny"`` or ``"anny_hand"``).
        rig: anny rig string (``"anny"``, ``"anny-hand.R"``).
        anny_topology: anny topology string (``"anny"``, ``"notoes"``, ``"hand.R"``, ...).
        asset_topology: topology part of the regressor file names (``"default"``, ``"hand"``).
        asset_dir: folder of the ``anny_<topology>_<jointset>.npz`` joint regressors.
    """

    def __init__(
        self,
        name: str,
        rig: str,
        anny_topology: str,
        asset_topology: str,
        asset_dir: str | Path = JOINT_REGRESSOR_DIR,
    ) -> None:
        super().__init__()
        import anny  # deferred: importing anny is slow and only this backend needs it

        self.name = name
        self.topology = asset_topology
        self.asset_dir = Path(asset_dir)
        try:
            model = anny.Anny(
                rig=rig,
                topology=anny_topology,
                pose_parameterization="local-bone-world",
                skinning_method=_skinning_method(),
            )
        except ImportError as err:  # first build of a retopologised mesh needs warp
            raise Pose2MeshError(
                f"{name}: building anny topology '{anny_topology}' needs a missing package "
                f"({err}); install warp-lang or use topology 'default'"
            ) from None
        self.anny = model.to(torch.float32)
        self.bone_labels: list[str] = list(model.bone_labels)
        self.phenotype_labels: list[str] = list(model.phenotype_labels)
        self.param_shapes = {
            "pose_aa": (len(self.bone_labels), 3),
            "phenotype": (len(self.phenotype_labels),),
            "transl_m": (3,),
        }
        reference = model.reference_bone_orientations
        root_frame = torch.eye(3) if reference is None else reference[0]
        self.register_buffer("root_frame", root_frame.to(torch.float32), persistent=False)
        self.register_buffer("faces", model.faces.to(torch.int64).clone(), persistent=False)
        # Placeholder with the right shape/dtype/device, so that zero_params works below.
        self.register_buffer(
            "rest_vertices_m", model.template_vertices.to(torch.float32), persistent=False
        )
        with torch.no_grad():
            rest = self(pose_aa=self.zero_params(1)["pose_aa"]).vertices_m[0]
        self.rest_vertices_m = rest.contiguous()

    def _neutral_value(self, param_name: str) -> float:
        return 0.5 if param_name == "phenotype" else 0.0

    def delta_transforms(self, pose_aa: torch.Tensor, transl_m: torch.Tensor | None = None
                         ) -> torch.Tensor:
        """anny delta transforms (B, NB, 4, 4) for axis-angle ``pose_aa`` (B, NB, 3).

        The root transform is moved from world axes into the root bone's reference frame F
        (rotation ``F^T R F``, translation ``F^T transl_m``). In anny's ``local-bone-world``
        parameterization that root transform moves every vertex and bone head by ``transl_m``
        (B, 3), so translating costs no pass over the vertices. Without ``transl_m`` no
        transform has a translation.
        """
        rotations = roma.rotvec_to_rotmat(pose_aa)
        root = self.root_frame.transpose(0, 1) @ rotations[:, 0] @ self.root_frame
        rotations = torch.cat([root[:, None], rotations[:, 1:]], dim=1)
        batch_size, num_bones = pose_aa.shape[:2]
        translations = rotations.new_zeros(batch_size, num_bones, 3, 1)
        if transl_m is not None:
            translations[:, 0, :, 0] = transl_m @ self.root_frame
        top = torch.cat([rotations, translations], dim=-1)
        bottom = rotations.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(batch_size, num_bones, 1, 4)
        return torch.cat([top, bottom], dim=-2)

    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        return self.posed_body(self.anny, params)

    def posed_body(self, anny_model: torch.nn.Module, params: dict[str, torch.Tensor]
                   ) -> BodyOutput:
        """``anny_model`` (:attr:`anny` or a :meth:`vertex_subset_anny`) posed and shaped by
        complete ``params``, translated by ``transl_m``: its (B, V', 3) vertices and the
        (B, NB, 3) heads of its posed bones (translations of anny's ``bone_poses``), metres."""
        output = anny_model(
            pose_parameters=self.delta_transforms(params["pose_aa"], params["transl_m"]),
            phenotype_kwargs=params["phenotype"],
        )
        return BodyOutput(vertices_m=output["vertices"], joints_m=output["bone_poses"][..., :3, 3])

    def vertex_subset_anny(self, vertex_index: torch.Tensor, faces: torch.Tensor
                           ) -> torch.nn.Module:
        """An anny model that computes only the vertices ``vertex_index`` of this one.

        Its template, phenotype blend shapes and skinning weights are the rows
        ``vertex_index`` of this model's; bones, rest-pose orientations and phenotype handling
        are unchanged, so :meth:`posed_body` with it gives this model's vertices at
        ``vertex_index`` (float round-off) and its bone heads, at a cost proportional to
        ``len(vertex_index)``.

        Args:
            vertex_index: (K,) int64 indices into this model's vertices.
            faces: (F, 3) int64 triangles over the K vertices (anny keeps a mesh; the faces
                do not enter the vertex computation).
        """
        import anny

        index = vertex_index.to(self.anny.template_vertices.device)
        data = self.anny.to_model_data()
        data = dataclasses.replace(
            data,
            template_vertices=data.template_vertices[index],
            blendshapes=data.blendshapes[:, index],
            vertex_bone_weights=data.vertex_bone_weights[index],
            vertex_bone_indices=data.vertex_bone_indices[index],
            base_mesh_vertex_indices=data.base_mesh_vertex_indices[index],
            faces=faces.to(index.device),
            texture_coordinates=None,
            face_texture_coordinate_indices=None,
        )
        model = anny.Anny.from_model_data(
            data,
            skinning_method=_skinning_method(),
            pose_parameterization="local-bone-world",
            bone_orientation=self.anny.bone_orientation,
            root_identity_orientation=self.anny.root_identity_orientation,
        )
        return model.to(torch.float32)

    def _load_joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        path = regressor_asset_path(self.asset_dir, self.topology, joint_set_name)
        asset = load_regressor_asset(path)
        expected = get_joint_set(joint_set_name).joint_names
        if asset.joint_names != expected:
            raise Pose2MeshError(
                f"{path}: joint names {list(asset.joint_names)} do not match joint set "
                f"'{joint_set_name}' {list(expected)}"
            )
        return asset.matrix


def build_anny_body(
    topology: str = "default", asset_dir: str | Path = JOINT_REGRESSOR_DIR
) -> BodyModel:
    """The anny full body (104 bones) on one of :data:`ANNY_BODY_TOPOLOGIES`, or
    ``decimated<N>`` (e.g. ``decimated6890``, SMPL's size): the default mesh decimated to N
    vertices (:class:`pose2mesh.body_models.decimated.DecimatedBodyModel`)."""
    decimated = re.fullmatch(r"decimated(\d+)", topology)
    if decimated:
        from pose2mesh.body_models.decimated import DecimatedBodyModel

        return DecimatedBodyModel(build_anny_body("default", asset_dir), int(decimated.group(1)))
    if topology not in ANNY_BODY_TOPOLOGIES:
        raise Pose2MeshError(
            f"anny: unknown topology '{topology}'; expected one of "
            f"{list(ANNY_BODY_TOPOLOGIES)} or decimated<N> (e.g. decimated6890)"
        )
    return AnnyModel("anny", "anny", ANNY_BODY_TOPOLOGIES[topology], topology, asset_dir)


def build_anny_hand(
    topology: str = "default", asset_dir: str | Path = JOINT_REGRESSOR_DIR
) -> AnnyModel:
    """The anny right hand (21 bones, 1,609 vertices); it has one topology, ``default``."""
    if topology != "default":
        raise Pose2MeshError(
            f"anny_hand: unknown topology '{topology}'; the hand has only 'default'"
        )
    return AnnyModel("anny_hand", "anny-hand.R", "hand.R", HAND_TOPOLOGY, asset_dir)
