"""Shared fixtures and helpers: collective keys per test, a guard against network access,
a mixed-precision policy switch, a Ctrl-C in the middle of a run, the builders of short
runs and of one GanStep, and the checks of a binary's one-line messages."""

import csv
import dataclasses
import functools
import importlib.util
import pathlib
import signal
import socket
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan import models, training
from dcgan.core.config import DataConfig, ModelConfig, OptimizerConfig, TrainConfig
from dcgan.gan.step import GanStep
from dcgan.recipes.plan import make_plan
from dcgan.recipes.presets import PRESETS
from dcgan.rundir import checkpoints
from dcgan.rundir.layout import RunDirectory
from dcgan.runtime import distribute
from dcgan.training import run_state

# The repository's root, where the binaries are.
REPO = pathlib.Path(__file__).resolve().parent.parent
TRAIN_PY = str(REPO / "train.py")

# Two logical CPU devices for the whole session, so MirroredStrategy runs real replicas.
# This must happen before TensorFlow initialises its devices, hence at import.
distribute.split_cpu(2)
# Tests compare runs number for number.
tf.config.experimental.enable_op_determinism()


@functools.cache
def train_binary():
    """train.py loaded as a module (its FLAGS, config_from_flags), once per test process:
    absl refuses to define its flags a second time."""
    spec = importlib.util.spec_from_file_location(
        "train_binary", TRAIN_PY)
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    return train


@pytest.fixture(autouse=True)
def fresh_collective_keys():
    """Gives the MirroredStrategies of each test their own all-reduce keys.

    Every MirroredStrategy numbers its collective all-reduces from the same keys, and the
    runtime remembers each key's tensor shape for the rest of the process: a strategy
    whose step reduces other shapes (another model, n_critic > 1, float16 loss scaling)
    would abort every later collective, other tests' included. TensorFlow's own tests
    move the base the same way between tests (its strategy_combinations.py); the
    attribute exists for that.
    """
    tf.distribute.MirroredStrategy._collective_key_base += 100_000


@pytest.fixture
def no_network(monkeypatch):
    """Fails the test if Python code opens (or resolves) a network connection."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


@pytest.fixture
def policy(request):
    """Sets the Keras global dtype policy named by the test's parameter, then restores it."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(previous)


def mirrored_on_two_cpus():
    """A MirroredStrategy over the session's two logical CPU devices, with collective
    keys of its own (see `fresh_collective_keys`), also for module-scoped fixtures, which
    start before a test's own fixtures."""
    tf.distribute.MirroredStrategy._collective_key_base += 100_000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def two_replicas():
    """A MirroredStrategy over the session's two logical CPU devices."""
    return mirrored_on_two_cpus()


@pytest.fixture
def float32_policy_after():
    """Sets the Keras global dtype policy back to float32 after a test that trains."""
    yield
    keras.mixed_precision.set_global_policy("float32")


# What the binaries' console filter and absl verbosity hide by default (dcgan/runtime/console.py).
NOISE = ("oneDNN custom operations", "Could not find cuda drivers", "cuInit",
         "Load dataset info", "Using MirroredStrategy", "Sharding callback duration",
         "GeneratorDatasetOp", "absl::InitializeLog", "auto-shard rewrite", "remapper failed",
         "did not fully read the dataset being cached")


def assert_no_noise(stderr):
    """No line of a binary's `stderr` is of the start-up noise hidden by default."""
    noisy = [line for line in stderr.splitlines() if any(noise in line for noise in NOISE)]
    assert not noisy, noisy


