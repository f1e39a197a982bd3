"""A run directory written before `dcgan/` became subpackages (and before TrainConfig's
learning-rate and penalty fields became sub-configs) still resumes exactly.

tests/data/run_before_subpackages/README.md says how its files were made.
"""

import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import csv_rows
from keras import layers

from dcgan import models, training
from dcgan.core.config import (
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    PenaltyConfig,
    ScheduleConfig,
    TrainConfig,
)

FIXTURE = pathlib.Path(__file__).parent / "data" / "run_before_subpackages"
# losses.csv columns that depend on the machine's speed, not on the run.
TIMING_COLUMNS = ("images_per_sec", "train_seconds")


def _tiny_generator(config: ModelConfig) -> keras.Model:
    z = keras.Input(shape=(config.noise_dim,), name="z")
    x = layers.Dense(7 * 7 * 4)(z)
    x = layers.Reshape((7, 7, 4))(x)
    x = layers.Conv2DTranspose(1, 4, strides=4, padding="same")(x)
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(z, images, name="tiny_generator")


def _tiny_discriminator(config: ModelConfig) -> keras.Model:
    images = keras.Input(shape=(28, 28, 1), name="images")
    x = layers.Conv2D(4, 4, strides=4, padding="same")(images)
    x = layers.Flatten()(x)
    logits = layers.Dense(1, dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name="tiny_discriminator")


@pytest.fixture
def tiny_architecture():
    """The architecture the old run was trained with, registered for the test only."""
    models.register_architecture("tiny", _tiny_generator, _tiny_discriminator,
                                 (-1.0, 1.0), mixes_examples=False)
    yield
    del models.ARCHITECTURES["tiny"]


def _config(run_dir, epochs) -> TrainConfig:
    """The old run's command, as today's TrainConfig spells it."""
    adam = OptimizerConfig(2e-4, beta_1=0.5)
    return TrainConfig(
        run_dir=str(run_dir), model=ModelConfig("tiny", noise_dim=8),
        data=DataConfig(split="train[:128]", global_batch_size=32),
        generator_optimizer=adam, discriminator_optimizer=adam,
        penalties=PenaltyConfig(r1_weight=0.1, every=2), ema_decay=0.9,
        schedule=ScheduleConfig(decay_fraction=0.5, floor=0.1), epochs=epochs,
        steps_per_call=2, num_fixed_samples=4, dtype_policy="float32", deterministic=True,
        checkpoint_every_steps=4, max_checkpoints=3)


def _losses(rows) -> tuple[list, np.ndarray]:
    """(the (step, epoch) of each row, its other columns but the timings as floats)."""
    keys = [(row["step"], row["epoch"]) for row in rows]
    names = [name for name in rows[0] if name not in ("step", "epoch") + TIMING_COLUMNS]
    return keys, np.array([[float(row[name]) for name in names] for row in rows])


@pytest.mark.slow
def test_an_old_run_directory_resumes_where_it_stopped(tmp_path, tiny_architecture):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run_dir)
    result = training.train(_config(run_dir, epochs=2),
                            tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert result["step"] == 8
    resumed_keys, resumed = _losses(csv_rows(run_dir / "losses.csv"))
    expected_keys, expected = _losses(csv_rows(FIXTURE / "uninterrupted_losses.csv"))
    assert resumed_keys == expected_keys
    np.testing.assert_allclose(resumed, expected, rtol=1e-5, atol=1e-6)
    # What the old code had written is kept, and the rest of the run directory made.
    assert (run_dir / "samples" / "epoch_0002.png").exists()
    assert (run_dir / "generator.keras").exists()
