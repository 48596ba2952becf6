"""Reading 2D pose files for the demo, and filling joints that a detector missed.

Formats (:func:`load_pose_file`):

* ``.npy``: (J, 2) or (J, 3) -- third column = confidence -- or (P, J, 2|3) for P people, in
  the chosen joint set's order, pixel coordinates. For ``coco`` the 17 COCO keypoints alone are
  accepted too (Pelvis and Neck are then added).
* ``.json``, COCO keypoint-results format: a list of ``{"image_id", "category_id",
  "keypoints": [x, y, v] * 17, "score"}`` (a single such dict is accepted).
* ``.json``, OpenPose format: ``{"people": [{"pose_keypoints_2d": [...]}]}`` with the BODY_25
  (75 numbers) or COCO-18 (54 numbers) layout; with the ``mano`` joint set the person's
  ``hand_right_keypoints_2d`` (21 x 3, already in the mano order) is read instead.

JSON detections carry the 17 COCO keypoints, so they feed the ``coco`` joint set (19 joints:
COCO-17 + Pelvis + Neck); asking for ``human36`` or ``smpl`` with a JSON file is an error, since
those joints (head top, spine, thorax, toes, hands) cannot be read off COCO keypoints.

Every person comes back as a (J, 3) float32 array ``[x, y, confidence]``; confidence is 1 where
the file has none. Joints with confidence <= 0 are *missing*: they are kept, with confidence 0,
so a caller can mask them (camera fit) and draw them as missing, and
:func:`fill_missing_joints` gives them positions for the network input.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pose2mesh.errors import Pose2MeshError, too_deeply_nested
from pose2mesh.joint_sets import JointSet, add_pelvis_and_neck, get_joint_set

# COCO-17 keypoint k is OpenPose keypoint _OPENPOSE_TO_COCO17[layout][k].
_OPENPOSE_TO_COCO17 = {
    "BODY_25": (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11),
    "COCO-18": (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),
}
_OPENPOSE_LAYOUT_BY_COUNT = {25: "BODY_25", 18: "COCO-18"}
_COCO17_PARENTS_OF_ADDED = ((11, 12), (5, 6))  # Pelvis <- hips, Neck <- shoulders


def load_pose_file(path, joint_set: str | JointSet, image_id=None) -> list[np.ndarray]:
    """Read the people in a 2D pose file, in ``joint_set`` order.

    Args:
        path: ``.npy`` or ``.json`` file (formats in the module docstring).
        joint_set: name or :class:`JointSet` (``human36``, ``coco``, ``smpl``, ``mano``).
        image_id: for COCO results holding several images, which image's people to take.
    Returns:
        list of (J, 3) float32 ``[x, y, confidence]`` arrays, one per person.
    Raises:
        Pose2MeshError: one line naming the file and the problem (missing/unreadable file,
            unknown format, wrong joint count, NaN/inf values, no people).
    """
    path = Path(path)
    joint_set = get_joint_set(joint_set) if isinstance(joint_set, str) else joint_set
    if not path.is_file():
        raise Pose2MeshError(f"{path}: pose file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        people = _read_npy(path, joint_set)
    elif suffix == ".json":
        people = _read_json(path, joint_set, image_id)
    else:
        raise Pose2MeshError(
            f"{path}: unknown pose file format '{suffix}'; expected .npy or .json"
        )
    if not people:
        raise Pose2MeshError(f"{path}: no people in the file")
    return people


NPY_MAGIC = b"\x93NUMPY"


def _read_npy(path: Path, joint_set: JointSet) -> list[np.ndarray]:
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
    except OSError as err:
        raise Pose2MeshError(f"{path}: cannot read ({err.strerror or err})") from None
    if magic != NPY_MAGIC:  # np.load would call it "pickled data" (it tries pickle then)
        raise Pose2MeshError(f"{path}: not a NumPy .npy file (no NumPy header); save the pose "
                             "with numpy.save")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise Pose2MeshError(f"{path}: cannot read as a NumPy .npy file ({err})") from None
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise Pose2MeshError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] not in (2, 3):
        raise Pose2MeshError(
            f"{path}: expected an array of shape (J, 2|3) or (P, J, 2|3), got {array.shape}"
        )
    array = array.astype(np.float64)  # integer pixel input must not stay integer (bug 10.2)
    if array.shape[-1] == 2:
        array = np.concatenate([array, np.ones(array.shape[:-1] + (1,))], axis=-1)
    num_joints = array.shape[1]
    if joint_set.name == "coco" and num_joints == 17:
        array = _add_pelvis_and_neck(array)
    elif num_joints != joint_set.num_joints:
        also = " (or 17 COCO keypoints)" if joint_set.name == "coco" else ""
        raise Pose2MeshError(
            f"{path}: joint set '{joint_set.name}' expects {joint_set.num_joints} joints{also}, "
            f"got {num_joints}"
        )
    return [_checked_person(path, person, index) for index, person in enumerate(array)]


def _read_json(path: Path, joint_set: JointSet, image_id) -> list[np.ndarray]:
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Pose2MeshError(f"{path}: cannot read as JSON ({err})") from None
    except RecursionError:
        raise too_deeply_nested(path) from None
    if isinstance(content, dict) and "people" in content:
        coco17 = _openpose_people(path, content["people"], joint_set)
    elif isinstance(content, list) or (isinstance(content, dict) and "keypoints" in content):
        coco17 = _coco_results(path, [content] if isinstance(content, dict) else content,
                               joint_set, image_id)
    else:
        raise Pose2MeshError(
            f"{path}: unknown JSON pose format; expected COCO keypoint results (a list of "
            "{'keypoints': [...]}) or OpenPose ({'people': [...]})"
        )
    if joint_set.name == "mano":  # OpenPose hands: already (P, 21, 3) mano order
        people = coco17
    else:
        people = _add_pelvis_and_neck(coco17) if len(coco17) else coco17
    return [_checked_person(path, person, index) for index, person in enumerate(people)]


def _require_coco_joint_set(path: Path, joint_set: JointSet, format_name: str) -> None:
    if joint_set.name != "coco":
        raise Pose2MeshError(
            f"{path}: {format_name} detections give COCO keypoints; use the 'coco' joint set "
            f"(got '{joint_set.name}')"
        )


def _coco_results(path: Path, results: list, joint_set: JointSet, image_id) -> np.ndarray:
    _require_coco_joint_set(path, joint_set, "COCO keypoint-results")
    if not all(isinstance(r, dict) and "keypoints" in r for r in results):
        raise Pose2MeshError(f"{path}: every COCO result needs a 'keypoints' list")
    results = [r for r in results if r.get("category_id", 1) == 1]
    image_ids = sorted({r.get("image_id") for r in results}, key=str)
    if image_id is not None:
        results = [r for r in results if r.get("image_id") == image_id]
        if not results:
            raise Pose2MeshError(f"{path}: no people for image_id {image_id!r}")
    elif len(image_ids) > 1:
        shown = ", ".join(map(str, image_ids[:5])) + (", ..." if len(image_ids) > 5 else "")
        raise Pose2MeshError(
            f"{path}: detections for {len(image_ids)} images ({shown}); choose one image_id"
        )
    people = []
    for index, result in enumerate(results):
        values = _numbers(path, result["keypoints"], f"result {index} 'keypoints'")
        if values.size != 51:
            raise Pose2MeshError(
                f"{path}: result {index} has {values.size} keypoint numbers; expected 51 "
                "(17 COCO keypoints x [x, y, v])"
            )
        people.append(values.reshape(17, 3))
    return np.array(people, dtype=np.float64).reshape(-1, 17, 3)


def _openpose_people(path: Path, people: list, joint_set: JointSet) -> np.ndarray:
    if not isinstance(people, list):
        raise Pose2MeshError(f"{path}: OpenPose 'people' must be a list")
    key = "hand_right_keypoints_2d" if joint_set.name == "mano" else "pose_keypoints_2d"
    if joint_set.name != "mano":
        _require_coco_joint_set(path, joint_set, "OpenPose body")
    out = []
    for index, person in enumerate(people):
        if not isinstance(person, dict) or key not in person:
            raise Pose2MeshError(f"{path}: OpenPose person {index} has no '{key}'")
        values = _numbers(path, person[key], f"person {index} '{key}'")
        if values.size % 3:
            raise Pose2MeshError(
                f"{path}: person {index} '{key}' has {values.size} numbers, not a multiple of 3"
            )
        keypoints = values.reshape(-1, 3)
        if joint_set.name == "mano":
            if len(keypoints) != 21:
                raise Pose2MeshError(
                    f"{path}: joint set 'mano' expects 21 hand keypoints, got {len(keypoints)}"
                )
        else:
            layout = _OPENPOSE_LAYOUT_BY_COUNT.get(len(keypoints))
            if layout is None:
                raise Pose2MeshError(
                    f"{path}: person {index} has {len(keypoints)} OpenPose keypoints; expected "
                    "25 (BODY_25) or 18 (COCO-18)"
                )
            keypoints = keypoints[list(_OPENPOSE_TO_COCO17[layout])]
        if np.any(keypoints[:, 2] > 0):  # OpenPose lists undetected people as all zeros
            out.append(keypoints)
    num_joints = 21 if joint_set.name == "mano" else 17
    return np.array(out, dtype=np.float64).reshape(-1, num_joints, 3)


def _numbers(path: Path, values, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise Pose2MeshError(f"{path}: {what} must be a flat list of numbers") from None


def _add_pelvis_and_neck(coco17: np.ndarray) -> np.ndarray:
    """(P, 17, 3) -> (P, 19, 3); an added joint is missing if either of its parents is."""
    coco19 = add_pelvis_and_neck(coco17)
    for added, parents in zip((17, 18), _COCO17_PARENTS_OF_ADDED):
        parent_missing = np.any(coco17[:, parents, 2] <= 0, axis=1)
        coco19[parent_missing, added, 2] = 0.0
    return coco19


MAX_COORDINATE_PX = 10000.0
"""Largest pixel coordinate accepted: pictures up to 10,000 px on a side, so the blank canvas
the demo sizes to the poses stays within that too (2e4 px took 10.4 GB and failed in OpenGL)."""


def _checked_person(path: Path, person: np.ndarray, index: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        person32 = person.astype(np.float32)  # 1e39 is finite in float64, inf in float32
    bad = ~np.isfinite(person) | ~np.isfinite(person32)
    if bad.any():
        joint = int(np.argwhere(bad)[0][0])
        raise Pose2MeshError(
            f"{path}: person {index} has NaN or infinite values (first at joint {joint})"
        )
    far = np.abs(person32[:, :2]).max()
    if far > MAX_COORDINATE_PX:
        raise Pose2MeshError(
            f"{path}: person {index} has a coordinate of {far:.3g} px; pixel coordinates must "
            f"lie within +-{MAX_COORDINATE_PX:g} (is the file in pixels?)"
        )
    person32[:, 2] = np.maximum(person32[:, 2], 0.0)
    return person32


# ------------------------------------------------------------------- missing joints


def fill_missing_joints(pose: np.ndarray, joint_set: str | JointSet) -> np.ndarray:
    """Give positions to missing joints (confidence <= 0) of a (J, 3) pose.

    Rules, applied in this order (confidences are returned unchanged, so filled joints stay
    flagged with 0):

    1. **Mirror**: a joint whose flip partner was detected is the partner reflected across the
       body's symmetry axis -- the total-least-squares line through the detected central joints
       (those without a flip partner, e.g. Pelvis, Neck, Nose) and the midpoints of fully
       detected left/right pairs; with fewer than two distinct such points, the vertical image
       line through the one point (or through the mean of detected joints).
    2. **Between a left/right pair**: a joint whose skeleton neighbours include a complete
       left/right pair (Pelvis from the hips, Neck from the shoulders) is that pair's midpoint.
    3. **Skeleton neighbours**: otherwise the mean of its known skeleton neighbours (a missing
       wrist sits on its elbow, a missing elbow halfway between shoulder and wrist).
       Rules 2-3 repeat, each pass using the joints filled by the previous one, so chains of
       missing joints fill outwards from the detected ones.
    4. **Fallback**: joints never reached (no known joint in their skeleton component) take
       the mean of the detected joints.

    Args:
        pose: (J, 3) ``[x, y, confidence]``.
    Returns:
        (J, 3) float32 copy with every joint positioned.
    Raises:
        Pose2MeshError: no joint has positive confidence.
    """
    joint_set = get_joint_set(joint_set) if isinstance(joint_set, str) else joint_set
    out = np.array(pose, dtype=np.float32, copy=True)
    detected = out[:, 2] > 0
    if not detected.any():
        raise Pose2MeshError("2D pose has no joint with positive confidence")
    if detected.all():
        return out
    xy = out[:, :2].astype(np.float64)
    known = detected.copy()

    partner = {}
    for i, j in joint_set.flip_pairs:
        partner[i], partner[j] = j, i
    if partner:
        origin, direction = _symmetry_axis(xy, detected, joint_set, partner)
        for joint in np.flatnonzero(~detected):
            mate = partner.get(int(joint))
            if mate is not None and detected[mate]:
                offset = xy[mate] - origin
                xy[joint] = origin + 2.0 * (offset @ direction) * direction - offset
                known[joint] = True

    neighbours = [[] for _ in range(joint_set.num_joints)]
    for i, j in joint_set.skeleton:
        neighbours[i].append(j)
        neighbours[j].append(i)
    while not known.all():
        updates = {}
        for joint in np.flatnonzero(~known):
            near = [n for n in neighbours[joint] if known[n]]
            if not near:
                continue
            pair = next(
                ((a, b) for a, b in joint_set.flip_pairs if a in near and b in near), None
            )
            updates[joint] = xy[list(pair)].mean(0) if pair else xy[near].mean(0)
        if not updates:
            break
        for joint, position in updates.items():
            xy[joint] = position
            known[joint] = True
    xy[~known] = xy[detected].mean(0)
    out[:, :2] = xy
    return out


def _symmetry_axis(xy, detected, joint_set: JointSet, partner: dict):
    """(origin (2,), unit direction (2,)) of the body's left/right symmetry line in the image."""
    central = [xy[j] for j in range(joint_set.num_joints) if j not in partner and detected[j]]
    mids = [0.5 * (xy[a] + xy[b]) for a, b in joint_set.flip_pairs if detected[a] and detected[b]]
    points = np.array(central + mids, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        points = xy[detected]
    origin = points.mean(0)
    centred = points - origin
    if len(points) >= 2 and np.linalg.norm(centred) > 1e-6:
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    else:
        direction = np.array([0.0, 1.0])
    return origin, direction
