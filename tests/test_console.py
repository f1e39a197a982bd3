"""The console of the binaries: start-up noise hidden, warnings and errors kept, and the
switches that bring the rest back."""

import os
import re
import shutil
import subprocess
import sys
import types

import keras
import pytest
import tensorflow as tf
from conftest import NOISE, REPO, TRAIN_PY, assert_no_noise

from dcgan.evaluation import classifier
from dcgan.recipes.presets import DEFAULT_PRESET
from dcgan.runtime import console, hardware
from dcgan.training import progress

# The end of every binary's header line but train.py's.
DEVICES_AND_CPU = f"; devices CPU:0; CPU {hardware.cpu_model()}"

# Lines a plain train.py printed before its first step (TensorFlow 2.21, TFDS 4.9.10).
PRE_INIT_NOTE = ("WARNING: All log messages before absl::InitializeLog() is called are "
                 "written to STDERR")
ONEDNN = ("I0000 00:00:1796113842.127219    6627 port.cc:153] oneDNN custom operations are "
          "on. You may see slightly different numerical results")
NO_CUDA = ("I0000 00:00:1796113842.127618    6627 cudart_stub.cc:31] Could not find cuda "
           "drivers on your machine, GPU will not be used.")
CUINIT = ("E0000 00:00:1796113848.477128    6627 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
GENERATOR_DATASET = ("W0000 00:00:1796113850.358399    6627 dataset.cc:997] Input of "
                     "GeneratorDatasetOp::Dataset will not be optimized because the dataset "
                     "does not implement the AsGraphDefInternal() method")
AUTO_SHARD = ("W0000 00:00:1796125415.835768    8789 auto_shard.cc:559] The `assert_cardinality` "
              "transformation is currently not handled by the auto-shard rewrite and will be "
              "removed.")
REMAPPER = ("E0000 00:00:1796125233.228915    5755 meta_optimizer.cc:967] remapper failed: "
            "INVALID_ARGUMENT: Mutation::Apply error: fanout 'while/body/_1/while/Stateful"
            "PartitionedCall/gradient_tape/tutorial_discriminator_1/leaky_re_lu_4_1/LeakyRelu/"
            "LeakyReluGrad' exist for missing node 'while/body/_1/while/StatefulPartitionedCall/"
            "tutorial_discriminator_1/conv2d_1_2/BiasAdd'.")
PARTIAL_CACHE = ("W0000 00:00:1796142298.898124   23809 cache_dataset_ops.cc:912] The calling "
                 "iterator did not fully read the dataset being cached. In order to avoid "
                 "unexpected truncation of the dataset, the partially cached contents of the "
                 "dataset  will be discarded.")
ABSL_INFO = ("I1201 08:30:48.865566 140571494607744 dataset_info.py:711] Load dataset info "
             "from /root/tensorflow_datasets/fashion_mnist/3.0.1")


def test_the_filter_drops_cpp_lines_below_the_level_and_the_known_noise():
    for line in (PRE_INIT_NOTE, ONEDNN, NO_CUDA, GENERATOR_DATASET, AUTO_SHARD, REMAPPER,
                 PARTIAL_CACHE):
        assert console._is_noise(line, min_level=1, hide_cuinit=False), line
    other_warning = "W0000 00:00:1796113850.3 6627 cpu_allocator_impl.cc:83] Allocation of"
    fatal = "F0000 00:00:1796113850.3 6627 check.cc:12] Check failed: x == y"
    for line in (other_warning, fatal, ABSL_INFO, "train.py: error: something"):
        assert not console._is_noise(line, min_level=1, hide_cuinit=False), line
    # TF_CPP_MIN_LOG_LEVEL=0 asks for TensorFlow's INFO lines; 2 hides its warnings.
    assert not console._is_noise(ONEDNN, min_level=0, hide_cuinit=False)
    assert console._is_noise(other_warning, min_level=2, hide_cuinit=False)
    # The cuInit error only where no NVIDIA driver is present.
    assert not console._is_noise(CUINIT, min_level=1, hide_cuinit=False)
    assert console._is_noise(CUINIT, min_level=1, hide_cuinit=True)


def test_resume_command_drops_new_run_only():
    argv = ["train.py", "--new_run", "--run_dir=a b", "--nonew_run", "--new_run_x=1"]
    assert console.resume_command(argv) == "python train.py '--run_dir=a b' --new_run_x=1"


def test_the_eta_is_the_mean_time_per_unit_times_those_left_capped_by_a_budget(monkeypatch,
                                                                           capsys):
    clock = iter([100.0, 130.0, 1000.0, 1120.0])  # The two objects' starts and ends.
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    countdown = progress.Countdown(5)
    countdown.advance(2)
    assert countdown.timing() == "elapsed 0:30, ETA 0:45"  # 15 s a unit, 3 left.
    # 4 steps of an epoch in 120 s, 40 s of them training, of a 100 s training budget:
    # 60 s left, however many steps the epochs would still take.
    epochs = progress.EpochProgress(steps_per_epoch=4, last_epoch=100, remaining_steps=400,
                                    train_seconds_left=100.0)
    epochs.start_epoch()
    epochs.update(4, 4, images=256, seconds=40.0, metrics={"d_loss": [0.5]})
    epochs.end_epoch(1, {"d_loss": [0.5]})
    assert capsys.readouterr().out == ("Epoch 1/100: d_loss 0.5, 6 img/s, elapsed 2:00, "
                                       "ETA 1:00\n")


def test_without_a_step_total_the_eta_is_the_budget_left_or_none(monkeypatch):
    clock = iter([0.0, 50.0, 50.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    countdown = progress.Countdown(None)  # epochs=None: only the clock stops the run.
    countdown.advance(10)
    assert countdown.timing() == "elapsed 0:50"
    assert countdown.timing(most_seconds_left=75.0) == "elapsed 0:50, ETA 1:15"


def _train(tmp_path, *args, env=None, prelude=None):
    """train.py with `args` (or `prelude`, a script that runs it in-process)."""
    command = [str(prelude)] if prelude else [TRAIN_PY]
    return subprocess.run(
        [sys.executable, *command, f"--run_dir={tmp_path / 'run'}", *args],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


# Runs train.py in-process after wrapping make_strategy (called by its main) so that it
# warns the way library code does: with warnings.warn and with an absl WARNING.
WARNING_PRELUDE = f"""
import runpy, sys, warnings
from absl import logging
from dcgan.runtime import console
console.quiet_startup()
from dcgan.runtime import distribute
make_strategy = distribute.make_strategy

def warning_make_strategy(*args):
    warnings.warn("an injected library warning")
    logging.warning("an injected absl warning")
    return make_strategy(*args)

distribute.make_strategy = warning_make_strategy
sys.argv[0] = {TRAIN_PY!r}
runpy.run_path({TRAIN_PY!r}, run_name="__main__")
"""


@pytest.mark.slow
def test_a_tiny_run_prints_a_header_a_line_per_epoch_and_the_warnings(tmp_path):
    prelude = tmp_path / "prelude.py"
    prelude.write_text(WARNING_PRELUDE)
    # Epochs of 4 steps: one whole epoch and half of the second.
    result = _train(tmp_path, "--max_steps=6", "--train_examples=256", "--batch_size=64",
                    prelude=prelude)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *epochs, done = result.stdout.splitlines()
    assert header.startswith(f"{DEFAULT_PRESET}: G ") and "parameters, global batch 64, " in header
    assert header.endswith(f"1 replica (CPU:0), run directory {tmp_path / 'run'}")
    assert len(epochs) == 2, result.stdout
    for number, line in enumerate(epochs, 1):
        assert re.fullmatch(rf"Epoch {number}/2: d_loss \S+ g_loss .* [\d,]+ img/s, "
                            r"elapsed \d+:\d\d, ETA \d+:\d\d", line), line
    assert done.startswith("Done: step 6, run directory ")
    assert_no_noise(result.stderr)
    lines = result.stderr.splitlines()
    # stderr holds the two warnings and nothing else: the message and source line of
    # warnings.warn, and absl's line.
    assert len(lines) == 3, lines
    assert "UserWarning: an injected library warning" in lines[0]
    assert lines[2].startswith("W") and lines[2].endswith("] an injected absl warning")


@pytest.mark.slow
@pytest.mark.parametrize("switch, shown, hidden", [
    ({}, (), NOISE),
    ({"args": ["--verbosity=0"]}, ("Using MirroredStrategy",), ("oneDNN custom operations",)),
    ({"env": {"TF_CPP_MIN_LOG_LEVEL": "0"}}, ("oneDNN custom operations",),
     ("Using MirroredStrategy",)),
    ({"env": {console.VERBOSE_ENV: "1"}},
     ("oneDNN custom operations", "absl::InitializeLog", "Using MirroredStrategy"), ()),
], ids=["default", "verbosity", "tf_cpp_min_log_level", "dcgan_verbose"])
def test_verbosity_and_the_environment_bring_the_info_lines_back(tmp_path, switch, shown,
                                                                  hidden):
    # A run that stops at the flags, after TensorFlow has loaded and the strategy is made.
    result = _train(tmp_path, "--n_critic=0", "--max_steps=2", *switch.get("args", ()),
                    env=switch.get("env"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "train.py: error: n_critic must be positive, got 0"
    assert not (tmp_path / "run").exists()
    for text in shown:
        assert text in result.stderr, (text, result.stderr[-3000:])
    for text in hidden:
        assert text not in result.stderr, (text, result.stderr[-3000:])
    if not switch:
        assert len(result.stderr.splitlines()) == 1, result.stderr


def _binary(script, *args):
    """`script` (eval.py, generate.py) run with `args`, stdout and stderr captured."""
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO)


def _assert_quiet_stderr(result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == "", result.stderr[-3000:]


@pytest.mark.slow
def test_eval_prints_a_header_then_each_checkpoint_with_its_progress(trained_run, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    result = _binary("eval.py", f"--run_dir={run_dir}", "--num_samples=300",
                     "--memorisation_split=train[:6000]")
    _assert_quiet_stderr(result)
    header, columns, *rows = result.stdout.splitlines()
    assert header == (f"eval.py: run {run_dir}, 2 checkpoints; classifier "
                      f"v{classifier.CLASSIFIER_VERSION} (sha256 "
                      f"{classifier.CLASSIFIER_SHA256[:12]}); 300 samples against the test "
                      f"split; memorisation against train[:6000]{DEVICES_AND_CPU}")
    assert columns.split()[:3] == ["step", "FID", "FID"]
    # Each row, then its warning: the samples of 4 and 8 steps are grey blobs alike.
    assert len(rows) == 4, result.stdout
    for number, (step, row, warning) in enumerate(zip((4, 8), rows[::2], rows[1::2]), 1):
        assert re.fullmatch(rf"\s+{step} .* {number}/2, elapsed \d+:\d\d, ETA \d+:\d\d", row), row
        assert warning.startswith(f"Warning: step {step}: mode collapse, or a generator that "
                                  "has not learnt yet: the samples are near-copies"), warning


@pytest.mark.parametrize("policy, fast_bf16, warned", [
    ("mixed_bfloat16", True, False), ("mixed_bfloat16", False, True), ("float32", False, False)])
def test_the_header_says_once_when_bf16_is_slower_than_float32_here(monkeypatch, policy,
                                                                     fast_bf16, warned):
    monkeypatch.setattr(hardware, "fast_bf16", lambda: fast_bf16)
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    state = types.SimpleNamespace(generator=network, discriminator=network)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    line = progress.header("fast", state, 32, policy, strategy, "runs/x")
    assert line.count("slower than float32 here") == warned
    assert f"global batch 32, {policy}" in line and "\n" not in line
