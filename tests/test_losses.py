import math

import numpy as np
import pytest
import tensorflow as tf

from dcgan import losses
from dcgan.config import ConfigError

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

