"""Importing pose2mesh changes nothing in the process; the command lines choose the CPU
allocator settings explicitly."""
import os
import subprocess
import sys

import pytest


def test_import_leaves_the_environment_and_allocator_alone():
    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    # torch and OpenCV themselves add variables when imported; pose2mesh adds none.
    code = ("import os; before = dict(os.environ); import pose2mesh; same = dict(os.environ) == before; "
            "import pose2mesh.demo, pose2mesh.engine.trainer, pose2mesh.engine.evaluator; "
            "print(same, 'THP_MEM_ALLOC_ENABLE' in os.environ)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("preset, expected", [(None, "1"), ("0", "0")])
def test_command_lines_turn_huge_pages_on_unless_the_user_chose(preset, expected):
    from pose2mesh.engine.cpu_memory import enable_huge_page_allocations

    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    if preset is not None:
        env["THP_MEM_ALLOC_ENABLE"] = preset
    code = ("import os; from pose2mesh.engine.cpu_memory import enable_huge_page_allocations; "
            "print(enable_huge_page_allocations(), os.environ['THP_MEM_ALLOC_ENABLE'])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.stdout.split() == [expected, expected]
    assert callable(enable_huge_page_allocations)
