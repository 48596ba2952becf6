"""Fit the sparse vertex -> joint regressors of anny shipped in ``asset/joint_regressors``.

Writes ``anny_<topology>_{human36,coco,smpl}.npz`` for each anny body topology of
``--topologies`` (shipped: ``default``, 13,718 vertices; ``notoes``, 12,272;
``notoes_collapse10pc``, 1,229; any other of ``ANNY_BODY_TOPOLOGIES`` on request) and
``anny_hand_mano.npz`` (right hand ``hand``, 1,609 vertices) in the asset format of
``pose2mesh.body_models.regressor_asset``.

Targets are the *rig joints* of :mod:`pose2mesh.body_models.rig_joints` (posed bone heads,
anny's face landmarks, the crown and fingertip vertices; see its docstring for every joint).
The vertex landmarks are defined on the default body mesh; a body topology other than
``default`` gets them through its rest-pose closest-surface-point correspondence with it
(the default body is built once for that), so every topology is fitted on its own.
Method, per joint:

1. candidates: the ``--candidates`` vertices nearest to the joint in the rest pose of an
   average 40-year-old body (eyeball vertices excluded: the eyes rotate in their sockets);
2. data: ``--num-train`` poses from the pose prior (``BodyPosePrior`` / ``HandPosePrior``,
   key-pose probability 0.7, 12 deg noise) with phenotypes from ``sample_phenotypes``
   (a quarter of them over all ages, the rest adults), each shifted by a random
   translation so that only weights summing to one fit; the least-squares normal equations
   are accumulated batch by batch (``--batch-size`` anny forward passes at a time);
3. non-negative least squares on the candidates (plus a penalty on ``sum(w) - 1``), then
   the ``--max-support`` largest weights are kept, refitted by NNLS and renormalised to sum
   to one (translation invariance).

COCO ``Pelvis`` and ``Neck`` (rows 17, 18) are not fitted: they are the means of the hip
and shoulder rows, as the coco joint set defines them. The held-out error is measured on
``--num-test`` fresh samples (another seed) against the rig joints; the mean and max
(over samples and joints, mm) are stored in each file and printed with the worst joints.
The table also gives the error on the same poses with one fixed (reference) body shape:
most of the remaining error comes from anny's rig, whose joints move relative to the mesh
as the phenotype changes (worst: the knees, which drift ~12 cm along the leg over the
height range), which no fixed vertex blend can follow.

Usage::

    python tools/fit_joint_regressors.py --out-dir asset/joint_regressors \\
        --num-train 4000 --num-test 1000 --seed 0 \\
        --topologies default notoes notoes_collapse10pc hand
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.optimize
import torch
from tqdm import tqdm

from pose2mesh.body_models import ANNY_BODY_TOPOLOGIES, build_body_model
from pose2mesh.body_models.anny_model import HAND_TOPOLOGY
from pose2mesh.body_models.regressor_asset import regressor_asset_path, save_regressor_asset
from pose2mesh.body_models.rig_joints import (
    BODY_JOINT_SETS,
    HAND_JOINT_SETS,
    RigJointRegressor,
)
from pose2mesh.datasets.pose_prior import (
    HEIGHT_RANGE,
    PHENOTYPE_LABELS,
    BodyPosePrior,
    HandPosePrior,
    sample_phenotypes,
    years_to_age_param,
)
from pose2mesh.errors import Pose2MeshError, exit_on_user_error
from pose2mesh.joint_sets import get_joint_set

SHIPPED_TOPOLOGIES = ("default", "notoes", "notoes_collapse10pc", HAND_TOPOLOGY)
"""Asset topologies fitted by default (those shipped in asset/joint_regressors)."""
# Rows derived from fitted rows instead of being fitted: joint -> the rows averaged.
_DERIVED_ROWS = {"coco": {"Pelvis": ("L_Hip", "R_Hip"), "Neck": ("L_Shoulder", "R_Shoulder")}}
_ALL_AGES_FRACTION = 0.25
_TRANSLATION_STD_M = 0.5
_SUM_PENALTY = 1e-2
_RIDGE = 1e-9  # keeps the Cholesky factorisation defined


def reference_phenotype(batch_size: int) -> torch.Tensor:
    """(B, 6) an average 40-year-old body: phenotypes 0.5 but the age and the height (the
    middle of the sampled height range)."""
    phenotype = torch.full((batch_size, len(PHENOTYPE_LABELS)), 0.5)
    phenotype[:, PHENOTYPE_LABELS.index("age")] = years_to_age_param(torch.tensor(40.0))
    phenotype[:, PHENOTYPE_LABELS.index("height")] = sum(HEIGHT_RANGE) / 2
    return phenotype


def sample_batch(model, prior, batch_size: int, generator: torch.Generator,
                 fixed_shape: bool = False):
    """Poses and phenotypes of one batch -> (vertices (B,V,3), bone heads (B,NB,3)).
    ``fixed_shape`` uses the reference phenotype instead of sampled ones."""
    pose = prior.sample(batch_size, generator, key_pose_prob=0.7, noise_deg=12.0)
    adults = sample_phenotypes(batch_size, generator)
    all_ages = sample_phenotypes(batch_size, generator, all_ages=True)
    pick = torch.rand(batch_size, 1, generator=generator) < _ALL_AGES_FRACTION
    phenotype = reference_phenotype(batch_size) if fixed_shape else torch.where(
        pick, all_ages, adults)
    output = model(pose_aa=pose, phenotype=phenotype)
    return output.vertices_m, output.joints_m


def batches(total: int, batch_size: int, desc: str):
    for start in tqdm(range(0, total, batch_size), desc=desc, leave=False):
        yield min(batch_size, total - start)


def unique_rows(rig: dict[str, RigJointRegressor]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Deduplicate rig-joint rows across joint sets (e.g. the hips of human36 and coco).

    Returns vertex_weights (U,V), bone_weights (U,NB) of the unique fitted joints and
    {set: {joint_name: unique row}} for every fitted (non-derived) joint.
    """
    keys, vertex_rows, bone_rows, where = {}, [], [], {}
    for name, regressor in rig.items():
        derived = _DERIVED_ROWS.get(name, {})
        where[name] = {}
        for j, joint in enumerate(get_joint_set(name).joint_names):
            if joint in derived:
                continue
            row_v, row_b = regressor.vertex_weights[j], regressor.bone_weights[j]
            key = (row_v.numpy().tobytes(), row_b.numpy().tobytes())
            if key not in keys:
                keys[key] = len(vertex_rows)
                vertex_rows.append(row_v)
                bone_rows.append(row_b)
            where[name][joint] = keys[key]
    return torch.stack(vertex_rows), torch.stack(bone_rows), where


