"""Learning-rate schedules that know the run's length ("Budgeted Training", Li et al. 2020).

A schedule is a function of an optimizer's own update count (`optimizer.iterations`),
which the checkpoint holds, so a resumed run continues it exactly. Its horizon is the
number of updates that optimizer makes in the whole run: the run's steps for G, and
n_critic times as many for D, which updates n_critic times per step. Under
mixed_float16 the LossScaleOptimizer skips updates whose gradients overflow, and a
skipped update does not advance the count: the schedule follows applied updates.
"""

import keras
import tensorflow as tf

from dcgan.core.config import TrainConfig
from dcgan.core.errors import ConfigError

__all__ = ["WarmUpHold", "learning_rate", "optimizer_learning_rates"]


class WarmUpHold(keras.optimizers.schedules.LearningRateSchedule):
    """peak * n / warmup_steps for update n < warmup_steps, peak for the hold_steps after
    it, then `after(n - warmup_steps - hold_steps)`.

    Args:
      peak: the learning rate the warm-up ends at and the hold keeps, > 0.
      warmup_steps: updates of the warm-up, >= 0.
      hold_steps: updates at `peak` between the warm-up and `after`, >= 0.
      after: the schedule that follows, a function of the updates since the hold (a
        Keras schedule), or a float for a constant rate.
    """

    def __init__(self, peak, warmup_steps, hold_steps, after):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.hold_steps = hold_steps
        self.after = after

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup_steps = tf.constant(self.warmup_steps, tf.float32)
        decay_start = tf.constant(self.warmup_steps + self.hold_steps, tf.float32)
        after = (self.after(tf.maximum(step - decay_start, 0.0)) if callable(self.after)
                 else tf.constant(self.after, tf.float32))
        warming = self.peak * step / tf.maximum(warmup_steps, 1.0)
        return tf.where(step < warmup_steps, warming,
                        tf.where(step < decay_start, tf.constant(self.peak, tf.float32),
                                 tf.cast(after, tf.float32)))


def learning_rate(peak, schedule, total_updates, warmup_updates=0, floor=0.0,
                  decay_fraction=1.0):
    """An optimizer's learning rate over `total_updates` updates.

    constant: peak.
    linear:   peak * (1 - (1 - floor) * n / N)                 (PolynomialDecay, power 1)
    cosine:   peak * (floor + (1 - floor) * (1 + cos(pi * n / N)) / 2)   (CosineDecay)
    for update n (0-based) of the decay's N = round(decay_fraction * (total_updates -
    warmup_updates)) updates, the run's last. Before them: a linear warm-up from 0, then
    peak (`WarmUpHold`); from update total_updates on the rate stays at peak * floor.
    A decay_fraction below 1 is warmup-stable-decay (Hu et al. 2024, "MiniCPM"; Hägele
    et al. 2024 find a cool-down over the last 20% matches a cosine over the whole run).

    Args:
      peak: the rate after warm-up, > 0.
      schedule: one of `dcgan.core.config.LR_SCHEDULES`.
      total_updates: the optimizer's updates in the whole run, warm-up included.
      warmup_updates: updates of linear warm-up (0: none).
      floor: the rate the decay ends at, as a fraction of `peak`, in [0, 1].
      decay_fraction: the share of the updates after warm-up that the decay spans, in
        (0, 1].

    Returns:
      `peak` itself (a float) for a constant rate without warm-up, else a Keras
      `LearningRateSchedule` of the update count, float32.

    Raises:
      ConfigError: the warm-up does not leave at least one update to decay over.
    """
    if schedule == "constant" and not warmup_updates:
        return peak
    after_warmup = total_updates - warmup_updates
    decay_updates = round(decay_fraction * after_warmup)
    if decay_updates < 1:
        raise ConfigError(f"The learning-rate warm-up of {warmup_updates} updates and the "
                          f"decay over {decay_fraction:g} of the rest leave none of the run's "
                          f"{total_updates} to decay over.")
    decay = {
        "constant": peak,
        "linear": keras.optimizers.schedules.PolynomialDecay(
            peak, decay_updates, end_learning_rate=peak * floor, power=1.0),
        "cosine": keras.optimizers.schedules.CosineDecay(peak, decay_updates, alpha=floor),
    }[schedule]
    hold_updates = after_warmup - decay_updates
    if not warmup_updates and not hold_updates:
        return decay
    return WarmUpHold(peak, warmup_updates, hold_updates, decay)


def optimizer_learning_rates(config: TrainConfig, total_steps: int):
    """(G's, D's) learning rates (see `learning_rate`) for a run of `total_steps` steps.

    The config's schedule, warm-up (in steps), floor and decay fraction apply to both
    optimizers; D's horizon and warm-up are in its own updates, n_critic per step.
    """
    return tuple(
        learning_rate(optimizer.learning_rate, config.schedule.kind, updates_per_step * total_steps,
                      updates_per_step * config.schedule.warmup_steps, config.schedule.floor,
                      config.schedule.decay_fraction)
        for optimizer, updates_per_step in ((config.generator_optimizer, 1),
                                            (config.discriminator_optimizer, config.n_critic)))
