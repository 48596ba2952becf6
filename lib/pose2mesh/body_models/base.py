"""The body-model interface shared by every backend (anny, anny_hand, smpl, mano).

A :class:`BodyModel` maps batched parameter tensors to a :class:`BodyOutput` (mesh vertices
and the model's own kinematic joints, in metres) and owns the joint regressors that map
vertices to the joints of a joint set. Backends implement :meth:`BodyModel._forward` and
:meth:`BodyModel._load_joint_regressor`; parameter checking, defaults and joint regression
live here so that every backend behaves the same way.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from pose2mesh.body_models.joint_regression import SupportRegressor
from pose2mesh.errors import Pose2MeshError
from pose2mesh.joint_sets import get_joint_set

_REGRESSOR_BUFFER_PREFIX = "joint_regressor_"
_SUPPORT_REGRESSOR_PREFIX = "support_regressor_"


def format_shape(shape: tuple) -> str:
    """A shape as Python writes a tuple, without quotes: ``(B, 104, 3)``, ``(3,)``."""
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class BodyOutput:
    """What :meth:`BodyModel.forward` returns for a batch of B samples.

    Attributes:
        vertices_m: (B, V, 3) mesh vertices in metres.
        joints_m: (B, K, 3) the model's own kinematic joints in metres: SMPL its 24 FK
            joints, MANO its 21 joints (16 FK joints + 5 fingertip vertices, ``mano``
            joint-set order), anny the posed heads of its NB rig bones (``bone_labels``
            order); a decimated model those of its base model.

    Both are translated by ``transl_m``, in the model's dtype, on the device of the
    parameters. The joints of a joint set (human36, coco, ...) are not here: they come from
    :meth:`BodyModel.regress_joints` applied to ``vertices_m``.
    """

    vertices_m: torch.Tensor
    joints_m: torch.Tensor


class BodyModel(torch.nn.Module, ABC):
    """A parametric mesh model: per-sample parameters -> :class:`BodyOutput` (vertices
    (B, V, 3) and the model's kinematic joints (B, K, 3), in metres).

    Subclasses set, in ``__init__``:
        name: registry name (``"anny"``, ``"anny_hand"``, ``"smpl"``, ``"mano"``).
        param_shapes: per-sample shape of each parameter, e.g. ``{"pose_aa": (24, 3),
            "shape": (10,), "transl_m": (3,)}``; ``pose_aa`` is required, every other
            parameter defaults to its value in :meth:`zero_params`.
        faces: (F, 3) int64 buffer (vertex indices of the triangles).
        rest_vertices_m: (V, 3) float32 buffer, the mesh :meth:`zero_params` gives.

    and implement :meth:`_forward` (complete parameters -> :class:`BodyOutput`, the kinematic
    joints computed in the same pass as the vertices) and :meth:`_load_joint_regressor`.

    Buffers follow ``.to(device)``; :meth:`forward` runs on the device of its inputs, which
    must be the model's device.
    """

    name: str
    param_shapes: dict[str, tuple[int, ...]]
    faces: torch.Tensor
    rest_vertices_m: torch.Tensor

    @property
    def num_vertices(self) -> int:
        return int(self.rest_vertices_m.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.rest_vertices_m.dtype

    @property
    def device(self) -> torch.device:
        return self.rest_vertices_m.device

    def zero_params(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """All parameters at their neutral value: zero pose, zero translation, mean shape.

        Returns:
            {name: (batch_size, *param_shapes[name]) tensor of the model's dtype} on
            ``device`` (default: the model's device).
        """
        device = self.device if device is None else torch.device(device)
        return {
            key: torch.full(
                (batch_size, *shape), self._neutral_value(key), dtype=self.dtype, device=device
            )
            for key, shape in self.param_shapes.items()
        }

    def _neutral_value(self, param_name: str) -> float:
        """The value every entry of ``param_name`` takes in :meth:`zero_params`."""
        return 0.0

    def forward(self, **params: torch.Tensor) -> BodyOutput:
        """Mesh vertices and kinematic joints for a batch of parameters.

        Args:
            **params: tensors shaped (B, *param_shapes[name]); ``pose_aa`` is required,
                missing optional parameters take their :meth:`zero_params` value.
        Returns:
            :class:`BodyOutput`: (B, V, 3) vertices and (B, K, 3) joints in metres, in the
            model's dtype (float32), on the device of the parameters; differentiable with
            respect to every parameter.
        """
        return self._forward(self.complete_params(params))

    @abstractmethod
    def _forward(self, params: dict[str, torch.Tensor]) -> BodyOutput:
        """:class:`BodyOutput` (metres) for complete, validated parameters."""

    def complete_params(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Check ``params`` against :attr:`param_shapes` and fill in the optional ones.

        Raises:
            Pose2MeshError: (one line) unknown or missing parameter, non-tensor, wrong shape,
                inconsistent batch sizes, or tensors on another device than the model.
        Returns:
            every parameter of :attr:`param_shapes`, cast to the model's dtype.
        """
        unknown = sorted(set(params) - set(self.param_shapes))
        if unknown:
            raise Pose2MeshError(
                f"{self.name}: unknown parameter(s) {unknown}; expected {list(self.param_shapes)}"
            )
        if "pose_aa" not in params:
            raise Pose2MeshError(f"{self.name}: parameter 'pose_aa' is required")
        batch_size = None
        for key, value in params.items():
            expected = self.param_shapes[key]
            if not isinstance(value, torch.Tensor):
                raise Pose2MeshError(
                    f"{self.name}: {key} must be a torch.Tensor, got {type(value).__name__}"
                )
            if value.dim() != len(expected) + 1 or tuple(value.shape[1:]) != expected:
                raise Pose2MeshError(
                    f"{self.name}: {key} must have shape {format_shape(('B', *expected))}, "
                    f"got {format_shape(tuple(value.shape))}"
                )
            if batch_size is None:
                batch_size, first_key = value.shape[0], key
            elif value.shape[0] != batch_size:
                raise Pose2MeshError(
                    f"{self.name}: {key} has batch size {value.shape[0]} but {first_key} has "
                    f"{batch_size}"
                )
            if value.device != self.device:
                raise Pose2MeshError(
                    f"{self.name}: {key} is on {value.device} but the model is on "
                    f"{self.device}; move the model with .to(device)"
                )
        complete = self.zero_params(batch_size)
        complete.update({key: value.to(self.dtype) for key, value in params.items()})
        return complete

    def joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        """(J, V) dense float32 regressor from vertices to the joints of ``joint_set_name``.

        Loaded on first use, then kept as a non-persistent buffer (it follows ``.to()``).
        Raises Pose2MeshError for an unknown joint set, one this model has no regressor
        for, or a missing regressor file.
        """
        joint_set = get_joint_set(joint_set_name)
        key = _REGRESSOR_BUFFER_PREFIX + joint_set_name
        if key not in self._buffers:
            matrix = self._load_joint_regressor(joint_set_name)
            expected = (joint_set.num_joints, self.num_vertices)
            if tuple(matrix.shape) != expected:
                raise Pose2MeshError(
                    f"{self.name}: the '{joint_set_name}' joint regressor has shape "
                    f"{format_shape(tuple(matrix.shape))}, expected {format_shape(expected)}"
                )
            self.register_buffer(
                key, matrix.to(device=self.device, dtype=self.dtype), persistent=False
            )
        return self._buffers[key]

    @abstractmethod
    def _load_joint_regressor(self, joint_set_name: str) -> torch.Tensor:
        """(J, V) regressor for a known joint-set name (any float dtype, any device)."""

    def regress_joints(self, vertices: torch.Tensor, joint_set_name: str) -> torch.Tensor:
        """Joints of ``joint_set_name`` regressed from vertices.

        Args:
            vertices: (B, V, 3) vertices (any unit; joints come out in the same unit).
        Returns:
            (B, J, 3) joints, on the device and in the dtype of ``vertices``.
        """
        if vertices.dim() != 3 or tuple(vertices.shape[1:]) != (self.num_vertices, 3):
            raise Pose2MeshError(
                f"{self.name}: vertices must have shape (B, {self.num_vertices}, 3), "
                f"got {format_shape(tuple(vertices.shape))}"
            )
        key = _SUPPORT_REGRESSOR_PREFIX + joint_set_name
        if key not in self._modules:
            self.add_module(key, SupportRegressor(self.joint_regressor(joint_set_name)))
        return self._modules[key](vertices)
