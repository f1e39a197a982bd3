"""What an unattended run meets: kill -9, SIGTERM/SIGINT, non-finite losses, bad input.

The subprocess tests run train.py as a user does; each TensorFlow start costs ~5 s, so
they are few and marked slow. The rest call the library in-process.
"""

import dataclasses
import gc
import hashlib
import json
import logging
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    REPO,
    TRAIN_PY,
    after_prelude,
    assert_one_error_line,
    checkpoint_steps,
    csv_rows,
    loss_rows,
    mirrored_on_two_cpus,
    one_line_starting,
    tiny_config,
    train_for_fixture,
)

from dcgan import data, models, training
from dcgan.core.config import (
    DEFAULT_DATA_DIR,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    PenaltyConfig,
    ScheduleConfig,
    TrainConfig,
)
from dcgan.core.errors import (
    ConfigError,
    DatasetUnavailableError,
    NonFiniteError,
    OutputPathError,
    RunDirectoryError,
)
from dcgan.gan import losses
from dcgan.gan.step import METRIC_NAMES
from dcgan.recipes.presets import PRESETS
from dcgan.rundir import checkpoints, loss_log, records
from dcgan.rundir.layout import RunDirectory
from dcgan.rundir.loss_log import CSV_COLUMNS
from dcgan.runtime import files
from dcgan.training import preemption

# The tutorial preset (the fast recipe's EMA and batch-norm D resume in test_trainer), 512
# images in batches of 64: 8 steps an epoch, ~0.25 s a step on 2 busy cores.
TINY = ("--preset=tutorial", "--train_examples=512", "--batch_size=64", "--dtype_policy=float32",
        "--deterministic", "--cpu_devices=2")


pytestmark = pytest.mark.usefixtures("float32_policy_after")


def _tiny_config(run_dir, train_examples=512, **overrides):
    """The TrainConfig that train.py builds from TINY (and --train_examples)."""
    return tiny_config(run_dir, train_examples, 64, **overrides)


def _start(args, log_path, prelude=None):
    """train.py as a subprocess (under `prelude`, Python code run first), its stdout to
    `log_path` and its stderr to `log_path` + ".stderr" (a pipe nobody reads would fill
    up and stall it)."""
    command = ([*after_prelude(prelude, TRAIN_PY), *args] if prelude
               else [sys.executable, TRAIN_PY, *args])
    with open(log_path, "w") as log, open(f"{log_path}.stderr", "w") as errors:
        # SIGINT at its default: a suite started in the background (`pytest &` from a
        # script) inherits it ignored, and a second Ctrl-C would then be ignored too.
        return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=errors,
                                env={**os.environ, "PYTHONPATH": str(REPO)},
                                preexec_fn=_default_sigint)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _completed(process, log_path):
    return subprocess.CompletedProcess(process.args, process.returncode,
                                       pathlib.Path(log_path).read_text(),
                                       pathlib.Path(f"{log_path}.stderr").read_text())


def _run(args, tmp_path, prelude=None, timeout=300):
    """Runs train.py to its end; returns its `subprocess.CompletedProcess`."""
    log_path = tmp_path / f"train-{time.monotonic_ns()}.log"
    process = _start(args, log_path, prelude)
    try:
        process.wait(timeout=timeout)
    finally:
        process.kill()
    return _completed(process, log_path)


def _partials(run_dir, names=""):
    """Temporary files of atomic writes in run_dir and its samples/ (of `names` only)."""
    return [path for directory in (run_dir, run_dir / "samples") if directory.is_dir()
            for path in directory.iterdir()
            if ".partial" in path.name and path.name.startswith(names)]


def _staging_dirs(run_dir):
    """Names of the directories TensorFlow writes a checkpoint's shards into first."""
    return sorted(path.name for path in (run_dir / "checkpoints").glob("*_temp"))


def _snapshot(run_dir):
    """sha256 of every file under run_dir but the lock file (which holds the last pid)."""
    return {str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(run_dir.rglob("*")) if path.is_file() and path.name != ".lock"}


def _tensorboard_view(run_dir, tag):
    """{step: value} of a scalar as TensorBoard's default loader shows it: event files in
    name order, and a step that comes again drops the values at and after it."""
    series = {}
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        try:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    if value.tag == tag:
                        series = {step: v for step, v in series.items() if step < event.step}
                        series[event.step] = np.float32(tf.make_ndarray(value.tensor))
        except tf.errors.DataLossError:
            pass  # A kill cut the file's last record; TensorBoard stops there too.
    return series


