"""Images from a generator: the one place noise is drawn and labels are chosen for
samples (eval.py's metrics, generate.py's files, a run's sample grids)."""

import numpy as np
import tensorflow as tf

from dcgan.models.registry import (
    generator_noise_dim,
    generator_num_classes,
    model_input,
)

__all__ = ["class_cycle", "class_rows", "seeded_samples"]


def class_cycle(num_images: int, num_classes: int) -> np.ndarray | None:
    """int32 labels [num_images], image i of class i mod num_classes; None for an
    unconditional generator (num_classes 0)."""
    return np.arange(num_images, dtype=np.int32) % num_classes if num_classes else None


def class_rows(noise, num_classes: int):
    """Noise [k, noise_dim] -> (z [num_classes * k, noise_dim], int32 labels
    [num_classes * k]): row c of a k-column grid is class c, column j noise vector j."""
    return (tf.tile(noise, [num_classes, 1]),
            tf.repeat(tf.range(num_classes), tf.shape(noise)[0]))


def seeded_samples(generator, num_images: int, seed: int, batch_size: int,
                   labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """`num_images` images of `generator` (in inference mode) from noise seeded by `seed`.

    The noise is drawn batch by batch from one `tf.random.Generator.from_seed(seed)`, so
    the same (seed, batch_size) gives the same images.

    Args:
      generator: a generator built by `dcgan.models`, loaded back or not.
      labels: int32 [num_images] classes for a conditional generator; None draws
        `class_cycle`'s. Ignored (and returned as None) for an unconditional one.

    Returns:
      (float32 [num_images, 28, 28, 1] in the generator's pixel range, int32 labels
      [num_images] or None).
    """
    num_classes = generator_num_classes(generator)
    if not num_classes:
        labels = None
    elif labels is None:
        labels = class_cycle(num_images, num_classes)
    noise = tf.random.Generator.from_seed(seed)
    batches = []
    for start in range(0, num_images, batch_size):
        count = min(batch_size, num_images - start)
        z = noise.normal([count, generator_noise_dim(generator)])
        batch_labels = None if labels is None else tf.constant(labels[start:start + count])
        batches.append(generator(model_input(z, batch_labels), training=False)
                       .numpy().astype(np.float32))
    return np.concatenate(batches), labels
