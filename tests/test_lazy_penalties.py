"""R3GAN's pairing (Huang et al. 2025): the relativistic loss with R1 and R2 on a
normalisation-free D, its penalties lazy (every k D updates, weight times k). Their
exact resume on 2 logical CPU replicas is test_augment's augmented run."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan import models, training
from dcgan.core.config import ModelConfig, OptimizerConfig, PenaltyConfig
from dcgan.core.errors import ConfigError
from dcgan.gan.step import GanStep
from dcgan.recipes.presets import PRESETS

BATCH = 8
MODEL = ModelConfig("fast_nf")


def _gan_step(strategy, penalty_every=1, **options):
    """R3GAN's loss and penalties (every `penalty_every` D updates) on MODEL, Adam 1e-3,
    alternating unless `options` say."""
    config = dataclasses.replace(
        PRESETS["fast"], model=MODEL, data=dataclasses.replace(PRESETS["fast"].data,
                                                               global_batch_size=BATCH),
        generator_optimizer=OptimizerConfig(1e-3), discriminator_optimizer=OptimizerConfig(1e-3),
        loss="relativistic",
        penalties=PenaltyConfig(r1_weight=1.0, r2_weight=1.0, every=penalty_every), ema_decay=0.0,
        **{"update": "alternating", **options})
    keras.utils.set_random_seed(0)
    with strategy.scope():
        return GanStep.from_config(config, models.build_networks(MODEL, with_ema=False),
                                   tf.random.Generator.from_seed(0), "float32")


def _d_penalties(gan_step, strategy, num_steps):
    """d_penalty of `num_steps` steps on fixed random images."""
    images = np.random.default_rng(0).uniform(-1, 1, (40 * BATCH, 28, 28, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(BATCH)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    return gan_step.train(iterator, tf.constant(num_steps, tf.int32))["d_penalty"].numpy()


# One device: the penalties' double backpropagation under a tf.cond takes long to trace,
# and the 2-replica run is test_augment's resume test.
@pytest.mark.slow
@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_a_lazy_penalty_is_k_times_the_penalty_every_k_d_updates(update):
    strategy = tf.distribute.get_strategy()
    every_update = _d_penalties(_gan_step(strategy, update=update), strategy, 1)
    lazy = _d_penalties(_gan_step(strategy, update=update, penalty_every=2), strategy, 5)
    # The first update has the same weights, images and noise in both runs.
    assert every_update[0] > 0
    np.testing.assert_allclose(lazy[0], 2 * every_update[0], rtol=1e-6)
    assert [bool(p) for p in lazy] == [True, False, True, False, True]


@pytest.mark.slow
def test_lazy_penalties_count_d_updates_with_n_critic():
    # D updates 0-1, 2-3 and 4-5 in the 3 steps; penalised: 0 and 3.
    strategy = tf.distribute.get_strategy()
    lazy = _d_penalties(_gan_step(strategy, n_critic=2, penalty_every=3), strategy, 3)
    assert [bool(p) for p in lazy] == [True, True, False]


def test_penalty_settings_are_checked():
    with pytest.raises(ConfigError, match="penalty_every must be positive"):
        dataclasses.replace(PRESETS["fast"].penalties, every=0)
    with pytest.raises(ConfigError, match="r2_weight must be non-negative"):
        dataclasses.replace(PRESETS["fast"].penalties, r2_weight=-1.0)


def test_r2_on_a_batch_norm_discriminator_is_refused(tmp_path, short_run):
    with pytest.raises(ConfigError, match="has batch norm"):
        training.train(short_run(tmp_path / "run", "fast",
                                 penalties=PenaltyConfig(r2_weight=1.0)))