def one_line_starting(stderr, prefix):
    """The one line of `stderr` that starts with `prefix`, asserted to be its last
    non-empty line (so no traceback or second message follows it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith(prefix)]
    assert len(ours) == 1, f"{len(ours)} lines start with {prefix!r}:\n{stderr[-3000:]}"
    assert lines[-1] == ours[0], f"{prefix!r} is not the last line:\n{stderr[-3000:]}"
    return ours[0]


def assert_one_error_line(completed, binary, fragment):
    """Asserts that the `subprocess.CompletedProcess` `completed` of `binary` (e.g.
    "train.py") failed as the binaries promise: exit status 1 and exactly one stderr line
    starting with "<binary>: error:", which contains `fragment` and is stderr's last
    non-empty line. Returns that line."""
    assert completed.returncode == 1, (completed.returncode, completed.stderr[-3000:])
    line = one_line_starting(completed.stderr, f"{binary}: error:")
    assert fragment in line, line
    return line


# One GanStep on random images, for the tests of the step itself.
BATCH = 8


def make_gan_step(strategy, model=ModelConfig("tutorial"), loss="non_saturating",
                  policy_name="float32", seed=0, noise=None, **options):
    """The one place the tests build a GanStep: `GanStep.from_config` for G and D of
    `model` (seeded by `seed`), Adam at 1e-3 for both (loss-scaled under
    "mixed_float16"), global batches of BATCH and the alternating update.

    Args:
      loss: a name registered in `dcgan.gan.losses.LOSSES`.
      noise: the step's noise source; a `tf.random.Generator` seeded by `seed` if None.
      options: TrainConfig fields (update, n_critic, penalties, jit_compile...);
        `ema_decay` also builds the EMA generator, starting from G's weights.
    """
    config = TrainConfig(
        model=model, data=DataConfig(global_batch_size=BATCH),
        generator_optimizer=OptimizerConfig(1e-3), discriminator_optimizer=OptimizerConfig(1e-3),
        loss=loss, **options)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        networks = models.build_networks(model, with_ema=bool(config.ema_decay))
        return GanStep.from_config(config, networks,
                                   noise or tf.random.Generator.from_seed(seed), policy_name)


def random_batches(strategy, num_batches=8, labelled=False):
    """An iterator over `num_batches` global batches of BATCH uniform [-1, 1] images
    [BATCH, 28, 28, 1] float32 (the same ones on every call), with int64 labels in
    [0, 10) when `labelled`, distributed by `strategy`."""
    rng = np.random.default_rng(0)
    examples = rng.uniform(-1, 1, (num_batches * BATCH, 28, 28, 1)).astype(np.float32)
    if labelled:
        examples = (examples, rng.integers(0, 10, num_batches * BATCH))
    dataset = tf.data.Dataset.from_tensor_slices(examples).batch(BATCH)
    return iter(strategy.experimental_distribute_dataset(dataset))


def run_steps(gan_step, iterator, num_steps):
    """`num_steps` steps in one call; their metrics, {name: numpy [num_steps]}."""
    metrics = gan_step.train(iterator, tf.constant(num_steps, tf.int32))
    return {name: values.numpy() for name, values in metrics.items()}


def tiny_config(run_dir, train_examples, batch_size, preset="tutorial", **overrides):
    """A short real run: `preset` on the first `train_examples` training images in global
    batches of `batch_size`, float32, deterministic ops, in `run_dir`; `overrides`
    replace TrainConfig fields."""
    preset = PRESETS[preset]
    return dataclasses.replace(
        preset, run_dir=str(run_dir),
        data=dataclasses.replace(preset.data, split=f"train[:{train_examples}]",
                                 global_batch_size=batch_size),
        **{"dtype_policy": "float32", "deterministic": True, **overrides})


def train_for_fixture(config, strategy):
    """`training.train(config, strategy)` for a fixture wider than a test, which
    `float32_policy_after` does not cover: sets the Keras policy back to float32 after."""
    try:
        return training.train(config, strategy)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def tiny_run(path, epochs, num_classes=0):
    """A tutorial run on 128 images in batches of 32 in `path`: 4 steps an epoch, a
    checkpoint at each epoch's end."""
    config = tiny_config(path, 128, 32, epochs=epochs, num_fixed_samples=4)
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, num_classes=num_classes))
    train_for_fixture(config, tf.distribute.MirroredStrategy(["/cpu:0"]))
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A `tiny_run` of 2 epochs, checkpoints at steps 4 and 8, for the session; tests
    that write into it use a copy."""
    return tiny_run(tmp_path_factory.mktemp("trained") / "run", epochs=2)


def restored_run_state(config, strategy, dtype_policy="float32"):
    """`run_state.build_run_state` of `config` on `strategy` in `dtype_policy`, restored
    from the latest checkpoint of `config.run_dir`."""
    plan = make_plan(config, strategy.num_replicas_in_sync, dtype_policy=dtype_policy)
    return run_state.build_run_state(plan, strategy, RunDirectory(config.run_dir).checkpoints)


def csv_rows(path):
    """The rows of the CSV file `path` (losses.csv, sweep.csv...) as dicts of strings."""
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def loss_rows(run_dir):
    """The rows of the run directory's losses.csv."""
    return csv_rows(run_dir / "losses.csv")


