"""Importing pose2mesh turns on PyTorch's huge-page CPU allocations unless the user chose."""
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("0", "0"), ("1", "1")])
def test_import_sets_thp_allocations_unless_already_set(preset, expected):
    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    if preset is not None:
        env["THP_MEM_ALLOC_ENABLE"] = preset
    code = "import os, pose2mesh; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == expected
