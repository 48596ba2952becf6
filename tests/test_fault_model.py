"""The fault model: what pose2mesh promises when runs are killed, disks fill up, runs collide
and files are hostile, and which test checks each promise.

Every promise below names its test as ``module::test``; ``test_every_cited_test_exists``
keeps this list honest. Tests without a module are in this file (cheap probes that no other
module covers). A "one line" error is a :class:`pose2mesh.errors.Pose2MeshError`: the command
lines print ``error: <message>`` on stderr and exit with status 2, no traceback.

kill -9 (interruption at any moment)
    * Every checkpoint file that exists loads, and holds one complete state: writes go to a
      temporary file that is fsynced and renamed over the target. Real SIGKILLs landing in
      checkpoint writes (at a random byte of a random write):
      ``test_sigkill_during_checkpoint_writes_leaves_only_complete_checkpoints``;
      simulated crashes mid-write: ``test_checkpoint.py::test_crash_during_save_keeps_previous_checkpoint``,
      ``test_checkpoint.py::test_crash_during_training_save_leaves_last_good_checkpoint``.
    * A killed write leaves at most hidden ``.*.tmp`` files, removed when the next run starts:
      ``test_checkpoint.py::test_stale_temporaries_of_a_killed_write_are_removed`` (and the
      SIGKILL probe above, which checks that nothing else is left).
    * ``--resume_training`` after a kill gives the weights, optimizer state and histories of an
      uninterrupted run, bit for bit: ``test_engine.py::test_resume_after_kill_gives_identical_weights``.
    * The experiment-folder lock of a killed run is released by the kernel:
      ``test_engine.py::test_two_runs_cannot_share_an_experiment_folder``.
    * Not promised: a killed run cannot tidy up, so its ``exp_*`` folder stays even when it is
      still empty (a run that fails with an error does remove it, see below). After a power cut
      the last rename may be lost: the previous checkpoint is then the newest (still complete).

Disk full (and any other failed write)
    * A checkpoint write that fails stops training in one line that names the last intact
      checkpoint; earlier checkpoints are untouched and no temporary file is left. The OS
      refusing the write (a file-size limit, as a full disk does):
      ``test_a_write_the_os_refuses_stops_training_in_one_line_and_keeps_earlier_checkpoints``;
      a simulated full disk: ``test_checkpoint.py::test_disk_full_during_a_save_is_one_line_and_keeps_earlier_checkpoints``.
    * Extending a finished run keeps its final checkpoint (as that epoch's file), and outputs
      get the user's umask: ``test_checkpoint.py::test_extending_a_finished_run_keeps_its_final_checkpoint_and_files_get_the_umask``.
    * A run that fails before writing any output removes the ``exp_*`` folder it created,
      never a ``--exp_dir`` or a folder holding output:
      ``test_engine.py::test_a_failed_run_removes_the_experiment_folder_it_created_and_nothing_else``.
    * The demo checks its output folder before loading the model:
      ``test_demo.py::test_text_file_named_npy_and_unwritable_output_are_one_line_errors``.

Concurrent runs
    * A training run holds an exclusive ``flock`` on its experiment folder; a second run on it
      stops in one line naming the holder's PID:
      ``test_engine.py::test_two_runs_cannot_share_an_experiment_folder``. Runs racing for the
      same folder at the same instant: exactly one wins, and the others name it:
      ``test_runs_racing_for_one_folder_get_one_lock_and_new_folders_never_collide``; a run
      refused before the winner wrote its PID waits for it (up to 2 s):
      ``test_a_run_refused_before_the_holder_wrote_its_line_still_names_the_holder``.
    * New ``exp_*`` folders are made with an exclusive ``mkdir``: never reused, distinct even
      when created in the same microsecond by different processes (same test), or in sequence:
      ``test_engine.py::test_experiment_folders_are_unique_and_never_reused``.
    * Not promised: locking on network file systems whose ``flock`` is not shared between
      machines.

Hostile files
    * Pickles: checkpoints load only through ``torch.load(weights_only=True)``; a ``--weights``
      file whose pickle would run code is refused in one line by the demo, main/test.py and
      resume, and its payload never runs:
      ``test_checkpoint.py::test_a_checkpoint_that_would_run_code_is_refused_by_every_command``,
      ``test_checkpoint.py::test_training_checkpoint_has_original_keys_and_loads_weights_only``.
      Truncated, text or mismatched weight files are one line:
      ``test_checkpoint.py::test_bad_checkpoint_files_are_one_line_errors``,
      ``test_demo.py::test_missing_weights_and_mismatched_config_are_one_line_errors``.
      Pose ``.npy`` files load with ``allow_pickle=False``; a file that is not NumPy says so:
      ``test_demo.py::test_text_file_named_npy_and_unwritable_output_are_one_line_errors``,
      ``test_pose_input.py::test_file_errors``.
    * Huge or degenerate inputs: coordinates beyond +-10,000 px or non-finite in float32 are
      refused before anything is rendered:
      ``test_demo.py::test_huge_coordinates_are_refused_before_anything_is_rendered``,
      ``test_pose_input.py::test_npy_nan_inf``; a pose collapsed on one pixel is refused:
      ``test_demo.py::test_degenerate_pose_is_refused_in_one_line``; a non-finite mesh is never
      written as OBJ: ``test_demo.py::test_non_finite_mesh_is_never_written``; wrong shapes and
      counts: ``test_pose_input.py::test_npy_errors``, ``test_pose_input.py::test_json_errors``,
      ``test_demo.py::test_bad_input_is_one_line_and_exit_code_2``.
    * Deep nesting (100,000 nested brackets, which exhaust the JSON and YAML parsers' recursion)
      is one line wherever a user's JSON or YAML is parsed: demo pose files
      ``test_a_deeply_nested_pose_file_is_one_line_in_the_demo`` and
      ``test_deeply_nested_pose_json_in_every_format_is_one_line``; configs and config values
      ``test_a_deeply_nested_config_is_one_line_in_main_train``,
      ``test_deeply_nested_config_values_are_one_line`` and
      ``test_a_deeply_nested_override_is_one_line``; the official-format annotation files
      of every dataset (all read through ``pose2mesh.datasets.annotation_files.load_json``)
      ``test_a_deeply_nested_annotation_file_is_one_line``; the config saved in a checkpoint,
      on resume ``test_a_deeply_nested_config_in_a_checkpoint_is_one_line_on_resume`` and in the
      demo's weights lookup ``test_a_deeply_nested_config_in_a_checkpoint_is_ignored_by_the_weights_lookup``.
    * Bad configs: unknown keys, wrong types, out-of-range values and bad choices are one line
      naming the key: ``test_config.py::test_bad_yaml_gives_one_line_naming_key_and_file``,
      ``test_config.py::test_out_of_range_values_are_one_line_errors``,
      ``test_config.py::test_bad_overrides``, ``test_engine.py::test_cli_unknown_config_key_is_one_line_exit_2``;
      an integer where a float is expected is accepted:
      ``test_config.py::test_an_integer_is_accepted_where_a_float_is_expected``. Resuming with
      a config that changes the network, joint sets or optimizer is refused in one line listing
      the changes; a new learning rate is applied:
      ``test_engine.py::test_resume_refuses_incompatible_changes_and_applies_a_new_learning_rate``.
    * Missing or malformed dataset files are one line naming the file and the dataset's README:
      ``test_datasets_real.py::test_missing_file_names_path_and_readme``,
      ``test_datasets_real.py::test_malformed_json_names_file_and_key``; evaluation without the
      training files needed only by the mean-pose baseline skips the baseline with a logged
      warning: ``test_datasets_real.py::test_3dpw_evaluation_without_the_training_files_skips_only_the_baseline``.
    * Numerical faults: a NaN/inf loss, or weights made non-finite by any optimizer step (the
      last of an epoch too), stop training in one line naming the last good checkpoint, and
      evaluation refuses non-finite predictions:
      ``test_engine.py::test_non_finite_loss_stops_and_keeps_last_good_checkpoint``,
      ``test_engine.py::test_weights_gone_non_finite_in_the_last_step_of_an_epoch_stop_before_evaluation``,
      ``test_engine.py::test_evaluation_refuses_non_finite_predictions``.
    * Not promised: bounded memory for huge files -- a multi-gigabyte JSON, YAML or ``.npy``
      file is read whole before it is checked.
"""
from __future__ import annotations