def checkpoint_steps(run_dir):
    """The steps of the checkpoints the run directory's state file lists, oldest first."""
    return [checkpoints.checkpoint_step(prefix)
            for prefix in checkpoints.list_checkpoints(run_dir)]


def after_prelude(prelude, script):
    """The command that runs the Python file `script` as __main__ after the Python code
    `prelude` (a hook, a registered loss) in the same process; append the script's
    arguments."""
    run_as_main = ("\nimport runpy, sys\nsys.argv = sys.argv[1:]\n"
                   "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    return [sys.executable, "-c", prelude + run_as_main, str(script)]


@pytest.fixture
def interrupted_train(monkeypatch):
    """`interrupted_train(config, strategy, calls)`: `training.train`, stopped as Ctrl-C
    would stop it after `calls` training calls; returns the step it saved.

    Unlike a shorter `max_steps`, this leaves the config, and so the length of the run
    that learning-rate schedules decay over, as it is.
    """

    def interrupted(config, strategy, calls):
        original = GanStep.train
        made = []

        def train_then_interrupt(gan_step, iterator, num_steps):
            metrics = original.__get__(gan_step, GanStep)(iterator, num_steps)
            made.append(num_steps)
            if len(made) == calls:
                signal.raise_signal(signal.SIGINT)
            return metrics

        with monkeypatch.context() as patch:
            patch.setattr(GanStep, "train", train_then_interrupt)
            with pytest.raises(training.TrainingInterrupted) as stop:
                training.train(config, strategy)
        return stop.value.step

    return interrupted


@pytest.fixture
def short_run():
    """`short_run(run_dir, preset, train_examples=256, **overrides)`: `tiny_config` for a
    few exactly repeatable float32 steps on real data: the first `train_examples` images,
    batches of 32, 1 epoch, 3 steps per call."""

    def config(run_dir, preset="tutorial", train_examples=256, **overrides):
        return tiny_config(run_dir, train_examples, 32, preset,
                           **{"seed": 1, "epochs": 1, "steps_per_call": 3, "num_fixed_samples": 4,
                              **overrides})

    return config


@pytest.fixture
def resumes_exactly(interrupted_train):
    """`resumes_exactly(config, strategy, calls)`: trains `config` uninterrupted in
    `config.run_dir` + "-uninterrupted", and interrupted after `calls` training calls
    then resumed in `config.run_dir`; asserts that both wrote the same losses.csv (but
    the timings) and hold the same G and D weights at the end, and the same generator
    `checkpoints.restore_generator` samples from (the EMA average when the run keeps
    one, read from the checkpoint file, not through the run state that trained it).
    Returns the losses.csv rows."""
    TIMINGS = ("images_per_sec", "train_seconds")

    def rows_and_weights(config, strategy):
        state = restored_run_state(config, strategy)
        rows = [{name: value for name, value in row.items() if name not in TIMINGS}
                for row in csv_rows(pathlib.Path(config.run_dir) / "losses.csv")]
        sampler = checkpoints.restore_generator(config.run_dir)
        return rows, [w.numpy() for w in state.generator.weights + state.discriminator.weights
                      + sampler.weights]

    def check(config, strategy, calls):
        uninterrupted = dataclasses.replace(config, run_dir=config.run_dir + "-uninterrupted")
        training.train(uninterrupted, strategy)
        stopped_at = interrupted_train(config, strategy, calls)
        training.train(config, strategy)
        rows, weights = rows_and_weights(uninterrupted, strategy)
        resumed_rows, resumed_weights = rows_and_weights(config, strategy)
        assert 0 < stopped_at < int(rows[-1]["step"])
        assert resumed_rows == rows
        for weight, resumed_weight in zip(weights, resumed_weights, strict=True):
            np.testing.assert_array_equal(resumed_weight, weight)
        return rows

    return check
