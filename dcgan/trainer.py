"""The training loop: resume, steps, checkpoints, and every artifact of a run directory.

Run directory layout:
  config.json                   the resolved config, flags, versions, git commit
  checkpoints/                  tf.train.CheckpointManager (G, D, optimizers, step, RNG,
                                the EMA generator when `ema_decay` is set)
  losses.csv                    one row per step (a step is one G update)
  loss_curves.png               the columns of losses.csv against steps
  samples/epoch_0001.png        the fixed noise through G after each epoch (a conditional
                                G: one row per class, labelled with its name)
  progress.gif                  those grids as an animation
  final_grid.png                5x5 samples of the final generator (conditional: 5 per
                                class)
  generator.keras, discriminator.keras   plain Keras models (no dcgan import needed)
  tensorboard/                  scalars and sample grids

Whatever stops a run, the directory stays resumable by the same command:
  - every file is written to a temporary name and renamed, and losses.csv is cut back to
    the restored step on resume, so kill -9 loses only the steps since the last
    checkpoint (and the artifacts of an epoch end it cut short are redone on resume);
  - SIGTERM and SIGINT save a checkpoint at the step reached, then raise
    TrainingInterrupted;
  - a non-finite loss or weight raises NonFiniteError before anything of that state is
    checkpointed or exported.

Samples and generator.keras come from the EMA generator when the run keeps one.

Under MultiWorkerMirroredStrategy every worker runs the same steps and saves at the same
steps, but only the chief writes the run directory; the other workers read its
checkpoints when they start and save theirs into a scratch directory that they empty
after each save (`_WorkerOutputs`). All of them must therefore see the run directory at
the same path: one machine, or storage they share.
"""

import contextlib
import csv
import dataclasses
import math
import pathlib
import shutil
import subprocess
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan import data, distribute, images, losses, models, preemption, runs, schedules
from dcgan.config import ConfigError, TrainConfig
from dcgan.files import atomic_path, remove_partials, write_json
from dcgan.preemption import TrainingInterrupted
from dcgan.train_step import METRIC_NAMES, GanStep, make_optimizer

__all__ = ["CSV_COLUMNS", "NonFiniteError", "RunState", "TrainingInterrupted", "train"]

# train_seconds: time spent in training steps since the run began, over all resumes
# (checkpoints, pictures and start-up excluded, but the first call after each start
# includes its tf.function tracing): the clock that time-to-quality uses.
CSV_COLUMNS = ("step", "epoch") + METRIC_NAMES + ("images_per_sec", "train_seconds")
FINAL_GRID_SIZE = 25  # 5x5 (a conditional G: 5 per class)
PNG_SCALE = 3  # 28-pixel images are too small to judge at 1:1.
# The files the trainer writes in the run directory itself (eval.py writes others).
RUN_FILES = ("config.json", "losses.csv", "loss_curves.png", "progress.gif",
             "final_grid.png", "generator.keras", "discriminator.keras")


def _sample_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}.png"


class NonFiniteError(RuntimeError):
    """A loss or a weight became NaN or infinite; nothing of that state was saved.

    Attributes:
      step: the first step whose losses were non-finite (or after which the weights were).
    """

    def __init__(self, message, step):
        super().__init__(message)
        self.step = step


