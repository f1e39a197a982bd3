"""Generator and discriminator builders (Keras Functional API), one pair per architecture.

Every generator maps noise z [batch, noise_dim] to images [batch, 28, 28, 1] in its
architecture's `output_range`; every discriminator maps such images to float32 logits
[batch, 1]. Under a mixed-precision policy the layers compute in bf16/fp16, but the
generator's output activation and the discriminator's logits stay float32.

With `ModelConfig.num_classes` > 0 both networks also take int32 class labels [batch]
(`model_input` builds what they are called with): G concatenates z with the label's
learned embedding, and D sees the label as `ModelConfig.conditioning` says. Builders get
this for free by taking their inputs from `_generator_inputs` / `_discriminator_inputs`
and ending in `_discriminator`.

A new architecture is one `@register_architecture` pair of builders.
"""

import contextlib
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
    "discriminator_mixes_examples",
    "generator_noise_dim",
    "generator_num_classes",
    "generator_output_range",
    "global_policy",
    "model_input",
    "output_range",
    "register_architecture",
]

IMAGE_SHAPE = (28, 28, 1)
# Length of G's learned class embedding, concatenated to z: ample for telling 10 classes
# apart, and half of z's 100, so the noise still carries most of the input.
GENERATOR_CLASS_EMBEDDING_DIM = 50


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


@contextlib.contextmanager
def global_policy(name):
    """Keras's global dtype policy set to `name` (e.g. "float32") inside the block: the
    models built there compute in it. The previous policy is set back after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


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


def generator_noise_dim(generator: keras.Model) -> int:
    """The length of z for any generator built here, loaded back or not."""
    return generator.inputs[0].shape[-1]


def generator_num_classes(generator: keras.Model) -> int:
    """The classes any generator built here is conditioned on (0: unconditional), loaded
    back or not."""
    one_hots = [layer for layer in generator.layers
                if isinstance(layer, layers.CategoryEncoding)]
    return one_hots[0].num_tokens if one_hots else 0


def discriminator_mixes_examples(config: ModelConfig) -> bool:
    """Whether D's logit for an image depends on the other images of its batch (batch
    norm in training), which gradient penalties on per-example gradients rule out."""
    discriminator = build_discriminator(config)
    return any(isinstance(layer, layers.BatchNormalization) for layer in discriminator.layers)


def model_input(inputs, labels=None):
    """What a model built here is called with: `inputs` (z or images) alone when `labels`
    is None, else [inputs, labels] for a conditional model (labels: int [batch])."""
    return inputs if labels is None else [inputs, labels]


def _labels_input():
    return keras.Input(shape=(), dtype="int32", name="labels")


def _class_embedding(num_classes, labels, dim, spectral_norm=False):
    """A learned float vector [batch, dim] per int label [batch] in [0, num_classes).

    An embedding table written as a bias-free Dense layer on the one-hot label, so that
    SpectralNormalization, which needs a `kernel`, can wrap it.
    """
    one_hot = layers.CategoryEncoding(num_classes, output_mode="one_hot",
                                      name="class_one_hot")(labels)
    table = layers.Dense(dim, use_bias=False, name="class_embedding")
    if spectral_norm:
        table = layers.SpectralNormalization(table, name="class_embedding_sn")
    return table(one_hot)


def _generator_inputs(config: ModelConfig):
    """(the model's inputs, what the network maps to images [batch, latent_dim]): z, or
    [z, labels] and z concatenated with the label's embedding."""
    z = keras.Input(shape=(config.noise_dim,), name="z")
    if not config.num_classes:
        return z, z
    labels = _labels_input()
    embedded = _class_embedding(config.num_classes, labels, GENERATOR_CLASS_EMBEDDING_DIM)
    return [z, labels], layers.Concatenate(name="z_and_class")([z, embedded])


def _discriminator_inputs(config: ModelConfig):
    """(the model's inputs, what the convolutions see [batch, 28, 28, channels]): images,
    or [images, labels] and, with concat conditioning, the images with the label's
    learned 28x28 map as a second channel (Mirza & Osindero 2014's input concatenation
    for convolutions)."""
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    if not config.num_classes:
        return images, images
    labels = _labels_input()
    if config.conditioning == "projection":
        return [images, labels], images
    class_map = layers.Reshape(IMAGE_SHAPE)(
        _class_embedding(config.num_classes, labels, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]))
    return [images, labels], layers.Concatenate(name="images_and_class")([images, class_map])


