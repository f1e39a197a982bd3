"""Short real training runs (2 logical CPU replicas) and the run directory they leave."""

import dataclasses
import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    checkpoint_steps,
    loss_rows,
    mirrored_on_two_cpus,
    restored_run_state,
    tiny_config,
    train_for_fixture,
)

from dcgan import data, training
from dcgan.core.errors import ConfigError
from dcgan.gan.step import METRIC_NAMES
from dcgan.recipes.plan import make_plan
from dcgan.rundir import checkpoints
from dcgan.rundir.loss_log import CSV_COLUMNS
from dcgan.runtime import hardware
from dcgan.training import loop

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("float32_policy_after")]

STEPS_PER_EPOCH = 8  # 256 images / batch 32


def _config(run_dir, train_examples=256, **overrides):
    """`train_examples` images in batches of 32, checkpoints every 5 steps."""
    return tiny_config(run_dir, train_examples, 32, **{
        "seed": 1, "epochs": 2, "steps_per_call": 3, "checkpoint_every_steps": 5,
        "num_fixed_samples": 16, **overrides})


def _decode_png(path):
    return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One 2-epoch run on 2 replicas, and training.train's result, for the tests that only
    read its run directory: a run of its own each cost one more start and tracing."""
    run_dir = tmp_path_factory.mktemp("trainer") / "run"
    return run_dir, train_for_fixture(_config(run_dir), mirrored_on_two_cpus())


def test_run_directory_holds_every_artifact(finished_run):
    run_dir, result = finished_run
    assert result["step"] == 2 * STEPS_PER_EPOCH

    rows = loss_rows(run_dir)
    assert [int(row["step"]) for row in rows] == list(range(1, 17))
    assert [int(row["epoch"]) for row in rows] == [1] * 8 + [2] * 8
    assert all(np.isfinite(float(row[name])) for row in rows for name in CSV_COLUMNS)

    for epoch in (1, 2):
        grid = _decode_png(run_dir / "samples" / f"epoch_{epoch:04d}.png")
        assert grid.shape == (3 * (4 * 30 + 2), 3 * (4 * 30 + 2), 1)  # 4x4 grid, 3x scale
    assert _decode_png(run_dir / "final_grid.png").shape == (3 * 152, 3 * 152, 1)  # 5x5
    assert _decode_png(run_dir / "loss_curves.png").shape[-1] in (3, 4)
    from PIL import Image
    with Image.open(run_dir / "progress.gif") as gif:
        assert gif.n_frames == 2

    assert checkpoint_steps(run_dir) == [10, 15, 16]  # every 5 steps and at epoch ends, 3 kept
    config = (run_dir / "config.json").read_text()
    assert '"tensorflow"' in config and '"git_commit"' in config

    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    tags = {value.tag for event in tf.compat.v1.train.summary_iterator(str(events[0]))
            for value in event.summary.value}
    assert {"train/d_loss", "train/g_loss", "samples"} <= tags


def test_exported_generator_loads_without_dcgan_and_matches_checkpoint(tmp_path, finished_run):
    run_dir, _ = finished_run
    z = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    code = ("import sys, numpy as np, keras\n"
            "g = keras.models.load_model(sys.argv[1])\n"
            "assert 'dcgan' not in sys.modules\n"
            "np.save(sys.argv[3], g(np.load(sys.argv[2]), training=False))\n")
    subprocess.run([sys.executable, "-c", code, str(run_dir / "generator.keras"),
                    str(tmp_path / "z.npy"), str(tmp_path / "out.npy")],
                   check=True, timeout=120, cwd=tmp_path)
    restored = checkpoints.restore_generator(run_dir)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), restored(z, training=False),
                               atol=1e-6)
    discriminator = keras.models.load_model(run_dir / "discriminator.keras")
    assert discriminator.output_shape == (None, 1)


@pytest.mark.parametrize("epochs", [2, None])  # None: only the clock stops the run.
def test_time_budget_stops_the_run_and_holds_on_resume(tmp_path, two_replicas, epochs):
    run_dir = tmp_path / "run"
    config = _config(run_dir, max_train_minutes=1e-6, epochs=epochs)  # Spent by the first call.
    assert training.train(config, two_replicas)["step"] == 3  # steps_per_call
    assert checkpoints.list_checkpoints(run_dir)[-1].endswith("ckpt-3")
    assert training.train(config, two_replicas)["step"] == 3
    assert len(loss_rows(run_dir)) == 3


def test_batch_not_divisible_by_replicas_is_refused(tmp_path, two_replicas):
    config = _config(tmp_path / "run")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                  global_batch_size=33))
    with pytest.raises(ConfigError, match="not divisible by the 2 replicas"):
        training.train(config, two_replicas)


def test_mixed_float16_resume_restores_the_loss_scale(tmp_path, two_replicas, monkeypatch):
    run_dir = tmp_path / "run"
    # float16 is emulated on CPU, ~10 s a step here: one step, then the closing checkpoint.
    config = _config(run_dir, max_steps=1, steps_per_call=1, dtype_policy="mixed_float16")
    training.train(config, two_replicas)
    [row] = loss_rows(run_dir)
    assert np.isfinite(float(row["d_loss"]))
    checkpoint = checkpoints.list_checkpoints(run_dir)[-1]
    saved = [tf.train.load_variable(checkpoint, f"{network}_optimizer/dynamic_scale/"
                                                ".ATTRIBUTES/VARIABLE_VALUE")
             for network in ("generator", "discriminator")]

    # The resumed run's optimizers start from another scale, so only a restore brings
    # back the saved one. max_steps is reached: the resume trains no step.
    created = []
    init = keras.optimizers.LossScaleOptimizer.__init__

    def init_at_scale_2(self, inner_optimizer, **kwargs):
        init(self, inner_optimizer, **{**kwargs, "initial_scale": 2.0})
        created.append(self)

    monkeypatch.setattr(keras.optimizers.LossScaleOptimizer, "__init__", init_at_scale_2)
    assert training.train(config, two_replicas)["step"] == 1
    assert len(created) == 2
    assert [float(optimizer.dynamic_scale.numpy()) for optimizer in created] == saved
    assert all(scale != 2.0 for scale in saved)


def test_auto_precision_resumes_in_the_policy_its_run_started_in(tmp_path, two_replicas,
                                                                  monkeypatch):
    """auto times this machine's bf16 matmuls (`hardware.resolve_dtype_policy`): a
    resume whose timing came out otherwise goes on in the run's policy instead of being
    refused as another run's; a new run resolves afresh."""
    run_dir = tmp_path / "run"
    config = _config(run_dir, max_steps=1, steps_per_call=1, dtype_policy="auto")
    monkeypatch.setattr(hardware, "resolve_dtype_policy", lambda name: "float32")
    training.train(config, two_replicas)
    monkeypatch.setattr(hardware, "resolve_dtype_policy", lambda name: "mixed_bfloat16")
    assert training.train(dataclasses.replace(config, max_steps=2), two_replicas)["step"] == 2
    assert [row["step"] for row in loss_rows(run_dir)] == ["1", "2"]
    assert json.loads((run_dir / "config.json").read_text())["dtype_policy"] == "float32"
    training.train(config, two_replicas, new_run=True)
    assert json.loads((run_dir / "config.json").read_text())["dtype_policy"] == "mixed_bfloat16"


