import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan.core.errors import ConfigError
from dcgan.gan import losses, penalties

REAL_LOGITS = np.array([[2.0], [-1.0], [0.0]], np.float32)
FAKE_LOGITS = np.array([[-3.0], [0.5], [0.0]], np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _expected_d_loss():
    return [-math.log(_sigmoid(r)) - math.log(1.0 - _sigmoid(f))
            for r, f in zip(REAL_LOGITS.ravel(), FAKE_LOGITS.ravel())]


def test_minimax_matches_hand_computed_values():
    d_loss, g_loss = losses.minimax(REAL_LOGITS, FAKE_LOGITS)
    np.testing.assert_allclose(d_loss, _expected_d_loss(), rtol=1e-6)
    np.testing.assert_allclose(g_loss, [math.log(1.0 - _sigmoid(f)) for f in FAKE_LOGITS.ravel()],
                               rtol=1e-6)
    assert d_loss.dtype == "float32" and d_loss.shape == (3,) and g_loss.shape == (3,)


def test_non_saturating_matches_hand_computed_values():
    d_loss, g_loss = losses.non_saturating(REAL_LOGITS, FAKE_LOGITS)
    np.testing.assert_allclose(d_loss, _expected_d_loss(), rtol=1e-6)
    np.testing.assert_allclose(g_loss, [-math.log(_sigmoid(f)) for f in FAKE_LOGITS.ravel()],
                               rtol=1e-6)


# Worked by hand from REAL_LOGITS = [2, -1, 0] and FAKE_LOGITS = [-3, 0.5, 0].
@pytest.mark.parametrize("loss_fn, expected_d_loss, expected_g_loss", [
    # (r - 1)^2 / 2 + f^2 / 2 and (f - 1)^2 / 2
    (losses.least_squares, [0.5 + 4.5, 2.0 + 0.125, 0.5 + 0.0], [8.0, 0.125, 0.5]),
    # max(0, 1 - r) + max(0, 1 + f) and -f
    (losses.hinge, [0.0 + 0.0, 2.0 + 1.5, 1.0 + 1.0], [3.0, -0.5, 0.0]),
    # f - r and -f
    (losses.wasserstein, [-5.0, 1.5, 0.0], [3.0, -0.5, 0.0]),
    # log(1 + e^(f - r)) and log(1 + e^(r - f)), pair by pair: f - r = [-5, 1.5, 0]
    (losses.relativistic, [math.log(1 + math.exp(-5)), math.log(1 + math.exp(1.5)),
                           math.log(2)],
     [math.log(1 + math.exp(5)), math.log(1 + math.exp(-1.5)), math.log(2)]),
])
def test_score_losses_match_hand_computed_values(loss_fn, expected_d_loss, expected_g_loss):
    d_loss, g_loss = loss_fn(REAL_LOGITS, FAKE_LOGITS)
    np.testing.assert_allclose(d_loss, expected_d_loss, rtol=1e-6)
    np.testing.assert_allclose(g_loss, expected_g_loss, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_every_loss_gives_float32_per_example_losses_for_bfloat16_logits(name):
    d_loss, g_loss = losses.get_loss(name)(tf.constant(REAL_LOGITS, tf.bfloat16),
                                           tf.constant(FAKE_LOGITS, tf.bfloat16))
    for loss in (d_loss, g_loss):
        assert loss.dtype == tf.float32 and loss.shape == (3,)


def test_extreme_logits_stay_finite():
    d_loss, g_loss = losses.minimax(np.array([-200.0, 200.0]), np.array([200.0, -200.0]))
    assert np.all(np.isfinite(d_loss)) and np.all(np.isfinite(g_loss))
    np.testing.assert_allclose(d_loss, [400.0, 0.0], atol=1e-4)


def test_registry_refuses_duplicates_and_names_known_losses():
    with pytest.raises(ValueError, match="already registered"):
        losses.register_loss("minimax")(losses.non_saturating)
    with pytest.raises(ConfigError, match="minimax.*non_saturating"):
        losses.get_loss("wasserstein-typo")


# Penalties. A linear critic D(x) = <w, x> + b has the input gradient w everywhere, and
# the quadratic critic D(x) = ||x||^2 / 2 has the input gradient x.
IMAGE_SIZE = 28 * 28


def _linear_critic(w, b=0.3):
    """D(x) = <w, x> + b as a Keras model, computing in the global policy's dtype."""
    images = keras.Input(shape=(28, 28, 1))
    scores = keras.layers.Dense(1)(keras.layers.Flatten()(images))
    critic = keras.Model(images, scores)
    critic.set_weights([np.reshape(w, (IMAGE_SIZE, 1)), np.array([b])])
    return critic


def _quadratic_critic(images, training):
    return 0.5 * tf.reduce_sum(tf.square(images), axis=[1, 2, 3])[:, None]


def _weight_of_norm(norm, seed=0):
    w = np.random.default_rng(seed).normal(size=IMAGE_SIZE)
    return (norm * w / np.linalg.norm(w)).astype(np.float32)


def _image_batch(count, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (count, 28, 28, 1)).astype(np.float32)


def _uniform_alpha(count, seed=2):
    return np.random.default_rng(seed).uniform(size=(count, 1, 1, 1)).astype(np.float32)


@pytest.mark.parametrize("policy, rtol", [
    ("float32", 1e-5),
    # The gradient is w rounded to the compute dtype (relative error 2^-11, 2^-8), which
    # moves (||w|| - 1)^2 at ||w|| = 2.5 by at most 2 * 2.5 / 1.5 times that.
    ("mixed_float16", 2e-3),
    ("mixed_bfloat16", 2e-2),
], indirect=["policy"])
def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm(policy, rtol):
    critic = _linear_critic(_weight_of_norm(2.5))
    assert critic.layers[-1].compute_dtype == keras.mixed_precision.global_policy().compute_dtype
    penalty = penalties.gradient_penalty(critic, _image_batch(4, 0), _image_batch(4, 1),
                                      _uniform_alpha(4))
    assert penalty.dtype == tf.float32 and penalty.shape == (4,)
    np.testing.assert_allclose(penalty, (2.5 - 1.0) ** 2, rtol=rtol)


def test_gradient_penalty_is_taken_at_the_interpolates():
    real, fake, alpha = _image_batch(3, 0), _image_batch(3, 1), _uniform_alpha(3)
    interpolates = alpha * real + (1 - alpha) * fake
    expected = (np.linalg.norm(interpolates.reshape(3, -1), axis=1) - 1.0) ** 2
    penalty = penalties.gradient_penalty(_quadratic_critic, real, fake, alpha)
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)


@pytest.mark.parametrize("penalty, seed", [(penalties.r1_penalty, 0), (penalties.r2_penalty, 1)],
                         ids=["r1_at_real", "r2_at_generated"])
def test_r1_and_r2_penalties_are_half_the_squared_gradient_norm(penalty, seed):
    images = _image_batch(3, seed)
    np.testing.assert_allclose(penalty(_quadratic_critic, images),
                               0.5 * np.sum(images.reshape(3, -1) ** 2, axis=1), rtol=1e-5)
    np.testing.assert_allclose(penalty(_linear_critic(_weight_of_norm(3.0)), images),
                               0.5 * 3.0 ** 2, rtol=1e-5)


def test_gradient_penalty_has_finite_gradients_at_a_zero_input_gradient():
    critic = _linear_critic(np.zeros(IMAGE_SIZE, np.float32))
    with tf.GradientTape() as tape:
        penalty = penalties.gradient_penalty(critic, _image_batch(2, 0), _image_batch(2, 1),
                                          _uniform_alpha(2))
    kernel_gradient = tape.gradient(penalty, critic.trainable_variables[0])
    np.testing.assert_allclose(penalty, 1.0, atol=1e-4)
    assert np.all(np.isfinite(kernel_gradient))


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_gradient_penalty_survives_loss_scaling(policy):
    """D's update from the scaled penalty, as the train step makes it, equals plain SGD on
    the analytic gradient 2 (||w|| - 1) w / ||w||: the loss scale neither enters the
    penalty nor makes the optimizer skip the step."""
    w = _weight_of_norm(2.5)
    critic = _linear_critic(w)
    kernel = critic.trainable_variables[:1]  # The penalty does not depend on the bias.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(learning_rate=0.1))
    optimizer.build(kernel)
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(penalties.gradient_penalty(
            critic, _image_batch(4, 0), _image_batch(4, 1), _uniform_alpha(4)))
        scaled_penalty = optimizer.scale_loss(penalty)
    assert float(scaled_penalty) > 1000 * float(penalty)
    optimizer.apply_gradients(zip(tape.gradient(scaled_penalty, kernel), kernel))
    expected = w - 0.1 * 2 * (2.5 - 1.0) * w / 2.5
    np.testing.assert_allclose(kernel[0].numpy().ravel(), expected, rtol=2e-3, atol=1e-6)