@dataclasses.dataclass
class RunState:
    """The models and variables of a run, built under a strategy's scope."""

    generator: keras.Model
    discriminator: keras.Model
    ema_generator: keras.Model | None
    gan_step: GanStep
    step: tf.Variable
    epoch: tf.Variable
    fixed_noise: tf.Variable
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator behind samples and exports: the EMA one when the run keeps it."""
        return self.generator if self.ema_generator is None else self.ema_generator


def _git_commit():
    source = pathlib.Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=source, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty.strip() else "")


def _grid_noise_count(grid_size: int, conditional: bool) -> int:
    """Noise vectors behind a sample grid of `grid_size` (a square) images: one per image,
    or for a conditional G one per column, every row (class) drawing from the same ones."""
    return math.isqrt(grid_size) if conditional else grid_size


def _class_rows(noise, num_classes):
    """Noise [k, noise_dim] -> (z [num_classes * k, noise_dim], int32 labels
    [num_classes * k]): row c of a k-column grid is class c, column j noise vector j."""
    return (tf.tile(noise, [num_classes, 1]),
            tf.repeat(tf.range(num_classes), tf.shape(noise)[0]))


def _layer_rng_states(model):
    # Keras 3 keeps each Dropout's RNG in a SeedGenerator that tf.train.Checkpoint does not
    # reach through the model; without it a resumed run would draw other dropout masks.
    return [layer.seed_generator.state for layer in model.layers
            if hasattr(layer, "seed_generator")]


def planned_steps(config: TrainConfig) -> tuple[int, int]:
    """(steps per epoch, steps of the whole run), before any `max_train_minutes` stop."""
    # A step is one G update and reads n_critic batches.
    steps_per_epoch = data.num_examples(config.data) // (
        config.n_critic * config.data.global_batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    return steps_per_epoch, total_steps


def build_run_state(config: TrainConfig, policy_name: str, strategy, restore=True,
                    scratch_dir=None) -> RunState:
    """Builds G, D, optimizers, RNG and the checkpoint, restoring the latest one if any.

    Args:
      restore: restore the newest checkpoint of the run directory.
      scratch_dir: None on the chief, whose CheckpointManager keeps the run's checkpoints;
        on another worker, the directory its manager saves into, and the run directory
        is only read.
    """
    checkpoint_dir = pathlib.Path(config.run_dir) / "checkpoints"
    g_learning_rate, d_learning_rate = schedules.optimizer_learning_rates(
        config, planned_steps(config)[1])
    with strategy.scope():
        generator = models.build_generator(config.model)
        discriminator = models.build_discriminator(config.model)
        ema_generator = None
        if config.ema_decay:
            ema_generator = models.build_generator(config.model)
            ema_generator.set_weights(generator.get_weights())
        noise = tf.random.Generator.from_seed(config.seed)
        fixed_noise = tf.Variable(
            tf.random.Generator.from_seed(config.seed + 1).normal(
                [_grid_noise_count(config.num_fixed_samples, bool(config.model.num_classes)),
                 config.model.noise_dim]),
            trainable=False, name="fixed_noise")
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        gan_step = GanStep(
            generator, discriminator,
            make_optimizer(config.generator_optimizer, policy_name, g_learning_rate),
            make_optimizer(config.discriminator_optimizer, policy_name, d_learning_rate),
            losses.get_loss(config.loss), noise, config.data.global_batch_size,
            config.model.noise_dim, update=config.update, jit_compile=config.jit_compile,
            n_critic=config.n_critic, gp_weight=config.gp_weight, r1_weight=config.r1_weight,
            ema_generator=ema_generator, ema_decay=config.ema_decay, augment=config.augment,
            r2_weight=config.r2_weight, penalty_every=config.penalty_every)
    checkpointed = dict(
        generator=generator, discriminator=discriminator,
        layer_rng_states=_layer_rng_states(generator) + _layer_rng_states(discriminator),
        generator_optimizer=gan_step.generator_optimizer,
        discriminator_optimizer=gan_step.discriminator_optimizer,
        noise=noise, fixed_noise=fixed_noise, step=step, epoch=epoch)
    if ema_generator is not None:
        checkpointed["ema_generator"] = ema_generator  # The key checkpoints.py restores.
    checkpoint = tf.train.Checkpoint(**checkpointed)
    if restore:
        # Before the manager reads the state file, which restore_latest may repair.
        runs.restore_latest(checkpoint, checkpoint_dir, repair=scratch_dir is None)
    manager = tf.train.CheckpointManager(
        checkpoint, scratch_dir or checkpoint_dir, max_to_keep=config.max_checkpoints,
        step_counter=step)
    return RunState(generator, discriminator, ema_generator, gan_step, step, epoch,
                    fixed_noise, checkpoint, manager)


def _complete_row(row) -> int | None:
    """The step of a losses.csv row whose every column parses as a number, else None."""
    if None in row or any(row.get(name) in (None, "") for name in CSV_COLUMNS):
        return None
    try:
        [float(row[name]) for name in CSV_COLUMNS]
        return int(row["step"])
    except ValueError:
        return None


class _LossLog:
    """losses.csv, one row per step, appended once per training call.

    On resume it keeps exactly one row per step up to the restored step: rows beyond it
    (computed after the last checkpoint), a last row cut short by a kill (no newline), and
    rows that do not parse are dropped; of duplicated steps the newest row is kept.
    """

    def __init__(self, path: pathlib.Path, restored_step: int):
        self.path = path
        rows = {}
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            if lines and not lines[-1].endswith("\n"):
                lines.pop()
            for row in csv.DictReader(lines):
                step = _complete_row(row)
                if step is not None and 1 <= step <= restored_step:
                    rows[step] = row
        if len(rows) < restored_step:
            print(f"Note: {path} lacks {restored_step - len(rows)} of the steps 1 to "
                  f"{restored_step}, which cannot be recomputed.")
        with atomic_path(path) as partial, partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows[step] for step in sorted(rows))
        self.train_seconds = float(rows[max(rows)]["train_seconds"]) if rows else 0.0

    def append(self, rows):
        with self.path.open("a", newline="") as file:
            csv.DictWriter(file, CSV_COLUMNS).writerows(rows)

    def read_columns(self):
        with self.path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        return {name: np.array([float(row[name]) for row in rows]) for name in CSV_COLUMNS}


def _check_config(config: TrainConfig, strategy, steps_per_epoch: int):
    if config.model.num_classes not in (0, len(data.CLASS_NAMES)):
        raise ConfigError(f"A conditional model of Fashion-MNIST has {len(data.CLASS_NAMES)} "
                          f"classes, got num_classes={config.model.num_classes}.")
    expected_range = models.output_range(config.model.architecture)
    if tuple(config.data.pixel_range) != expected_range:
        raise ConfigError(f"data.pixel_range {config.data.pixel_range} does not match the "
                         f"{config.model.architecture} generator's output {expected_range}.")
    num_replicas = strategy.num_replicas_in_sync
    if config.data.global_batch_size % num_replicas:
        raise ConfigError(f"The global batch size {config.data.global_batch_size} is not "
                         f"divisible by the {num_replicas} replicas.")
    if steps_per_epoch < 1:
        raise ConfigError(f"The split {config.data.split!r} holds fewer images than one step's "
                         f"{config.n_critic} batch(es) of {config.data.global_batch_size}.")
    if config.max_train_minutes is not None and distribute.num_workers(strategy) > 1:
        # Each worker times its own steps; workers that stopped at different steps would
        # wait for each other's all-reduces forever.
        raise ConfigError("max_train_minutes needs a single worker.")
    losses.get_loss(config.loss)
    penalized = config.gp_weight or config.r1_weight or config.r2_weight
    if penalized and models.discriminator_mixes_examples(config.model):
        raise ConfigError(
            f"The {config.model.architecture} discriminator has batch norm, so the gradient "
            "penalties, which take each image's own gradient, cannot apply to it: use one "
            "without (fast_nf, fast_sn, tutorial_critic).")


class _Artifacts:
    """Writes the pictures, plots, exports, losses.csv and TensorBoard events of a run
    directory: the chief's outputs.

    Each start writes a new TensorBoard event file, flushed before every checkpoint so a
    kill loses no event of a checkpointed step. A resumed run writes again the steps that
    followed its checkpoint; TensorBoard's default loader reads a run's event files in
    name (start-time) order and drops a series' values at and after a step that comes
    again, so it shows the values of the resumed run. (`--load_fast=false` shows both.)
    """

    def __init__(self, config: TrainConfig, state: RunState, log: _LossLog):
        self.run_dir = pathlib.Path(config.run_dir)
        self.pixel_range = config.data.pixel_range
        self.class_names = data.CLASS_NAMES if config.model.num_classes else ()
        self.seed = config.seed
        self.state = state
        self.log = log
        self.samples_dir = self.run_dir / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))

    @property
    def train_seconds(self) -> float:
        return self.log.train_seconds

    def record_call(self, first_step, epoch, metrics, seconds, images_per_sec):
        """The losses.csv rows and TensorBoard scalars of one call's steps."""
        num_steps = len(metrics)
        self.log.append({"step": first_step + i, "epoch": epoch,
                         "images_per_sec": images_per_sec,
                         "train_seconds": self.log.train_seconds + (i + 1) * seconds / num_steps,
                         **dict(zip(METRIC_NAMES, row))} for i, row in enumerate(metrics))
        self.log.train_seconds += seconds
        with self.writer.as_default():
            for offset, row in enumerate(metrics):
                for name, value in zip(METRIC_NAMES, row):
                    tf.summary.scalar(f"train/{name}", value, step=first_step + offset)
            tf.summary.scalar("train/images_per_sec", images_per_sec,
                              step=first_step + len(metrics) - 1)

    def before_checkpoint(self):
        # Every event of a checkpointed step reaches the file before the checkpoint does
        # (TF 2.21 writes each event at once, but the writer's contract only promises a
        # flush every 10 events or 2 minutes).
        self.writer.flush()

    def after_checkpoint(self):
        pass

    def _picture(self, noise):
        """G's images of `noise` [k, noise_dim] as uint8 [H, W, 1] at PNG_SCALE: a square
        grid, or for a conditional G one row of k per class, labelled with its name."""
        generator = self.state.sampling_generator
        if not self.class_names:
            samples = generator(noise, training=False).numpy()
            return images.magnify(images.grid(samples, self.pixel_range), PNG_SCALE)
        z, labels = _class_rows(noise, len(self.class_names))
        samples = generator(models.model_input(z, labels), training=False).numpy()
        return images.labelled_grid(samples, self.pixel_range, self.class_names, PNG_SCALE)

    def end_of_epoch(self, epoch: int, step: int):
        picture = self._picture(self.state.fixed_noise)
        images.write_png(self.samples_dir / _sample_name(epoch), picture)
        with self.writer.as_default():
            tf.summary.image("samples", picture[None], step=step)
        frames = [tf.io.decode_png(tf.io.read_file(str(path))).numpy()
                  for path in sorted(self.samples_dir.glob("epoch_*.png"))]
        images.write_gif(self.run_dir / "progress.gif", frames)
        self.plot_losses()
        self.export_models()

    def plot_losses(self):
        columns = self.log.read_columns()
        if len(columns["step"]):
            images.plot_columns(self.run_dir / "loss_curves.png", columns["step"],
                                {name: columns[name] for name in METRIC_NAMES},
                                xlabel="step", title=self.run_dir.name)

    def export_models(self):
        for name, model in (("generator", self.state.sampling_generator),
                            ("discriminator", self.state.discriminator)):
            with atomic_path(self.run_dir / f"{name}.keras") as partial:
                model.save(partial)

    def final(self):
        noise = tf.random.Generator.from_seed(self.seed + 2).normal(
            [_grid_noise_count(FINAL_GRID_SIZE, bool(self.class_names)),
             models.generator_noise_dim(self.state.sampling_generator)])
        images.write_png(self.run_dir / "final_grid.png", self._picture(noise))
        self.plot_losses()
        self.export_models()
        self.writer.flush()


