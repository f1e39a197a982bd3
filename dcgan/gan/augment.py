"""Differentiable augmentation of D's inputs (DiffAugment: Zhao et al. 2020, arXiv
2006.10738).

D sees every image, real or generated, through the same random transformations, in its
own update and in G's, where G's gradient flows back through them. D then cannot learn
the few training images by heart, while what it pushes G towards is still the
un-augmented data, as every transformation is applied to both sides alike.

Pure functions of images and explicit random parameters: `draw` takes the parameters
from a `tf.random.Generator` (the step draws them outside any XLA-compiled function,
whose random numbers differ from eager ones, and the generator is checkpointed, so a
resumed run draws the same ones), and `apply` transforms a batch with them. Every call
draws fresh parameters: real and generated batches get independent ones.

The policies (`dcgan.core.config.AUGMENTATIONS`), applied in the order given:
  color:       brightness and contrast (the paper's saturation does nothing to one
               channel); may leave the pixel range, as in the paper.
  translation: a shift by up to 1/8 of the image size each way, filled with background.
  cutout:      a square of half the image size set to background, anywhere in the image
               (partly outside it when near an edge).
"Background" is the low end of the pixel range: Fashion-MNIST's black. The paper pads
and cuts out with 0, the middle grey of its [-1, 1] images.
"""

import tensorflow as tf

from dcgan.core.config import AUGMENTATIONS

__all__ = ["apply", "brightness", "contrast", "cut_out", "draw", "translate"]

# The paper's strengths: brightness +-0.5 on [-1, 1] (a quarter of the range), contrast
# x [0.5, 1.5], shifts up to 1/8 of the size, cut-outs of half the size.
BRIGHTNESS = 0.25
CONTRAST = (0.5, 1.5)
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _max_shift(size):
    return int(size * TRANSLATION_RATIO + 0.5)


def _cutout_size(size):
    return int(size * CUTOUT_RATIO + 0.5)


def brightness(images, shift):
    """images + shift: images [batch, H, W, C] float32, shift [batch, 1, 1, 1]."""
    return images + shift


def contrast(images, factor):
    """Each image's deviations from its own mean times `factor` [batch, 1, 1, 1]."""
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return mean + factor * (images - mean)


def _shift_matrices(offsets, size):
    """[batch, size, size] float32 M with M[b, i, k] = 1 where k = i - offsets[b], a row
    of zeros where i - offsets[b] is outside [0, size): M @ x shifts x's rows by offsets."""
    sources = tf.range(size)[tf.newaxis, :] - offsets[:, tf.newaxis]
    return tf.one_hot(sources, size, dtype=tf.float32)


def translate(images, offsets, fill):
    """Each image moved by (rows, columns) = offsets[b], the uncovered pixels set to `fill`.

    out[b, i, j] = images[b, i - dy, j - dx] where that is inside the image, else fill.
    Written as products with one-hot shift matrices, so it is differentiable in `images`
    (each output pixel is one input pixel, or none) and exact in float32.

    Args:
      images: float32 [batch, H, W, C].
      offsets: int32 [batch, 2], (dy, dx), each in (-H, H) and (-W, W).
      fill: the value of uncovered pixels (a Python float).

    Returns:
      float32 [batch, H, W, C].
    """
    rows = _shift_matrices(offsets[:, 0], images.shape[1])
    columns = _shift_matrices(offsets[:, 1], images.shape[2])
    moved = tf.einsum("bik,bklc,bjl->bijc", rows, images, columns)
    covered = (tf.reduce_sum(rows, axis=2)[:, :, tf.newaxis, tf.newaxis]
               * tf.reduce_sum(columns, axis=2)[:, tf.newaxis, :, tf.newaxis])
    return moved + fill * (1.0 - covered)


def cut_out(images, corners, size, fill):
    """Each image with the `size` x `size` square from corners[b] = (top, left) set to
    `fill`; the square's part outside the image is ignored.

    Args:
      images: float32 [batch, H, W, C].
      corners: int32 [batch, 2], (top, left), may be negative.
      size: side of the square in pixels (a Python int).
      fill: the value of the cut-out pixels (a Python float).

    Returns:
      float32 [batch, H, W, C]; its gradient is 1 outside the square, 0 inside.
    """
    def inside(axis, length):
        start = corners[:, axis, tf.newaxis]
        index = tf.range(length)[tf.newaxis, :]
        return tf.cast((index >= start) & (index < start + size), tf.float32)

    square = (inside(0, images.shape[1])[:, :, tf.newaxis, tf.newaxis]
              * inside(1, images.shape[2])[:, tf.newaxis, :, tf.newaxis])
    return images * (1.0 - square) + fill * square


def draw(policy, rng, batch_size, image_size=28):
    """Random parameters of `policy` for one batch, from `rng`.

    Args:
      policy: a tuple of AUGMENTATIONS names.
      rng: a `tf.random.Generator`.
      batch_size: int or int32 scalar tensor, images in the batch.
      image_size: height and width of the images.

    Returns:
      {name: tensors} for `apply`: "color": (brightness [batch, 1, 1, 1] in
      [-BRIGHTNESS, BRIGHTNESS) of the range's width, contrast [batch, 1, 1, 1] in
      CONTRAST), "translation": int32 [batch, 2] in [-s, s] with s = 1/8 of the size,
      "cutout": int32 [batch, 2] top-left corners in [-size // 2, image_size - size // 2].
    """
    parameters = {}
    scalar_shape = tf.stack([batch_size, 1, 1, 1])
    pair_shape = tf.stack([batch_size, 2])
    for name in policy:
        if name == "color":
            parameters[name] = (rng.uniform(scalar_shape, -BRIGHTNESS, BRIGHTNESS),
                                rng.uniform(scalar_shape, *CONTRAST))
        elif name == "translation":
            shift = _max_shift(image_size)
            parameters[name] = rng.uniform(pair_shape, -shift, shift + 1, dtype=tf.int32)
        elif name == "cutout":
            # The paper's centres: anywhere in [0, image_size] (size even) or
            # [0, image_size) (odd), so a square can stick out of every edge alike.
            size = _cutout_size(image_size)
            centres = rng.uniform(pair_shape, 0, image_size + 1 - size % 2, dtype=tf.int32)
            parameters[name] = centres - size // 2
        else:
            raise ValueError(f"Unknown augmentation {name!r}; known: {AUGMENTATIONS}.")
    return parameters


def apply(images, policy, parameters, pixel_range):
    """`images` through the transformations of `policy`, in its order, with `parameters`
    from `draw`.

    Args:
      images: [batch, H, W, C] in `pixel_range`, any float dtype.
      policy: the tuple of AUGMENTATIONS names `parameters` were drawn for.
      parameters: `draw(policy, ...)` for this batch.
      pixel_range: (low, high) of the images; low is the background.

    Returns:
      float32 [batch, H, W, C]: within `pixel_range` unless the policy has "color".
    """
    low, high = pixel_range
    images = tf.cast(images, tf.float32)
    for name in policy:
        if name == "color":
            shift, factor = parameters[name]
            images = contrast(brightness(images, shift * (high - low)), factor)
        elif name == "translation":
            images = translate(images, parameters[name], low)
        else:
            images = cut_out(images, parameters[name], _cutout_size(images.shape[1]), low)
    return images
