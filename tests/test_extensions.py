"""Issue 6 extensions on 2 logical CPU replicas: every loss, WGAN-GP with several critic
updates per step, the EMA generator, and a loss registered from outside the library."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    loss_rows,
    make_gan_step,
    random_batches,
    restored_run_state,
    run_steps,
)

from dcgan import models, training
from dcgan.core.config import ModelConfig, PenaltyConfig, ScheduleConfig
from dcgan.core.errors import ConfigError
from dcgan.gan import losses
from dcgan.gan.ema import ema_decay_after
from dcgan.recipes import overrides as flag_overrides
from dcgan.recipes.presets import PRESETS
from dcgan.recipes.validation import validate
from dcgan.rundir import checkpoints, records
from dcgan.rundir.layout import RunDirectory


def _gan_step(strategy, loss="non_saturating", architecture="tutorial",
              num_classes=0, conditioning="projection", **options):
    model = ModelConfig(architecture, num_classes=num_classes, conditioning=conditioning)
    return make_gan_step(strategy, model, loss, **options)


def _values(variables):
    return [v.numpy() for v in variables]


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_every_loss_trains_on_two_replicas(name, two_replicas):
    strategy = two_replicas
    gp_weight = 10.0 if name == "wasserstein" else 0.0  # The critic needs its penalty.
    gan_step = _gan_step(strategy, name, penalties=PenaltyConfig(gp_weight=gp_weight))
    # Kernels only: the hinge loss's gradient for D's output bias is 0 while every
    # example is inside the margin (-1 per real example, +1 per generated one).
    kernels = [w for w in gan_step.generator.trainable_weights
               + gan_step.discriminator.trainable_weights if w.name == "kernel"]
    before = _values(kernels)
    metrics = run_steps(gan_step, random_batches(strategy, 2), 2)
    assert all(values.shape == (2,) and np.all(np.isfinite(values))
               for values in metrics.values())
    assert len(kernels) == 7
    assert all(not np.array_equal(a, b) for a, b in zip(before, _values(kernels)))


def test_wgan_gp_reads_a_new_batch_for_each_critic_update(two_replicas):
    strategy = two_replicas
    gan_step = _gan_step(strategy, "wasserstein", architecture="tutorial_critic",
                         n_critic=3, penalties=PenaltyConfig(gp_weight=10.0))
    iterator = random_batches(strategy, 6)
    metrics = run_steps(gan_step, iterator, 2)
    assert gan_step.discriminator_optimizer.iterations.numpy() == 6
    assert gan_step.generator_optimizer.iterations.numpy() == 2
    assert np.all(np.isfinite(list(metrics.values())))
    assert np.all(metrics["d_penalty"] > 0)
    with pytest.raises(tf.errors.OutOfRangeError):  # 2 steps x 3 critic updates used all 6.
        run_steps(gan_step, iterator, 1)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_wgan_gp_trains_under_float16_loss_scaling(policy, two_replicas):
    """The penalty's second-order gradients through float16 layers overflow at the
    initial loss scale; the optimizer must skip those updates, lower the scale and go
    on, without NaN weights and without the scale collapsing to 1 (tensorflow#48662).
    The tutorial critic's do (fast_nf's did not overflow in 3 steps)."""
    strategy = two_replicas
    gan_step = _gan_step(strategy, "wasserstein", architecture="tutorial_critic",
                         policy_name=policy, n_critic=2,
                         penalties=PenaltyConfig(gp_weight=10.0))
    initial_scale = float(gan_step.discriminator_optimizer.dynamic_scale.numpy())
    assert gan_step.discriminator.get_layer(index=1).compute_dtype == "float16"
    metrics = run_steps(gan_step, random_batches(strategy, 6), 3)
    assert all(np.isfinite(values[-1]) for values in metrics.values())
    for model in (gan_step.generator, gan_step.discriminator):
        assert all(np.all(np.isfinite(w)) for w in _values(model.weights))
    assert 1 < float(gan_step.discriminator_optimizer.dynamic_scale.numpy()) < initial_scale


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_conditional_wgan_gp_with_r1_on_two_replicas(conditioning, two_replicas):
    """Labels through n_critic D updates, G's update and both penalties."""
    strategy = two_replicas
    gan_step = _gan_step(strategy, "wasserstein", architecture="tutorial_critic",
                         num_classes=10, conditioning=conditioning, n_critic=2,
                         penalties=PenaltyConfig(gp_weight=10.0, r1_weight=1.0))
    embeddings = [model.get_layer("class_embedding").kernel
                  for model in (gan_step.generator, gan_step.discriminator)]
    before = _values(embeddings)
    metrics = run_steps(gan_step, random_batches(strategy, 4, labelled=True), 2)
    assert np.all(np.isfinite(list(metrics.values()))) and np.all(metrics["d_penalty"] > 0)
    assert gan_step.discriminator_optimizer.iterations.numpy() == 4
    assert all(not np.array_equal(a, b) for a, b in zip(before, _values(embeddings)))