class _WorkerOutputs:
    """What a worker other than the chief writes: no artifact, and checkpoints that it
    deletes as soon as they are written.

    MultiWorkerMirroredStrategy needs every worker to save (a save may all-reduce the
    variables), and two workers must not write the same files, so each writes into its
    own scratch directory, the way TensorFlow's multi-worker callbacks do.
    """

    train_seconds = 0.0  # Only read for max_train_minutes, which needs a single worker.

    def __init__(self, scratch_dir):
        self.scratch_dir = pathlib.Path(scratch_dir)

    def record_call(self, first_step, epoch, metrics, seconds, images_per_sec):
        pass

    def before_checkpoint(self):
        pass

    def after_checkpoint(self):
        for path in self.scratch_dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def end_of_epoch(self, epoch: int, step: int):
        pass

    def final(self):
        pass


def _remove_leftovers(run_dir: pathlib.Path, epochs: int):
    """What a killed run leaves: temporary files of its writes and of its last save."""
    runs.remove_interrupted_saves(run_dir / "checkpoints")
    remove_partials(run_dir, RUN_FILES)
    remove_partials(run_dir / "samples", [_sample_name(e) for e in range(1, epochs + 1)])


def _finite_weights(state: RunState) -> bool:
    weights = [weight for model in (state.generator, state.discriminator)
               for weight in model.weights if keras.backend.is_float_dtype(weight.dtype)]
    return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in weights]))


