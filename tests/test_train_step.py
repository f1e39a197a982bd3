import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan import losses, models
from dcgan.config import DataConfig, ModelConfig, OptimizerConfig, TrainConfig
from dcgan.train_step import METRIC_NAMES, GanStep, make_optimizer

MODEL = ModelConfig("tutorial", noise_dim=100)
BATCH = 8


def _images(count=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(count, 28, 28, 1)).astype(np.float32)


def _config(**overrides):
    return TrainConfig(model=MODEL, data=DataConfig(global_batch_size=BATCH),
                       generator_optimizer=OptimizerConfig(1e-3),
                       discriminator_optimizer=OptimizerConfig(1e-3), **overrides)


def _gan_step(strategy, policy_name="float32", jit_compile=False, seed=0, update="alternating"):
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        generator = models.build_generator(MODEL)
        discriminator = models.build_discriminator(MODEL)
        return GanStep.from_config(_config(update=update, jit_compile=jit_compile), generator,
                                   discriminator, tf.random.Generator.from_seed(seed),
                                   policy_name)


def _iterator(strategy):
    dataset = tf.data.Dataset.from_tensor_slices(_images()).batch(BATCH, drop_remainder=True)
    return iter(strategy.experimental_distribute_dataset(dataset))


def _run(gan_step, iterator, num_steps):
    """{name: numpy [num_steps]} of one call."""
    metrics = gan_step.train(iterator, tf.constant(num_steps, tf.int32))
    return {name: values.numpy() for name, values in metrics.items()}


def _concatenate(calls):
    """The metrics of several calls as those of one."""
    return {name: np.concatenate([call[name] for call in calls]) for name in METRIC_NAMES}


def _all_finite(metrics):
    return all(np.all(np.isfinite(values)) for values in metrics.values())


def _one_device():
    return tf.distribute.MirroredStrategy(["/cpu:0"])


def _two_devices():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    return strategy


UPDATES = pytest.mark.parametrize("update", ["alternating", "simultaneous"])


