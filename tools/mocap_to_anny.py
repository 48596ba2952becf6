"""Turn BVH motion capture takes into the anny body-pose library of the synthetic set.

    python tools/mocap_to_anny.py ../shared/mocap/cmu --out asset/mocap/cmu_anny_poses.npz

Inputs are BVH files or folders (searched recursively for ``*.bvh``) on the iClone CC_Base
skeleton of the converted CMU takes or on CMU's own BVH skeleton. Every take is retargeted
onto anny's body rig (:mod:`pose2mesh.mocap.retarget`), sub-sampled to ``--fps`` and stored in
one compact npz (:mod:`pose2mesh.mocap.library`). The subject of a take is the number before
the underscore of its name (``006_01.bvh`` -> 006); subject 006 is the real-motion test split.
A take that fails is reported with its reason; the library is written only when every take
converts, unless ``--allow_failures``. The BVH files themselves are never copied.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pose2mesh.errors import Pose2MeshError, exit_on_user_error
from pose2mesh.mocap.library import CMU_CREDIT, TEST_SUBJECTS, save_pose_library


def bvh_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in map(Path, inputs):
        if entry.is_dir():
            files += sorted(entry.rglob("*.bvh"))
        elif entry.is_file():
            files.append(entry)
        else:
            raise Pose2MeshError(f"{entry}: no such BVH file or folder")
    if not files:
        raise Pose2MeshError(f"no .bvh files in {inputs}")
    return files


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="BVH files or folders")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--fps", type=float, default=20.0, help="sub-sampling rate (default 20)")
    parser.add_argument("--tpose", default=None,
                        help="BVH file whose frame 0 is the skeleton's T-pose (default: the "
                             "first input take that starts with one)")
    parser.add_argument("--topology", default="notoes_collapse10pc",
                        help="anny topology used to read the rig (bones do not depend on it)")
    parser.add_argument("--allow_failures", action="store_true",
                        help="write the library even if some takes fail (they are listed)")
    args = parser.parse_args(argv)
    if not args.fps > 0:
        raise Pose2MeshError(f"--fps must be positive, got {args.fps}")

    from pose2mesh.body_models.anny_model import build_anny_body
    from pose2mesh.mocap.convert import convert_takes
    from pose2mesh.mocap.retarget import AnnyRig

    start = time.perf_counter()
    files = bvh_files(args.inputs)
    rig = AnnyRig.from_body_model(build_anny_body(args.topology))
    library, report = convert_takes(files, rig, fps=args.fps, tpose=args.tpose)
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    print(f"{len(report.converted)} of {len(files)} takes converted, {len(report.failed)} failed, "
          f"{len(library)} frames at {args.fps:g} fps, {len(library.bone_labels)} moving bones "
          f"({time.perf_counter() - start:.1f} s)")
    for split in ("train", "test"):
        part = library.split(split)
        print(f"  {split}: {len(part)} frames, subjects {part.frames_per_subject() or '{}'}")
    print(f"  test subjects: {', '.join(TEST_SUBJECTS)}")
    if report.failed and not args.allow_failures:
        raise Pose2MeshError(f"{len(report.failed)} take(s) failed (listed above); nothing "
                             "written (--allow_failures writes the others)")
    save_pose_library(args.out, library)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB). {CMU_CREDIT}")


if __name__ == "__main__":
    main()