class _Saver:
    """Checkpoints the run state, never with a non-finite weight, and knows the last
    step saved.

    Args:
      state: the run state; its manager saves the checkpoints.
      outputs: the `_Artifacts` or `_WorkerOutputs` of this process.
      checkpoint_dir: the run directory's checkpoints, where the chief's manager saves.
    """

    def __init__(self, state: RunState, outputs, checkpoint_dir: pathlib.Path):
        self.state = state
        self.outputs = outputs
        self.checkpoint_dir = checkpoint_dir
        self.saved_step = int(state.step.numpy())

    @property
    def latest(self) -> str | None:
        """The prefix of the run's checkpoint of the last step saved or restored (None
        before the first): on every worker, the chief's copy."""
        return str(self.checkpoint_dir / f"ckpt-{self.saved_step}") if self.saved_step else None

    def resume_advice(self) -> str:
        if self.latest is None:
            return "Nothing was saved: no checkpoint had been written yet."
        return (f"Nothing after the latest checkpoint, {self.latest}, was saved: lower the "
                "learning rates (or fix the loss) and run the same command to resume from it.")

    def save(self, step: int):
        """Checkpoints `step`, unless G or D holds a non-finite weight (NonFiniteError).

        The weights can turn non-finite in the last step of a call whose losses were still
        finite; checking them here (once per checkpoint) keeps such a state out of every
        checkpoint, and so out of the exports, which are made from checkpointed states.
        """
        if not _finite_weights(self.state):
            raise NonFiniteError(
                f"Non-finite weights in G or D after step {step}, though every loss so far "
                f"was finite. {self.resume_advice()}", step)
        self.outputs.before_checkpoint()
        self.state.manager.save(checkpoint_number=step)
        self.outputs.after_checkpoint()
        self.saved_step = step

    def save_for_stop(self) -> tuple[int, str | None]:
        """Checkpoints the step reached unless it is saved; returns it and its checkpoint."""
        step = int(self.state.step.numpy())
        if step > self.saved_step:
            self.save(step)
        return step, self.latest


