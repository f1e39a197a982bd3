"""Adam as the step uses it: built from an `OptimizerConfig`, applied by TensorFlow's
fused kernel, loss-scaled under mixed_float16, and applied so that an overflow on any
replica skips the update on all.
"""

import keras
import tensorflow as tf

__all__ = ["FusedAdam", "apply_gradients", "make_optimizer"]


@keras.saving.register_keras_serializable(package="dcgan")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam whose update of a variable is one op, TensorFlow's `ResourceApplyAdam`,
    instead of Keras' dozen (each a pass over the variable and its two slots: 13% of the
    default step's op time in bf16 on a 2-core CPU, docs/log/21-step-speed.md).

    The same slots, so checkpoints of either load into the other, and the same update:
    m += (g - m)(1 - beta_1), v += (g^2 - v)(1 - beta_2), and
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + epsilon), with t the
    update's 1-based count; only its rounding may differ. AMSGrad, sparse gradients and
    variables other than float32 take Keras' own update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if (self.amsgrad or isinstance(gradient, tf.IndexedSlices)
                or variable.dtype != tf.float32):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, tf.float32)
        # Inside the strategy's update of `variable` the slots' handles are this
        # device's copies.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.constant(self.beta_1, tf.float32), step),
            beta2_power=tf.pow(tf.constant(self.beta_2, tf.float32), step),
            lr=tf.cast(learning_rate, tf.float32), beta1=tf.constant(self.beta_1, tf.float32),
            beta2=tf.constant(self.beta_2, tf.float32),
            epsilon=tf.constant(self.epsilon, tf.float32), grad=tf.cast(gradient, tf.float32))


def make_optimizer(config, policy_name, learning_rate=None,
                   fused=True) -> keras.optimizers.Optimizer:
    """Adam from an `OptimizerConfig` (`FusedAdam` if `fused`, else Keras' own), wrapped
    for loss scaling under mixed_float16.

    `learning_rate`: None for `config.learning_rate`, or a float or a schedule of the
    update count in its place (see `dcgan.gan.schedules`); under loss scaling the inner
    optimizer's count, which skipped updates do not advance."""
    adam = FusedAdam if fused else keras.optimizers.Adam
    optimizer = adam(
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