def _discriminator(config: ModelConfig, inputs, features, name, spectral_norm=False):
    """D from its `inputs` (see `_discriminator_inputs`) and its features phi(x)
    [batch, F]: float32 logits [batch, 1] even under a mixed-precision policy.

    logit = psi(phi(x)), psi linear; with projection conditioning
    logit = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3), where the
    embedding of y is [batch, F]. `spectral_norm` normalises psi and the embedding.
    """
    if spectral_norm:
        logits = layers.SpectralNormalization(layers.Dense(1), dtype="float32",
                                              name="logits")(features)
    else:
        logits = layers.Dense(1, dtype="float32", name="logits")(features)
    if config.num_classes and config.conditioning == "projection":
        embedded = _class_embedding(config.num_classes, inputs[1], features.shape[-1],
                                    spectral_norm)
        projection = layers.Dot(axes=1, dtype="float32", name="class_projection")(
            [embedded, features])
        logits = layers.Add(dtype="float32", name="conditional_logits")([logits, projection])
    return keras.Model(inputs, logits, name=name)


# The TensorFlow DCGAN tutorial's networks (tensorflow.org/tutorials/generative/dcgan).
def tutorial_generator(config: ModelConfig) -> keras.Model:
    inputs, latent = _generator_inputs(config)
    x = layers.Dense(7 * 7 * 256, use_bias=False)(latent)
    x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
    x = layers.LeakyReLU()(x)
    x = layers.Reshape((7, 7, 256))(x)
    for filters, strides in ((128, 1), (64, 2)):  # 7x7 -> 7x7 -> 14x14
        x = layers.Conv2DTranspose(filters, 5, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
        x = layers.LeakyReLU()(x)
    x = layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False)(x)  # 28x28
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs, images, name="tutorial_generator")


def tutorial_discriminator(config: ModelConfig) -> keras.Model:
    inputs, x = _discriminator_inputs(config)
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        x = layers.LeakyReLU()(x)
        x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    return _discriminator(config, inputs, x, "tutorial_discriminator")


register_architecture("tutorial", tutorial_generator, tutorial_discriminator, TANH_RANGE)


def tutorial_critic(config: ModelConfig) -> keras.Model:
    """The tutorial discriminator as a WGAN-GP critic: layer normalisation instead of
    dropout. The gradient penalty is a per-example gradient, so the critic must not mix
    examples: no batch norm, layer norm instead (Gulrajani et al. 2017, section 4). The
    paper's critics have no dropout either, which would penalise the gradient of a
    randomly thinned critic rather than the critic's own."""
    inputs, x = _discriminator_inputs(config)
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        # One group: each example normalised over height, width and channels, with a
        # scale and offset per channel, the layer norm of the WGAN-GP code. It computes in
        # float32 under mixed precision.
        x = layers.GroupNormalization(groups=1)(x)
        x = layers.LeakyReLU()(x)
    x = layers.Flatten()(x)
    return _discriminator(config, inputs, x, "tutorial_critic")


# The tutorial generator against a critic, for the Wasserstein loss with gradient penalty.
register_architecture("tutorial_critic", tutorial_generator, tutorial_critic, TANH_RANGE)


# The Fashion-MNIST GAN this project grew from: upsampling + convolutions, sigmoid output.
def fashion128_generator(config: ModelConfig) -> keras.Model:
    inputs, latent = _generator_inputs(config)
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
    inputs, x = _discriminator_inputs(config)
    for filters in (32, 64, 128, 256):  # 28 -> 24 -> 20 -> 16 -> 12 (valid 5x5 convs)
        x = layers.Conv2D(filters, 5, padding="valid")(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.Dropout(0.4)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    return _discriminator(config, inputs, x, "fashion128_discriminator")


register_architecture(
    "fashion128", fashion128_generator, fashion128_discriminator, SIGMOID_RANGE)


# The tutorial's layout made cheaper and cleaner: kernel 4 in the stride-2 transposed
# convolutions (divisible by the stride, so no checkerboard: Odena et al. 2016) and
# kernel 3 in the 7x7 layer, which holds most of the tutorial G's FLOPs with kernel 5.
def _batch_norm_generator(config: ModelConfig, name, convs_at_14x14=0):
    """fast's G, with `convs_at_14x14` more 3x3 convolutions of 64 filters at 14x14."""
    inputs, latent = _generator_inputs(config)
    x = layers.Dense(7 * 7 * 256, use_bias=False)(latent)
    x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
    x = layers.LeakyReLU(0.2)(x)
    x = layers.Reshape((7, 7, 256))(x)
    # 7x7 -> 7x7 -> 14x14 [-> 14x14 ...]
    for filters, kernel, strides in [(128, 3, 1), (64, 4, 2)] + [(64, 3, 1)] * convs_at_14x14:
        x = layers.Conv2DTranspose(filters, kernel, strides=strides, padding="same",
                                   use_bias=False)(x)
        x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2DTranspose(1, 4, strides=2, padding="same")(x)  # 28x28
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs, images, name=name)


