r"""Checks a machine with GPUs (issue 40) and prints markdown tables to paste into an issue.

  python scripts/gpu_check.py                       # every GPU, the default's recipe
  python scripts/gpu_check.py --per_replica_batch_size=256 --lr_scaling=linear

First bench.py's measurement of the training step (`dcgan.experiments.throughput`) under
each of --dtype_policies, with and without XLA, on 1, 2, 4, ... and all N GPUs: images/s
per GPU and the speed-up from 1 GPU to N. Then --train_steps of training on all N GPUs,
the recipe scaled to them by --per_replica_batch_size and --lr_scaling as train.py scales
it, in a temporary run directory: its images/s per GPU, whether its losses stayed finite,
and the FID of --num_samples samples. Without a GPU it says so in one line and exits 0.

Exit status: 0 when the tables are printed or there is no GPU; 1 with one
`gpu_check.py: error: ...` line when the check cannot run (bad flags, missing data).
"""

import dataclasses
import tempfile

from absl import app, flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

import tensorflow as tf  # noqa: E402

from dcgan import data  # noqa: E402
from dcgan.core.config import DEFAULT_DATA_DIR, LR_SCALINGS  # noqa: E402
from dcgan.evaluation import evaluator  # noqa: E402
from dcgan.experiments import gpu_check, throughput  # noqa: E402
from dcgan.recipes import overrides  # noqa: E402
from dcgan.recipes.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from dcgan.training import progress  # noqa: E402

flags.DEFINE_enum("preset", DEFAULT_PRESET, sorted(PRESETS), "The recipe to measure and train.")
flags.DEFINE_integer("per_replica_batch_size", 128, "Images per GPU per batch; the recipe's "
                     "rates, EMA and batch norm follow the global batch (train.py's flag).",
                     lower_bound=1)
flags.DEFINE_enum("lr_scaling", "sqrt", LR_SCALINGS, "How the training run's rates follow "
                  "the global batch (train.py's flag).")
flags.DEFINE_list("dtype_policies", list(gpu_check.DTYPE_POLICIES), "Dtype policies to measure.")
flags.register_validator("dtype_policies",
                         lambda values: set(values) <= set(gpu_check.DTYPE_POLICIES),
                         f"--dtype_policies takes names of {list(gpu_check.DTYPE_POLICIES)}")
flags.DEFINE_list("jit", ["false", "true"], "jit_compile values to measure.")
flags.register_validator("jit", lambda values: set(values) <= {"false", "true"},
                         "--jit takes true and false")
flags.DEFINE_integer("warmup_steps", 20, "Untimed steps before each measurement (at least "
                     "one pass over --bench_examples).", lower_bound=1)
flags.DEFINE_integer("steps", 100, "Timed steps per repeat.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.", lower_bound=1)
flags.DEFINE_integer("bench_examples", 10_000, "Training images the measurements read, "
                     "cached in memory after the warm-up's pass.", lower_bound=1)
flags.DEFINE_integer("train_steps", 500, "Steps of the training run on all GPUs.",
                     lower_bound=1)
flags.DEFINE_integer("num_samples", 10_000, "Generated images of the run's FID.",
                     lower_bound=129)
flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "TFDS data directory.")

FLAGS = flags.FLAGS


def gpu_names() -> str:
    """The GPUs by model and compute capability, e.g. "4 x NVIDIA A100-SXM4-40GB (8.0)"."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = ".".join(map(str, details.get("compute_capability") or ()))
        names.append(f"{details.get('device_name', gpu.name)} ({capability or '?'})")
    return ", ".join(f"{names.count(name)} x {name}" for name in dict.fromkeys(names))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if not devices:
        print(f"gpu_check.py: no GPU visible: TensorFlow {tf.__version__} "
              f"({'with' if tf.test.is_built_with_cuda() else 'without'} CUDA) lists none; "
              "nothing to check.")
        return
    config = overrides.apply(PRESETS[FLAGS.preset], {
        "per_replica_batch_size": FLAGS.per_replica_batch_size,
        "lr_scaling": FLAGS.lr_scaling, "data_dir": FLAGS.data_dir})
    print(progress.binary_header("gpu_check.py", [
        f"preset {FLAGS.preset}, {FLAGS.per_replica_batch_size} images a GPU",
        f"step rates of {', '.join(FLAGS.dtype_policies)} x XLA {', '.join(FLAGS.jit)} on "
        f"{', '.join(map(str, gpu_check.replica_counts(len(devices))))} GPUs",
        f"then {FLAGS.train_steps} steps on {len(devices)} and FID of {FLAGS.num_samples:,} "
        "samples"], devices), flush=True)
    bench_config = dataclasses.replace(
        config, data=dataclasses.replace(config.data,
                                         split=data.train_split(FLAGS.bench_examples)))
    rates = []
    for rate in gpu_check.step_rates(bench_config, devices, FLAGS.dtype_policies,
                                     [value == "true" for value in FLAGS.jit],
                                     FLAGS.warmup_steps, FLAGS.steps, FLAGS.repeats):
        print(rate, flush=True)
        rates.append(rate)
    with tempfile.TemporaryDirectory() as run_dir:
        run = gpu_check.check_run(
            dataclasses.replace(config, run_dir=run_dir, max_steps=FLAGS.train_steps),
            throughput.strategy_on(tuple(devices)),
            evaluator.EvalConfig(num_samples=FLAGS.num_samples, data_dir=FLAGS.data_dir,
                                 train_split=None))
    print()
    print(gpu_check.markdown_tables(
        f"gpu_check.py: {gpu_names()}, TensorFlow {tf.__version__}, preset {FLAGS.preset}",
        rates, run))


if __name__ == "__main__":
    console.run(main)
