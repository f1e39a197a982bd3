"""Learning-rate schedules over the run's length: their values (with warm-up, floor and a
decay over the last part only), the rate each update applies (under loss scaling too)
and D's horizon with n_critic. A run on a cosine schedule with warm-up and a hold
resumes exactly in test_extensions' WGAN-GP run."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from dcgan.core.config import OptimizerConfig, ScheduleConfig
from dcgan.core.errors import ConfigError
from dcgan.gan import schedules
from dcgan.gan.optimizers import make_optimizer
from dcgan.recipes import overrides as flag_overrides
from dcgan.recipes.presets import PRESETS

PEAK = 2e-3


def _expected(schedule, n, total, warmup=0, floor=0.0, decay_fraction=1.0):
    """The formula of `schedules.learning_rate`, written out for update n."""
    if n < warmup:
        return PEAK * n / warmup
    decay_updates = round(decay_fraction * (total - warmup))
    decay_start = total - decay_updates
    progress = min(max(n - decay_start, 0), decay_updates) / decay_updates
    shape = {"constant": 1.0, "linear": 1.0 - progress,
             "cosine": (1.0 + math.cos(math.pi * progress)) / 2}[schedule]
    return PEAK * (1.0 if schedule == "constant" else floor + (1.0 - floor) * shape)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("warmup, floor, decay_fraction", [
    (0, 0.0, 1.0), (10, 0.0, 1.0), (0, 0.1, 1.0), (10, 0.1, 1.0), (0, 0.0, 0.4),
    (10, 0.1, 0.4)])
def test_schedule_values_at_start_middle_and_end(schedule, warmup, floor, decay_fraction):
    total = 110
    rate = schedules.learning_rate(PEAK, schedule, total, warmup, floor, decay_fraction)
    decay_start = total - round(decay_fraction * (total - warmup))
    middle = (decay_start + total) // 2
    for n in (0, warmup // 2, warmup, (warmup + decay_start) // 2, max(decay_start - 1, 0),
              decay_start, middle, total - 1, total, total + 50):
        np.testing.assert_allclose(
            float(rate(n)), _expected(schedule, n, total, warmup, floor, decay_fraction),
            rtol=1e-5, atol=PEAK * 1e-6, err_msg=f"update {n}")
    assert float(rate(warmup)) == pytest.approx(PEAK)
    assert float(rate(decay_start)) == pytest.approx(PEAK)  # The hold ends at the peak.
    assert float(rate(middle)) == pytest.approx(
        PEAK * (floor + (1 - floor) / 2), rel=1e-5)  # Both shapes are halfway at the middle.
    assert float(rate(total)) == pytest.approx(PEAK * floor, rel=1e-6, abs=1e-12)


def test_a_decay_over_the_last_fifth_holds_the_peak_until_it():
    rate = schedules.learning_rate(PEAK, "linear", 100, decay_fraction=0.2)
    assert [float(rate(n)) for n in (0, 79, 80, 90, 100)] == pytest.approx(
        [PEAK, PEAK, PEAK, PEAK / 2, 0.0])


def test_constant_without_warm_up_is_a_plain_float_and_with_it_a_schedule():
    assert schedules.learning_rate(PEAK, "constant", 100) == PEAK
    rate = schedules.learning_rate(PEAK, "constant", 100, warmup_updates=4)
    assert [float(rate(n)) for n in (0, 2, 4, 99, 500)] == pytest.approx(
        [0.0, PEAK / 2, PEAK, PEAK, PEAK])


def test_a_warm_up_as_long_as_the_run_is_refused():
    with pytest.raises(ConfigError, match="leave none"):
        schedules.learning_rate(PEAK, "cosine", 10, warmup_updates=10)


@pytest.mark.parametrize("overrides, message", [
    ({"lr_schedule": "step"}, "lr_schedule must be one of"),
    ({"lr_warmup_steps": -1}, "lr_warmup_steps must be non-negative"),
    ({"lr_floor": 1.5}, r"lr_floor must be in \[0, 1\]"),
    ({"lr_decay_fraction": 0.0}, r"lr_decay_fraction must be in \(0, 1\]"),
])
def test_invalid_schedule_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        flag_overrides.apply(PRESETS["fast"], overrides)


def test_d_schedule_spans_its_n_critic_updates_per_step():
    config = dataclasses.replace(PRESETS["wgan_gp"],
                                 schedule=ScheduleConfig(kind="linear", warmup_steps=2),
                                 n_critic=5)
    g_rate, d_rate = schedules.optimizer_learning_rates(config, total_steps=20)
    peak = config.discriminator_optimizer.learning_rate
    # G: 2 warm-up steps, then 18 of decay; D: 10 and 90 of its updates.
    assert float(g_rate(2)) == pytest.approx(config.generator_optimizer.learning_rate)
    assert float(g_rate(20)) == 0.0
    assert float(d_rate(5)) == pytest.approx(peak / 2)
    assert float(d_rate(10 + 45)) == pytest.approx(peak / 2)
    assert float(d_rate(99)) == pytest.approx(peak / 90, rel=1e-5) and float(d_rate(100)) == 0.0


@pytest.mark.parametrize("policy_name", ["float32", "mixed_float16"])
def test_each_update_applies_the_rate_of_its_update_count(policy_name):
    """With a constant gradient Adam's first moves are -rate * g / |g| (up to epsilon),
    so each weight change reads off the rate used. A loss-scaled update that overflows is
    skipped and does not advance the schedule."""
    total = 8
    optimizer = make_optimizer(OptimizerConfig(PEAK), policy_name,
                               schedules.learning_rate(PEAK, "linear", total))
    weight = tf.Variable([0.0])
    optimizer.build([weight])
    gradient = tf.constant([1.0])
    if policy_name == "mixed_float16":
        optimizer.apply([tf.constant([float("inf")])], [weight])
        assert weight.numpy() == 0.0 and int(optimizer.iterations.numpy()) == 0
        gradient *= optimizer.dynamic_scale  # What scale_loss would have made of it.
    moves = []
    for _ in range(total):
        before = weight.numpy()[0]
        optimizer.apply([gradient], [weight])
        moves.append(before - weight.numpy()[0])
    np.testing.assert_allclose(moves, [PEAK * (1 - n / total) for n in range(total)],
                               rtol=1e-4)
    assert int(optimizer.iterations.numpy()) == total
    assert float(optimizer.learning_rate) == 0.0
