"""Shared fixtures: collective keys per test, a guard against network access and a
mixed-precision policy switch; and the assertion on a binary's one error line."""

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