import ast
import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pose2mesh.config import load_config
from pose2mesh.errors import Pose2MeshError

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DEPTH = 100_000


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single stderr line of a command that must have failed as a user error."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    return lines[0]


def _python(code: str, *args, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from tests/ (so it can import the test modules)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=TESTS,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


# ----------------------------------------------------------------------------- the list itself
def test_every_cited_test_exists():
    """Each ``module::test`` in the docstring, and each bare test name, is a test function."""
    cited = re.findall(r"``(?:(test_\w+\.py)::)?(test_\w+)``", __doc__)
    assert len(cited) > 30
    for module, name in cited:
        source = (TESTS / (module or Path(__file__).name)).read_text()
        tree = ast.parse(source)
        names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert name in names, f"{module or 'this module'} has no {name}"


# ----------------------------------------------------------------------------- kill -9
_SAVE_UNTIL_KILLED = """
    import os, shutil, signal, sys, torch
    from pose2mesh.engine.checkpoint import save_checkpoint

    folder, epoch, kill_write, kill_byte = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    writes = 0

    class Dying:
        # a file that SIGKILLs this process once kill_byte bytes of write number kill_write are out
        def __init__(self, path):
            global writes
            writes += 1
            self.file, self.armed, self.written = open(path, "wb"), writes == kill_write, 0

        def write(self, data):
            if self.armed and self.written + len(data) >= kill_byte:
                self.file.write(data[:kill_byte - self.written])
                self.file.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            self.written += len(data)
            return self.file.write(data)

        def flush(self):
            self.file.flush()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    real_save = torch.save

    def dying_save(obj, path, *args, **kwargs):
        with Dying(path) as handle:
            real_save(obj, handle, *args, **kwargs)

    def dying_copy(src, dst):
        with open(src, "rb") as source, Dying(dst) as handle:
            while chunk := source.read(1 << 16):
                handle.write(chunk)

    torch.save, shutil.copyfile = dying_save, dying_copy
    for _ in range(20):
        epoch += 1
        state = {"epoch": epoch, "model_state_dict": {"w": torch.full((250_000,), float(epoch))}}
        save_checkpoint(state, folder, is_final=epoch % 3 == 0, is_best=True)
    sys.exit(3)  # never killed
"""


def test_sigkill_during_checkpoint_writes_leaves_only_complete_checkpoints(tmp_path):
    """A process saving 1 MB checkpoints back to back -- numbered, final (extended every third
    epoch, so its rename path runs too) and best -- SIGKILLs itself in the middle of one of its
    file writes (the checkpoint or the best copy, at a random byte), eight times over. After
    each kill every checkpoint file loads and holds one whole epoch's state, anything else is a
    stale temporary, resume would find the newest epoch, and the next process carries on."""
    from pose2mesh.atomic_io import remove_stale_temporaries
    from pose2mesh.engine.checkpoint import latest_checkpoint, load_checkpoint

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    newest = 0
    for _ in range(8):
        kill_write = int(torch.randint(1, 7, (), generator=rng))
        kill_byte = int(torch.randint(0, 900_000, (), generator=rng))
        done = _python(_SAVE_UNTIL_KILLED, folder, newest, kill_write, kill_byte)
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
        epochs = []
        for path in folder.iterdir():
            if path.name.endswith(".pth.tar"):
                state = load_checkpoint(path)
                epoch = state["epoch"]
                assert torch.equal(state["model_state_dict"]["w"], torch.full((250_000,), float(epoch))), path
                match = re.fullmatch(r"checkpoint(\d+)\.pth\.tar", path.name)
                assert match is None or int(match[1]) == epoch, path
                epochs.append(epoch)
            else:
                assert path.name.startswith(".") and path.name.endswith(".tmp"), path
        if kill_write > 1:
            assert max(epochs) > newest
        newest = max(epochs, default=newest)
        if epochs:
            assert load_checkpoint(latest_checkpoint(folder))["epoch"] == newest  # what resume picks
        remove_stale_temporaries(folder)
        assert all(p.name.endswith(".pth.tar") for p in folder.iterdir())
    assert newest > 0


# ----------------------------------------------------------------------------- disk full
_TRAIN_UNTIL_THE_OS_REFUSES = """
    import resource, signal, sys
    from pathlib import Path
    from pose2mesh.engine.trainer import Trainer
    from pose2mesh.errors import exit_on_user_error
    from test_engine import fit, make_trainer, tiny_cfg

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    save = Trainer._save

    def save_under_a_limit(self, epoch, *args):
        if epoch == 2:  # every file write past 1 KB now fails, as on a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        return save(self, epoch, *args)

    Trainer._save = save_under_a_limit
    exit_on_user_error(fit)(make_trainer(tiny_cfg("posenet", "TRAIN.end_epoch", 2), Path(sys.argv[1])))
"""


def test_a_write_the_os_refuses_stops_training_in_one_line_and_keeps_earlier_checkpoints(tmp_path):
    from pose2mesh.engine.checkpoint import load_checkpoint

    done = _python(_TRAIN_UNTIL_THE_OS_REFUSES, tmp_path / "exp")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]  # after the progress bars
    assert re.fullmatch(r"error: training stopped: cannot write the epoch 2 checkpoint in \S+ \(.+; is the disk "
                        r"full\?\); earlier checkpoints are intact, the last: \S+checkpoint1\.pth\.tar", line), line
    folder = tmp_path / "exp" / "checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == ["best.pth.tar", "checkpoint1.pth.tar"]
    assert load_checkpoint(folder / "checkpoint1.pth.tar")["epoch"] == 1