def test_a_resume_trains_at_the_learning_rates_of_its_config(finished_run, two_replicas):
    """A constant learning rate is an optimizer variable in the checkpoint: without care a
    resume would go on at the saved run's rate, whatever the flags say. Building the run
    state restores the checkpoint and writes nothing, so the shared run serves."""
    run_dir, _ = finished_run
    config = _config(run_dir)
    lowered = dataclasses.replace(
        config, generator_optimizer=dataclasses.replace(config.generator_optimizer,
                                                        learning_rate=3e-5),
        discriminator_optimizer=dataclasses.replace(config.discriminator_optimizer,
                                                    learning_rate=7e-6))
    state = restored_run_state(lowered, two_replicas)
    assert int(state.step.numpy()) == 2 * STEPS_PER_EPOCH  # Restored, the optimizers too:
    assert state.gan_step.generator_optimizer.iterations.numpy() == 2 * STEPS_PER_EPOCH
    assert float(state.gan_step.generator_optimizer.learning_rate.numpy()) == pytest.approx(3e-5)
    assert float(state.gan_step.discriminator_optimizer.learning_rate.numpy()) == pytest.approx(
        7e-6)


def _class_embedding(generator):
    return generator.get_layer("class_embedding").kernel.numpy()


def _conditional(config, conditioning):
    return dataclasses.replace(
        config, model=dataclasses.replace(config.model, num_classes=10,
                                          conditioning=conditioning))