# A kill in the middle of an atomic write: its temporary file is complete, the rename over
# the first file whose name starts with one of `prefixes` has not happened. Polling for
# the temporary file instead races with small writes, which come and go in a millisecond.
KILL_BEFORE_RENAME = """
import os, signal
_replace = os.replace
def replace(source, target, *args, **kwargs):
    if os.path.basename(str(target)).startswith({prefixes!r}):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(source, target, *args, **kwargs)
os.replace = replace
"""
# Kills at the checkpoint of step `step`: before CheckpointManager.save starts it, or in
# the middle of it. TensorFlow writes a checkpoint's shards into ckpt-N_temp/ from C++,
# then merges them into ckpt-N.index and ckpt-N.data-* (and removes the directory) in
# one more op, which a single-process save calls from Python: killing before that call
# leaves complete shards in ckpt-N_temp/ and no ckpt-N, the state that polling for the
# directory caught only when the 2 ms poll came at the right moment.
KILL_AT_CHECKPOINT = """
import os, signal
import tensorflow as tf
from tensorflow.python.ops import gen_io_ops
_save, _merge = tf.train.CheckpointManager.save, gen_io_ops.merge_v2_checkpoints
def save(self, checkpoint_number=None, *args, **kwargs):
    if {before_save} and checkpoint_number == {step}:
        os.kill(os.getpid(), signal.SIGKILL)
    return _save(self, checkpoint_number, *args, **kwargs)
def merge_v2_checkpoints(checkpoint_prefixes, destination_prefix, *args, **kwargs):
    if not {before_save} and destination_prefix.numpy().decode().endswith("ckpt-{step}"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _merge(checkpoint_prefixes, destination_prefix, *args, **kwargs)
tf.train.CheckpointManager.save = save
gen_io_ops.merge_v2_checkpoints = merge_v2_checkpoints
"""


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_equals_an_uninterrupted_run(tmp_path, two_replicas):
    """Four kills, each followed by the same command: the finished run directory is the
    one an uninterrupted run leaves, number for number."""
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    # 3 epochs of 4 steps (256 images); a checkpoint every 4 steps; calls of up to 3
    # steps, so losses.csv runs ahead of the last checkpoint.
    flags = ("--train_examples=256", "--epochs=3", "--steps_per_call=3",
             "--checkpoint_every_steps=4")
    args = (f"--run_dir={run_dir}", *TINY, *flags)
    training.train(_tiny_config(reference_dir, 256, epochs=3, steps_per_call=3,
                               checkpoint_every_steps=4), two_replicas)

    # 1. Between two checkpoints, with rows beyond the last one in losses.csv.
    result = _run(args, tmp_path, prelude=KILL_AT_CHECKPOINT.format(before_save=True, step=8))
    assert result.returncode == -signal.SIGKILL
    assert checkpoint_steps(run_dir) == [4]
    assert [int(row["step"]) for row in loss_rows(run_dir)] == list(range(1, 9))
    # One write() is rarely cut by a kill, but a full disk or a power cut can leave half a
    # row; this one would parse as step 1.
    with (run_dir / "losses.csv").open("a") as file:
        file.write("1,1,1.2")

    # 2. During a checkpoint save, its shards written in ckpt-8_temp/, not yet merged.
    result = _run(args, tmp_path, prelude=KILL_AT_CHECKPOINT.format(before_save=False, step=8))
    assert result.returncode == -signal.SIGKILL
    assert _staging_dirs(run_dir) == ["ckpt-8_temp"]
    assert list((run_dir / "checkpoints" / "ckpt-8_temp").iterdir())
    assert checkpoint_steps(run_dir) == [4]
    assert not list((run_dir / "checkpoints").glob("ckpt-8.*"))

    # 3. After the last epoch's checkpoint, while its grid is written.
    result = _run(args, tmp_path, prelude=KILL_BEFORE_RENAME.format(
        prefixes=("epoch_0003",)))
    assert result.returncode == -signal.SIGKILL
    assert checkpoint_steps(run_dir)[-1] == 12
    assert _partials(run_dir, ("epoch_0003",))
    assert not (run_dir / "samples" / "epoch_0003.png").exists()

    # 4. While the end of training writes the GIF, the plot or a model (its temporary
    # file exists), after the resume has redone the grid that 3. cut short.
    final_files = ("progress", "loss_curves", "generator", "discriminator")
    result = _run(args, tmp_path, prelude=KILL_BEFORE_RENAME.format(prefixes=final_files))
    assert result.returncode == -signal.SIGKILL
    assert _partials(run_dir, final_files)
    assert (run_dir / "samples" / "epoch_0003.png").exists()

    result = _run(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]

    columns = ("step", "epoch") + METRIC_NAMES
    rows = loss_rows(run_dir)
    assert [int(row["step"]) for row in rows] == list(range(1, 13))
    assert ([[row[name] for name in columns] for row in rows]
            == [[row[name] for name in columns] for row in loss_rows(reference_dir)])
    resumed = checkpoints.restore_generator(run_dir).weights
    uninterrupted = checkpoints.restore_generator(reference_dir).weights
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    exported = keras.models.load_model(run_dir / "generator.keras").weights
    for a, b in zip(exported, uninterrupted):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    for name in ("epoch_0001.png", "epoch_0002.png", "epoch_0003.png"):
        grid = tf.io.decode_png(tf.io.read_file(str(run_dir / "samples" / name))).numpy()
        expected = tf.io.decode_png(tf.io.read_file(str(reference_dir / "samples" / name)))
        np.testing.assert_array_equal(grid, expected.numpy())
    for name in ("final_grid.png", "loss_curves.png"):
        assert tf.io.decode_png(tf.io.read_file(str(run_dir / name))).shape[-1] in (1, 3, 4)
    from PIL import Image
    with Image.open(run_dir / "progress.gif") as gif:
        assert gif.n_frames == 3
    assert not _partials(run_dir) and not _staging_dirs(run_dir)
    assert json.loads((run_dir / "config.json").read_text())["config"]["epochs"] == 3

    view = _tensorboard_view(run_dir, "train/d_loss")
    assert view == {int(row["step"]): np.float32(row["d_loss"]) for row in rows}


