"""Fashion-MNIST as a `tf.data` pipeline of batches in a generator's pixel range, read
through TFDS from the files `dcgan.data.offline` prepared."""

import numpy as np
import tensorflow as tf

from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE, DataConfig
from dcgan.core.errors import ConfigError
from dcgan.data.offline import prepared_builder

__all__ = ["CLASS_NAMES", "class_index", "load_arrays", "load_split", "train_split"]

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def class_index(name: str) -> int:
    """The label of a class name, any case: "Sneaker" -> 7.

    Raises:
      ConfigError: no class has that name; the message lists the names.
    """
    lowered = [class_name.lower() for class_name in CLASS_NAMES]
    if name.lower() not in lowered:
        raise ConfigError(f"Unknown class name {name!r}; Fashion-MNIST's classes are "
                          f"{', '.join(CLASS_NAMES)}.")
    return lowered.index(name.lower())


def train_split(first_examples=None) -> str:
    """The TFDS split of the training images, or of its first `first_examples` only (the
    binaries' --train_examples, for quick runs)."""
    return "train" if first_examples is None else f"train[:{first_examples}]"


def load_split(config: DataConfig, pixel_range, *, with_labels: bool = False,
               shuffle_seed: int | None = None, epochs: int = 1,
               first_epoch: int = 0) -> tf.data.Dataset:
    """Batches of `epochs` passes over `config.split`, starting at epoch `first_epoch`.

    With a `shuffle_seed`, each epoch is shuffled with a seed derived from (shuffle_seed,
    epoch), so the order is a function of the epoch alone: a resumed run rebuilds the
    dataset from the epoch it stopped in and skips the batches it has already seen.
    Without one, the stored order. Batches never straddle two epochs.

    Args:
      config: which split, in which batches.
      pixel_range: TANH_RANGE or SIGMOID_RANGE, the (low, high) the pixels are scaled to
        (a training run passes its generator's, `TrainConfig.pixel_range`).
      with_labels: yield (images, labels) instead of images.
      shuffle_seed: seeds the shuffle; None keeps the stored order.

    Returns:
      A dataset of float32 images [global_batch_size, 28, 28, 1] in `pixel_range`, or of
      (images, int64 labels [global_batch_size]) when `with_labels`.

    Raises:
      ConfigError: `pixel_range` is neither range.
      DatasetUnavailableError: the dataset is not prepared in `config.data_dir`.
    """
    if tuple(pixel_range) not in (TANH_RANGE, SIGMOID_RANGE):
        raise ConfigError(f"pixel_range must be {TANH_RANGE} or {SIGMOID_RANGE}, got {pixel_range}")
    builder = prepared_builder(config.data_dir)
    examples = builder.as_dataset(split=config.split, as_supervised=True, shuffle_files=False)
    if config.cache:
        examples = examples.cache()
    def one_epoch(epoch):
        epoch_examples = examples
        if shuffle_seed is not None:
            # Distinct (seed, epoch) pairs give distinct shuffle seeds.
            epoch_examples = examples.shuffle(
                config.shuffle_buffer, seed=shuffle_seed * 1_000_003 + epoch,
                reshuffle_each_iteration=False)
        return epoch_examples.batch(
            config.global_batch_size, drop_remainder=config.drop_remainder)

    low, high = pixel_range

    def to_model_input(images, labels):
        images = tf.cast(images, tf.float32) * ((high - low) / 255.0) + low
        return (images, labels) if with_labels else images

    # Python epoch numbers, not a Dataset.range: a tensor seed breaks under a global seed.
    batches = one_epoch(first_epoch)
    for epoch in range(first_epoch + 1, first_epoch + epochs):
        batches = batches.concatenate(one_epoch(epoch))
    # No autotuning: deleting an iterator can wait for the autotuner's thread, which sleeps
    # on a timer that doubles up to a minute (54 s between the last epoch and the end of
    # a 3-epoch run, 1.3 s without). Untuned, the pipeline still reads over 20,000 images
    # a second, ~45x what the default step takes.
    options = tf.data.Options()
    options.autotune.enabled = False
    return (batches
            .map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options))


def load_arrays(config: DataConfig, pixel_range, with_labels: bool = False):
    """One pass of `load_split(config, pixel_range, with_labels=with_labels)`, in the stored
    order, as numpy arrays: float32 images [N, 28, 28, 1], or (images, int64 labels [N])
    when `with_labels`."""
    batches = list(load_split(config, pixel_range, with_labels=with_labels).as_numpy_iterator())
    if with_labels:
        images, labels = zip(*batches)
        return np.concatenate(images), np.concatenate(labels)
    return np.concatenate(batches)
