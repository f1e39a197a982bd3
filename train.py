r"""Trains a DCGAN on Fashion-MNIST; re-running the same command resumes it.

  python train.py                                   # preset "fast_deep_gd", 9 epochs
  python train.py --preset=tutorial                 # the TensorFlow tutorial's recipe
  python train.py --preset=fashion128 --epochs=20
  python train.py --cpu_devices=2 --max_steps=100   # 2 replicas on one CPU
  python train.py --preset=wgan_gp --ema_decay=0.999
  python train.py --conditional                     # preset "conditional", a row per class
  TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]},
              "task": {"type": "worker", "index": 0}}' python train.py   # on each host

Exit status: 0 when the run is complete; 1 with one `train.py: error: ...` line when it
cannot start or go on (bad flags or data, a run directory that disagrees with the flags,
an unreadable checkpoint, a non-finite loss); 128 + the signal number (143 for SIGTERM,
130 for Ctrl-C) when a signal stopped it after checkpointing the step reached, with the
command that resumes it (143 on the workers that stopped with a signalled one).
"""

import dataclasses
import resource

from absl import app, flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

from dcgan import data, training  # noqa: E402
from dcgan.core import config as config_lib  # noqa: E402
from dcgan.recipes import overrides  # noqa: E402
from dcgan.recipes.presets import CONDITIONAL_PRESETS, DEFAULT_PRESET, PRESETS  # noqa: E402
from dcgan.runtime import distribute  # noqa: E402

flags.DEFINE_enum("preset", DEFAULT_PRESET, sorted(PRESETS),
                  "Architecture and training recipe; other flags override its values.")
flags.DEFINE_string("run_dir", None, "Run directory (default runs/<preset>). An existing one "
                    "is resumed from its latest checkpoint.")
flags.DEFINE_bool("new_run", False, "Start afresh even if --run_dir holds a run: the old "
                  "directory is renamed to <run_dir>.old-<timestamp>, never deleted.")
flags.DEFINE_integer("train_examples", None, "Train on the first N images only (quick runs).",
                     lower_bound=1)
flags.DEFINE_enum("strategy", "auto", distribute.STRATEGIES,
                  "mirrored: one process, every GPU or logical CPU device. multi_worker: "
                  "one process per machine, MultiWorkerMirroredStrategy over the cluster "
                  "in TF_CONFIG; every worker gets the same flags and --run_dir, which the "
                  "chief writes. auto: multi_worker when TF_CONFIG is set.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices, one replica "
                     "each (for trying the multi-replica path without GPUs).", lower_bound=1)
flags.DEFINE_bool("conditional", False, "Train a conditional GAN on the class labels: G takes "
                  "(z, class), D sees the class as --conditioning says, and the sample grids "
                  "show one row per class. The default preset and hinge train their tuned "
                  "conditional presets (conditional, hinge_conditional); another is made "
                  "conditional as it is.")
flags.DEFINE_integer("seed", 0, "Seeds weights, noise, dropout and the data order.")


def _define_override_flags():
    """One flag per entry of `overrides.OVERRIDES`, None by default (the preset's value)."""
    for name, override in overrides.OVERRIDES.items():
        help_text = overrides.help_text(name)
        if override.type is tuple:
            flags.DEFINE_list(name, None, help_text)
        elif override.allowed() is not None:
            flags.DEFINE_enum(name, None, override.allowed(), help_text)
        elif override.type is bool:
            flags.DEFINE_bool(name, None, help_text)
        else:
            define = {int: flags.DEFINE_integer, float: flags.DEFINE_float,
                      str: flags.DEFINE_string}[override.type]
            bound = {} if override.lower_bound is None else {"lower_bound": override.lower_bound}
            define(name, None, help_text, **bound)


_define_override_flags()

FLAGS = flags.FLAGS


def preset_name_from_flags() -> str:
    """--preset, or its tuned conditional preset with --conditional."""
    if FLAGS.conditional:
        return CONDITIONAL_PRESETS.get(FLAGS.preset, FLAGS.preset)
    return FLAGS.preset


def config_from_flags() -> config_lib.TrainConfig:
    # About the flags, not the config: a config cannot tell an explicit
    # --conditioning=projection from the preset's default.
    preset = PRESETS[preset_name_from_flags()]
    conditional = FLAGS.conditional or preset.model.num_classes > 0
    if FLAGS.conditioning and not conditional:
        raise config_lib.ConfigError("--conditioning applies only with --conditional")
    config = dataclasses.replace(
        preset, run_dir=FLAGS.run_dir or preset.run_dir, seed=FLAGS.seed,
        model=dataclasses.replace(
            preset.model, num_classes=len(data.CLASS_NAMES) if conditional else 0),
        data=dataclasses.replace(preset.data, split=data.train_split(FLAGS.train_examples)))
    return overrides.apply(config, {name: FLAGS[name].value for name in overrides.OVERRIDES})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distribute.split_cpu(FLAGS.cpu_devices)
    # Before any other op: the multi-worker strategy sets up the collective ops.
    strategy = distribute.make_strategy(FLAGS.strategy)
    config = config_from_flags()
    run_info = {"preset": preset_name_from_flags(), "flags": FLAGS.flag_values_dict()}
    result = training.train(config, strategy, run_info=run_info, new_run=FLAGS.new_run)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Done: step {result['step']}, run directory {config.run_dir}, "
          f"peak RSS {peak_rss_mib:,.0f} MiB")


if __name__ == "__main__":
    console.run(main)