# `count` signals `name` to train.py while its third tf.function call is under way (from
# inside the process, so the moment does not depend on the machine's load): the loop sees
# them only at the next call boundary, as it would a signal sent by a scheduler.
SIGNAL_IN_THIRD_CALL = """
import os, signal, time
from dcgan.training import preemption
_run, calls = preemption.LocalStop.run, []
def run(self, train_call):
    calls.append(train_call)
    if len(calls) != 3:
        return _run(self, train_call)
    def signalled_call():
        for _ in range({count}):
            os.kill(os.getpid(), signal.{name})
            # Python runs the handler once for signals that arrive before it gets to it:
            # the sleep (which a signal interrupts) lets it run before the next one.
            time.sleep(0.05)
        return train_call()
    return _run(self, signalled_call)
preemption.LocalStop.run = run
"""
# Epochs of 16 steps, calls of 3 and checkpoints every 6: the third call trains steps 7-9,
# after the checkpoint of step 6.
SIGNALLED = ("--train_examples=1024", "--steps_per_call=3", "--checkpoint_every_steps=6",
             "--max_steps=12")
STOP_SIGNALS = pytest.mark.parametrize("name, exit_status", [("SIGTERM", 143),
                                                            ("SIGINT", 130)])


@pytest.mark.slow
@STOP_SIGNALS
def test_a_stop_signal_checkpoints_the_call_reached_and_names_the_resume_command(
        tmp_path, name, exit_status):
    run_dir = tmp_path / "run"
    args = [f"--run_dir={run_dir}", *TINY, *SIGNALLED]
    result = _run([*args, "--new_run"], tmp_path,
                  prelude=SIGNAL_IN_THIRD_CALL.format(count=1, name=name))
    assert result.returncode == exit_status, result.stderr[-2000:]
    assert checkpoint_steps(run_dir) == [6, 9]  # The call under way finished and was saved.
    assert [int(row["step"]) for row in loss_rows(run_dir)] == list(range(1, 10))
    line = one_line_starting(result.stderr, "train.py:")
    assert line.startswith(f"train.py: Stopped by {name} at step 9 (saved in "
                           f"{run_dir}/checkpoints/ckpt-9). Resume with: ")
    command = shlex.split(line.split("Resume with: ", 1)[1])
    # The same command without --new_run (the kill test shows that it resumes).
    assert command == ["python", TRAIN_PY, *args]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_second_stop_signal_ends_the_process_at_once(tmp_path, name):
    run_dir = tmp_path / "run"
    result = _run([f"--run_dir={run_dir}", *TINY, *SIGNALLED], tmp_path,
                  prelude=SIGNAL_IN_THIRD_CALL.format(count=2, name=name))
    # Ended by the signal itself (a shell reports 128 + its number), not by the loop.
    assert result.returncode == -signal.Signals[name], result.stderr[-2000:]
    assert "Stopped by" not in result.stderr
    # The third call never ran: what the run directory holds is the checkpoint before it.
    assert checkpoint_steps(run_dir) == [6]
    assert [int(row["step"]) for row in loss_rows(run_dir)] == list(range(1, 7))


