"""Pictures: sample grids, PNG and GIF files, and the loss-curve plot. All writes are atomic."""

import math

import matplotlib

matplotlib.use("Agg")  # Files only; never a window.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import PIL.ImageDraw  # noqa: E402
import PIL.ImageFont  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan.runtime.files import atomic_path  # noqa: E402

__all__ = ["grid", "labelled_grid", "magnify", "plot_columns", "to_uint8", "write_gif",
           "write_png"]


def to_uint8(images, pixel_range) -> np.ndarray:
    """Images [..., H, W, C] float in `pixel_range` -> uint8 in [0, 255] (clipped)."""
    low, high = pixel_range
    unit = (np.asarray(images, np.float32) - low) / (high - low)
    return np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)


def grid(images, pixel_range, columns=None, padding=2) -> np.ndarray:
    """Tiles images [N, H, W, C] into one uint8 image, `columns` wide (default: square).

    Returns:
      uint8 [rows * (H + padding) + padding, columns * (W + padding) + padding, C]
      on a white background.
    """
    images = to_uint8(images, pixel_range)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = np.full((rows * (height + padding) + padding,
                      columns * (width + padding) + padding, channels), 255, np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        canvas[top:top + height, left:left + width] = image
    return canvas


def magnify(image, scale) -> np.ndarray:
    """[H, W, C] -> [scale * H, scale * W, C], each pixel repeated `scale` times per axis."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def labelled_grid(images, pixel_range, row_labels, scale, padding=2) -> np.ndarray:
    """Tiles grayscale images [R * K, H, W, 1] into R rows of K, magnified `scale` times,
    with row r's `row_labels[r]` written to its left (at the magnified size, so the text
    stays sharp).

    Returns:
      uint8 [scale * (R * (H + padding) + padding), label width + scale * (K * (W +
      padding) + padding), 1] on a white background.
    """
    picture = magnify(grid(images, pixel_range, columns=len(images) // len(row_labels),
                           padding=padding), scale)
    height = images.shape[1]
    font = PIL.ImageFont.load_default(size=8 * scale)
    margin = 4 * scale
    label_width = 2 * margin + max(int(font.getlength(label)) for label in row_labels)
    canvas = PIL.Image.new("L", (label_width + picture.shape[1], picture.shape[0]), 255)
    canvas.paste(PIL.Image.fromarray(picture[..., 0]), (label_width, 0))
    draw = PIL.ImageDraw.Draw(canvas)
    for row, label in enumerate(row_labels):
        middle = scale * (padding + row * (height + padding) + height / 2)
        draw.text((margin, middle), label, fill=0, font=font, anchor="lm")
    return np.asarray(canvas)[..., None]


def write_png(path, image, scale=1) -> None:
    """Writes uint8 [H, W, C] as PNG, each pixel repeated `scale` times per axis."""
    image = magnify(image, scale)
    with atomic_path(path) as partial:
        tf.io.write_file(str(partial), tf.io.encode_png(image))


def write_gif(path, frames, seconds_per_frame=0.25) -> None:
    """Writes uint8 frames [H, W, 1] (or [H, W, 3]) as an animated, looping GIF."""
    pictures = [PIL.Image.fromarray(np.squeeze(frame, axis=-1) if frame.shape[-1] == 1
                                    else frame) for frame in frames]
    with atomic_path(path) as partial:
        pictures[0].save(partial, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=int(seconds_per_frame * 1000), loop=0)


def plot_columns(path, x, series: dict, xlabel, title) -> None:
    """Line plot of each `series[name]` against `x`, one panel per series."""
    figure, axes = plt.subplots(len(series), 1, figsize=(8, 2.2 * len(series)), sharex=True)
    for axis, (name, values) in zip(np.atleast_1d(axes), series.items()):
        axis.plot(x, values, linewidth=0.8)
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[-1].set_xlabel(xlabel)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=100)
    plt.close(figure)


def plot_bands(path, curves: dict, xlabel, ylabel, title) -> None:
    """One line per `curves[label] = (x, mean, low, high)`, with the low-high band shaded
    (e.g. the spread over seeds)."""
    figure, axis = plt.subplots(figsize=(12, 4.5))
    for label, (x, mean, low, high) in curves.items():
        line, = axis.plot(x, mean, marker="o", markersize=3, linewidth=1.2, label=label)
        axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_yscale("log")
    axis.grid(alpha=0.3, which="both")
    # Outside the axes: with many curves, inside it would hide some of them.
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axis.set_title(title)
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=100)
    plt.close(figure)
