r"""Writes images from a trained generator: a grid PNG, individual PNGs and/or an .npy.

  python generate.py                     # runs/fast_deep_gd/generator.keras, or the model zoo's
  python generate.py --generator=runs/fast_deep_gd/generator.keras --num_images=64
  python generate.py --generator=runs/fast_deep_gd --out_dir=/tmp/samples --individual
  python generate.py --generator=runs/conditional --class_name=Sneaker   # or --class_id=7

A conditional generator draws the class asked for, or every class in turn (image i of
class i mod 10); its grid.png is 10 images wide, and labels.npy records each image's class.
"""

import pathlib

from absl import app, flags

from dcgan.core.errors import ConfigError
from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

import numpy as np  # noqa: E402

from dcgan import data, models  # noqa: E402
from dcgan.experiments import zoo  # noqa: E402
from dcgan.recipes.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from dcgan.rundir import checkpoints  # noqa: E402
from dcgan.runtime import images  # noqa: E402
from dcgan.runtime.files import atomic_path  # noqa: E402
from dcgan.training import progress  # noqa: E402

flags.DEFINE_string("generator", f"{PRESETS[DEFAULT_PRESET].run_dir}/generator.keras",
                    "A generator .keras file, or a run directory (its latest checkpoint). "
                    "Left at its default while that file does not exist: the model zoo's "
                    f"generator of preset {DEFAULT_PRESET}, dcgan/assets/zoo/.")
flags.DEFINE_string("out_dir", "generated", "Where the files go.")
flags.DEFINE_integer("num_images", 64, "How many images.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seeds the noise: the same seed gives the same images.")
flags.DEFINE_string("class_name", None, "With a conditional generator, draw only this class: "
                    f"one of {', '.join(data.CLASS_NAMES)} (any case).")
flags.DEFINE_integer("class_id", None, "With a conditional generator, draw only this class: "
                     "its label, 0 (T-shirt/top) to 9 (Ankle boot).", lower_bound=0,
                     upper_bound=len(data.CLASS_NAMES) - 1)
flags.mark_flags_as_mutual_exclusive(["class_name", "class_id"])
flags.DEFINE_bool("grid", True, "Write grid.png.")
flags.DEFINE_bool("individual", False, "Write one PNG per image (image_00000.png, ...).")
flags.DEFINE_bool("npy", True, "Write images.npy: float32 [N, 28, 28, 1] in the generator's "
                  "pixel range (and labels.npy, int32 [N], for a conditional generator).")

FLAGS = flags.FLAGS


def _generator_path() -> str:
    """--generator, or the model zoo's entry of the default preset (saying so) when the
    flag is left at its default and that file does not exist."""
    if not FLAGS["generator"].using_default_value or pathlib.Path(FLAGS.generator).exists():
        return FLAGS.generator
    print(zoo.fallback_line(f"{FLAGS.generator} does not exist", DEFAULT_PRESET))
    return str(zoo.generator_path(DEFAULT_PRESET))


def _labels(path, generator) -> np.ndarray | None:
    """The class of each image: None for an unconditional generator, else the class asked
    for or every class in turn."""
    asked = FLAGS.class_id if FLAGS.class_name is None else data.class_index(FLAGS.class_name)
    num_classes = models.generator_num_classes(generator)
    if not num_classes:
        if asked is not None:
            raise ConfigError(f"{path} holds an unconditional generator: "
                              "--class_name and --class_id need one trained with "
                              "train.py --conditional.")
        return None
    if asked is None:
        return models.class_cycle(FLAGS.num_images, num_classes)
    return np.full(FLAGS.num_images, asked, np.int32)


def _header(path, generator, labels) -> str:
    """generate.py's first line: the generator, what it draws, and the files it writes."""
    if labels is None:
        drawn = "unconditional"
    elif FLAGS.class_name is None and FLAGS.class_id is None:
        drawn = "every class in turn"
    else:
        drawn = f"class {data.CLASS_NAMES[labels[0]]}"
    files = [name for name, wanted in [
        ("grid.png", FLAGS.grid), ("image_*.png", FLAGS.individual), ("images.npy", FLAGS.npy),
        ("labels.npy", FLAGS.npy and labels is not None)] if wanted]
    return progress.binary_header("generate.py", [
        f"{FLAGS.num_images} images, seed {FLAGS.seed}",
        f"generator {path} ({drawn}, pixel range "
        f"{models.generator_output_range(generator)})",
        f"into {FLAGS.out_dir}: {', '.join(files) or 'no files'}"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    path = _generator_path()
    generator = checkpoints.load_generator(path)
    pixel_range = models.generator_output_range(generator)
    labels = _labels(path, generator)
    print(_header(path, generator, labels), flush=True)
    # One batch: the images of a seed do not depend on a batch size.
    samples, labels = models.seeded_samples(generator, FLAGS.num_images, FLAGS.seed,
                                            batch_size=FLAGS.num_images, labels=labels)
    out_dir = pathlib.Path(FLAGS.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if FLAGS.grid:
        # A conditional generator's grid is one column per class when it draws them all.
        columns = models.generator_num_classes(generator) or None
        images.write_png(out_dir / "grid.png", images.grid(samples, pixel_range, columns),
                         scale=3)
    if FLAGS.individual:
        for index, image in enumerate(images.to_uint8(samples, pixel_range)):
            images.write_png(out_dir / f"image_{index:05d}.png", image)
    if FLAGS.npy:
        with atomic_path(out_dir / "images.npy") as partial:
            np.save(partial, samples)
        if labels is not None:
            with atomic_path(out_dir / "labels.npy") as partial:
                np.save(partial, labels)
    print(f"Wrote {FLAGS.num_images} images to {out_dir}")


if __name__ == "__main__":
    console.run(main)