@pytest.mark.slow
def test_sigint_checkpoints_the_step_reached_and_restores_the_handlers(tmp_path, monkeypatch,
                                                                      two_replicas):
    run_dir = tmp_path / "run"
    appended = []
    append = loss_log.LossLog.append

    def append_then_interrupt(self, rows):
        append(self, rows)
        appended.append(rows)
        if len(appended) == 2:  # Ctrl-C during the third call's bookkeeping.
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(loss_log.LossLog, "append", append_then_interrupt)
    caught = []
    previous = {number: signal.signal(number, lambda number, frame: caught.append(number))
                for number in (signal.SIGINT, signal.SIGTERM)}
    mine = {number: signal.getsignal(number) for number in previous}
    try:
        with pytest.raises(training.TrainingInterrupted) as stop:
            training.train(_tiny_config(run_dir, steps_per_call=3, checkpoint_every_steps=100),
                          two_replicas)
        assert {number: signal.getsignal(number) for number in previous} == mine
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    assert caught == []  # The trainer handled it.
    assert (stop.value.signal_number, stop.value.step) == (signal.SIGINT, 6)
    assert stop.value.checkpoint.endswith("ckpt-6")
    assert checkpoint_steps(run_dir) == [6]
    assert len(loss_rows(run_dir)) == 6


def test_stop_signals_hand_a_second_signal_to_the_previous_handler():
    caught = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: caught.append(number))
    try:
        with preemption.StopSignals() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.received == signal.SIGTERM and caught == []
            signal.raise_signal(signal.SIGTERM)  # Impatient: acts as it would without us.
            assert caught == [signal.SIGTERM]
        signal.raise_signal(signal.SIGTERM)
        assert caught == [signal.SIGTERM] * 2
    finally:
        signal.signal(signal.SIGTERM, previous)


# NaN from step 6 on (one loss call per replica and step: simultaneous update, 2 replicas).
NAN_LOSS = """
import numpy as np, tensorflow as tf
from dcgan.gan import losses
from dcgan.runtime import distribute
distribute.split_cpu(2)  # As --cpu_devices=2 would, before the variable starts TensorFlow.
calls = tf.Variable(0, dtype=tf.int64, trainable=False)
@losses.register_loss("nan_from_step_6")
def nan_from_step_6(real_logits, fake_logits):
    d_loss, g_loss = losses.non_saturating(real_logits, fake_logits)
    factor = tf.where(calls.assign_add(1) > 10, np.float32(np.nan), np.float32(1))
    return d_loss * factor, g_loss * factor
"""


def _assert_finite(weights):
    for weight in weights:
        assert np.isfinite(np.asarray(weight)).all()


@pytest.mark.slow
def test_a_nan_loss_stops_train_py_with_the_last_finite_state_saved(tmp_path):
    run_dir = tmp_path / "run"
    # Epochs of 4 steps: checkpoint and export at step 4, then a call of steps 5-7.
    result = _run([f"--run_dir={run_dir}", *TINY, "--train_examples=256", "--steps_per_call=3",
                   "--loss=nan_from_step_6"], tmp_path, prelude=NAN_LOSS)
    line = assert_one_error_line(result, "train.py", "Non-finite loss at step 6 (d_loss=nan")
    assert line.startswith("train.py: error: Non-finite loss") and "ckpt-4" in line
    assert checkpoint_steps(run_dir) == [4]
    generator = keras.models.load_model(run_dir / "generator.keras")
    _assert_finite(generator.weights)
    _assert_finite(keras.models.load_model(run_dir / "discriminator.keras").weights)
    for exported, saved in zip(generator.weights, checkpoints.restore_generator(run_dir).weights):
        np.testing.assert_array_equal(exported.numpy(), saved.numpy())


@pytest.mark.slow
def test_non_finite_weights_behind_finite_losses_are_never_saved(tmp_path, monkeypatch,
                                                                 two_replicas):
    calls = tf.Variable(0, dtype=tf.int64, trainable=False)

    def nan_gradient_at_step_8(real_logits, fake_logits):
        """Finite losses throughout, but D's gradient at step 8 is NaN."""
        d_loss, g_loss = losses.non_saturating(real_logits, fake_logits)
        count = calls.assign_add(1)  # Two calls a step: one per replica.
        factor = tf.where((count > 14) & (count <= 16), np.float32(np.nan), np.float32(1))

        @tf.custom_gradient
        def with_nan_gradient(loss):
            return tf.identity(loss), lambda upstream: upstream * factor

        return with_nan_gradient(d_loss), g_loss

    monkeypatch.setitem(losses.LOSSES, "nan_gradient_at_step_8", nan_gradient_at_step_8)
    run_dir = tmp_path / "run"
    config = _tiny_config(run_dir, train_examples=256, steps_per_call=3,
                          loss="nan_gradient_at_step_8")
    with pytest.raises(NonFiniteError, match="Non-finite weights in G or D after "
                       "step 8") as error:
        training.train(config, two_replicas)
    assert error.value.step == 8
    rows = loss_rows(run_dir)
    assert len(rows) == 8 and all(np.isfinite(float(row["d_loss"])) for row in rows)
    assert checkpoint_steps(run_dir) == [4]  # Not 8, the epoch end it was due at.
    saved_d = models.build_discriminator(config.model)
    tf.train.Checkpoint(discriminator=saved_d).restore(
        checkpoints.list_checkpoints(run_dir)[-1]).expect_partial()
    exported_d = keras.models.load_model(run_dir / "discriminator.keras")
    _assert_finite(exported_d.weights)
    for exported, saved in zip(exported_d.weights, saved_d.weights):
        np.testing.assert_array_equal(exported.numpy(), saved.numpy())


