"""The registered architectures, each a pair of Keras Functional-API builders.

A new architecture is two builders (taking their inputs from `conditioning` and ending
in `conditioning.discriminator_head`) and one `register_architecture` call.
"""

import keras
from keras import layers

from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE, ModelConfig
from dcgan.models.conditioning import (
    discriminator_head,
    discriminator_inputs,
    generator_inputs,
)
from dcgan.models.normalization import batch_normalization
from dcgan.models.registry import register_architecture


# The TensorFlow DCGAN tutorial's networks (tensorflow.org/tutorials/generative/dcgan).
def tutorial_generator(config: ModelConfig) -> keras.Model:
    inputs, latent = generator_inputs(config)
    x = layers.Dense(7 * 7 * 256, use_bias=False)(latent)
    x = batch_normalization(config)(x)
    x = layers.LeakyReLU()(x)
    x = layers.Reshape((7, 7, 256))(x)
    for filters, strides in ((128, 1), (64, 2)):  # 7x7 -> 7x7 -> 14x14
        x = layers.Conv2DTranspose(filters, 5, strides=strides, padding="same", use_bias=False)(x)
        x = batch_normalization(config)(x)
        x = layers.LeakyReLU()(x)
    x = layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False)(x)  # 28x28
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs, images, name="tutorial_generator")


