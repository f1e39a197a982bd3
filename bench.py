r"""Training throughput of the dcgan step: images/s, as ratios to a tutorial-style loop run
alongside, and GFLOP/s, as a fraction of the machine's peak.

  python bench.py                                  # preset fast, the unit of default-epochs
  python bench.py --dtype_policies=float32,mixed_bfloat16 --updates=alternating,simultaneous
  python bench.py --steps_per_call=1,10 --jit=false,true --replicas=1,2

Every configuration runs in this process after the baseline: warm-up steps (tracing,
compilation) are excluded, then `--repeats` timed runs of `--steps` steps; the median
images/s is reported and divided by the baseline's median. Each row's FLOPs per image
are counted from its networks and update scheme (`dcgan.experiments.profiling.train_step_flops`);
times its images/s they give its GFLOP/s, reported as a fraction of the peak: the median
of `--peak_repeats` `--matmul_size`-square `tf.matmul`s in the row's compute dtype
(float32, or bfloat16 under mixed_bfloat16), measured first. Then `--profile_steps` more
steps are traced for the row's shares: of the op time outside convolutions and matmuls
(`non-conv`), and of the cores' time in no op at all (`no op`).

  python bench.py --profile_dir=/tmp/profile      # and where its time goes

traces `--steps` more steps of the last configuration with tf.profiler (TensorBoard's
profile plugin reads the directory) and prints the op time by network and pass, by part
(matmul/conv, normalization, layout, other) and by op type, and the share of the cores'
time spent in no op at all (input, Python, launches, waits).
"""

import collections
import dataclasses
import glob
import itertools
import math
import os
import resource
import tempfile
import time

from absl import flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan import data, models  # noqa: E402
from dcgan.core.config import DEFAULT_DATA_DIR, TANH_RANGE, DataConfig  # noqa: E402
from dcgan.experiments import profiling, throughput  # noqa: E402
from dcgan.recipes import overrides  # noqa: E402
from dcgan.recipes.presets import PRESETS  # noqa: E402
from dcgan.runtime import (
    distribute,  # noqa: E402
    hardware,  # noqa: E402
)
from dcgan.runtime.files import write_json  # noqa: E402
from dcgan.training import progress  # noqa: E402

flags.DEFINE_enum("preset", "fast", sorted(PRESETS), "Networks and recipe to measure "
                  "(default: fast, whose step cost is the unit of sweep.py's default-epochs).")
flags.DEFINE_list("dtype_policies", ["auto"],
                  "Dtype policies to measure (see train.py --dtype_policy).")
flags.DEFINE_list("jit", ["false"], "jit_compile values to measure.")
flags.DEFINE_list("replicas", ["1"], "Replica counts to measure: GPUs, or logical CPU "
                  "devices where there is no GPU.")
flags.DEFINE_list("batch_sizes", None, "Global batch sizes to measure; default: the "
                  "preset's.")
flags.DEFINE_list("steps_per_call", ["10"], "Steps per tf.function call to measure.")
flags.DEFINE_list("fused_batch_norm", ["true"], "fused_batch_norm values to measure (see "
                  "train.py --fused_batch_norm).")
flags.DEFINE_list("fused_adam", ["true"], "fused_adam values to measure (see train.py "
                  "--fused_adam).")
flags.DEFINE_list("updates", None, "D/G update schemes to measure (see train.py --update); "
                  "default: the preset's.")
flags.DEFINE_integer("steps", 40, "Timed steps per repeat.", lower_bound=1)
flags.DEFINE_integer("warmup_steps", 10, "Untimed steps first.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.", lower_bound=1)
flags.DEFINE_integer("matmul_size", 2048, "Side of the square matmul that measures the peak "
                     "(2048: 17 GFLOP a product, large enough for oneDNN's blocked "
                     "kernels to run at their full rate, yet well under a second).",
                     lower_bound=64)
flags.DEFINE_string("json_out", "bench.json", "Where the results go.")
flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "TFDS data directory.")
flags.DEFINE_integer("train_examples", None, "Read the first N training images only (quick "
                     "runs: each configuration's pipeline and the baseline decode them).",
                     lower_bound=1)
flags.DEFINE_integer("profile_steps", 10, "Steps traced after each row's timing for its "
                     "time shares (outside convolutions, outside any op).", lower_bound=1)
flags.DEFINE_integer("peak_repeats", 9, "Timed matmuls per dtype for the peak; the median "
                     "is reported.", lower_bound=1)
flags.DEFINE_string("profile_dir", None, "Trace the last configuration's steps with "
                    "tf.profiler into this directory and print where the time goes.")

FLAGS = flags.FLAGS


