"""Adam as the step uses it: built from an `OptimizerConfig`, loss-scaled under
mixed_float16, and applied so that an overflow on any replica skips the update on all.
"""

import keras
import tensorflow as tf

__all__ = ["apply_gradients", "make_optimizer"]


def make_optimizer(config, policy_name, learning_rate=None) -> keras.optimizers.Optimizer:
    """Adam from an `OptimizerConfig`, wrapped for loss scaling under mixed_float16.

    `learning_rate`: None for `config.learning_rate`, or a float or a schedule of the
    update count in its place (see `dcgan.gan.schedules`); under loss scaling the inner
    optimizer's count, which skipped updates do not advance."""
    optimizer = keras.optimizers.Adam(
        learning_rate=config.learning_rate if learning_rate is None else learning_rate,
        beta_1=config.beta_1, beta_2=config.beta_2)
    if policy_name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def apply_gradients(optimizer, gradients, model):
    """Applies this replica's `gradients` of `model.trainable_variables` (in replica
    context); a `LossScaleOptimizer` skips the update on every replica if any replica's
    gradients are non-finite."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        gradients = _non_finite_if_any_replica_is(gradients)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))


def _non_finite_if_any_replica_is(gradients):
    """This replica's gradients, made non-finite if any replica's are.

    Keras 3's LossScaleOptimizer under a MirroredStrategy decides whether to skip a step
    from the first replica's own gradients before they are summed over replicas
    (keras-team/keras#18691): an overflow on another replica goes into the weights as inf
    or NaN and the loss scale is not lowered. The gradient penalty overflows float16 at
    the initial loss scale in the first steps. One scalar all-reduce makes every replica
    see the overflow; adding NaN to one gradient suffices, as the optimizer checks them all.
    """
    local_overflow = tf.logical_not(tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(gradient)) for gradient in gradients]))
    overflows = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(local_overflow, tf.float32))
    poison = tf.where(overflows > 0, tf.constant(float("nan"), gradients[0].dtype), 0.0)
    return [gradients[0] + poison, *gradients[1:]]