def test_conditional_run_trains_resumes_exactly_and_draws_a_row_per_class(tmp_path,
                                                                          two_replicas):
    """Stopped mid-epoch and resumed, a run equals an uninterrupted one. Conditional, so
    the labels are resumed too (the unconditional path: test_reliability's kill -9 test
    and the exact resumes of test_extensions and test_augment). The fast recipe, so the
    EMA generator (which restore_generator returns) is resumed too; its batch-norm D
    (moving statistics in the checkpoint) is the suite's one exact resume of D's batch
    norm. Concatenation's training steps are checked in test_extensions; the resume and
    the grid do not depend on the conditioning."""
    uninterrupted, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"

    def config(run_dir, **overrides):
        # 128 images: 4 steps an epoch.
        return _conditional(_config(run_dir, 128, preset="fast", **overrides), "projection")

    training.train(config(uninterrupted), two_replicas)
    # Stopped at step 5, the first of epoch 2.
    training.train(config(resumed, max_steps=5), two_replicas)
    embedding_at_step_5 = _class_embedding(checkpoints.restore_generator(resumed))
    training.train(config(resumed), two_replicas)

    metric_columns = ("step", "epoch") + METRIC_NAMES
    expected = [[row[name] for name in metric_columns] for row in loss_rows(uninterrupted)]
    assert len(expected) == 2 * 4
    assert all(np.isfinite(float(value)) for row in expected for value in row)
    assert [[row[name] for name in metric_columns] for row in loss_rows(resumed)] == expected
    train_seconds = [float(row["train_seconds"]) for row in loss_rows(resumed)]
    assert np.all(np.diff(train_seconds) > 0)  # The clock carries over the resume.
    generator = checkpoints.restore_generator(resumed)
    expected_weights = checkpoints.restore_generator(uninterrupted).weights
    discriminators = [restored_run_state(config(run_dir), two_replicas).discriminator
                      for run_dir in (resumed, uninterrupted)]
    for weight, expected_weight in zip(generator.weights + discriminators[0].weights,
                                       expected_weights + discriminators[1].weights,
                                       strict=True):
        np.testing.assert_array_equal(weight.numpy(), expected_weight.numpy())
    # Training went on after the resume, in the class embedding too.
    assert not np.allclose(_class_embedding(generator), embedding_at_step_5)

    # One row of 4 (the square root of num_fixed_samples=16) per class, labels on the left.
    for path, columns in ((resumed / "samples" / "epoch_0002.png", 4),
                          (resumed / "final_grid.png", 5)):
        grid = _decode_png(path)
        grid_width = 3 * (columns * 30 + 2)
        assert grid.shape[0] == 3 * (10 * 30 + 2) and grid.shape[1] > grid_width
        labels = grid[:, :grid.shape[1] - grid_width]
        assert (labels < 128).any()  # Text.


def test_a_class_count_other_than_fashion_mnists_is_refused(tmp_path, two_replicas):
    config = _conditional(_config(tmp_path / "run"), "projection")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, num_classes=5))
    with pytest.raises(ConfigError, match="has 10 classes, got num_classes=5"):
        training.train(config, two_replicas)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("end, iterator_end", [(math.inf, 12), (9, 12), (6, 8)])
def test_one_input_iterator_serves_several_epochs_each_in_its_own_order(
        tmp_path, monkeypatch, two_replicas, end, iterator_end):
    """From step 5 (epoch 1) with two epochs an iterator: epoch 1's steps after the first,
    then all of epoch 2 unless `end` falls in epoch 1, each epoch in the order load_split
    gives it alone; the global batches split across the replicas."""
    monkeypatch.setattr(loop, "EPOCHS_PER_ITERATOR", 2)
    config = tiny_config(tmp_path, 128, 32, seed=4)  # 4 steps an epoch.
    plan = make_plan(config, two_replicas.num_replicas_in_sync, dtype_policy="float32")
    iterator, ends_at = loop._step_batch_iterator(plan, two_replicas, 5, end)
    read = [np.concatenate([replica.numpy() for replica in
                            two_replicas.experimental_local_results(batch)])
            for batch in iterator]
    expected = [batch for epoch in range(1, iterator_end // 4)
                for batch in data.load_split(config.data, plan.pixel_range,
                                             shuffle_seed=config.shuffle_seed, first_epoch=epoch)
                .as_numpy_iterator()][1:]
    assert ends_at == iterator_end and len(read) == iterator_end - 5
    np.testing.assert_array_equal(np.stack(read), np.stack(expected))
