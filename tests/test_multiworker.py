"""Multi-worker training: two train.py workers on 127.0.0.1, each with one CPU device,
against one process with two logical CPU replicas; TF_CONFIG checks; the input split.

Each worker is a real process (a TensorFlow start costs ~5-10 s), started with the
TF_CONFIG that `dcgan.runtime.local_cluster` gives it, bounded in time and killed in a `finally`.
"""

import json
import os
import re
import signal
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    REPO,
    TRAIN_PY,
    after_prelude,
    loss_rows,
    mirrored_on_two_cpus,
    tiny_config,
    train_for_fixture,
)

from dcgan.core.errors import ConfigError
from dcgan.gan.step import METRIC_NAMES
from dcgan.rundir import checkpoints
from dcgan.rundir.layout import RunDirectory
from dcgan.runtime import distribute, local_cluster

TIMEOUT = 300  # Seconds a cluster may take to finish; it takes ~30-60 s on 2 busy cores.
# 512 images in batches of 32: 16 steps an epoch; 20 steps cross one epoch end. Only the
# epoch end, a stop and the last step save a checkpoint.
FLAGS = ("--preset=tutorial", "--train_examples=512", "--batch_size=32", "--dtype_policy=float32",
         "--deterministic", "--max_steps=20", "--steps_per_call=2",
         "--checkpoint_every_steps=1000")
# Runs train.py after code that saves the trainable weights of each worker at each of its
# checkpoints, to compare them. (Without synchronised batch norm each replica keeps its own
# moving statistics.)
SAVE_WEIGHTS = """
import json, os
import numpy as np
from dcgan.training import saver
_save = saver.Saver.save
def save(self, step):
    _save(self, step)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    models = (self.state.generator, self.state.discriminator)
    np.savez(os.path.join(os.environ["WEIGHTS_DIR"], f"worker{index}-step{step}.npz"),
             *[weight.numpy() for model in models for weight in model.trainable_weights])
saver.Saver.save = save
"""

pytestmark = pytest.mark.usefixtures("float32_policy_after")


def _logged_steps(run_dir):
    """Steps in losses.csv so far (0 before the chief has written it)."""
    try:
        return max((run_dir / "losses.csv").read_text().count("\n") - 1, 0)
    except FileNotFoundError:
        return 0


def _metrics(rows):
    return np.array([[float(row[name]) for name in METRIC_NAMES] for row in rows])


def _run_workers(tmp_path, run_dir, name, signal_worker=None):
    """Two workers of `train.py FLAGS` on `run_dir`; returns (exit statuses, outputs).

    With `signal_worker`, that worker gets SIGTERM once the chief has logged two steps.
    Every worker's scratch space is `tmp_path/name/tmp`, which the test checks is empty.
    """
    directory = tmp_path / name
    (directory / "tmp").mkdir(parents=True)
    (directory / "weights").mkdir()
    command = [*after_prelude(SAVE_WEIGHTS, TRAIN_PY), f"--run_dir={run_dir}",
               "--strategy=multi_worker", *FLAGS]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(directory / "tmp"),
           "WEIGHTS_DIR": str(directory / "weights")}
    logs = [directory / f"worker{index}.log" for index in range(2)]
    outputs = [path.open("w") for path in logs]
    workers = []
    try:
        workers = local_cluster.start_workers(command, outputs, env=env, cwd=REPO)
        deadline = time.monotonic() + TIMEOUT
        while any(worker.poll() is None for worker in workers):
            assert time.monotonic() < deadline, "the workers did not finish in time"
            if signal_worker is not None and _logged_steps(run_dir) >= 2:
                workers[signal_worker].send_signal(signal.SIGTERM)
                signal_worker = None
            time.sleep(0.05)
    finally:
        statuses = local_cluster.stop_workers(workers, timeout=0)
        for output in outputs:
            output.close()
    return statuses, [path.read_text().splitlines() for path in logs]


def _assert_same_weights(tmp_path, name, step):
    """The trainable weights that both workers saved at `step` are identical."""
    weights = []
    for index in range(2):
        with np.load(tmp_path / name / "weights" / f"worker{index}-step{step}.npz") as saved:
            weights.append([saved[f"arr_{i}"] for i in range(len(saved.files))])
    for chief_weight, worker_weight in zip(*weights, strict=True):
        np.testing.assert_array_equal(chief_weight, worker_weight)


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The rows of losses.csv of FLAGS in one process with two logical CPU replicas."""
    run_dir = tmp_path_factory.mktemp("one_process") / "run"
    config = tiny_config(run_dir, 512, 32, max_steps=20, steps_per_call=2,
                         checkpoint_every_steps=1000)
    train_for_fixture(config, mirrored_on_two_cpus())
    return loss_rows(run_dir)


def _assert_like_one_process(rows, one_process_run):
    """The same steps and losses as the single-process run: the same to the bit at step 1
    (the same weights, noise and images), and to float32 rounding after, which the GAN's
    updates amplify (relative differences of ~1e-7 at step 2 grow to ~3e-5 at step 20).
    Each worker computes its replica's step in its own process and thread pool, which
    rounds the convolutions' sums differently in the last bits."""
    assert [row["step"] for row in rows] == [row["step"] for row in one_process_run]
    ours, theirs = _metrics(rows), _metrics(one_process_run)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=1e-6)


