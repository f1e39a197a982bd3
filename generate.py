r"""Writes images from a trained generator: a grid PNG, individual PNGs and/or an .npy.

  python generate.py --generator=runs/tutorial/generator.keras --num_images=64
  python generate.py --generator=runs/tutorial --out_dir=/tmp/samples --individual
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan import checkpoints, images, models  # noqa: E402
from dcgan.config import ConfigError  # noqa: E402
from dcgan.files import atomic_path  # noqa: E402

flags.DEFINE_string("generator", "runs/tutorial/generator.keras",
                    "A generator .keras file, or a run directory (its latest checkpoint).")
flags.DEFINE_string("out_dir", "generated", "Where the files go.")
flags.DEFINE_integer("num_images", 64, "How many images.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seeds the noise: the same seed gives the same images.")
flags.DEFINE_bool("grid", True, "Write grid.png.")
flags.DEFINE_bool("individual", False, "Write one PNG per image (image_00000.png, ...).")
flags.DEFINE_bool("npy", True, "Write images.npy: float32 [N, 28, 28, 1] in the generator's "
                  "pixel range.")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        generator = checkpoints.load_generator(FLAGS.generator)
        pixel_range = models.generator_output_range(generator)
    except ConfigError as error:
        sys.exit(f"generate.py: error: {error}")
    noise_dim = generator.input_shape[-1]
    z = tf.random.Generator.from_seed(FLAGS.seed).normal([FLAGS.num_images, noise_dim])
    samples = generator(z, training=False).numpy()
    out_dir = pathlib.Path(FLAGS.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if FLAGS.grid:
        images.write_png(out_dir / "grid.png", images.grid(samples, pixel_range), scale=3)
    if FLAGS.individual:
        for index, image in enumerate(images.to_uint8(samples, pixel_range)):
            images.write_png(out_dir / f"image_{index:05d}.png", image)
    if FLAGS.npy:
        with atomic_path(out_dir / "images.npy") as partial:
            np.save(partial, samples)
    print(f"Wrote {FLAGS.num_images} images ({pixel_range} range) to {out_dir}")


if __name__ == "__main__":
    app.run(main)