def _raise_if_non_finite(metrics: np.ndarray, first_step: int, saver: _Saver):
    """Raises NonFiniteError naming the first step of `metrics` [steps, 4] with a NaN/inf.

    Runs on the array each call returns anyway, so it costs no extra host sync. Under
    mixed_float16 the LossScaleOptimizer skips steps whose scaled gradients overflow:
    those steps have finite losses and are not errors.
    """
    finite = np.isfinite(metrics).all(axis=1)
    if finite.all():
        return
    index = int(np.argmin(finite))
    values = ", ".join(f"{name}={value:.4g}" for name, value in zip(METRIC_NAMES, metrics[index]))
    raise NonFiniteError(f"Non-finite loss at step {first_step + index} ({values}). "
                         f"{saver.resume_advice()}", first_step + index)


def train(config: TrainConfig, strategy=None, run_info=None, new_run=False) -> dict:
    """Trains (or resumes) the run in `config.run_dir` until its last step.

    Args:
      config: the run's configuration.
      strategy: a `tf.distribute` strategy; default `distribute.make_strategy()`. Under a
        MultiWorkerMirroredStrategy every worker calls `train` with the same arguments.
      run_info: extra JSON-serialisable facts for config.json (e.g. the binary's flags).
      new_run: rename an existing `config.run_dir` to `<run_dir>.old-<timestamp>` and
        start afresh instead of resuming it.

    Returns:
      {"step": final step, "metrics": {name: value of the last step}}.

    Raises:
      ConfigError, DatasetUnavailableError: before anything is written.
      RunDirectoryError: before any training; the run directory disagrees with `config`
        (see `runs.RESUME_FIELDS`), is in use or unwritable, or its latest checkpoint
        cannot be restored, or the workers restored different steps.
      NonFiniteError: a loss or weight became NaN/inf; the latest checkpoint and the
        exported models hold the last finite state.
      TrainingInterrupted: SIGTERM or SIGINT arrived (checked between `tf.function`
        calls; under MultiWorkerMirroredStrategy on any worker, and every worker raises
        it); a checkpoint holds the step reached. The signal handlers in place before
        the call are restored on return.
    """
    with preemption.StopSignals() as signals, contextlib.ExitStack() as cleanup:
        return _train(config, strategy, run_info, new_run, signals, cleanup)