@UPDATES
def test_several_steps_per_call_equal_single_steps(update):
    strategy = _one_device()
    batched, single = _gan_step(strategy, update=update), _gan_step(strategy, update=update)
    batched_metrics = _run(batched, _iterator(strategy), 4)
    single_iterator = _iterator(strategy)
    single_metrics = _concatenate([_run(single, single_iterator, 1) for _ in range(4)])
    assert list(batched_metrics) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(batched_metrics[name], single_metrics[name])
    for a, b in zip(batched.generator.weights + batched.discriminator.weights,
                    single.generator.weights + single.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@UPDATES
def test_one_trace_for_any_step_count_and_iterator_on_two_replicas(update):
    strategy = _two_devices()
    gan_step = _gan_step(strategy, update=update)
    iterator = _iterator(strategy)
    before = [w.numpy() for w in gan_step.generator.trainable_weights]
    metrics = _concatenate([_run(gan_step, iterator, n) for n in (1, 3)]
                           + [_run(gan_step, _iterator(strategy), 2)])  # A new epoch's.
    assert gan_step.train.experimental_get_tracing_count() == 1
    assert all(values.shape == (6,) for values in metrics.values()) and _all_finite(metrics)
    d_real, d_fake = metrics["d_real"], metrics["d_fake"]
    assert np.all((0 < d_real) & (d_real < 1)) and np.all((0 < d_fake) & (d_fake < 1))
    after = [w.numpy() for w in gan_step.generator.trainable_weights]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("update, g_loss_from_pre_update_d", [("alternating", False),
                                                              ("simultaneous", True)])
def test_g_loss_comes_from_d_before_or_after_its_update(update, g_loss_from_pre_update_d):
    """With D's logits layer zeroed, the D of before the update says 0.5 to everything, so
    G's non-saturating loss is exactly log 2 if (and only if) it saw that D."""
    strategy = _one_device()
    gan_step = _gan_step(strategy, update=update)
    gan_step.discriminator.layers[-1].set_weights(
        [np.zeros_like(w) for w in gan_step.discriminator.layers[-1].get_weights()])
    g_loss = _run(gan_step, _iterator(strategy), 1)["g_loss"][0]
    assert np.isclose(g_loss, np.log(2.0), rtol=1e-6) == g_loss_from_pre_update_d


def test_replicas_draw_different_noise():
    strategy = _two_devices()
    with strategy.scope():
        noise = tf.random.Generator.from_seed(0)
    per_replica = strategy.run(lambda: noise.normal([4]))
    first, second = strategy.experimental_local_results(per_replica)
    assert not np.allclose(first, second)


@UPDATES
def test_losses_are_averaged_over_the_global_batch(update):
    """The reported d_loss is the mean per-example loss of the global batch, not the
    per-replica mean summed over replicas."""
    strategy = _two_devices()
    gan_step = _gan_step(strategy, update=update)
    gan_step.discriminator.layers[-1].set_weights(
        [np.zeros_like(w) for w in gan_step.discriminator.layers[-1].get_weights()])
    # D's loss is computed before its update: with zero logits every per-example BCE
    # d_loss is 2 log 2, and D(x) = D(G(z)) = 0.5.
    metrics = {name: values[0] for name, values in _run(gan_step, _iterator(strategy), 1).items()}
    np.testing.assert_allclose(metrics["d_loss"], 2 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose([metrics["d_real"], metrics["d_fake"]], 0.5, rtol=1e-6)
    assert metrics["d_penalty"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_mixed_float16_scales_the_loss(policy):
    strategy = _two_devices()
    gan_step = _gan_step(strategy, policy_name=policy)
    assert isinstance(gan_step.generator_optimizer, keras.optimizers.LossScaleOptimizer)
    metrics = _run(gan_step, _iterator(strategy), 3)
    assert _all_finite(metrics)
    scale = float(gan_step.discriminator_optimizer.dynamic_scale.numpy())
    assert scale > 1.0  # Still scaling: no step produced non-finite gradients.
    assert gan_step.generator.get_layer(index=1).compute_dtype == "float16"


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_an_overflow_on_the_second_replica_skips_the_update(policy):
    """The first half of the batch goes to the first replica: inf pixels in the second
    half overflow only the second replica's D gradients, and the loss-scale optimizer
    must skip D's update (and halve its scale) rather than sum inf into the weights."""
    strategy = _two_devices()
    gan_step = _gan_step(strategy, policy_name=policy)
    images = np.zeros((BATCH, 28, 28, 1), np.float32)
    images[BATCH // 2:] = np.inf
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(images)))
    before = [w.numpy() for w in gan_step.discriminator.weights]
    initial_scale = float(gan_step.discriminator_optimizer.dynamic_scale.numpy())
    _run(gan_step, iterator, 1)
    for weight, value in zip(gan_step.discriminator.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert float(gan_step.discriminator_optimizer.dynamic_scale.numpy()) == initial_scale / 2
    assert all(np.all(np.isfinite(w.numpy())) for w in gan_step.generator.weights)


@pytest.mark.slow
def test_jit_compile_runs_on_two_replicas():
    strategy = _two_devices()
    gan_step = _gan_step(strategy, jit_compile=True)
    metrics = _run(gan_step, _iterator(strategy), 2)
    assert _all_finite(metrics)


def test_from_config_builds_the_step_of_the_explicit_constructor():
    """One step of `from_config`'s GanStep equals one of the same step spelled out."""
    strategy = _one_device()
    config = _config(update="alternating", n_critic=2, r1_weight=0.5)
    steps = []
    for build in ("from_config", "explicit"):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            generator = models.build_generator(MODEL)
            discriminator = models.build_discriminator(MODEL)
            noise = tf.random.Generator.from_seed(0)
            if build == "from_config":
                step = GanStep.from_config(config, generator, discriminator, noise, "float32")
            else:
                step = GanStep(generator, discriminator,
                               make_optimizer(OptimizerConfig(1e-3), "float32"),
                               make_optimizer(OptimizerConfig(1e-3), "float32"),
                               losses.non_saturating, noise, BATCH, MODEL.noise_dim,
                               update="alternating", n_critic=2, r1_weight=0.5)
        steps.append((step, _run(step, _iterator(strategy), 1)))
    (built, built_metrics), (explicit, explicit_metrics) = steps
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(built_metrics[name], explicit_metrics[name])
    assert built_metrics["d_penalty"][0] > 0  # The R1 weight reached the step.
    assert built.discriminator_optimizer.iterations.numpy() == 2
    for a, b in zip(built.generator.weights + built.discriminator.weights,
                    explicit.generator.weights + explicit.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