def _prepared_dataset():
    """The directory of the prepared fashion_mnist version (dataset_info.json, records)."""
    return next(pathlib.Path(DEFAULT_DATA_DIR).expanduser().glob(
        "fashion_mnist/*/dataset_info.json")).parent


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real two-step run of the TINY command with checkpoints at steps 1 and 2."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train_for_fixture(_tiny_config(run_dir, max_steps=2, checkpoint_every_steps=1),
                      mirrored_on_two_cpus())
    return run_dir


@pytest.fixture(scope="module")
def truncated_data_dir(tmp_path_factory):
    """A copy of the prepared dataset whose train record file stops after 1 MB (the first
    512 images are whole: TFDS alone would read them without noticing)."""
    source = _prepared_dataset()
    copy = tmp_path_factory.mktemp("data") / "fashion_mnist" / source.name
    copy.mkdir(parents=True)
    for path in source.iterdir():
        if "train.tfrecord" in path.name:
            (copy / path.name).write_bytes(path.read_bytes()[:1_000_000])
        else:
            shutil.copy(path, copy / path.name)
    return copy.parent.parent


def _bad_input(name, tmp_path, finished_run, truncated_data_dir):
    """(run_dir, extra flags, expected message) of each bad input."""
    run_dir = tmp_path / "run"
    if name in ("other settings", "corrupt checkpoint", "checkpoint of other models"):
        shutil.copytree(finished_run, run_dir)
    if name == "missing dataset":
        return run_dir, [f"--data_dir={tmp_path / 'empty'}"], "Fashion-MNIST is not prepared"
    if name == "truncated record file":
        return run_dir, [f"--data_dir={truncated_data_dir}"], "is damaged (truncated record"
    if name == "unwritable run_dir":
        (tmp_path / "a_file").write_text("")
        return tmp_path / "a_file" / "run", [], "is not writable: Not a directory"
    if name == "other settings":
        return run_dir, ["--loss=minimax", "--seed=1"], (
            "holds another run (loss: 'non_saturating' in the run, 'minimax' now; "
            "data.shuffle_seed: 0 in the run, 1 now; seed: 0 in the run, 1 now)")
    if name == "checkpoint of other models":  # config.json says fashion128, as the flags do.
        config_path = run_dir / "config.json"
        record = json.loads(config_path.read_text())
        record["config"]["model"]["architecture"] = "fashion128"
        record["config"]["data"]["pixel_range"] = [0.0, 1.0]
        config_path.write_text(json.dumps(record))
        # The first variable restore would meet: the tutorial D's first kernel.
        return run_dir, ["--architecture=fashion128"], (
            f"Cannot restore checkpoint {run_dir}/checkpoints/ckpt-2: its variables have "
            "other shapes, discriminator/_operations/1/_kernel: (5, 5, 1, 64) in the "
            "checkpoint, (5, 5, 1, 32) in the model")
    assert name == "corrupt checkpoint"
    data_file = next((run_dir / "checkpoints").glob("ckpt-2.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:1000])
    return run_dir, [], (f"Cannot restore checkpoint {run_dir}/checkpoints/ckpt-2: ")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["missing dataset", "truncated record file",
                                  "unwritable run_dir", "other settings",
                                  "corrupt checkpoint", "checkpoint of other models"])
def test_train_py_refuses_bad_input_with_one_line_and_changes_nothing(
        name, tmp_path, finished_run, truncated_data_dir):
    run_dir, flags, message = _bad_input(name, tmp_path, finished_run, truncated_data_dir)
    before = _snapshot(run_dir) if run_dir.is_dir() else None
    line = assert_one_error_line(_run([f"--run_dir={run_dir}", *TINY, *flags], tmp_path),
                                 "train.py", message)
    if before is None:
        assert not run_dir.exists()
    else:
        assert _snapshot(run_dir) == before
    if name == "corrupt checkpoint":
        assert f"previous checkpoint {run_dir}/checkpoints/ckpt-1, move " in line


@pytest.mark.slow
def test_following_the_corrupt_checkpoint_advice_resumes_from_the_previous_one(
        tmp_path, finished_run, capsys, two_replicas):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    data_file = next((run_dir / "checkpoints").glob("ckpt-2.data-*"))
    data_file.write_bytes(b"garbage")
    config = _tiny_config(run_dir, max_steps=2, checkpoint_every_steps=1)
    with pytest.raises(RunDirectoryError, match="ckpt-2: .*ckpt-1"):
        training.train(config, two_replicas)
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in (run_dir / "checkpoints").glob("ckpt-2.*"):
        path.rename(aside / path.name)
    training.train(config, two_replicas)
    assert "['ckpt-2'] are listed" in capsys.readouterr().out
    assert checkpoint_steps(run_dir) == [1, 2]  # Step 2 trained again from ckpt-1.
    columns = ("step", "epoch") + METRIC_NAMES
    assert ([[row[name] for name in columns] for row in loss_rows(run_dir)]
            == [[row[name] for name in columns] for row in loss_rows(finished_run)])


@pytest.mark.slow
def test_a_second_trainer_on_the_same_run_directory_is_refused(tmp_path, finished_run,
                                                               two_replicas):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    with RunDirectory(run_dir).lock():
        with pytest.raises(RunDirectoryError, match=f"in use by .* \\(pid {os.getpid()}\\)"):
            training.train(_tiny_config(run_dir, max_steps=2), two_replicas)
    with RunDirectory(run_dir).lock():  # Released by the failed attempt.
        pass


@pytest.mark.slow
def test_new_run_moves_the_old_run_aside(tmp_path, finished_run, two_replicas):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = _snapshot(run_dir)
    config = _tiny_config(run_dir, max_steps=1, loss="minimax")
    training.train(config, two_replicas, new_run=True)
    [old] = tmp_path.glob("run.old-*")
    assert _snapshot(old) == before
    assert checkpoint_steps(run_dir) == [1]
    assert json.loads((run_dir / "config.json").read_text())["config"]["loss"] == "minimax"


# Quick, in-process checks of the pieces.

def _record(**changes):
    config = dataclasses.replace(PRESETS["tutorial"], **changes)
    return {"config": records.config_record(config), "dtype_policy": "float32"}


def test_resume_mismatches_name_the_fields_that_change_the_checkpoint_or_data_order():
    recorded = json.loads(json.dumps(_record()))  # As read back from config.json.
    assert records.resume_mismatches(recorded, _record()) == []
    extended = _record(epochs=99, max_steps=5, steps_per_call=1, checkpoint_every_steps=7,
                       jit_compile=True, generator_optimizer=OptimizerConfig(3e-5))
    assert records.resume_mismatches(recorded, extended) == []
    other = _record(loss="minimax", model=ModelConfig("tutorial", noise_dim=64),
                    data=DataConfig(global_batch_size=128))
    other["dtype_policy"] = "mixed_float16"
    assert records.resume_mismatches(recorded, other) == [
        "model.noise_dim: 100 in the run, 64 now",
        "dtype_policy: 'float32' in the run, 'mixed_float16' now",
        "loss: 'non_saturating' in the run, 'minimax' now",
        "data.global_batch_size: 256 in the run, 128 now",
    ]
    del recorded["dtype_policy"]  # An older config.json: not compared.
    assert records.resume_mismatches(recorded, {**_record(), "dtype_policy": "x"}) == []
    assert records.resume_mismatches(recorded, _record(seed=1)) == [
        "data.shuffle_seed: 0 in the run, 1 now", "seed: 0 in the run, 1 now"]
    # A run directory written while the shuffle seed was a field of its own.
    recorded["config"]["data"]["shuffle_seed"] = 7
    assert records.resume_mismatches(recorded, _record()) == [
        "data.shuffle_seed: 7 in the run, 0 now"]
    recorded["config"]["data"]["shuffle_seed"] = 0
    conditional = _record(model=ModelConfig("tutorial", num_classes=10, conditioning="concat"))
    assert records.resume_mismatches(recorded, conditional) == [
        "model.num_classes: 0 in the run, 10 now",
        "model.conditioning: 'projection' in the run, 'concat' now"]
    # A schedule is not in the checkpoint: each of its fields must match.
    rescheduled = _record(schedule=ScheduleConfig(kind="cosine", warmup_steps=10,
                                                  decay_fraction=0.5, floor=0.1))
    assert records.resume_mismatches(recorded, rescheduled) == [
        "lr_schedule: 'constant' in the run, 'cosine' now",
        "lr_warmup_steps: 0 in the run, 10 now",
        "lr_decay_fraction: 1.0 in the run, 0.5 now",
        "lr_floor: 0.0 in the run, 0.1 now"]
    # Penalties, Adam's betas and augmentation are in no checkpoint either: a preset that
    # changed them since the run was trained must not resume it as if it had them.
    retuned = _record(penalties=PenaltyConfig(r1_weight=0.3, every=16),
                      discriminator_optimizer=OptimizerConfig(2e-4, beta_1=0.0),
                      augment=("translation",))
    assert records.resume_mismatches(recorded, retuned) == [
        "r1_weight: 0.0 in the run, 0.3 now",
        "penalty_every: 1 in the run, 16 now",
        "discriminator_optimizer.beta_1: 0.9 in the run, 0.0 now",
        "augment: [] in the run, ['translation'] now"]


def test_prepare_refuses_another_run_and_leaves_it_alone(tmp_path):
    files.write_json(tmp_path / "config.json", _record())
    before = _snapshot(tmp_path)
    with pytest.raises(RunDirectoryError, match="update: 'simultaneous' in the run, "
                       "'alternating' now.*--new_run"):
        RunDirectory(tmp_path).prepare(_record(update="alternating"))
    assert _snapshot(tmp_path) == before
    assert RunDirectory(tmp_path).prepare(_record(epochs=60)) is None


def test_prepare_new_run_renames_never_deletes(tmp_path):
    run_dir = tmp_path / "run"
    for _ in range(2):
        run_dir.mkdir(exist_ok=True)
        files.write_json(run_dir / "config.json", _record())
        RunDirectory(run_dir).prepare(_record(loss="minimax"), new_run=True)
        assert run_dir.is_dir() and not any(run_dir.iterdir())
    moved = sorted(tmp_path.glob("run.old-*"))
    assert len(moved) == 2 and all((path / "config.json").exists() for path in moved)


def test_prepare_reports_an_unwritable_run_dir(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirectoryError, match="not writable: Not a directory"):
        RunDirectory(tmp_path / "file" / "run").prepare(_record())


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    with RunDirectory(tmp_path).lock():
        with pytest.raises(RunDirectoryError, match=f"pid {os.getpid()}"):
            with RunDirectory(tmp_path).lock():
                pass
    with RunDirectory(tmp_path).lock():
        pass


def _write_csv(path, lines):
    path.write_text("\n".join([",".join(CSV_COLUMNS)] + lines))


def _row(step):
    """A losses.csv line of step `step`, epoch 1, metrics 0.5, 0.6, ... and a last 100.0."""
    metrics = [f"{0.5 + 0.1 * i:.1f}" for i in range(len(CSV_COLUMNS) - 3)]
    return ",".join([str(step), "1", *metrics, "100.0"])


def test_loss_log_keeps_one_row_per_step_up_to_the_restored_step(tmp_path, capsys):
    path = tmp_path / "losses.csv"
    # The last line lacks its newline: a write cut short, here inside its last number.
    rows = [_row(1), _row(2), _row(3), "garbage", _row(2).replace("0.5", "0.25"), _row(4),
            _row(5), _row(6), _row(5)[:-3]]
    _write_csv(path, rows)
    loss_log.LossLog(path, restored_step=5)
    kept = csv_rows(path)
    assert [int(row["step"]) for row in kept] == [1, 2, 3, 4, 5]
    assert kept[1]["d_loss"] == "0.25"  # The newer of two rows for one step.
    assert kept[4][CSV_COLUMNS[-1]] == "100.0"  # Not the cut row's "10".
    assert "lacks" not in capsys.readouterr().out

    _write_csv(path, [_row(1), _row(3), "4"])  # "4" could be any cut row: dropped.
    loss_log.LossLog(path, restored_step=4)
    assert [int(row["step"]) for row in csv_rows(path)] == [1, 3]
    assert "lacks 2 of the steps 1 to 4" in capsys.readouterr().out


def _save_checkpoints(directory, values):
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), str(directory),
                                         max_to_keep=5)
    for step, value in enumerate(values, start=1):
        variable.assign(value)
        manager.save(checkpoint_number=step)
    return tf.train.Checkpoint(v=tf.Variable(-1.0))


