"""D's penalties: pure functions of the discriminator and images, per example.

Each takes a critic `(images, training) -> scores [batch, 1]` that treats examples
independently, and returns float32 [batch]; `weighted_penalty` sums them times their
weights, which the train step adds to D's per-example loss before averaging over the
global batch (as compare_gan's `d_loss += lambda * penalty`).
"""

import tensorflow as tf

__all__ = ["GRADIENT_NORM_EPSILON", "gradient_penalty", "r1_penalty", "r2_penalty",
           "weighted_penalty"]

# Added under the square root: the gradient of sqrt is infinite at 0, so a zero input
# gradient would otherwise give NaN weights (tf.norm adds no epsilon;
# keras-team/keras-io#910).
GRADIENT_NORM_EPSILON = 1e-10


def _input_gradient_squared_norms(discriminator, images):
    """||d D(x) / d x||^2 for each example: float32 [batch].

    The gradient is of D's unscaled float32 output at float32 images, whatever the
    dtype policy: a LossScaleOptimizer scales only the loss built from it. Summing the
    outputs before differentiating gives per-example gradients because D treats examples
    independently (a batch-normalised D would not).
    """
    images = tf.cast(images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total_score = tf.reduce_sum(tf.cast(discriminator(images, training=True), tf.float32))
    gradients = tf.cast(tape.gradient(total_score, images), tf.float32)
    return tf.reduce_sum(tf.square(tf.reshape(gradients, [tf.shape(gradients)[0], -1])), axis=1)


def gradient_penalty(discriminator, real_images, fake_images, alpha):
    """The WGAN-GP gradient penalty (Gulrajani et al. 2017, algorithm 1).

    penalty = (||grad D(x_hat)||_2 - 1)^2,  x_hat = alpha * x + (1 - alpha) * G(z),
    with the norm computed as sqrt(sum of squares + GRADIENT_NORM_EPSILON), in float32.

    Args:
      discriminator: callable `(images, training=True) -> scores [batch, 1]`, treating
        examples independently.
      real_images, fake_images: [batch, 28, 28, 1] (any image shape), any float dtype.
      alpha: float32 [batch, 1, 1, 1], drawn from U[0, 1] once per example.

    Returns:
      float32 [batch], each in [0, inf).
    """
    alpha = tf.cast(alpha, tf.float32)
    interpolates = (alpha * tf.cast(real_images, tf.float32)
                    + (1.0 - alpha) * tf.cast(fake_images, tf.float32))
    squared_norms = _input_gradient_squared_norms(discriminator, interpolates)
    return tf.square(tf.sqrt(squared_norms + GRADIENT_NORM_EPSILON) - 1.0)


def r1_penalty(discriminator, real_images):
    """The R1 penalty on real images (Mescheder et al. 2018).

    penalty = ||grad D(x)||_2^2 / 2, in float32, so that its weight is the paper's gamma.

    Args:
      discriminator: as in `gradient_penalty`.
      real_images: [batch, 28, 28, 1] (any image shape), any float dtype.

    Returns:
      float32 [batch], each in [0, inf).
    """
    return 0.5 * _input_gradient_squared_norms(discriminator, real_images)


def r2_penalty(discriminator, fake_images):
    """The R2 penalty on generated images (Mescheder et al. 2018; with R1 in R3GAN,
    Huang et al. 2025).

    penalty = ||grad D(G(z))||_2^2 / 2: `r1_penalty` (same arguments, dtypes and range)
    at `fake_images` instead of real ones. The gradient is with respect to the images
    only; the step passes them with G's gradient stopped.
    """
    return 0.5 * _input_gradient_squared_norms(discriminator, fake_images)


def weighted_penalty(critic, real_images, fake_images, alpha, gp_weight=0.0, r1_weight=0.0,
                     r2_weight=0.0):
    """gp_weight * `gradient_penalty` + r1_weight * `r1_penalty` + r2_weight * `r2_penalty`,
    computing only those of non-zero weight: float32 [batch] (zeros without any).

    Args:
      critic, real_images, fake_images, alpha: as for the penalties; `alpha` may be None
        when gp_weight is 0.
      gp_weight, r1_weight, r2_weight: the weights, >= 0.
    """
    penalty = tf.zeros([tf.shape(real_images)[0]])
    if gp_weight:
        penalty += gp_weight * gradient_penalty(critic, real_images, fake_images, alpha)
    if r1_weight:
        penalty += r1_weight * r1_penalty(critic, real_images)
    if r2_weight:
        penalty += r2_weight * r2_penalty(critic, fake_images)
    return penalty