def test_penalties_apply_to_the_simultaneous_update_too(two_replicas):
    strategy = two_replicas
    gan_step = _gan_step(strategy, "hinge", update="simultaneous",
                         penalties=PenaltyConfig(gp_weight=1.0, r1_weight=1.0))
    metrics = run_steps(gan_step, random_batches(strategy, 2), 2)
    assert np.all(np.isfinite(list(metrics.values())))
    assert np.all(metrics["d_penalty"] > 0)


@pytest.mark.parametrize("num_updates, expected", [
    (0, 0.1), (1, 2 / 11), (8, 0.5), (90, 0.91), (10_000, 0.997), (10**9, 0.997)])
def test_ema_decay_ramps_up_to_its_setting(num_updates, expected):
    np.testing.assert_allclose(ema_decay_after(num_updates, 0.997), expected,
                               rtol=1e-6)


@pytest.mark.parametrize("decay, steps_before", [(0.9, 1), (0.5, 20)], ids=["ramp", "ramped"])
def test_ema_follows_its_update_formula_on_every_replica(decay, steps_before, two_replicas):
    strategy = two_replicas
    gan_step = _gan_step(strategy, ema_decay=decay)
    iterator = random_batches(strategy, steps_before + 1)
    run_steps(gan_step, iterator, steps_before)
    average_before = _values(gan_step.ema_generator.weights)
    run_steps(gan_step, iterator, 1)
    weights_after = _values(gan_step.generator.weights)
    # Every weight, the batch-norm moving statistics included.
    assert len(weights_after) > len(gan_step.generator.trainable_weights)
    # (1 + n) / (10 + n) after the n-th update: 3/12 is below 0.9, 22/31 above 0.5.
    applied = min(decay, (1 + steps_before + 1) / (10 + steps_before + 1))
    assert (applied < decay) == (steps_before == 1)
    for average, before, weight in zip(gan_step.ema_generator.weights, average_before,
                                       weights_after):
        expected = np.float32(applied) * before + np.float32(1 - applied) * weight
        first, second = strategy.experimental_local_results(average.value)
        np.testing.assert_allclose(first, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(first, second)
        assert not np.allclose(first, weight)


@pytest.mark.parametrize("overrides, message", [
    ({"n_critic": 0}, "n_critic must be positive, got 0"),
    ({"n_critic": 2, "update": "simultaneous"}, "needs the alternating update"),
    ({"gp_weight": -1.0}, "gp_weight must be non-negative"),
    ({"r1_weight": float("nan")}, "r1_weight must be non-negative"),
    ({"gp_weight": 0.0}, "loss 'wasserstein' needs a penalty"),
    ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
])
def test_invalid_extension_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(flag_overrides.apply(PRESETS["wgan_gp"], overrides))




@pytest.fixture
def offset_loss():
    """A loss registered from outside the library, unregistered afterwards."""

    @losses.register_loss("test_offset_non_saturating")
    def offset_non_saturating(real_logits, fake_logits):
        d_loss, g_loss = losses.non_saturating(real_logits, fake_logits)
        return d_loss + 100.0, g_loss  # The offset shows in losses.csv; gradients do not.

    yield "test_offset_non_saturating"
    del losses.LOSSES["test_offset_non_saturating"]


def test_a_loss_registered_from_test_code_trains(tmp_path, offset_loss, float32_policy_after,
                                                two_replicas, short_run):
    run_dir = tmp_path / "run"
    config = short_run(run_dir, loss=offset_loss, max_steps=3)
    assert training.train(config, two_replicas)["step"] == 3
    d_losses = [float(row["d_loss"]) for row in loss_rows(run_dir)]
    assert len(d_losses) == 3 and all(100 < d < 110 for d in d_losses)


def _checkpointed_generator(run_dir, key):
    """The generator saved under `key` in the run's latest checkpoint."""
    generator = models.build_generator(records.model_config(RunDirectory(run_dir).read_record()))
    tf.train.Checkpoint(**{key: generator}).restore(
        checkpoints.list_checkpoints(run_dir)[-1]).expect_partial()
    return generator


@pytest.mark.slow
def test_a_wgan_gp_run_with_ema_and_a_cosine_schedule_resumes_exactly_and_samples_from_ema(
        tmp_path, short_run, resumes_exactly, two_replicas, float32_policy_after):
    """One exact resume of several options, each of whose effect has a test of its own
    above and in test_schedules and test_lazy_penalties: 2 critic updates (2 batches) a
    step, the preset's lazy penalty, the EMA generator, a cosine schedule with warm-up
    over the run's last half.
    resumes_exactly compares the losses, G, D and the average. The other presets' resumes:
    test_augment (fast: batch-norm D, EMA), test_trainer (conditional, spectral norm),
    test_lazy_penalties (R3GAN)."""
    # 256 images, 2 critic batches of 32 per step: 4 steps an epoch, 8 in all; calls of 2
    # steps, stopped after 3 calls (step 6, in epoch 2).
    config = short_run(tmp_path / "run", "wgan_gp", n_critic=2, ema_decay=0.9, epochs=2,
                       steps_per_call=2, schedule=ScheduleConfig(kind="cosine", warmup_steps=2,
                                                                 floor=0.05, decay_fraction=0.5))
    rows = resumes_exactly(config, two_replicas, calls=3)
    assert [(row["step"], row["epoch"]) for row in rows] == [
        (str(step), str(1 + (step - 1) // 4)) for step in range(1, 9)]
    # The penalty every 4th critic update, from the first: in odd steps' first update.
    assert [float(row["d_penalty"]) > 0 for row in rows] == [step % 2 == 1
                                                             for step in range(1, 9)]

    # The schedule: both optimizers at its floor after their 8 and 16 updates.
    state = restored_run_state(config, two_replicas)
    g_optimizer = state.gan_step.generator_optimizer
    d_optimizer = state.gan_step.discriminator_optimizer
    assert (int(g_optimizer.iterations.numpy()), int(d_optimizer.iterations.numpy())) == (8, 16)
    peak = config.generator_optimizer.learning_rate
    assert float(g_optimizer.learning_rate) == pytest.approx(0.05 * peak)
    assert float(d_optimizer.learning_rate) == pytest.approx(
        0.05 * config.discriminator_optimizer.learning_rate)
    g_rate = g_optimizer._learning_rate
    # 2 updates of warm-up, 3 at the peak, then a cosine over the last 3 (half of 6).
    assert [float(g_rate(n)) for n in (0, 1, 2, 4, 5, 6)] == pytest.approx(
        [0.0, peak / 2, peak, peak, peak, peak * (0.05 + 0.95 * 0.75)])

    # Samples come from the average, in the checkpoint and in the exported generator.
    run_dir = tmp_path / "run"
    restored = checkpoints.restore_generator(run_dir)
    average = _values(_checkpointed_generator(run_dir, "ema_generator").weights)
    raw = _values(_checkpointed_generator(run_dir, "generator").weights)
    for weight, average_weight, raw_weight in zip(_values(restored.weights), average, raw):
        np.testing.assert_array_equal(weight, average_weight)
        assert not np.allclose(average_weight, raw_weight)
    exported = keras.models.load_model(run_dir / "generator.keras")
    z = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    np.testing.assert_allclose(exported(z, training=False), restored(z, training=False),
                               atol=1e-6)