def tutorial_discriminator(config: ModelConfig) -> keras.Model:
    inputs, x = discriminator_inputs(config)
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        x = layers.LeakyReLU()(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    return discriminator_head(config, inputs, x, "tutorial_discriminator")


register_architecture("tutorial", tutorial_generator, tutorial_discriminator, TANH_RANGE,
                      mixes_examples=False)


def tutorial_critic(config: ModelConfig) -> keras.Model:
    """The tutorial discriminator as a WGAN-GP critic: layer normalisation instead of
    dropout. The gradient penalty is a per-example gradient, so the critic must not mix
    examples: no batch norm, layer norm instead (Gulrajani et al. 2017, section 4). The
    paper's critics have no dropout either, which would penalise the gradient of a
    randomly thinned critic rather than the critic's own."""
    inputs, x = discriminator_inputs(config)
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        # One group: each example normalised over height, width and channels, with a
        # scale and offset per channel, the layer norm of the WGAN-GP code. It computes in
        # float32 under mixed precision.
        x = layers.GroupNormalization(groups=1)(x)
        x = layers.LeakyReLU()(x)
    x = layers.Flatten()(x)
    return discriminator_head(config, inputs, x, "tutorial_critic")


# The tutorial generator against a critic, for the Wasserstein loss with gradient penalty.
register_architecture("tutorial_critic", tutorial_generator, tutorial_critic, TANH_RANGE,
                      mixes_examples=False)


# The Fashion-MNIST GAN this project grew from: upsampling + convolutions, sigmoid output.
def fashion128_generator(config: ModelConfig) -> keras.Model:
    inputs, latent = generator_inputs(config)
    x = layers.Dense(7 * 7 * 128)(latent)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((7, 7, 128))(x)
    for _ in range(2):  # 7x7 -> 14x14 -> 28x28
        x = layers.UpSampling2D()(x)
        x = layers.Conv2D(128, 5, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
    for _ in range(2):
        x = layers.Conv2D(128, 4, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(1, 4, padding="same")(x)
    images = layers.Activation("sigmoid", dtype="float32", name="images")(x)
    return keras.Model(inputs, images, name="fashion128_generator")


def fashion128_discriminator(config: ModelConfig) -> keras.Model:
    inputs, x = discriminator_inputs(config)
    for filters in (32, 64, 128, 256):  # 28 -> 24 -> 20 -> 16 -> 12 (valid 5x5 convs)
        x = layers.Conv2D(filters, 5, padding="valid")(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(0.4)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    return discriminator_head(config, inputs, x, "fashion128_discriminator")


register_architecture("fashion128", fashion128_generator, fashion128_discriminator,
                      SIGMOID_RANGE, mixes_examples=False)


# The tutorial's layout made cheaper and cleaner: kernel 4 in the stride-2 transposed
# convolutions (divisible by the stride, so no checkerboard: Odena et al. 2016) and
# kernel 3 in the 7x7 layer, which holds most of the tutorial G's FLOPs with kernel 5.
def _batch_norm_generator(config: ModelConfig, name, convs_at_14x14=0):
    """fast's G, with `convs_at_14x14` more 3x3 convolutions of 64 filters at 14x14."""
    inputs, latent = generator_inputs(config)
    x = layers.Dense(7 * 7 * 256, use_bias=False)(latent)
    x = batch_normalization(config)(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((7, 7, 256))(x)
    # 7x7 -> 7x7 -> 14x14 [-> 14x14 ...]
    for filters, kernel, strides in [(128, 3, 1), (64, 4, 2)] + [(64, 3, 1)] * convs_at_14x14:
        x = layers.Conv2DTranspose(filters, kernel, strides=strides, padding="same",
                                   use_bias=False)(x)
        x = batch_normalization(config)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2DTranspose(1, 4, strides=2, padding="same")(x)  # 28x28
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs, images, name=name)


def fast_generator(config: ModelConfig) -> keras.Model:
    return _batch_norm_generator(config, "fast_generator")


def fast_deep_g_generator(config: ModelConfig) -> keras.Model:
    return _batch_norm_generator(config, "fast_deep_g_generator", convs_at_14x14=1)


def _dcgan_discriminator(config: ModelConfig, name, width=64, convs_at_7x7=0,
                         normalization="batch"):
    """The DCGAN paper's discriminator (Radford et al. 2016) in the tutorial's layout:
    `width` and 2 * `width` filters in two stride-2 convolutions (28x28 -> 14x14 -> 7x7),
    then `convs_at_7x7` 3x3 ones of 2 * `width`; no dropout.

    `normalization` after every convolution but the first: "batch" (the paper's), "layer"
    (one group of GroupNormalization: each image over height, width and channels, with a
    scale and offset per channel, as the WGAN-GP code's critic), "spectral" (Miyato et al.
    2018: on every convolution and the head, nothing between them) or "none". All but
    "batch" score each image on its own, as penalties on per-example gradients (R1, R2,
    WGAN-GP) need.
    """
    spectral = normalization == "spectral"

    def convolution(filters, kernel, strides, normalized):
        # No bias before a norm with its own offset.
        layer = layers.Conv2D(filters, kernel, strides=strides, padding="same",
                              use_bias=not normalized)
        return layers.SpectralNormalization(layer) if spectral else layer

    inputs, x = discriminator_inputs(config)
    x = convolution(width, 4, 2, normalized=False)(x)
    x = layers.LeakyReLU(0.2)(x)
    for kernel, strides in [(4, 2)] + [(3, 1)] * convs_at_7x7:
        x = convolution(2 * width, kernel, strides,
                        normalized=normalization in ("batch", "layer"))(x)
        if normalization == "batch":
            x = batch_normalization(config)(x)
        elif normalization == "layer":
            x = layers.GroupNormalization(groups=1)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Flatten()(x)
    return discriminator_head(config, inputs, x, name, spectral_norm=spectral)


# It beat spectral normalisation in its place ("fast_sn") by far at equal minutes
# (docs/log/05-quality-per-minute.md).
def fast_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_discriminator")


register_architecture("fast", fast_generator, fast_discriminator, TANH_RANGE,
                      mixes_examples=True)


# Capacity for D, whose 139 k parameters face G's 1.7 M: twice fast's filters
# (4x its parameters and FLOPs), or one more 3x3 convolution at 7x7. At equal minutes the
# deeper D cut FID by 42% and the wider one raised it (docs/log/18-deeper-d.md).
# Then G one layer deeper too, at 14x14, against the deeper D: fast_deep_gd, the
# default's networks (docs/log/19-deeper-g.md).
def fast_wide_d_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_wide_d_discriminator", width=128)


def fast_deep_d_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_deep_d_discriminator", convs_at_7x7=1)


register_architecture("fast_wide_d", fast_generator, fast_wide_d_discriminator, TANH_RANGE,
                      mixes_examples=True)
register_architecture("fast_deep_d", fast_generator, fast_deep_d_discriminator, TANH_RANGE,
                      mixes_examples=True)
register_architecture("fast_deep_gd", fast_deep_g_generator, fast_deep_d_discriminator,
                      TANH_RANGE, mixes_examples=True)


# The "fast" generator against a discriminator with spectral normalisation (Miyato et al.
# 2018) in place of batch norm.
def fast_sn_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_sn_discriminator", normalization="spectral")


register_architecture("fast_sn", fast_generator, fast_sn_discriminator, TANH_RANGE,
                      mixes_examples=False)


# The "fast" generator against a discriminator without any normalisation, as R3GAN's
# (Huang et al. 2025), whose R1 and R2 penalties take the place of batch norm's and
# spectral norm's stabilisation; fast_sn's cost without the power iterations.
def fast_nf_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_nf_discriminator", normalization="none")


register_architecture("fast_nf", fast_generator, fast_nf_discriminator, TANH_RANGE,
                      mixes_examples=False)


# The default's networks with D's batch norm replaced, for the losses whose penalties take
# each image's own gradient (WGAN-GP, R3GAN's R1 and R2): the default's depth, so that a
# comparison of losses is not one of networks. Which norm serves which loss:
# docs/log/22-losses-on-the-default.md.
def fast_deep_gd_nf_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_deep_gd_nf_discriminator", convs_at_7x7=1,
                                normalization="none")


def fast_deep_gd_ln_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_deep_gd_ln_discriminator", convs_at_7x7=1,
                                normalization="layer")


def fast_deep_gd_sn_discriminator(config: ModelConfig) -> keras.Model:
    return _dcgan_discriminator(config, "fast_deep_gd_sn_discriminator", convs_at_7x7=1,
                                normalization="spectral")


register_architecture("fast_deep_gd_nf", fast_deep_g_generator, fast_deep_gd_nf_discriminator,
                      TANH_RANGE, mixes_examples=False)
register_architecture("fast_deep_gd_ln", fast_deep_g_generator, fast_deep_gd_ln_discriminator,
                      TANH_RANGE, mixes_examples=False)
register_architecture("fast_deep_gd_sn", fast_deep_g_generator, fast_deep_gd_sn_discriminator,
                      TANH_RANGE, mixes_examples=False)
