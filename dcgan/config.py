"""Frozen configuration dataclasses: the one place where defaults live.

Binaries turn flags into these once; library code receives them and never reads flags.
"""

import dataclasses
import os

__all__ = ["DEFAULT_DATA_DIR", "DataConfig", "ModelConfig", "SIGMOID_RANGE", "TANH_RANGE"]

DEFAULT_DATA_DIR = os.environ.get("DCGAN_DATA_DIR", "~/tensorflow_datasets")
TANH_RANGE = (-1.0, 1.0)
SIGMOID_RANGE = (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How to read Fashion-MNIST.

    Attributes:
      data_dir: TFDS data directory that holds (or will hold) `fashion_mnist`.
      split: a TFDS split, slices included (e.g. "train", "test", "train[:512]").
      pixel_range: (low, high) of the returned images: TANH_RANGE for tanh generators,
        SIGMOID_RANGE for sigmoid ones.
      global_batch_size: images per batch across all replicas.
      shuffle_seed: seeds the shuffle; None keeps the stored order.
      shuffle_buffer: examples in the shuffle buffer. TFDS already stores the split in a
        shuffled order, and filling a 60,000-image buffer costs ~2.5 s of PNG decoding
        before the first batch, so the default is smaller.
      drop_remainder: drop the last partial batch (a multi-replica step needs full ones).
      cache: keep the decoded uint8 images in memory after the first pass.
      with_labels: yield (images, labels) instead of images.
    """

    data_dir: str = DEFAULT_DATA_DIR
    split: str = "train"
    pixel_range: tuple[float, float] = TANH_RANGE
    global_batch_size: int = 256
    shuffle_seed: int | None = 0
    shuffle_buffer: int = 10_000
    drop_remainder: bool = True
    cache: bool = True
    with_labels: bool = False

    def __post_init__(self):
        if tuple(self.pixel_range) not in (TANH_RANGE, SIGMOID_RANGE):
            raise ValueError(
                f"pixel_range must be {TANH_RANGE} or {SIGMOID_RANGE}, got {self.pixel_range}")
        if self.global_batch_size < 1:
            raise ValueError(f"global_batch_size must be positive, got {self.global_batch_size}")



@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which generator/discriminator pair to build.

    Attributes:
      architecture: a name registered in `dcgan.models.ARCHITECTURES`.
      noise_dim: length of the generator's input noise vector z.
      synchronized_batch_norm: batch-norm statistics over the global batch rather than
        each replica's share (only matters with more than one replica).
    """

    architecture: str = "tutorial"
    noise_dim: int = 100
    synchronized_batch_norm: bool = False

    def __post_init__(self):
        if self.noise_dim < 1:
            raise ValueError(f"noise_dim must be positive, got {self.noise_dim}")
