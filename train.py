r"""Trains a DCGAN on Fashion-MNIST; re-running the same command resumes it.

  python train.py                                   # preset "fast", 18 epochs
  python train.py --preset=tutorial                 # the TensorFlow tutorial's recipe
  python train.py --preset=fashion128 --epochs=20
  python train.py --cpu_devices=2 --max_steps=100   # 2 replicas on one CPU
  python train.py --preset=wgan_gp --ema_decay=0.999
  python train.py --conditional --run_dir=runs/conditional   # one class per label
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

from dcgan import console

console.quiet_startup()  # Before TensorFlow loads.

from dcgan import config as config_lib  # noqa: E402
from dcgan import data, distribute, losses, models, trainer  # noqa: E402

flags.DEFINE_enum("preset", "fast", sorted(config_lib.PRESETS),
                  "Architecture and training recipe; other flags override its values.")
flags.DEFINE_enum("architecture", None, sorted(models.ARCHITECTURES),
                  "Generator/discriminator pair (preset default), e.g. fast_sn: the fast "
                  "networks with a spectrally normalised D.")
flags.DEFINE_string("run_dir", None, "Run directory (default runs/<preset>). An existing one "
                    "is resumed from its latest checkpoint.")
flags.DEFINE_bool("new_run", False, "Start afresh even if --run_dir holds a run: the old "
                  "directory is renamed to <run_dir>.old-<timestamp>, never deleted.")
flags.DEFINE_string("data_dir", config_lib.DEFAULT_DATA_DIR, "TFDS data directory.")
flags.DEFINE_integer("epochs", None, "Passes over the training split (preset default).",
                     lower_bound=1)
flags.DEFINE_integer("max_steps", None, "Stop after this many steps in all.", lower_bound=1)
flags.DEFINE_float("max_train_minutes", None, "Stop once the training steps have taken this "
                   "long, over all resumes (for comparisons at equal compute).")
flags.DEFINE_integer("train_examples", None, "Train on the first N images only (quick runs).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Global batch size over all replicas (preset default).",
                     lower_bound=1)
flags.DEFINE_float("g_learning_rate", None, "Generator Adam learning rate (preset default).")
flags.DEFINE_float("d_learning_rate", None, "Discriminator Adam learning rate (preset default).")
flags.DEFINE_float("g_beta1", None, "Generator Adam beta_1 (preset default).")
flags.DEFINE_float("d_beta1", None, "Discriminator Adam beta_1 (preset default).")
flags.DEFINE_enum("loss", None, sorted(losses.LOSSES), "GAN loss (preset default).")
flags.DEFINE_enum("update", None, config_lib.UPDATES,
                  "alternating: D's update, then G's through the updated D. simultaneous: "
                  "both from one forward pass, a quarter less compute (preset default).")
flags.DEFINE_integer("n_critic", None, "D updates per G update, each on its own batch; a "
                     "step is one G update (preset default; > 1 needs --update=alternating).")
flags.DEFINE_float("gp_weight", None, "Weight of the WGAN-GP gradient penalty, 0 for none "
                   "(preset default: 10 in wgan_gp, else 0).")
flags.DEFINE_float("r1_weight", None, "Weight (gamma) of the R1 penalty on real images, 0 for "
                   "none (preset default).")
flags.DEFINE_float("ema_decay", None, "Keep an exponential moving average of G's weights with "
                   "this decay (e.g. 0.999) and sample, export and evaluate with it; 0 for "
                   "none (preset default).")
flags.DEFINE_enum("precision", "auto", config_lib.PRECISIONS,
                  "auto: mixed_bfloat16 where the hardware has bf16, else float32.")
flags.DEFINE_bool("jit_compile", False, "Compile the gradient computation with XLA.")
flags.DEFINE_enum("strategy", "auto", distribute.STRATEGIES,
                  "mirrored: one process, every GPU or logical CPU device. multi_worker: "
                  "one process per machine, MultiWorkerMirroredStrategy over the cluster "
                  "in TF_CONFIG; every worker gets the same flags and --run_dir, which the "
                  "chief writes. auto: multi_worker when TF_CONFIG is set.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices, one replica "
                     "each (for trying the multi-replica path without GPUs).", lower_bound=1)
flags.DEFINE_bool("sync_batch_norm", False, "Batch-norm statistics over the global batch.")
flags.DEFINE_bool("conditional", False, "Train a conditional GAN on the class labels: G takes "
                  "(z, class), D sees the class as --conditioning says, and the sample grids "
                  "show one row per class.")
flags.DEFINE_enum("conditioning", None, config_lib.CONDITIONINGS, "With --conditional, how D "
                  "sees the class. projection: adds <embed(class), D's features> to its logit "
                  "(Miyato & Koyama 2018); concat: a learned map of the class as a second "
                  "image channel (default projection).")
flags.DEFINE_integer("steps_per_call", None, "Training steps per tf.function call.",
                     lower_bound=1)
flags.DEFINE_integer("checkpoint_every_steps", None, "Checkpoint period in steps (also at "
                     "each epoch end).", lower_bound=1)
flags.DEFINE_integer("max_checkpoints", None, "Checkpoints kept on disk.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seeds weights, noise, dropout and the data order.")
flags.DEFINE_bool("deterministic", False, "Deterministic TensorFlow ops (exactly repeatable).")

FLAGS = flags.FLAGS


def _optimizer(preset_optimizer, learning_rate, beta_1):
    overrides = {"learning_rate": learning_rate, "beta_1": beta_1}
    return dataclasses.replace(
        preset_optimizer, **{k: v for k, v in overrides.items() if v is not None})


def config_from_flags() -> config_lib.TrainConfig:
    preset = config_lib.PRESETS[FLAGS.preset]
    split = "train" if FLAGS.train_examples is None else f"train[:{FLAGS.train_examples}]"
    if FLAGS.conditioning and not FLAGS.conditional:
        raise config_lib.ConfigError("--conditioning applies only with --conditional")
    data_config = dataclasses.replace(
        preset.data, data_dir=FLAGS.data_dir, split=split, shuffle_seed=FLAGS.seed,
        global_batch_size=FLAGS.batch_size or preset.data.global_batch_size,
        with_labels=FLAGS.conditional)
    model_config = dataclasses.replace(
        preset.model, architecture=FLAGS.architecture or preset.model.architecture,
        synchronized_batch_norm=FLAGS.sync_batch_norm,
        num_classes=len(data.CLASS_NAMES) if FLAGS.conditional else 0,
        conditioning=FLAGS.conditioning or preset.model.conditioning)
    overrides = {
        "epochs": FLAGS.epochs, "max_steps": FLAGS.max_steps,
        "max_train_minutes": FLAGS.max_train_minutes,
        "steps_per_call": FLAGS.steps_per_call,
        "checkpoint_every_steps": FLAGS.checkpoint_every_steps,
        "max_checkpoints": FLAGS.max_checkpoints, "update": FLAGS.update,
        "loss": FLAGS.loss, "n_critic": FLAGS.n_critic, "gp_weight": FLAGS.gp_weight,
        "r1_weight": FLAGS.r1_weight, "ema_decay": FLAGS.ema_decay,
    }
    return dataclasses.replace(
        preset,
        run_dir=FLAGS.run_dir or f"runs/{FLAGS.preset}",
        model=model_config,
        data=data_config,
        generator_optimizer=_optimizer(preset.generator_optimizer, FLAGS.g_learning_rate,
                                       FLAGS.g_beta1),
        discriminator_optimizer=_optimizer(preset.discriminator_optimizer,
                                           FLAGS.d_learning_rate, FLAGS.d_beta1),
        precision=FLAGS.precision, jit_compile=FLAGS.jit_compile,
        seed=FLAGS.seed, deterministic=FLAGS.deterministic,
        **{name: value for name, value in overrides.items() if value is not None})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    distribute.split_cpu(FLAGS.cpu_devices)
    # Before any other op: the multi-worker strategy sets up the collective ops.
    strategy = distribute.make_strategy(FLAGS.strategy)
    config = config_from_flags()
    result = trainer.train(config, strategy, run_info={"flags": FLAGS.flag_values_dict()},
                           new_run=FLAGS.new_run)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Done: step {result['step']}, run directory {config.run_dir}, "
          f"peak RSS {peak_rss_mib:,.0f} MiB")


if __name__ == "__main__":
    console.run(main)
