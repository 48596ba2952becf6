"""Builds anny's one-time model caches (body and right hand) so later runs start in ~1 s.

Run once after installation: ``python -m pose2mesh.body_models.warmup``. On a new machine the
first construction parses the MakeHuman assets for 1-3 minutes and caches them under
``~/.cache/anny`` (``ANNY_CACHE_DIR``); nothing is downloaded.
"""
import time

from pose2mesh.body_models import build_body_model


def main() -> None:
    for name in ("anny", "anny_hand"):
        start = time.perf_counter()
        model = build_body_model(name)
        print(f"{name}: {model.num_vertices} vertices ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