def tutorial_models():
    """The TensorFlow DCGAN tutorial's (generator, discriminator), as Sequential models."""
    generator = keras.Sequential([
        keras.Input((100,)),
        keras.layers.Dense(7 * 7 * 256, use_bias=False), keras.layers.BatchNormalization(),
        keras.layers.LeakyReLU(), keras.layers.Reshape((7, 7, 256)),
        keras.layers.Conv2DTranspose(128, 5, strides=1, padding="same", use_bias=False),
        keras.layers.BatchNormalization(), keras.layers.LeakyReLU(),
        keras.layers.Conv2DTranspose(64, 5, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(), keras.layers.LeakyReLU(),
        keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False,
                                     activation="tanh")])
    discriminator = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(64, 5, strides=2, padding="same"), keras.layers.LeakyReLU(),
        keras.layers.Dropout(0.3),
        keras.layers.Conv2D(128, 5, strides=2, padding="same"), keras.layers.LeakyReLU(),
        keras.layers.Dropout(0.3), keras.layers.Flatten(), keras.layers.Dense(1)])
    return generator, discriminator


def baseline_rate(images, batch_size):
    """The TensorFlow DCGAN tutorial's loop, written plainly: `tutorial_models`, float32,
    simultaneous G/D updates from one forward pass, one tf.function call per step."""
    keras.mixed_precision.set_global_policy("float32")
    generator, discriminator = tutorial_models()
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    generator_optimizer = keras.optimizers.Adam(1e-4)
    discriminator_optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(real):
        noise = tf.random.normal([batch_size, 100])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            fake = generator(noise, training=True)
            real_output = discriminator(real, training=True)
            fake_output = discriminator(fake, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                         + cross_entropy(tf.zeros_like(fake_output), fake_output))
        generator_optimizer.apply_gradients(zip(
            gen_tape.gradient(gen_loss, generator.trainable_variables),
            generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(
            disc_tape.gradient(disc_loss, discriminator.trainable_variables),
            discriminator.trainable_variables))

    batches = iter(tf.data.Dataset.from_tensor_slices(images).shuffle(60000).repeat()
                   .batch(batch_size))

    def run_steps(steps):
        for _ in range(steps):
            train_step(next(batches))
        generator_optimizer.iterations.numpy()  # Waits for the last step.

    run_steps(FLAGS.warmup_steps)
    return throughput.median_rate(run_steps, FLAGS.steps, batch_size, FLAGS.repeats), run_steps


def compute_dtype(policy_name):
    """The dtype a Keras policy's layers compute in: "float32", "bfloat16" or "float16"."""
    return keras.mixed_precision.Policy(policy_name).compute_dtype


def flop_columns(images_per_sec, flops_per_image, dtype, peaks):
    """A row's FLOP columns: FLOPs per image, GFLOP/s achieved, and the fraction of the
    `dtype` peak (`peaks`: GFLOP/s by dtype name)."""
    gflops_per_sec = images_per_sec * flops_per_image / 1e9
    return {"flops_per_image": flops_per_image, "compute_dtype": dtype,
            "gflops_per_sec": gflops_per_sec, "peak_fraction": gflops_per_sec / peaks[dtype]}


def preset_step_flops(preset, update):
    """FLOPs per real image of one step of the preset's networks with `update`."""
    return profiling.train_step_flops(
        models.build_generator(preset.model), models.build_discriminator(preset.model),
        update, preset.n_critic, preset.penalties.gp_weight, preset.penalties.r1_weight,
        preset.penalties.r2_weight, preset.penalties.every)


def dcgan_rate(preset, policy_name, jit_compile, replicas, batch_size, steps_per_call, update,
               fused_batch_norm, fused_adam):
    """(images/s, run_steps) of `throughput.step_rate` on the first `replicas` GPUs, or
    logical CPU devices where there is no GPU."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    config = overrides.apply(preset, {"update": update, "jit_compile": jit_compile,
                                      "steps_per_call": steps_per_call,
                                      "fused_batch_norm": fused_batch_norm,
                                      "fused_adam": fused_adam})
    return throughput.step_rate(
        dataclasses.replace(config, data=data_config_of(batch_size)), policy_name,
        throughput.strategy_on(tuple(device.name for device in devices[:replicas])),
        FLAGS.warmup_steps, FLAGS.steps, FLAGS.repeats)


def traced_seconds(run_steps, steps, log_dir):
    """Traces run_steps(steps) with tf.profiler into `log_dir`: (`profiling.op_seconds`
    of the trace, the cores' seconds meanwhile (wall x cores))."""
    tf.profiler.experimental.start(log_dir)
    started = time.perf_counter()
    run_steps(steps)
    core_seconds = (time.perf_counter() - started) * len(os.sched_getaffinity(0))
    tf.profiler.experimental.stop()
    # Each trace goes to a new directory named by its start time: the newest is this one.
    xspace_path = sorted(glob.glob(f"{log_dir}/plugins/profile/*/*.xplane.pb"))[-1]
    return profiling.op_seconds(xspace_path), core_seconds


def share_columns(run_steps):
    """A row's time shares over --profile_steps traced steps: `non_conv_share`, of the op
    time outside convolutions and matmuls (`profiling.OP_PARTS`), and `no_op_share`, of
    the cores' time in no op at all (input, Python, launches, waits)."""
    with tempfile.TemporaryDirectory() as log_dir:
        seconds, core_seconds = traced_seconds(run_steps, FLAGS.profile_steps, log_dir)
    total = sum(seconds.values())
    conv = sum(value for key, value in seconds.items() if key[2] == "matmul/conv")
    return {"non_conv_share": 1 - conv / total, "no_op_share": max(0.0, 1 - total / core_seconds)}


def profile(run_steps, log_dir, top=15):
    """Traces run_steps(FLAGS.steps) into `log_dir` and prints op time shares, and the
    share of the cores' time (wall x cores) in no op."""
    seconds, core_seconds = traced_seconds(run_steps, FLAGS.steps, log_dir)
    total = sum(seconds.values())
    print(f"\nop time in {FLAGS.steps} profiled steps: {total:.1f} s over all threads, "
          f"{100 * total / core_seconds:.0f}% of the cores' {core_seconds:.1f} s (the rest: "
          f"input, Python, launches, waits, other processes)")
    for title, key in [("network, pass", lambda network, gradient, part, op: (network, gradient)),
                       ("part", lambda network, gradient, part, op: (part,))]:
        shares = collections.Counter()
        for op_key, value in seconds.items():
            shares[key(*op_key)] += value
        print(f"by {title}:")
        for name, value in sorted(shares.items()):
            print(f"  {' '.join(name):<22} {100 * value / total:5.1f}%")
    print(f"top {top} (network, pass, part, op type):")
    for key, value in seconds.most_common(top):
        print(f"  {100 * value / total:5.1f}%  {' '.join(key)}")


def data_config_of(batch_size):
    """The training split (or its first --train_examples images) in batches of batch_size."""
    return DataConfig(data_dir=FLAGS.data_dir, split=data.train_split(FLAGS.train_examples),
                           global_batch_size=batch_size)


def input_rate(pixel_range, batch_size):
    """images/s of the input pipeline alone (after the first, caching, epoch)."""
    config = data_config_of(batch_size)
    batches = iter(data.load_split(config, pixel_range, shuffle_seed=0, epochs=1000))
    steps_per_epoch = data.num_examples(config) // batch_size
    for _ in range(steps_per_epoch):
        next(batches)

    def run_steps(steps):
        for _ in range(steps):
            next(batches)

    return throughput.median_rate(run_steps, steps_per_epoch, batch_size, FLAGS.repeats)


def measure_peaks():
    """GFLOP/s by dtype name, of float32 (the baseline's) and every --dtype_policies's."""
    dtypes = {"float32"} | {compute_dtype(hardware.resolve_dtype_policy(dtype_policy))
                            for dtype_policy in FLAGS.dtype_policies}
    peaks = {dtype: hardware.matmul_gflops(dtype, FLAGS.matmul_size, FLAGS.peak_repeats)
             for dtype in sorted(dtypes)}
    for dtype, peak in peaks.items():
        print(f"peak {dtype}: {peak:.1f} GFLOP/s (median of {FLAGS.peak_repeats} "
              f"{FLAGS.matmul_size}^2 matmuls)")
    return peaks


def print_table(rows, peaks):
    """The rows, with their FLOP columns where they have them (not the input pipeline)."""
    print(f"\n{'configuration':<90} {'batch':>5} {'img/s':>8} {'ratio':>6} "
          f"{'MFLOP/img':>9} {'GFLOP/s':>8} {'of peak':>7} {'non-conv':>8} {'no op':>6}")
    for row in rows:
        flops = (f"{row['flops_per_image'] / 1e6:>9.1f} {row['gflops_per_sec']:>8.1f} "
                 f"{100 * row['peak_fraction']:>6.1f}% {100 * row['non_conv_share']:>7.1f}% "
                 f"{100 * row['no_op_share']:>5.1f}%" if "flops_per_image" in row else "")
        print(f"{row['name']:<90} {row['batch_size']:>5} {row['images_per_sec']:>8.0f} "
              f"{row['ratio']:>6.2f} {flops}")
    print("peak: " + ", ".join(f"{dtype} {peak:.1f} GFLOP/s" for dtype, peak in peaks.items()))


def header(preset) -> str:
    """bench.py's first line: the configurations it measures and how, devices, CPU."""
    axes = {"dtype_policies": [f"{policy} ({hardware.resolve_dtype_policy(policy)})"
                               if policy == "auto" else policy
                               for policy in FLAGS.dtype_policies],
            "jit": FLAGS.jit, "replicas": FLAGS.replicas,
            "steps_per_call": FLAGS.steps_per_call, "updates": FLAGS.updates or [preset.update],
            "fused_batch_norm": FLAGS.fused_batch_norm, "fused_adam": FLAGS.fused_adam,
            "batch": FLAGS.batch_sizes or [str(preset.data.global_batch_size)]}
    count = math.prod(len(values) for values in axes.values())
    return progress.binary_header("bench.py", [
        f"preset {FLAGS.preset}, {count} configuration{'s' * (count > 1)}: "
        + " x ".join(f"{name} {', '.join(values)}" for name, values in axes.items()),
        f"{FLAGS.repeats} repeat{'s' * (FLAGS.repeats > 1)} of {FLAGS.steps} steps after "
        f"{FLAGS.warmup_steps} warm-up",
        f"results to {FLAGS.json_out}"])


def _bools(values):
    return [value.lower() == "true" for value in values]


def main(argv):
    del argv
    distribute.split_cpu(max(int(n) for n in FLAGS.replicas))
    preset = PRESETS[FLAGS.preset]
    print(header(preset), flush=True)
    images = np.concatenate(list(data.load_split(
        dataclasses.replace(data_config_of(10_000), drop_remainder=False), TANH_RANGE,
    ).as_numpy_iterator()))
    peaks = measure_peaks()
    baseline_flops = profiling.train_step_flops(*tutorial_models(), "simultaneous")
    rows = []
    for batch_size in map(int, FLAGS.batch_sizes or [preset.data.global_batch_size]):
        baseline, baseline_steps = baseline_rate(images, batch_size)
        print(f"baseline (tutorial loop, float32), batch {batch_size}: {baseline:.0f} img/s",
              flush=True)
        rows.append({"name": "baseline (tutorial loop, float32)", "batch_size": batch_size,
                     "images_per_sec": baseline, "ratio": 1.0,
                     **flop_columns(baseline, baseline_flops, "float32", peaks),
                     **share_columns(baseline_steps)})
        input_only = input_rate(models.output_range(preset.model.architecture), batch_size)
        rows.append({"name": "input pipeline only", "batch_size": batch_size,
                     "images_per_sec": input_only, "ratio": input_only / baseline})
        for (dtype_policy, jit, replicas, steps_per_call, update, fused_bn,
             fused_adam) in itertools.product(
                FLAGS.dtype_policies, _bools(FLAGS.jit), map(int, FLAGS.replicas),
                map(int, FLAGS.steps_per_call), FLAGS.updates or [preset.update],
                _bools(FLAGS.fused_batch_norm), _bools(FLAGS.fused_adam)):
            policy_name = hardware.resolve_dtype_policy(dtype_policy)
            rate, run_steps = dcgan_rate(preset, policy_name, jit, replicas, batch_size,
                                         steps_per_call, update, fused_bn, fused_adam)
            rows.append({
                "name": f"dcgan {FLAGS.preset} {update} {policy_name} jit={jit} "
                        f"replicas={replicas} steps_per_call={steps_per_call} "
                        f"fused_bn={fused_bn} fused_adam={fused_adam}",
                "batch_size": batch_size, "images_per_sec": rate, "ratio": rate / baseline,
                **flop_columns(rate, preset_step_flops(preset, update),
                               compute_dtype(policy_name), peaks),
                **share_columns(run_steps)})
            print(f"{rows[-1]['name']}: {rate:.0f} img/s, {rate / baseline:.2f}x, "
                  f"{100 * rows[-1]['peak_fraction']:.0f}% of the peak, "
                  f"{100 * rows[-1]['non_conv_share']:.0f}% of op time outside convolutions",
                  flush=True)
    if FLAGS.profile_dir:
        profile(run_steps, FLAGS.profile_dir)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_table(rows, peaks)
    print(f"peak RSS {peak_rss_mib:.0f} MiB")
    write_json(FLAGS.json_out, {"rows": rows, "peak_gflops": peaks, "cpu": hardware.cpu_model(),
                                "peak_rss_mib": peak_rss_mib, "tensorflow": tf.__version__,
                                "flags": FLAGS.flag_values_dict()})


if __name__ == "__main__":
    console.run(main)