def fast_generator(config: ModelConfig) -> keras.Model:
    return _batch_norm_generator(config, "fast_generator")


def fast_deep_g_generator(config: ModelConfig) -> keras.Model:
    return _batch_norm_generator(config, "fast_deep_g_generator", convs_at_14x14=1)


def _batch_norm_discriminator(config: ModelConfig, name, width, convs_at_7x7=0):
    """The DCGAN paper's discriminator (Radford et al. 2016) in the tutorial's layout:
    `width` and 2 * `width` filters in two stride-2 convolutions (28x28 -> 14x14 -> 7x7),
    then `convs_at_7x7` 3x3 ones of 2 * `width`; batch norm after every convolution but
    the first, no dropout."""
    inputs, x = _discriminator_inputs(config)
    x = layers.Conv2D(width, 4, strides=2, padding="same")(x)
    x = layers.LeakyReLU(0.2)(x)
    for kernel, strides in [(4, 2)] + [(3, 1)] * convs_at_7x7:
        x = layers.Conv2D(2 * width, kernel, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(synchronized=config.synchronized_batch_norm)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Flatten()(x)
    return _discriminator(config, inputs, x, name)


# It beat spectral normalisation in its place ("fast_sn") by far at equal minutes
# (BUILD_NOTES.md, "Quality per minute").
def fast_discriminator(config: ModelConfig) -> keras.Model:
    return _batch_norm_discriminator(config, "fast_discriminator", width=64)


register_architecture("fast", fast_generator, fast_discriminator, TANH_RANGE)


# Capacity for D (issue 22), whose 139 k parameters face G's 1.7 M: twice fast's filters
# (4x its parameters and FLOPs), or one more 3x3 convolution at 7x7. At equal minutes the
# deeper D cut FID by 42% and the wider one raised it (BUILD_NOTES.md, "A deeper D").
# Then G one layer deeper too, at 14x14, against the deeper D: fast_deep_gd, the
# default's networks (BUILD_NOTES.md, "A deeper G").
def fast_wide_d_discriminator(config: ModelConfig) -> keras.Model:
    return _batch_norm_discriminator(config, "fast_wide_d_discriminator", width=128)


def fast_deep_d_discriminator(config: ModelConfig) -> keras.Model:
    return _batch_norm_discriminator(config, "fast_deep_d_discriminator", width=64,
                                     convs_at_7x7=1)


register_architecture("fast_wide_d", fast_generator, fast_wide_d_discriminator, TANH_RANGE)
register_architecture("fast_deep_d", fast_generator, fast_deep_d_discriminator, TANH_RANGE)
register_architecture("fast_deep_gd", fast_deep_g_generator, fast_deep_d_discriminator,
                      TANH_RANGE)


def _fast_per_example_discriminator(config: ModelConfig, name, spectral_norm):
    """The "fast" discriminator without batch norm: each image scored on its own, so it
    suits penalties on per-example gradients (R1, R2, WGAN-GP)."""
    inputs, x = _discriminator_inputs(config)
    for filters in (64, 128):  # 28x28 -> 14x14 -> 7x7
        convolution = layers.Conv2D(filters, 4, strides=2, padding="same")
        if spectral_norm:
            convolution = layers.SpectralNormalization(convolution)
        x = convolution(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Flatten()(x)
    return _discriminator(config, inputs, x, name, spectral_norm=spectral_norm)


# The "fast" generator against a discriminator with spectral normalisation (Miyato et al.
# 2018) in place of batch norm.
def fast_sn_discriminator(config: ModelConfig) -> keras.Model:
    return _fast_per_example_discriminator(config, "fast_sn_discriminator", spectral_norm=True)


register_architecture("fast_sn", fast_generator, fast_sn_discriminator, TANH_RANGE)


# The "fast" generator against a discriminator without any normalisation, as R3GAN's
# (Huang et al. 2025), whose R1 and R2 penalties take the place of batch norm's and
# spectral norm's stabilisation; fast_sn's cost without the power iterations.
def fast_nf_discriminator(config: ModelConfig) -> keras.Model:
    return _fast_per_example_discriminator(config, "fast_nf_discriminator", spectral_norm=False)


register_architecture("fast_nf", fast_generator, fast_nf_discriminator, TANH_RANGE)

