import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import BATCH, make_gan_step, random_batches, run_steps

from dcgan import models
from dcgan.core.config import ModelConfig, OptimizerConfig, PenaltyConfig
from dcgan.gan import losses
from dcgan.gan.optimizers import FusedAdam, make_optimizer
from dcgan.gan.step import METRIC_NAMES, GanStep


def _concatenate(calls):
    """The metrics of several calls as those of one."""
    return {name: np.concatenate([call[name] for call in calls]) for name in METRIC_NAMES}


def _all_finite(metrics):
    return all(np.all(np.isfinite(values)) for values in metrics.values())


def _one_device():
    return tf.distribute.MirroredStrategy(["/cpu:0"])


UPDATES = pytest.mark.parametrize("update", ["alternating", "simultaneous"])


@UPDATES
def test_several_steps_per_call_equal_single_steps(update):
    strategy = _one_device()
    batched, single = (make_gan_step(strategy, update=update) for _ in range(2))
    batched_metrics = run_steps(batched, random_batches(strategy), 4)
    single_iterator = random_batches(strategy)
    single_metrics = _concatenate([run_steps(single, single_iterator, 1) for _ in range(4)])
    assert list(batched_metrics) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(batched_metrics[name], single_metrics[name])
    for a, b in zip(batched.generator.weights + batched.discriminator.weights,
                    single.generator.weights + single.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@UPDATES
def test_one_trace_for_any_step_count_and_iterator_on_two_replicas(update, two_replicas):
    strategy = two_replicas
    gan_step = make_gan_step(strategy, update=update)
    iterator = random_batches(strategy)
    before = [w.numpy() for w in gan_step.generator.trainable_weights]
    metrics = _concatenate([run_steps(gan_step, iterator, n) for n in (1, 3)]
                           + [run_steps(gan_step, random_batches(strategy), 2)])  # A new epoch's.
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
    gan_step = make_gan_step(strategy, update=update)
    gan_step.discriminator.layers[-1].set_weights(
        [np.zeros_like(w) for w in gan_step.discriminator.layers[-1].get_weights()])
    g_loss = run_steps(gan_step, random_batches(strategy), 1)["g_loss"][0]
    assert np.isclose(g_loss, np.log(2.0), rtol=1e-6) == g_loss_from_pre_update_d


def test_replicas_draw_different_noise(two_replicas):
    strategy = two_replicas
    with strategy.scope():
        noise = tf.random.Generator.from_seed(0)
    per_replica = strategy.run(lambda: noise.normal([4]))
    first, second = strategy.experimental_local_results(per_replica)
    assert not np.allclose(first, second)


@UPDATES
def test_losses_are_averaged_over_the_global_batch(update, two_replicas):
    """The reported d_loss is the mean per-example loss of the global batch, not the
    per-replica mean summed over replicas."""
    strategy = two_replicas
    gan_step = make_gan_step(strategy, update=update)
    gan_step.discriminator.layers[-1].set_weights(
        [np.zeros_like(w) for w in gan_step.discriminator.layers[-1].get_weights()])
    # D's loss is computed before its update: with zero logits every per-example BCE
    # d_loss is 2 log 2, and D(x) = D(G(z)) = 0.5.
    metrics = {name: values[0] for name, values in
               run_steps(gan_step, random_batches(strategy), 1).items()}
    np.testing.assert_allclose(metrics["d_loss"], 2 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose([metrics["d_real"], metrics["d_fake"]], 0.5, rtol=1e-6)
    assert metrics["d_penalty"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_mixed_float16_scales_the_loss(policy, two_replicas):
    strategy = two_replicas
    gan_step = make_gan_step(strategy, policy_name=policy)
    assert isinstance(gan_step.generator_optimizer, keras.optimizers.LossScaleOptimizer)
    metrics = run_steps(gan_step, random_batches(strategy), 3)
    assert _all_finite(metrics)
    scale = float(gan_step.discriminator_optimizer.dynamic_scale.numpy())
    assert scale > 1.0  # Still scaling: no step produced non-finite gradients.
    assert gan_step.generator.get_layer(index=1).compute_dtype == "float16"


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_an_overflow_on_the_second_replica_skips_the_update(policy, two_replicas):
    """The first half of the batch goes to the first replica: inf pixels in the second
    half overflow only the second replica's D gradients, and the loss-scale optimizer
    must skip D's update (and halve its scale) rather than sum inf into the weights."""
    strategy = two_replicas
    gan_step = make_gan_step(strategy, policy_name=policy)
    images = np.zeros((BATCH, 28, 28, 1), np.float32)
    images[BATCH // 2:] = np.inf
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(images)))
    before = [w.numpy() for w in gan_step.discriminator.weights]
    initial_scale = float(gan_step.discriminator_optimizer.dynamic_scale.numpy())
    run_steps(gan_step, iterator, 1)
    for weight, value in zip(gan_step.discriminator.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert float(gan_step.discriminator_optimizer.dynamic_scale.numpy()) == initial_scale / 2
    assert all(np.all(np.isfinite(w.numpy())) for w in gan_step.generator.weights)


@pytest.mark.slow
def test_jit_compile_computes_the_steps_of_the_graph_without_xla(two_replicas):
    """The same weights, batches and noise through two steps with and without XLA, with
    every augmentation on: XLA's random numbers differ from eager ones, so with the
    augmentation drawn inside the compiled gradients the jit step would see other squares,
    shifts and losses. The spectrally normalised D has no dropout, whose masks XLA draws
    with other random bits."""
    strategy = two_replicas
    compiled, plain = (make_gan_step(strategy, ModelConfig("fast_sn"), jit_compile=jit,
                                     augment=("color", "translation", "cutout"))
                       for jit in (True, False))
    compiled_metrics = run_steps(compiled, random_batches(strategy), 2)
    plain_metrics = run_steps(plain, random_batches(strategy), 2)
    # float32: XLA fuses and reorders sums, so step 1 agrees to ~1e-6 (relative), not to
    # the bit. Adam's first update, about lr * sign(gradient), turns that rounding in
    # near-zero gradients into weight differences of up to lr, so step 2, which runs on
    # the updated G and D, agrees to ~3e-5; the weights are not compared one by one.
    for name in METRIC_NAMES:
        np.testing.assert_allclose(compiled_metrics[name][0], plain_metrics[name][0],
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(compiled_metrics[name][1], plain_metrics[name][1],
                                   rtol=2e-4, atol=1e-7)


def test_fused_adam_updates_as_keras_adam():
    """Five updates of the same gradients through `FusedAdam` and Keras' Adam: the same
    weights and slots, to float32 rounding."""
    results = []
    for adam in (keras.optimizers.Adam, FusedAdam):
        layer = keras.layers.Dense(4, kernel_initializer="ones")
        layer.build((None, 3))
        optimizer = adam(learning_rate=1e-2, beta_1=0.5, beta_2=0.99)
        for step in range(1, 6):
            gradient = np.cos(np.arange(12) * step).reshape(3, 4).astype(np.float32)
            optimizer.apply_gradients([(gradient, layer.kernel), (gradient[0], layer.bias)])
        results.append([layer.kernel.numpy(), layer.bias.numpy()]
                       + [slot.numpy() for slot in optimizer.variables])
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


def test_a_fused_adam_step_on_two_replicas_equals_keras_adams(two_replicas):
    """One simultaneous step of the same networks and batch with each Adam: both take
    their gradients from the same forward pass, so the same gradients go in and the same
    weights come out. (With the alternating update, G's gradients pass through the
    updated D, whose rounding Adam's first update, about lr * sign(gradient), amplifies
    in near-zero gradients, as test_jit_compile_... explains.)"""
    steps = [make_gan_step(two_replicas, update="simultaneous", fused_adam=fused)
             for fused in (False, True)]
    for gan_step in steps:
        run_steps(gan_step, random_batches(two_replicas), 1)
    keras_step, fused_step = steps
    assert isinstance(fused_step.generator_optimizer, FusedAdam)
    assert type(keras_step.generator_optimizer) is keras.optimizers.Adam
    for expected, actual in zip(keras_step.generator.weights + keras_step.discriminator.weights,
                                fused_step.generator.weights + fused_step.discriminator.weights):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-8)


def test_from_config_builds_the_step_of_the_explicit_constructor():
    """One step of `from_config`'s GanStep equals one of the same step spelled out."""
    strategy = _one_device()
    model = ModelConfig("tutorial")
    built = make_gan_step(strategy, model, n_critic=2, penalties=PenaltyConfig(r1_weight=0.5))
    keras.utils.set_random_seed(0)  # As make_gan_step seeds its networks.
    with strategy.scope():
        networks = models.Networks(models.build_generator(model),
                                   models.build_discriminator(model), None)
        explicit = GanStep(networks,
                           make_optimizer(OptimizerConfig(1e-3), "float32"),
                           make_optimizer(OptimizerConfig(1e-3), "float32"),
                           losses.non_saturating, tf.random.Generator.from_seed(0), BATCH,
                           update="alternating", n_critic=2,
                           penalties=PenaltyConfig(r1_weight=0.5))
    built_metrics = run_steps(built, random_batches(strategy), 1)
    explicit_metrics = run_steps(explicit, random_batches(strategy), 1)
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(built_metrics[name], explicit_metrics[name])
    assert built_metrics["d_penalty"][0] > 0  # The R1 weight reached the step.
    assert built.discriminator_optimizer.iterations.numpy() == 2
    for a, b in zip(built.generator.weights + built.discriminator.weights,
                    explicit.generator.weights + explicit.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
