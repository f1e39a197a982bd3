"""Batch normalisation for the builders: Keras' `BatchNormalization`, trained with
TensorFlow's fused kernel where it can be.

Keras 3's `BatchNormalization` computes the batch moments and then normalises in separate
element-wise ops, in float32 even under a bf16 policy (a cast in and a cast out), and as
many again in its gradient: on a 2-core CPU, 18% of the default step's op time in float32
(docs/log/01-training-speed.md). TensorFlow's `FusedBatchNormV3` does the forward pass in
one op and the backward in another, in the compute dtype with float32 statistics.
"""

import keras
import tensorflow as tf
from keras import layers

from dcgan.core.config import ModelConfig

__all__ = ["FusedBatchNormalization", "batch_normalization"]


@keras.saving.register_keras_serializable(package="dcgan")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' `BatchNormalization` whose training pass runs `tf.nn.fused_batch_norm`.

    The same weights (gamma, beta, moving mean and variance, in that order), the same
    outputs up to float rounding, and the same moving statistics: the fused kernel hands
    out the batch variance with Bessel's correction, n / (n - 1), which is undone here so
    that the moving variance follows the biased batch variance, as Keras' layer keeps it.
    Inference, masks, synchronised statistics and anything but the last axis take Keras'
    own path, so a trained layer's weights load into a plain `BatchNormalization`
    unchanged (what the exports do: `dcgan.training.artifacts`).

    Inputs of rank 2 [batch, channels] (after a Dense) are normalised as [batch, 1, 1,
    channels]; of rank 4 as they are (NHWC).
    """

    def _fused(self, inputs, training, mask) -> bool:
        return (bool(training) and self.trainable and mask is None and not self.synchronized
                and self.axis in (-1, len(inputs.shape) - 1) and len(inputs.shape) in (2, 4)
                and self.scale and self.center)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        images = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, channels])
        outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            images, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.size(images) // channels, tf.float32)
        variance = unbiased_variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        return tf.cast(tf.reshape(outputs, tf.shape(inputs)), self.compute_dtype)


def batch_normalization(config: ModelConfig) -> keras.layers.Layer:
    """The batch norm a builder places after a convolution or Dense: statistics over the
    global batch with `config.synchronized_batch_norm`, the fused training kernel with
    `config.fused_batch_norm` (the same maths; off, Keras' layer as it is)."""
    if config.fused_batch_norm and not config.synchronized_batch_norm:
        return FusedBatchNormalization()
    return layers.BatchNormalization(synchronized=config.synchronized_batch_norm)
