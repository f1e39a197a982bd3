"""Shared fixtures: collective keys per test, a guard against network access, a
mixed-precision policy switch, a Ctrl-C in the middle of a run; and the assertion on a
binary's one error line."""

import signal
import socket

import keras
import pytest
import tensorflow as tf

from dcgan import distribute

# Two logical CPU devices for the whole session, so MirroredStrategy runs real replicas.
# This must happen before TensorFlow initialises its devices, hence at import.
distribute.split_cpu(2)
# Tests compare runs number for number.
tf.config.experimental.enable_op_determinism()


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


@pytest.fixture
def two_replicas():
    """A MirroredStrategy over the session's two logical CPU devices."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def float32_policy_after():
    """Sets the Keras global dtype policy back to float32 after a test that trains."""
    yield
    keras.mixed_precision.set_global_policy("float32")


def assert_one_error_line(completed, binary, fragment):
    """Asserts that a binary's run failed as the binaries promise: exit status exactly 1
    and exactly one `<binary>: error:` line in stderr, its last line, holding `fragment`.

    Args:
      completed: the subprocess.CompletedProcess of the run (stderr captured as text).
      binary: e.g. "train.py".
      fragment: a part of the message.

    Returns:
      The error line.
    """
    lines = completed.stderr.splitlines()
    ours = [line for line in lines if line.startswith(f"{binary}: error:")]
    assert completed.returncode == 1, (completed.returncode, completed.stderr[-3000:])
    assert len(ours) == 1 and lines[-1] == ours[0], completed.stderr[-3000:]
    assert fragment in ours[0], ours[0]
    return ours[0]

@pytest.fixture
def interrupted_train(monkeypatch):
    """`interrupted_train(config, strategy, calls)`: `trainer.train`, stopped as Ctrl-C
    would stop it after `calls` training calls; returns the step it saved.

    Unlike a shorter `max_steps`, this leaves the config, and so the length of the run
    that learning-rate schedules decay over, as it is.
    """

    # Imported here: the CPU must be split before anything builds a TensorFlow op.
    from dcgan import trainer
    from dcgan.train_step import GanStep

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
            with pytest.raises(trainer.TrainingInterrupted) as stop:
                trainer.train(config, strategy)
        return stop.value.step

    return interrupted


@pytest.fixture
def short_run():
    """`short_run(run_dir, preset, **overrides)`: a TrainConfig of `preset` for a few
    exactly repeatable float32 steps on real data: 256 images, batches of 32, 1 epoch,
    3 steps per call."""
    import dataclasses

    from dcgan.config import PRESETS

    def config(run_dir, preset="tutorial", **overrides):
        preset = PRESETS[preset]
        return dataclasses.replace(
            preset, run_dir=str(run_dir),
            data=dataclasses.replace(preset.data, split="train[:256]", global_batch_size=32,
                                     shuffle_seed=1),
            **{"epochs": 1, "steps_per_call": 3, "precision": "float32", "deterministic": True,
               "num_fixed_samples": 4, **overrides})

    return config


@pytest.fixture
def resumes_exactly(interrupted_train):
    """`resumes_exactly(config, strategy, calls)`: trains `config` uninterrupted in
    `config.run_dir` + "-uninterrupted", and interrupted after `calls` training calls
    then resumed in `config.run_dir`; asserts that both wrote the same losses.csv (but
    the timings) and hold the same G and D weights at the end. Returns the losses.csv
    rows."""
    import csv
    import dataclasses
    import pathlib

    import numpy as np

    from dcgan import trainer

    TIMINGS = ("images_per_sec", "train_seconds")

    def rows_and_weights(config, strategy):
        state = run_state.build_run_state(config, "float32", strategy)
        with (pathlib.Path(config.run_dir) / "losses.csv").open(newline="") as file:
            rows = [{name: value for name, value in row.items() if name not in TIMINGS}
                    for row in csv.DictReader(file)]
        return rows, [w.numpy() for w in state.generator.weights + state.discriminator.weights]

    def check(config, strategy, calls):
        uninterrupted = dataclasses.replace(config, run_dir=config.run_dir + "-uninterrupted")
        trainer.train(uninterrupted, strategy)
        stopped_at = interrupted_train(config, strategy, calls)
        trainer.train(config, strategy)
        rows, weights = rows_and_weights(uninterrupted, strategy)
        resumed_rows, resumed_weights = rows_and_weights(config, strategy)
        assert 0 < stopped_at < int(rows[-1]["step"])
        assert resumed_rows == rows
        for weight, resumed_weight in zip(weights, resumed_weights, strict=True):
            np.testing.assert_array_equal(resumed_weight, weight)
        return rows

    return check