@pytest.mark.slow
def test_two_workers_stop_together_resume_and_train_as_one_process(tmp_path, one_process_run):
    """SIGTERM to the worker that is not the chief: both save the same step and exit; the
    same command resumes them; then the run equals one process with two replicas."""
    run_dir = tmp_path / "run"
    statuses, (chief_lines, worker_lines) = _run_workers(tmp_path, run_dir, "stopped",
                                                         signal_worker=1)
    assert statuses == [128 + signal.SIGTERM] * 2, (chief_lines[-20:], worker_lines[-20:])
    [prefix] = [line.split("(saved in ")[1].split(")")[0] for line in worker_lines
                if line.startswith("train.py: Stopped by SIGTERM at step ")]
    step = checkpoints.checkpoint_step(prefix)
    assert 2 < step < 20 and step % 2 == 0  # A call boundary, before the end.
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")) == prefix
    assert any(line.startswith(f"train.py: Stopped with the other workers, one of which "
                               f"received a stop signal, at step {step} (saved in {prefix})")
               for line in chief_lines)
    assert [int(row["step"]) for row in loss_rows(run_dir)] == list(range(1, step + 1))
    assert not list((tmp_path / "stopped" / "tmp").iterdir())
    _assert_same_weights(tmp_path, "stopped", step)

    statuses, (chief_lines, worker_lines) = _run_workers(tmp_path, run_dir, "resumed")
    assert statuses == [0, 0], (chief_lines[-20:], worker_lines[-20:])
    # (Not the last lines: a worker that outlives the chief's process, which runs the
    # cluster's coordination service, logs the failed RPCs of its exit after it.)
    for lines in (chief_lines, worker_lines):
        assert any(line.startswith(f"Done: step 20, run directory {run_dir}, peak RSS ")
                   for line in lines)
    assert f"worker 1: the chief writes {run_dir}." in worker_lines

    # The chief wrote every artifact; the worker left nothing, here or in its scratch space.
    for name in RunDirectory.TRAINER_FILES + ("samples/epoch_0001.png",
                                              "checkpoints/ckpt-20.index"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert not [path for path in (run_dir / "checkpoints").iterdir()
                if not path.name.startswith(("checkpoint", "ckpt-"))]
    assert not list((tmp_path / "resumed" / "tmp").iterdir())
    record = json.loads((run_dir / "config.json").read_text())
    assert (record["workers"], record["replicas"]) == (2, 2)

    _assert_same_weights(tmp_path, "resumed", 20)
    _assert_like_one_process(loss_rows(run_dir), one_process_run)


# Quick, in-process checks of the pieces.

def test_tf_config_is_parsed():
    task = distribute.parse_tf_config(distribute.tf_config(["a:1", "b:2"], 1))
    assert (task.cluster, task.task_type, task.task_index) == (
        {"worker": ["a:1", "b:2"]}, "worker", 1)
    chief = distribute.parse_tf_config(json.dumps(
        {"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}))
    assert chief.task_type == "chief"


@pytest.mark.parametrize("tf_config, message", [
    ('{"cluster": ', "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG needs a "cluster" and a "task" object'),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
     "task types ['ps'] are not supported"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     "cluster.worker[0] is 'a', not a \"host:port\" address"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "cluster.worker must be a non-empty list"),
    ('{"cluster": {"chief": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
     "at most one chief"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task.type is 'chief', not one of the cluster's task types ['worker']"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task.index is 2, but cluster.worker has 2 task(s)"),
])
def test_bad_tf_config_is_refused_with_what_is_wrong(tf_config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        distribute.parse_tf_config(tf_config)


def test_multi_worker_refuses_a_split_cpu():
    with pytest.raises(ConfigError, match="one replica per worker on a CPU"):
        distribute.make_strategy("multi_worker")  # conftest split the CPU in two.


def test_free_loopback_ports_are_distinct_and_bindable():
    ports = local_cluster.free_loopback_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_replica_batches_give_each_replica_its_slice_of_every_global_batch(two_replicas):
    global_batches = tf.data.Dataset.range(48).batch(12)  # Elements: 12 consecutive numbers.
    # Two workers of two replicas each: worker 1 holds replicas 2 and 3.
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=4)
    batches = list(distribute.replica_batches(global_batches, 12, context).as_numpy_iterator())
    assert [batch.tolist() for batch in batches[:4]] == [[6, 7, 8], [9, 10, 11],
                                                         [18, 19, 20], [21, 22, 23]]
    assert len(batches) == 8
    # One process: the split MirroredStrategy makes, replica r gets slice r.
    distributed = two_replicas.distribute_datasets_from_function(
        lambda context: distribute.replica_batches(global_batches, 12, context))
    first = [part.numpy().tolist()
             for part in two_replicas.experimental_local_results(next(iter(distributed)))]
    assert first == [list(range(6)), list(range(6, 12))]


def test_the_auto_strategy_refuses_a_bad_tf_config_from_the_environment(monkeypatch):
    """train.py's default strategy; its one error line: test_console's
    test_verbosity_and_the_environment_bring_the_info_lines_back."""
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}')
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        distribute.make_strategy("auto")