# ----------------------------------------------------------------------------- concurrent runs
_RACE = """
    import os, sys, time
    from pathlib import Path
    from pose2mesh.engine import experiment
    from pose2mesh.errors import Pose2MeshError

    shared, root, go, done = (Path(arg) for arg in sys.argv[1:5])
    experiment._timestamp = lambda: "2026-01-01_00-00-00_000000"  # all race for one name
    print("waiting", flush=True)
    while not go.exists():
        time.sleep(0.001)
    created = experiment.create_experiment(root).root.name
    try:
        experiment.lock_experiment(shared)
        outcome = "locked"
    except Pose2MeshError as err:
        outcome = "refused: " + str(err)
    print(os.getpid(), created, outcome, flush=True)
    while not done.exists():  # the winner holds the lock until every racer has tried
        time.sleep(0.01)
"""


def test_runs_racing_for_one_folder_get_one_lock_and_new_folders_never_collide(tmp_path):
    shared, root, go, done = tmp_path / "shared", tmp_path / "out", tmp_path / "go", tmp_path / "done"
    shared.mkdir()
    racers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(_RACE), *map(str, (shared, root, go, done))],
                               stdout=subprocess.PIPE, text=True, cwd=TESTS) for _ in range(4)]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "waiting"
        go.touch()
        results = [racer.stdout.readline().strip().split(" ", 2) for racer in racers]
        done.touch()
        for racer in racers:
            assert racer.wait(timeout=60) == 0
    finally:
        for racer in racers:
            racer.kill()
            racer.wait()
    winners = [pid for pid, _, outcome in results if outcome == "locked"]
    assert len(winners) == 1, results
    for pid, _, outcome in results:
        if pid != winners[0]:
            assert outcome.startswith("refused: ") and f"in use by another run (pid {winners[0]} on " in outcome
    created = sorted(name for _, name, _ in results)
    base = "exp_2026-01-01_00-00-00_000000"
    assert created == [base, f"{base}_1", f"{base}_2", f"{base}_3"]