def _run_record(config, strategy, policy_name, steps_per_epoch, run_info) -> dict:
    """The contents of config.json."""
    return {
        "config": dataclasses.asdict(config),
        "precision_policy": policy_name,
        "replicas": strategy.num_replicas_in_sync,
        "workers": distribute.num_workers(strategy),
        "steps_per_epoch": steps_per_epoch,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": _git_commit(),
        **(run_info or {}),
    }


def _start_chief(config, strategy, record, new_run, cleanup):
    """Locks the run directory and restores its run state; returns (state, outputs)."""
    run_dir = pathlib.Path(config.run_dir)
    moved = runs.prepare(run_dir, record, new_run=new_run)
    if moved:
        print(f"Moved the previous run in {run_dir} to {moved}.")
    cleanup.enter_context(runs.lock(run_dir))
    _remove_leftovers(run_dir, config.epochs)
    keras.mixed_precision.set_global_policy(record["precision_policy"])
    state = build_run_state(config, record["precision_policy"], strategy)
    write_json(run_dir / "config.json", record)
    log = _LossLog(run_dir / "losses.csv", restored_step=int(state.step.numpy()))
    return state, _Artifacts(config, state, log)


def _start_worker(config, strategy, policy_name, new_run, cleanup):
    """Restores the run state from the chief's checkpoints (unless the run is new: the
    chief moves the old one aside); returns (state, outputs)."""
    resolver = strategy.cluster_resolver
    print(f"{resolver.task_type} {resolver.task_id}: the chief writes {config.run_dir}.")
    scratch_dir = cleanup.enter_context(tempfile.TemporaryDirectory(
        prefix=f"dcgan-{resolver.task_type}{resolver.task_id}-checkpoints-"))
    keras.mixed_precision.set_global_policy(policy_name)
    state = build_run_state(config, policy_name, strategy, restore=not new_run,
                            scratch_dir=scratch_dir)
    return state, _WorkerOutputs(scratch_dir)


def _check_one_restored_step(strategy, state: RunState, run_dir):
    """Raises RunDirectoryError unless every worker restored the same step."""
    steps = distribute.gather_from_replicas(strategy, state.step)
    if len(set(steps)) > 1:
        raise runs.RunDirectoryError(
            f"The workers restored different steps ({steps}, in replica order): every "
            f"worker reads the chief's checkpoints in {run_dir}, so it must be one "
            "directory that all of them see at that path (shared storage).")