def test_restore_latest_refuses_a_truncated_checkpoint_and_names_the_previous(tmp_path):
    checkpoint = _save_checkpoints(tmp_path, [1.0, 2.0])
    data_file = next(tmp_path.glob("ckpt-2.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:-4])
    with pytest.raises(RunDirectoryError, match=(
            f"Cannot restore checkpoint {tmp_path}/ckpt-2: .*previous checkpoint "
            f"{tmp_path}/ckpt-1, move {tmp_path}/ckpt-2.index and")):
        checkpoints.restore_latest(checkpoint, tmp_path)


def test_restore_latest_refuses_other_shapes_and_leaves_no_warnings(tmp_path):
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])),
                               str(tmp_path), max_to_keep=1).save()
    checkpoint = tf.train.Checkpoint(v=tf.Variable([0.0, 0.0, 0.0]))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    try:
        with pytest.raises(RunDirectoryError, match=(
                r"ckpt-1: its variables have other shapes, v: \(2,\) in the checkpoint, "
                r"\(3,\) in the model\. No earlier checkpoint")):
            checkpoints.restore_latest(checkpoint, tmp_path)
        # A restore that raised logs what it left unrestored when its objects are
        # collected (at exit in a binary, after the error line).
        del checkpoint
        gc.collect()
    finally:
        tf_logger.removeHandler(handler)
    assert not [record.getMessage() for record in records]