def candidate_vertices(model, vertex_rows, bone_rows, count: int) -> torch.Tensor:
    """(U, count) nearest vertices to each joint in a neutral adult rest pose."""
    pose = torch.zeros(1, len(model.bone_labels), 3)
    output = model(pose_aa=pose, phenotype=reference_phenotype(1))
    vertices = output.vertices_m[0]
    joints = vertex_rows @ vertices + bone_rows @ output.joints_m[0]
    distance = torch.cdist(joints, vertices)
    skinning = model.anny
    main_bone = skinning.vertex_bone_indices.gather(
        1, skinning.vertex_bone_weights.argmax(dim=1, keepdim=True))[:, 0]
    eye_bones = [i for i, label in enumerate(model.bone_labels) if label.startswith("eye.")]
    distance[:, torch.isin(main_bone, torch.tensor(eye_bones, dtype=main_bone.dtype))] = np.inf
    return torch.topk(distance, min(count, distance.shape[1]), largest=False).indices


def accumulate_normal_equations(model, prior, vertex_rows, bone_rows, candidates, args):
    """Sum over training samples of A^T A (U,K,K) and A^T b (U,K), float64."""
    num_rows, count = candidates.shape
    gram = torch.zeros(num_rows, count, count, dtype=torch.float64)
    rhs = torch.zeros(num_rows, count, dtype=torch.float64)
    generator = torch.Generator().manual_seed(args.seed)
    for size in batches(args.num_train, args.batch_size, "train poses"):
        vertices, heads = sample_batch(model, prior, size, generator)
        shift = torch.randn(size, 1, 3, generator=generator) * _TRANSLATION_STD_M
        targets = (torch.einsum("uv,bvc->buc", vertex_rows, vertices)
                   + torch.einsum("uk,bkc->buc", bone_rows, heads) + shift).double()
        design = (vertices + shift)[:, candidates].double()  # (B, U, K, 3)
        gram += torch.einsum("bukc,bulc->ukl", design, design)
        rhs += torch.einsum("bukc,buc->uk", design, targets)
    return gram, rhs