def _distributed_batches(config: TrainConfig, strategy, epoch: int, step_in_epoch: int):
    """The distributed dataset of an epoch from `step_in_epoch` on."""
    # A step's n_critic batches are read as one, so that an epoch drops its remainder of
    # less than a step and a resumed run skips whole steps; then split back into batches.
    step_data = dataclasses.replace(
        config.data, global_batch_size=config.n_critic * config.data.global_batch_size)

    def dataset_fn(context):
        steps = data.load_split(step_data, first_epoch=epoch).skip(step_in_epoch)
        return distribute.replica_batches(steps, config.data.global_batch_size, context)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _train(config, strategy, run_info, new_run, signals, cleanup) -> dict:
    strategy = strategy or distribute.make_strategy()
    run_dir = pathlib.Path(config.run_dir)
    policy_name = distribute.resolve_precision(config.precision)
    images_per_step = config.n_critic * config.data.global_batch_size
    steps_per_epoch, total_steps = planned_steps(config)
    _check_config(config, strategy, steps_per_epoch)
    data.verify_records(config.data)

    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    if distribute.is_chief(strategy):
        record = _run_record(config, strategy, policy_name, steps_per_epoch, run_info)
        state, outputs = _start_chief(config, strategy, record, new_run, cleanup)
    else:
        state, outputs = _start_worker(config, strategy, policy_name, new_run, cleanup)
    if distribute.num_workers(strategy) > 1:
        _check_one_restored_step(strategy, state, run_dir)
    saver = _Saver(state, outputs, run_dir / "checkpoints")
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        stop = preemption.ClusterStop(signals, strategy, state.manager, saver.save_for_stop)
    else:
        stop = preemption.LocalStop(signals, saver.save_for_stop)
    cleanup.callback(stop.close)

    step = saver.saved_step
    epoch, step_in_epoch = divmod(step, steps_per_epoch)
    if step and not step_in_epoch:
        # A kill may have come between this epoch end's checkpoint and its pictures and
        # exports; they depend only on the restored state, so redo them.
        outputs.end_of_epoch(epoch, step)
    last_epoch = -(-total_steps // steps_per_epoch)

    def out_of_time():
        return (config.max_train_minutes is not None
                and outputs.train_seconds >= 60 * config.max_train_minutes)

    metrics = np.full((1, len(METRIC_NAMES)), np.nan)
    progress = None
    while step < total_steps and not out_of_time():
        epoch, step_in_epoch = divmod(step, steps_per_epoch)
        if progress is None:
            # One iterator per epoch (calls never straddle epochs); a resumed run skips the
            # steps it has already taken.
            iterator = iter(_distributed_batches(config, strategy, epoch, step_in_epoch))
            print(f"Epoch {epoch + 1}/{last_epoch}")
            progress = keras.utils.Progbar(steps_per_epoch, stateful_metrics=METRIC_NAMES
                                           + ("img/s",))
        steps_to_checkpoint = config.checkpoint_every_steps - step % config.checkpoint_every_steps
        num_steps = min(config.steps_per_call, total_steps - step,
                        steps_per_epoch - step_in_epoch, steps_to_checkpoint)
        started = time.perf_counter()
        metrics = stop.run(
            lambda: state.gan_step.train(iterator, tf.constant(num_steps, tf.int32))).numpy()
        seconds = time.perf_counter() - started
        images_per_sec = num_steps * images_per_step / seconds
        state.step.assign_add(num_steps)
        outputs.record_call(step + 1, epoch + 1, metrics, seconds, images_per_sec)
        _raise_if_non_finite(metrics, step + 1, saver)
        step += num_steps
        progress.update(step_in_epoch + num_steps, values=list(zip(METRIC_NAMES, metrics[-1]))
                        + [("img/s", images_per_sec)])
        epoch_done = step % steps_per_epoch == 0
        if epoch_done:
            state.epoch.assign(epoch + 1)
        if out_of_time():
            total_steps = step
        if epoch_done or step % config.checkpoint_every_steps == 0 or step == total_steps:
            saver.save(step)
        if epoch_done:
            outputs.end_of_epoch(epoch + 1, step)
            progress = None
    outputs.final()
    stop.close()
    if distribute.num_workers(strategy) > 1:
        # A barrier: the chief, whose process runs the cluster's coordination service,
        # returns only when every worker is done with it.
        distribute.gather_from_replicas(strategy, state.step)
    return {"step": step, "metrics": dict(zip(METRIC_NAMES, metrics[-1].tolist()))}