def test_restore_latest_fills_a_dimension_of_none(tmp_path):
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])),
                               str(tmp_path), max_to_keep=1).save()
    checkpoint = tf.train.Checkpoint(v=tf.Variable([0.0, 0.0, 0.0], shape=[None]))
    checkpoints.restore_latest(checkpoint, tmp_path)
    assert checkpoint.v.numpy().tolist() == [1.0, 2.0]


def test_restore_latest_skips_checkpoints_whose_files_are_gone(tmp_path, capsys):
    checkpoint = _save_checkpoints(tmp_path, [1.0, 2.0, 3.0])
    for path in tmp_path.glob("ckpt-3.*"):
        path.unlink()
    assert checkpoints.restore_latest(checkpoint, tmp_path) == f"{tmp_path}/ckpt-2"
    assert float(checkpoint.v.numpy()) == 2.0
    assert "['ckpt-3'] are listed" in capsys.readouterr().out
    assert list(tf.train.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths) == [
        f"{tmp_path}/ckpt-1", f"{tmp_path}/ckpt-2"]

    for path in tmp_path.glob("ckpt-*"):
        path.unlink()
    with pytest.raises(RunDirectoryError, match="none of their files exists"):
        checkpoints.restore_latest(checkpoint, tmp_path)
    assert checkpoints.restore_latest(checkpoint, tmp_path / "nothing") is None


