"""Importing pose2mesh changes nothing in the process; the command lines choose the CPU
allocator settings explicitly. The installed form: console scripts, assets as package data,
the wheel's contents (scripts/check_wheel.sh installs and runs it)."""
import importlib
import os
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

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


# ----------------------------------------------------------------------------- installed form
REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"pose2mesh-train": ("pose2mesh.cli.train", "main/train.py"),
            "pose2mesh-test": ("pose2mesh.cli.test", "main/test.py"),
            "pose2mesh-demo": ("pose2mesh.cli.demo", "demo/run.py")}


def test_command_modules_import_no_torch_before_main():
    """The console scripts import their module, then call main(): torch must not be imported
    by then, so that main() makes its allocator choice (THP_MEM_ALLOC_ENABLE) first."""
    code = ("import sys, runpy; import pose2mesh.cli.train, pose2mesh.cli.test, pose2mesh.cli.demo; "
            f"[runpy.run_path(p) for p in {[str(REPO / script) for _, script in COMMANDS.values()]!r}]; "
            "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False"]


def test_console_scripts_are_the_commands_the_scripts_run():
    from importlib.metadata import entry_points

    scripts = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name in COMMANDS}
    assert set(scripts) == set(COMMANDS)
    for name, (module, script) in COMMANDS.items():
        assert scripts[name].value == f"{module}:main"
        wrapper = runpy.run_path(str(REPO / script))  # __name__ != "__main__": nothing runs
        assert wrapper["parse_args"] is importlib.import_module(module).parse_args
    train = runpy.run_path(str(REPO / "main" / "train.py"))
    assert train["main"] is importlib.import_module("pose2mesh.cli.train").main


def test_assets_are_package_data_found_through_importlib_resources():
    from importlib.resources import files

    from pose2mesh import assets
    from pose2mesh.demo import FALLBACK_CONFIGS
    from pose2mesh.pretrained import PRETRAINED_JOINT_SETS, pretrained_path

    root = assets.asset_root()
    assert root == files(assets.ASSET_PACKAGE) and root.is_dir()
    for path in (assets.JOINT_REGRESSOR_DIR, assets.PRETRAINED_DIR, assets.POSE_LIBRARY_PATH):
        assert root in path.parents
    assert assets.POSE_LIBRARY_PATH.is_file()
    assert (assets.JOINT_REGRESSOR_DIR / "anny_default_coco.npz").is_file()
    assert all(pretrained_path(joint_set).is_file() for joint_set in PRETRAINED_JOINT_SETS)
    assert all(assets.config_path(name).is_file() for name in FALLBACK_CONFIGS.values())


def test_wheel_ships_the_run_time_assets_and_the_commands(tmp_path):
    """The wheel of scripts/check_wheel.sh (which CI also installs into a fresh venv and runs
    the demo from): every run-time asset of asset/, no figures, the three commands."""
    run = subprocess.run(["bash", str(REPO / "scripts" / "check_wheel.sh"), "--wheel", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    (wheel,) = tmp_path.glob("pose2mesh-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    shipped = {name.removeprefix("pose2mesh/_assets/") for name in names
               if name.startswith("pose2mesh/_assets/")}
    asset = REPO / "asset"
    expected = {str(path.relative_to(asset)) for pattern in
                ("joint_regressors/*.npz", "mocap/*.npz", "pretrained/*.pth.tar", "yaml/*.yml")
                for path in asset.glob(pattern)}
    assert expected <= shipped and "__init__.py" in shipped
    assert not {name for name in shipped if name.startswith("figures/")}
    assert "pose2mesh/cli/demo.py" in names and "pose2mesh/assets.py" in names
    for name, (module, _) in COMMANDS.items():
        assert f"{name} = {module}:main" in entry_points
