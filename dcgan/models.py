"""Generator and discriminator builders (Keras Functional API), one pair per architecture.

Every generator maps noise z [batch, noise_dim] to images [batch, 28, 28, 1] in its
architecture's `output_range`; every discriminator maps such images to float32 logits
[batch, 1]. Under a mixed-precision policy the layers compute in bf16/fp16, but the
generator's output activation and the discriminator's logits layer stay float32.

A new architecture is one `@register_architecture` pair of builders.
"""

import dataclasses
from typing import Callable

import keras
from keras import layers

from dcgan.config import SIGMOID_RANGE, TANH_RANGE, ConfigError, ModelConfig

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "build_discriminator",
    "build_generator",
    "generator_output_range",
    "output_range",
    "register_architecture",
]

IMAGE_SHAPE = (28, 28, 1)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A generator/discriminator pair and the pixel range the generator emits."""

    build_generator: Callable[[ModelConfig], keras.Model]
    build_discriminator: Callable[[ModelConfig], keras.Model]
    output_range: tuple[float, float]


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name, build_generator, build_discriminator, output_range):
    if name in ARCHITECTURES:
        raise ValueError(f"Architecture {name!r} is already registered.")
    ARCHITECTURES[name] = Architecture(build_generator, build_discriminator, output_range)


def _architecture(name) -> Architecture:
    if name not in ARCHITECTURES:
        raise ConfigError(f"Unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def build_generator(config: ModelConfig) -> keras.Model:
    """Noise [batch, noise_dim] float32 -> images [batch, 28, 28, 1] float32."""
    return _architecture(config.architecture).build_generator(config)


def build_discriminator(config: ModelConfig) -> keras.Model:
    """Images [batch, 28, 28, 1] float32 -> logits [batch, 1] float32."""
    return _architecture(config.architecture).build_discriminator(config)


def output_range(architecture: str) -> tuple[float, float]:
    """(low, high) of the generator's pixels, which the real data must match."""
    return _architecture(architecture).output_range


def generator_output_range(generator: keras.Model) -> tuple[float, float]:
    """The pixel range of any generator built here, loaded back or not, from its last
    activation."""
    activation = generator.layers[-1].activation.__name__
    ranges = {"tanh": TANH_RANGE, "sigmoid": SIGMOID_RANGE}
    if activation not in ranges:
        raise ConfigError(f"Cannot tell the pixel range of a generator ending in {activation}.")
    return ranges[activation]


def _logits(features):
    """The discriminator head: float32 logits even under a mixed-precision policy."""
    return layers.Dense(1, dtype="float32", name="logits")(features)


# The TensorFlow DCGAN tutorial's networks (tensorflow.org/tutorials/generative/dcgan).
def tutorial_generator(config: ModelConfig) -> keras.Model:
    z = keras.Input(shape=(config.noise_dim,), name="z")
    x = layers.Dense(7 * 7 * 256, use_bias=False)(z)
    x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
    x = layers.LeakyReLU()(x)
    x = layers.Reshape((7, 7, 256))(x)
    for filters, strides in ((128, 1), (64, 2)):  # 7x7 -> 7x7 -> 14x14
        x = layers.Conv2DTranspose(filters, 5, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
        x = layers.LeakyReLU()(x)
    x = layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False)(x)  # 28x28
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(z, images, name="tutorial_generator")


def tutorial_discriminator(config: ModelConfig) -> keras.Model:
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = images
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        x = layers.LeakyReLU()(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    return keras.Model(images, _logits(x), name="tutorial_discriminator")


register_architecture("tutorial", tutorial_generator, tutorial_discriminator, TANH_RANGE)


def tutorial_critic(config: ModelConfig) -> keras.Model:
    """The tutorial discriminator as a WGAN-GP critic: layer normalisation instead of
    dropout. The gradient penalty is a per-example gradient, so the critic must not mix
    examples: no batch norm, layer norm instead (Gulrajani et al. 2017, section 4). The
    paper's critics have no dropout either, which would penalise the gradient of a
    randomly thinned critic rather than the critic's own."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = images
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        # One group: each example normalised over height, width and channels, with a
        # scale and offset per channel, the layer norm of the WGAN-GP code. It computes in
        # float32 under mixed precision.
        x = layers.GroupNormalization(groups=1)(x)
        x = layers.LeakyReLU()(x)
    x = layers.Flatten()(x)
    return keras.Model(images, _logits(x), name="tutorial_critic")


# The tutorial generator against a critic, for the Wasserstein loss with gradient penalty.
register_architecture("tutorial_critic", tutorial_generator, tutorial_critic, TANH_RANGE)


# The Fashion-MNIST GAN this project grew from: upsampling + convolutions, sigmoid output.
def fashion128_generator(config: ModelConfig) -> keras.Model:
    z = keras.Input(shape=(config.noise_dim,), name="z")
    x = layers.Dense(7 * 7 * 128)(z)
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
    return keras.Model(z, images, name="fashion128_generator")


def fashion128_discriminator(config: ModelConfig) -> keras.Model:
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = images
    for filters in (32, 64, 128, 256):  # 28 -> 24 -> 20 -> 16 -> 12 (valid 5x5 convs)
        x = layers.Conv2D(filters, 5, padding="valid")(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(0.4)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    return keras.Model(images, _logits(x), name="fashion128_discriminator")


register_architecture(
    "fashion128", fashion128_generator, fashion128_discriminator, SIGMOID_RANGE)


# The tutorial's layout made cheaper and cleaner: kernel 4 in the stride-2 transposed
# convolutions (divisible by the stride, so no checkerboard: Odena et al. 2016) and
# kernel 3 in the 7x7 layer, which holds most of the tutorial G's FLOPs with kernel 5.
def fast_generator(config: ModelConfig) -> keras.Model:
    z = keras.Input(shape=(config.noise_dim,), name="z")
    x = layers.Dense(7 * 7 * 256, use_bias=False)(z)
    x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((7, 7, 256))(x)
    for filters, kernel, strides in ((128, 3, 1), (64, 4, 2)):  # 7x7 -> 7x7 -> 14x14
        x = layers.Conv2DTranspose(filters, kernel, strides=strides, padding="same",
                                   use_bias=False)(x)
        x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2DTranspose(1, 4, strides=2, padding="same")(x)  # 28x28
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(z, images, name="fast_generator")


# Spectral normalisation (Miyato et al. 2018) bounds D's Lipschitz constant, in place of
# the tutorial's dropout; no batch norm, so D scores each image on its own.
def fast_discriminator(config: ModelConfig) -> keras.Model:
    del config  # One discriminator for every z size and batch-norm setting.
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = images
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.SpectralNormalization(layers.Conv2D(filters, 4, strides=2, padding="same"))(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Flatten()(x)
    logits = layers.SpectralNormalization(layers.Dense(1), dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name="fast_discriminator")


register_architecture("fast", fast_generator, fast_discriminator, TANH_RANGE)