def solve_nnls(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin_{w>=0} w^T G w - 2 h^T w (+ penalty on sum(w) - 1), via a Cholesky factor."""
    scale = np.trace(gram) / len(gram)
    gram = gram + _SUM_PENALTY * scale + _RIDGE * scale * np.eye(len(gram))
    rhs = rhs + _SUM_PENALTY * scale
    factor = np.linalg.cholesky(gram)
    weights, _ = scipy.optimize.nnls(factor.T, np.linalg.solve(factor, rhs), maxiter=50 * len(rhs))
    return weights


def fit_sparse_rows(gram, rhs, candidates, num_vertices: int, max_support: int) -> np.ndarray:
    """(U, V) sparse non-negative regressor, each row summing to one."""
    matrix = np.zeros((len(candidates), num_vertices))
    for u in range(len(candidates)):
        g, h = gram[u].numpy(), rhs[u].numpy()
        weights = solve_nnls(g, h)
        support = np.argsort(-weights)[:max_support]
        support = support[weights[support] > 0]
        refit = solve_nnls(g[np.ix_(support, support)], h[support])
        keep = refit > 1e-6
        matrix[u, candidates[u, support[keep]].numpy()] = refit[keep] / refit[keep].sum()
    return matrix


def set_matrix(name: str, fitted: np.ndarray, where: dict) -> np.ndarray:
    """The (J, V) regressor of joint set ``name`` from the unique fitted rows."""
    rows = {joint: fitted[u] for joint, u in where[name].items()}
    for joint, sources in _DERIVED_ROWS.get(name, {}).items():
        rows[joint] = np.mean([rows[source] for source in sources], axis=0)
    return np.stack([rows[joint] for joint in get_joint_set(name).joint_names])


def held_out_errors(model, prior, rig, matrices, args,
                    fixed_shape: bool = False) -> dict[str, np.ndarray]:
    """{set: (N, J) joint errors in mm} on fresh samples (seed + 1)."""
    generator = torch.Generator().manual_seed(args.seed + 1)
    dense = {name: torch.from_numpy(m).float() for name, m in matrices.items()}
    errors = {name: [] for name in matrices}
    for size in batches(args.num_test, args.batch_size, "test poses"):
        vertices, heads = sample_batch(model, prior, size, generator, fixed_shape)
        for name, matrix in dense.items():
            predicted = torch.einsum("jv,bvc->bjc", matrix, vertices)
            errors[name].append(1000.0 * (predicted - rig[name](vertices, heads)).norm(dim=-1))
    return {name: torch.cat(chunks).numpy() for name, chunks in errors.items()}


def report(topology: str, name: str, matrix: np.ndarray, errors: np.ndarray,
           pose_only: np.ndarray) -> None:
    per_joint = errors.mean(axis=0)
    names = get_joint_set(name).joint_names
    worst = np.argsort(-per_joint)[:3]
    support = (matrix > 0).sum(axis=1)
    print(f"{topology:19s} {name:8s} {matrix.shape[0]:3d}x{matrix.shape[1]:<6d} {errors.mean():8.2f} "
          f"{errors.max():8.2f} {pose_only.mean():9.2f} {pose_only.max():9.2f} "
          f"{len(errors):8d} {support.max():4d}   "
          + ", ".join(f"{names[j]} {per_joint[j]:.1f}" for j in worst))


def build_model(topology: str):
    """The anny model of an asset topology (a body topology or ``hand``)."""
    if topology == HAND_TOPOLOGY:
        return build_body_model("anny_hand")
    return build_body_model("anny", topology=topology)


def fit_topology(topology: str, args, reference_model) -> None:
    """Fit, report and save every joint set of one asset topology; ``reference_model`` is the
    default-topology body (vertex landmarks of the other body topologies)."""
    model = build_model(topology)
    is_hand = topology == HAND_TOPOLOGY
    set_names = HAND_JOINT_SETS if is_hand else BODY_JOINT_SETS
    prior = (HandPosePrior if is_hand else BodyPosePrior)(model.bone_labels)
    rig = {name: RigJointRegressor(model, name, None if is_hand else reference_model)
           for name in set_names}
    vertex_rows, bone_rows, where = unique_rows(rig)
    candidates = candidate_vertices(model, vertex_rows, bone_rows, args.candidates)
    gram, rhs = accumulate_normal_equations(model, prior, vertex_rows, bone_rows, candidates,
                                            args)
    fitted = fit_sparse_rows(gram, rhs, candidates, vertex_rows.shape[1], args.max_support)
    matrices = {name: set_matrix(name, fitted, where) for name in set_names}
    errors = held_out_errors(model, prior, rig, matrices, args)
    pose_only = held_out_errors(model, prior, rig, matrices, args, fixed_shape=True)
    for name in set_names:
        report(topology, name, matrices[name], errors[name], pose_only[name])
        save_regressor_asset(
            regressor_asset_path(args.out_dir, topology, name), matrices[name],
            get_joint_set(name).joint_names, float(errors[name].mean()),
            float(errors[name].max()),
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("asset/joint_regressors"))
    parser.add_argument("--topologies", nargs="+", default=list(SHIPPED_TOPOLOGIES),
                        choices=[*ANNY_BODY_TOPOLOGIES, HAND_TOPOLOGY], metavar="TOPOLOGY",
                        help="asset topologies to fit: anny body topologies "
                             f"({', '.join(ANNY_BODY_TOPOLOGIES)}) and/or '{HAND_TOPOLOGY}' "
                             "(default: %(default)s)")
    parser.add_argument("--num-train", type=int, default=4000, help="training poses per model")
    parser.add_argument("--num-test", type=int, default=1000, help="held-out poses per model")
    parser.add_argument("--seed", type=int, default=0, help="train seed (test uses seed + 1)")
    parser.add_argument("--batch-size", type=int, default=64, help="anny forward batch size")
    parser.add_argument("--candidates", type=int, default=256,
                        help="nearest rest-pose vertices considered per joint")
    parser.add_argument("--max-support", type=int, default=32,
                        help="most vertices a joint's regressor may use")
    args = parser.parse_args(argv)
    for option in ("num_train", "num_test", "batch_size", "candidates", "max_support"):
        if getattr(args, option) < 1:
            raise Pose2MeshError(f"--{option.replace('_', '-')} must be at least 1")
    return args


@exit_on_user_error
@torch.no_grad()
def main(argv=None) -> None:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"{'':39s} {'held-out error':>17s} {'same, fixed shape':>19s}")
    print(f"{'topology':19s} {'set':8s} {'shape':10s} {'mean mm':>8s} {'max mm':>8s} "
          f"{'mean mm':>9s} {'max mm':>9s} {'samples':>8s} {'nnz':>4s}   "
          "worst joints (mean mm)")
    reference_model = None
    for topology in dict.fromkeys(args.topologies):  # unique, in the given order
        if topology not in ("default", HAND_TOPOLOGY) and reference_model is None:
            reference_model = build_model("default")
        fit_topology(topology, args, reference_model)
    print(f"wrote {args.out_dir} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
