"""What a run writes besides its checkpoints: losses.csv rows, TensorBoard events,
sample pictures, loss curves and the exported models.

The training loop calls one outputs object at five moments, and nothing else of this
module: `record_call` after every `tf.function` call, `before_checkpoint` and
`after_checkpoint` around every save, `end_of_epoch` after an epoch's checkpoint, `final`
when training ends, and `export_checkpoint` when a non-finite value stops it. The chief's
is `ChiefOutputs`; any other worker of a multi-worker run has a `WorkerOutputs`, which
writes nothing.

An epoch end writes only its sample grid (~0.3 s); progress.gif, loss_curves.png and the
exports are written once, when training ends. Made at every epoch end they cost 2-3 s
there on a 2-core CPU, most of it the plot of the whole losses.csv, which grows with the
run (docs/log/13-wall-clock-efficiency.md).
"""

import dataclasses
import pathlib
import shutil

import keras
import tensorflow as tf

from dcgan import data, models
from dcgan.gan.step import METRIC_NAMES
from dcgan.recipes.plan import RunPlan
from dcgan.rundir import checkpoints
from dcgan.rundir.layout import RunDirectory
from dcgan.rundir.loss_log import LossLog
from dcgan.runtime import images
from dcgan.runtime.files import atomic_path, remove_partials
from dcgan.training.run_state import RunState, grid_noise_count

__all__ = ["ChiefOutputs", "WorkerOutputs", "remove_leftovers"]

FINAL_GRID_SIZE = 25  # 5x5 (a conditional G: 5 per class)
PNG_SCALE = 3  # 28-pixel images are too small to judge at 1:1.


def remove_leftovers(run_dir: RunDirectory):
    """What a killed run leaves: temporary files of its writes and of its last save."""
    checkpoints.remove_interrupted_saves(run_dir.checkpoints)
    remove_partials(run_dir.path, RunDirectory.TRAINER_FILES)
    remove_partials(run_dir.samples)


class ChiefOutputs:
    """Writes the pictures, plots, exports, losses.csv and TensorBoard events of a run
    directory: the chief's outputs.

    Each start writes a new TensorBoard event file, flushed before every checkpoint so a
    kill loses no event of a checkpointed step. A resumed run writes again the steps that
    followed its checkpoint; TensorBoard's default loader reads a run's event files in
    name (start-time) order and drops a series' values at and after a step that comes
    again, so it shows the values of the resumed run. (`--load_fast=false` shows both.)
    """

    def __init__(self, plan: RunPlan, run_dir: RunDirectory, state: RunState, log: LossLog):
        self.run_dir = run_dir
        self.pixel_range = plan.pixel_range
        self.class_names = data.CLASS_NAMES if plan.config.model.num_classes else ()
        self.seed = plan.config.seed
        self.model_config = plan.config.model
        self.state = state
        self.log = log
        run_dir.samples.mkdir(parents=True, exist_ok=True)
        self.writer = tf.summary.create_file_writer(str(run_dir.tensorboard))

    @property
    def train_seconds(self) -> float:
        """Training time over all resumes, as losses.csv counts it."""
        return self.log.train_seconds

    def record_call(self, first_step, epoch, metrics, seconds, images_per_sec):
        """The losses.csv rows and TensorBoard scalars of one call's steps.

        Args:
          first_step: the step of the call's first row (1-based).
          epoch: the 1-based epoch the steps belong to.
          metrics: {name: numpy [steps]}, the values of `GanStep.train`'s result.
          seconds: the call's wall time; images_per_sec: its throughput.
        """
        rows = [dict(zip(metrics, values)) for values in zip(*metrics.values())]
        self.log.append({"step": first_step + i, "epoch": epoch,
                         "images_per_sec": images_per_sec,
                         "train_seconds": self.log.train_seconds + (i + 1) * seconds / len(rows),
                         **row} for i, row in enumerate(rows))
        self.log.train_seconds += seconds
        with self.writer.as_default():
            for offset, row in enumerate(rows):
                for name, value in row.items():
                    tf.summary.scalar(f"train/{name}", value, step=first_step + offset)
            tf.summary.scalar("train/images_per_sec", images_per_sec,
                              step=first_step + len(rows) - 1)

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
        z, labels = models.class_rows(noise, len(self.class_names))
        samples = generator(models.model_input(z, labels), training=False).numpy()
        return images.labelled_grid(samples, self.pixel_range, self.class_names, PNG_SCALE)

    def end_of_epoch(self, epoch: int, step: int):
        """The epoch's sample grid (and TensorBoard image), from the state just
        checkpointed at `step`."""
        picture = self._picture(self.state.fixed_noise)
        images.write_png(self.run_dir.epoch_grid(epoch), picture)
        with self.writer.as_default():
            tf.summary.image("samples", picture[None], step=step)

    def _plot_losses(self):
        columns = self.log.read_columns()
        if len(columns["step"]):
            images.plot_columns(self.run_dir.loss_curves, columns["step"],
                                {name: columns[name] for name in METRIC_NAMES},
                                xlabel="step", title=self.run_dir.path.name)

    def _export_models(self):
        for name, model, build in (
                ("generator", self.state.sampling_generator, models.build_generator),
                ("discriminator", self.state.discriminator, models.build_discriminator)):
            with atomic_path(self.run_dir.exported(name)) as partial:
                _plain_keras_copy(model, build, self.model_config).save(partial)

    def export_checkpoint(self, prefix: str | None):
        """The exports of the checkpoint `prefix` (nothing if None), restored into the run
        state: for a run that a non-finite value stopped, whose state in memory is not
        the last one saved."""
        if prefix is not None:
            self.state.checkpoint.restore(prefix)
            self._export_models()

    def final(self):
        """final_grid.png from a noise of its own, progress.gif from every epoch's grid,
        the loss curves and the exports."""
        noise = tf.random.Generator.from_seed(self.seed + 2).normal(
            [grid_noise_count(FINAL_GRID_SIZE, bool(self.class_names)),
             models.generator_noise_dim(self.state.sampling_generator)])
        images.write_png(self.run_dir.final_grid, self._picture(noise))
        frames = [tf.io.decode_png(tf.io.read_file(str(path))).numpy()
                  for path in self.run_dir.epoch_grids()]
        if frames:
            images.write_gif(self.run_dir.progress_gif, frames)
        self._plot_losses()
        self._export_models()
        self.writer.flush()


def _plain_keras_copy(model, build, model_config) -> keras.Model:
    """The network of `model` built again by `build` from `model_config`, in plain Keras
    layers (Keras' `BatchNormalization` for the fused one, which has the same weights:
    `dcgan.models.normalization`) computing in float32, with `model`'s weights. So an
    export loads with `keras.models.load_model` alone, and samples as the run's
    checkpoint restored by `dcgan.rundir.checkpoints` does, alike on every machine
    whatever precision trained it. (The weights of a mixed-precision model are float32
    already: nothing is rounded.)"""
    with models.global_policy("float32"):
        copy = build(dataclasses.replace(model_config, fused_batch_norm=False))
    copy.set_weights(model.get_weights())
    return copy


class WorkerOutputs:
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

    def export_checkpoint(self, prefix):
        pass

    def final(self):
        pass