_SLOW_HOLDER = """
    import fcntl, os, socket, sys, time
    lock = open(sys.argv[1], "a+")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the lock is taken; its line comes later
    print("locked", flush=True)
    time.sleep(0.5)
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}\\n")
    lock.flush()
    sys.stdin.read()  # hold the lock until the test closes stdin
"""


def test_a_run_refused_before_the_holder_wrote_its_line_still_names_the_holder(tmp_path):
    """The lock holder writes its pid just after taking the lock; a run refused in that window
    (the file still empty, or holding the line of a dead earlier holder) waits for the line."""
    from pose2mesh.engine import experiment

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / experiment.LOCK_NAME).write_text(f"pid {dead.stdout.strip()} on {socket.gethostname()}\n")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SLOW_HOLDER), str(tmp_path / experiment.LOCK_NAME)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Pose2MeshError, match=rf"in use by another run \(pid {holder.pid} on "):
            experiment.lock_experiment(tmp_path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


# ----------------------------------------------------------------------------- deep nesting
def _deep_list() -> str:
    return "[" * DEPTH + "]" * DEPTH


def test_a_deeply_nested_pose_file_is_one_line_in_the_demo(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(_deep_list())
    done = subprocess.run([sys.executable, str(REPO / "demo" / "run.py"), "--input_pose", str(path),
                           "--joint_set", "coco", "--output_dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert _one_error_line(done) == f"error: {path}: nested too deeply to parse (no valid input nests this deep)"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("content", [
    "[" * DEPTH + "]" * DEPTH,
    '[{"image_id": 1, "keypoints": ' + "[" * DEPTH + "]" * DEPTH + "}]",
    '{"people": [{"pose_keypoints_2d": ' + "[" * DEPTH + "]" * DEPTH + "}]}",
    '{"people": ' + '{"a": ' * DEPTH + "1" + "}" * DEPTH + "}",
], ids=["bare list", "COCO results", "OpenPose", "objects"])
def test_deeply_nested_pose_json_in_every_format_is_one_line(tmp_path, content):
    from pose2mesh.pose_input import load_pose_file

    path = tmp_path / "deep.json"
    path.write_text(content)
    with pytest.raises(Pose2MeshError, match="nested too deeply to parse") as info:
        load_pose_file(path, "coco")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_deeply_nested_config_is_one_line_in_main_train(tmp_path):
    path = tmp_path / "deep.yml"
    path.write_text("TRAIN: " + _deep_list() + "\n")
    done = subprocess.run([sys.executable, str(REPO / "main" / "train.py"), "--cfg", str(path), "OUTPUT_ROOT",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert _one_error_line(done) == (f"error: config file {path}: nested too deeply to parse "
                                     "(no valid input nests this deep)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", [
    "TRAIN:\n  lr: " + "[" * DEPTH + "\n",
    "MODEL: " + "{a: " * DEPTH + "1" + "}" * DEPTH + "\n",
    "- " * 20_000 + "1\n",
    'TRAIN:\n  lr: "' + "-" * DEPTH + '1"\n',  # a string that yacs evaluates as a literal
], ids=["unclosed flow list", "flow mappings", "block sequence", "string literal"])
def test_deeply_nested_config_values_are_one_line(tmp_path, text):
    path = tmp_path / "deep.yml"
    path.write_text(text)
    with pytest.raises(Pose2MeshError, match="nested too deeply to parse") as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["-" * DEPTH + "1", "(" * DEPTH], ids=["deep unary minus", "deep parentheses"])
def test_a_deeply_nested_override_is_one_line(value):
    with pytest.raises(Pose2MeshError, match=r"(a config value in command-line overrides: nested too deeply to "
                                             r"parse|bad config value in command-line overrides: Type mismatch)"):
        load_config(None, ["TRAIN.lr", value])


def test_a_deeply_nested_annotation_file_is_one_line(tmp_path):
    from pose2mesh.datasets.annotation_files import load_json

    path = tmp_path / "3DPW_latest_test.json"
    path.write_text('{"images": ' + _deep_list() + "}")
    with pytest.raises(Pose2MeshError) as info:
        load_json(path, "data/PW3D/README.md")
    assert str(info.value) == f"{path}: nested too deeply to parse (no valid input nests this deep)"
    path.write_text(json.dumps({"images": [[[1]]]}))
    assert load_json(path, "data/PW3D/README.md") == {"images": [[[1]]]}  # ordinary nesting reads


def test_a_deeply_nested_config_in_a_checkpoint_is_ignored_by_the_weights_lookup(tmp_path):
    from pose2mesh.engine.checkpoint import atomic_save, saved_config

    path = tmp_path / "weights.pth.tar"
    atomic_save({"epoch": 1, "model_state_dict": {}, "config": "MODEL: " + _deep_list()}, path)
    assert saved_config(path) is None
    atomic_save({"epoch": 1, "model_state_dict": {}, "config": "MODEL:\n  name: posenet\n"}, path)
    assert saved_config(path) == {"MODEL": {"name": "posenet"}}


def test_a_deeply_nested_config_in_a_checkpoint_is_one_line_on_resume(tmp_path):
    from pose2mesh.engine.checkpoint import atomic_save, load_checkpoint
    from test_engine import fit, make_trainer, tiny_cfg

    cfg = tiny_cfg("posenet", "TRAIN.end_epoch", 1)
    fit(make_trainer(cfg, tmp_path / "run"))
    crafted = tmp_path / "crafted.pth.tar"
    state = load_checkpoint(tmp_path / "run" / "checkpoint" / "final.pth.tar")
    atomic_save({**state, "config": "MODEL: " + _deep_list()}, crafted)
    trainer = make_trainer(tiny_cfg("posenet", "TRAIN.end_epoch", 2), tmp_path / "again")
    try:
        with pytest.raises(Pose2MeshError) as info:
            trainer.resume(crafted)
    finally:
        trainer.close()
    assert str(info.value) == (f"--resume_training: the config saved in {crafted}: nested too deeply to parse "
                               "(no valid input nests this deep)")
