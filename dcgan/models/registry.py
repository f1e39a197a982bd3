"""The architecture registry: a name -> a generator/discriminator pair and the facts that
follow from it without building a model (the pixel range G emits, whether D mixes the
examples of a batch), and what can be read off a built or loaded generator.

Every generator maps noise z [batch, noise_dim] to images [batch, 28, 28, 1] in its
architecture's `output_range`; every discriminator maps such images to float32 logits
[batch, 1]. Under a mixed-precision policy the layers compute in bf16/fp16, but the
generator's output activation and the discriminator's logits stay float32.
"""

import contextlib
import dataclasses
from typing import Callable, NamedTuple

import keras
from keras import layers

from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE, ModelConfig
from dcgan.core.errors import CheckpointError, ConfigError

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Networks",
    "build_discriminator",
    "build_generator",
    "build_networks",
    "generator_noise_dim",
    "generator_num_classes",
    "generator_output_range",
    "global_policy",
    "mixes_examples",
    "model_input",
    "output_range",
    "register_architecture",
]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A generator/discriminator pair and what is known of it without building it.

    Attributes:
      build_generator, build_discriminator: ModelConfig -> keras.Model.
      output_range: (low, high) of the generator's pixels, which the real data must match.
      mixes_examples: whether D's logit for an image depends on the other images of its
        batch (batch norm in training), which rules out penalties on per-example
        gradients (R1, R2, WGAN-GP).
    """

    build_generator: Callable[[ModelConfig], keras.Model]
    build_discriminator: Callable[[ModelConfig], keras.Model]
    output_range: tuple[float, float]
    mixes_examples: bool


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name, build_generator, build_discriminator, output_range,
                          mixes_examples):
    """Adds architecture `name` (see `Architecture` for the other arguments).

    Raises:
      ValueError: `name` is registered already.
    """
    if name in ARCHITECTURES:
        raise ValueError(f"Architecture {name!r} is already registered.")
    ARCHITECTURES[name] = Architecture(build_generator, build_discriminator, output_range,
                                       mixes_examples)


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


class Networks(NamedTuple):
    """The models of one run: G, D, and G's exponential moving average (or None)."""

    generator: keras.Model
    discriminator: keras.Model
    ema_generator: keras.Model | None


def build_networks(config: ModelConfig, with_ema: bool) -> Networks:
    """G, D and, `with_ema`, a second G that starts with G's weights: the one place the
    EMA copy is made. Call under a strategy's scope to place the variables."""
    generator = build_generator(config)
    ema_generator = None
    if with_ema:
        ema_generator = build_generator(config)
        ema_generator.set_weights(generator.get_weights())
    return Networks(generator, build_discriminator(config), ema_generator)


def output_range(architecture: str) -> tuple[float, float]:
    """(low, high) of the generator's pixels, which the real data must match."""
    return _architecture(architecture).output_range


def mixes_examples(architecture: str) -> bool:
    """Whether the discriminator of `architecture` mixes the examples of a batch (see
    `Architecture`)."""
    return _architecture(architecture).mixes_examples


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


def generator_output_range(generator: keras.Model) -> tuple[float, float]:
    """The pixel range of any generator built here, loaded back or not, from its last
    activation."""
    activation = generator.layers[-1].activation.__name__
    ranges = {"tanh": TANH_RANGE, "sigmoid": SIGMOID_RANGE}
    if activation not in ranges:
        raise CheckpointError(f"Cannot tell the pixel range of a generator ending in {activation}.")
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


def model_input(inputs, labels=None):
    """What a model built here is called with: `inputs` (z or images) alone when `labels`
    is None, else [inputs, labels] for a conditional model (labels: int [batch])."""
    return inputs if labels is None else [inputs, labels]