@pytest.mark.parametrize("damage", ["truncate", "flip a byte"])
def test_verify_records_reports_a_damaged_record_file(tmp_path, damage):
    source = _prepared_dataset()
    copy = tmp_path / "fashion_mnist" / source.name
    copy.mkdir(parents=True)
    for path in source.iterdir():
        if "train.tfrecord" not in path.name:
            shutil.copy(path, copy / path.name)
    train_file = next(source.glob("*train.tfrecord*"))
    content = bytearray(train_file.read_bytes())
    if damage == "truncate":
        content = content[:1_000_000]
    else:
        content[500_000] ^= 0xFF
    (copy / train_file.name).write_bytes(bytes(content))
    config = DataConfig(data_dir=str(tmp_path), split="train[:512]")
    data.verify_records(dataclasses.replace(config, data_dir=DEFAULT_DATA_DIR))  # Intact.
    with pytest.raises(DatasetUnavailableError, match=(
            f"{train_file.name} is damaged \\((truncated|corrupted) record at .*Delete "
            f"{copy}")):
        data.verify_records(config)


def test_remove_partials_removes_only_temporary_files_of_the_named_artifacts(tmp_path):
    for name in ("generator.partial.keras", "generator.keras", "metrics.partial.json",
                 "x.partial.weights.h5", "my.partial_notes.txt"):
        (tmp_path / name).write_text("")
    removed = files.remove_partials(tmp_path, ["generator.keras", "x.weights.h5"])
    assert sorted(path.name for path in removed) == ["generator.partial.keras",
                                                     "x.partial.weights.h5"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "generator.keras", "metrics.partial.json", "my.partial_notes.txt"]
    # Without names (a run's samples/, whose epochs a time budget leaves unknown): all.
    removed = files.remove_partials(tmp_path)
    assert [path.name for path in removed] == ["metrics.partial.json"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "generator.keras", "my.partial_notes.txt"]


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(epochs=0),
    lambda: OptimizerConfig(learning_rate=0.0),
    lambda: DataConfig(global_batch_size=0),
    lambda: TrainConfig(checkpoint_every_steps=0),
])
def test_non_positive_settings_are_refused(make):
    with pytest.raises(ConfigError, match="must be positive"):
        make()


def test_check_writable_refuses_what_cannot_be_written_and_leaves_nothing(tmp_path):
    target = tmp_path / "new" / "metrics.json"
    files.check_writable(target)
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []
    with pytest.raises(OutputPathError, match=f"{tmp_path}: it is a directory"):
        files.check_writable(tmp_path)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputPathError, match="a_file is a file, not a directory"):
        files.check_writable(tmp_path / "a_file" / "metrics.json")
