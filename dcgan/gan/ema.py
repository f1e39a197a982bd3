"""An exponential moving average of a generator's weights (Yazici et al. 2019,
https://arxiv.org/abs/1806.04498): samples of the average are often better than those of
the last weights. The step calls `update_ema` after every G update.
"""

import tensorflow as tf

__all__ = ["ema_decay_after", "update_ema"]


def update_ema(average_model, model, num_updates, decay):
    """average <- d * average + (1 - d) * w for every weight of `model`, trainable or not,
    with d = `ema_decay_after(num_updates, decay)`.

    Runs in cross-replica context, where reading a mirrored variable gives its first
    replica's value and assigning writes every replica's copy: the averages stay
    identical on all replicas. G's trainable weights are identical there too; its
    batch-norm moving statistics are per replica without synchronised batch norm, and
    the first replica's (the ones a checkpoint saves) are averaged. Averaging them
    rather than copying G's keeps them from the same window of training as the
    averaged weights they normalise.

    Args:
      average_model: a model built like `model`, holding the average.
      model: the model being trained (G).
      num_updates: int scalar, the model's updates so far (its optimizer's iterations).
      decay: the decay once ramped up, in (0, 1).
    """
    decay = ema_decay_after(num_updates, decay)
    for average, weight in zip(average_model.weights, model.weights):
        average.assign(decay * average + (1.0 - decay) * weight)


def ema_decay_after(num_updates, decay):
    """The EMA decay after `num_updates` updates: min(decay, (1 + n) / (10 + n)).

    The ramp-up of `tf.train.ExponentialMovingAverage(num_updates=...)`: the average's
    half-life is about 8% of the updates so far until it reaches `decay`'s, so the early
    average follows the fast-changing G instead of holding on to its random
    initialisation (StyleGAN2-ADA ramps its half-life the same way, at 5%).

    Args:
      num_updates: int scalar (tensor or Python), updates so far, this one included.
      decay: the decay the ramp-up ends at, in (0, 1).

    Returns:
      float32 scalar tensor in (0, decay].
    """
    num_updates = tf.cast(num_updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + num_updates) / (10.0 + num_updates))
