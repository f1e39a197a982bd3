"""The training loop: plan, resume, steps, checkpoints, and the run's outputs.

What lands in the run directory is `dcgan.rundir.layout`'s to say. Whatever stops a run,
the directory stays resumable by the same command:
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
after each save (`artifacts.WorkerOutputs`). All of them must therefore see the run
directory at the same path: one machine, or storage they share.
"""

import contextlib
import dataclasses
import math
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan import data, models
from dcgan.core.config import TrainConfig
from dcgan.core.errors import NonFiniteError, RunDirectoryError
from dcgan.gan import diversity
from dcgan.gan.step import METRIC_NAMES
from dcgan.recipes.plan import RunPlan, make_plan
from dcgan.rundir import records
from dcgan.rundir.layout import RunDirectory
from dcgan.rundir.loss_log import LossLog
from dcgan.runtime import distribute
from dcgan.training import preemption, progress
from dcgan.training.artifacts import ChiefOutputs, WorkerOutputs, remove_leftovers
from dcgan.training.run_state import RunState, build_run_state
from dcgan.training.saver import Saver, raise_if_non_finite

__all__ = ["train"]


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
        (see `records.RESUME_FIELDS`), is in use or unwritable, or its latest checkpoint
        cannot be restored, or the workers restored different steps.
      NonFiniteError: a loss or weight became NaN/inf; the latest checkpoint and the
        exported models (exported from it then) hold the last finite state.
      TrainingInterrupted: SIGTERM or SIGINT arrived (checked between `tf.function`
        calls; under MultiWorkerMirroredStrategy on any worker, and every worker raises
        it); a checkpoint holds the step reached. The signal handlers in place before
        the call are restored on return.
    """
    with preemption.StopSignals() as signals, contextlib.ExitStack() as cleanup:
        return _train(config, strategy, run_info, new_run, signals, cleanup)


def _plan(config, strategy, run_dir: RunDirectory, new_run) -> RunPlan:
    """The run's plan. "auto" resumes a run in the dtype policy its config.json records,
    which auto's timing of this machine (`hardware.resolve_dtype_policy`) need not
    give again."""
    recorded = None
    if config.dtype_policy == "auto" and not new_run:
        recorded = run_dir.recorded_dtype_policy()
    return make_plan(config, strategy.num_replicas_in_sync, distribute.num_workers(strategy),
                     dtype_policy=recorded, replicas_on_gpus=distribute.on_gpus(strategy))


def _start_chief(plan, strategy, run_dir: RunDirectory, run_info, new_run, cleanup):
    """Locks the run directory and restores its run state; returns (state, outputs)."""
    record = records.run_record(plan, run_info)
    moved = run_dir.prepare(record, new_run=new_run)
    if moved:
        print(f"Moved the previous run in {run_dir} to {moved}.")
    cleanup.enter_context(run_dir.lock())
    remove_leftovers(run_dir)
    keras.mixed_precision.set_global_policy(plan.dtype_policy)
    state = build_run_state(plan, strategy, run_dir.checkpoints)
    run_dir.write_record(record)
    log = LossLog(run_dir.losses_csv, restored_step=state.steps_taken)
    return state, ChiefOutputs(plan, run_dir, state, log)


def _start_worker(plan, strategy, run_dir: RunDirectory, new_run, cleanup):
    """Restores the run state from the chief's checkpoints (unless the run is new: the
    chief moves the old one aside); returns (state, outputs)."""
    resolver = strategy.cluster_resolver
    print(f"{resolver.task_type} {resolver.task_id}: the chief writes {run_dir}.")
    scratch_dir = cleanup.enter_context(tempfile.TemporaryDirectory(
        prefix=f"dcgan-{resolver.task_type}{resolver.task_id}-checkpoints-"))
    keras.mixed_precision.set_global_policy(plan.dtype_policy)
    state = build_run_state(plan, strategy, run_dir.checkpoints, restore=not new_run,
                            scratch_dir=scratch_dir)
    return state, WorkerOutputs(scratch_dir)


def _check_one_restored_step(strategy, state: RunState, run_dir):
    """Raises RunDirectoryError unless every worker restored the same step."""
    steps = distribute.gather_from_replicas(strategy, state.step)
    if len(set(steps)) > 1:
        raise RunDirectoryError(
            f"The workers restored different steps ({steps}, in replica order): every "
            f"worker reads the chief's checkpoints in {run_dir}, so it must be one "
            "directory that all of them see at that path (shared storage).")


# Epochs one input iterator serves. Deleting a tf.data iterator that has run for minutes
# blocks until its pipeline's background threads next wake, which can be up to a minute
# later: with one iterator per epoch, 0-60 s at epoch ends, 13-20% of a run's wall.
EPOCHS_PER_ITERATOR = 25


def _step_batch_iterator(plan: RunPlan, strategy, step: int, end: float):
    """An iterator over the distributed step batches from `step` on, through the end of
    EPOCHS_PER_ITERATOR epochs or of the epoch holding step `end` (math.inf: no end),
    and the step after which it runs out."""
    config, steps_per_epoch = plan.config, plan.steps_per_epoch
    epoch = step // steps_per_epoch
    num_epochs = (EPOCHS_PER_ITERATOR if end == math.inf else
                  min(EPOCHS_PER_ITERATOR, math.ceil(end / steps_per_epoch) - epoch))
    # A step's n_critic batches are read as one, so that an epoch drops its remainder of
    # less than a step and a resumed run skips whole steps; then split back into batches.
    step_data = dataclasses.replace(config.data, global_batch_size=plan.images_per_step)

    def dataset_fn(context):
        steps = data.load_split(step_data, plan.pixel_range, with_labels=config.with_labels,
                                shuffle_seed=config.shuffle_seed, epochs=num_epochs,
                                first_epoch=epoch).skip(step - epoch * steps_per_epoch)
        return distribute.replica_batches(steps, config.data.global_batch_size, context)

    return (iter(strategy.distribute_datasets_from_function(dataset_fn)),
            (epoch + num_epochs) * steps_per_epoch)


# The epoch line's collapse check (`gan.diversity`, in pixels): the samples of fixed noise,
# DIVERSITY_SAMPLES_PER_CLASS of each class of a conditional G (its labels i mod C) or
# DIVERSITY_SAMPLES of an unconditional one, against the first DIVERSITY_REFERENCE_IMAGES
# images of the training split (stored shuffled: ~100 a class), read once per process.
# The ratio's standard error at 64 samples is a few percent, far inside the threshold's
# margins; the check took 0.8 s for a conditional fast_deep_gd on 2 CPU cores (the
# reference 0.6 s more, once), under 1% of its 1,875-step epoch.
DIVERSITY_SAMPLES_PER_CLASS = 64
DIVERSITY_SAMPLES = 256
DIVERSITY_REFERENCE_IMAGES = 1000
# No check before this step: every generator starts as near-copies (grey blobs alike,
# ratio 0.014-0.12 untrained and up to 200 steps in, the EMA G lagging behind G). At 1,000
# steps fast_deep_gd's varied classes scored 0.54-0.91, conditional or not, its collapsing
# ones (Sandal, Sneaker) 0.42-0.43 (gan.diversity.COLLAPSE_RATIO).
DIVERSITY_WARMUP_STEPS = 1000


class _SampleDiversity:
    """`gan.diversity.diversity_ratios` of a generator's samples in pixels, against the
    training images' spread, which it reads and measures on its first call."""

    def __init__(self, plan: RunPlan):
        self.plan = plan
        self.real_distances = None

    def _measure_real(self) -> np.ndarray:
        config, num_classes = self.plan.config, self.plan.config.model.num_classes
        reference = dataclasses.replace(config.data, global_batch_size=DIVERSITY_REFERENCE_IMAGES,
                                        drop_remainder=False, cache=False)
        [(images, labels)] = data.load_split(reference, self.plan.pixel_range,
                                             with_labels=True).take(1).as_numpy_iterator()
        return diversity.mean_pairwise_distances(images, labels if num_classes else None,
                                                 num_classes)

    def __call__(self, generator) -> np.ndarray:
        """float64 [num_classes] or [1]: each class's (or all) samples' ratio."""
        if self.real_distances is None:
            self.real_distances = self._measure_real()
        num_classes = self.plan.config.model.num_classes
        count = DIVERSITY_SAMPLES_PER_CLASS * num_classes if num_classes else DIVERSITY_SAMPLES
        # A generator of its own seed: the run's noise stream is left as it was.
        samples, labels = models.seeded_samples(generator, count, self.plan.config.seed, count)
        return diversity.diversity_ratios(samples, self.real_distances, labels)


def _train(config, strategy, run_info, new_run, signals, cleanup) -> dict:
    strategy = strategy or distribute.make_strategy()
    run_dir = RunDirectory(config.run_dir)
    plan = _plan(config, strategy, run_dir, new_run)

    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    if distribute.is_chief(strategy):
        state, outputs = _start_chief(plan, strategy, run_dir, run_info, new_run, cleanup)
    else:
        state, outputs = _start_worker(plan, strategy, run_dir, new_run, cleanup)
    if plan.workers > 1:
        _check_one_restored_step(strategy, state, run_dir)
    print(progress.header((run_info or {}).get("preset", config.model.architecture), state,
                          plan.config.data.global_batch_size, plan.dtype_policy, strategy,
                          run_dir, plan.scaling), flush=True)
    saver = Saver(state, outputs, run_dir.checkpoints)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        stop = preemption.ClusterStop(signals, strategy, state.manager, saver.save_for_stop)
    else:
        stop = preemption.LocalStop(signals, saver.save_for_stop)
    cleanup.callback(stop.close)

    try:
        metrics = _train_steps(plan, strategy, state, outputs, saver, stop)
    except NonFiniteError:
        # The exports are otherwise made when training ends (`outputs.final`).
        outputs.export_checkpoint(saver.latest)
        raise
    outputs.final()
    stop.close()
    if plan.workers > 1:
        # A barrier: the chief, whose process runs the cluster's coordination service,
        # returns only when every worker is done with it.
        distribute.gather_from_replicas(strategy, state.step)
    return {"step": state.steps_taken,
            "metrics": {name: float(values[-1]) for name, values in metrics.items()}}


def _train_steps(plan: RunPlan, strategy, state, outputs, saver, stop) -> dict:
    """Trains from the restored step to the plan's `total_steps` (None: no limit), or
    until `max_train_minutes` of training: one `tf.function` call at a time, each within
    one epoch and one checkpoint period. Checkpoints at every period's end, epoch end and
    the last step.

    Returns:
      {name: float32 [steps]}, the metrics of the last call (NaN when no call ran).
    """
    config, steps_per_epoch, total_steps = plan.config, plan.steps_per_epoch, plan.total_steps
    # No step limit (epochs None): only the clock stops the run.
    end = math.inf if total_steps is None else total_steps

    def out_of_time():
        return (config.max_train_minutes is not None
                and outputs.train_seconds >= 60 * config.max_train_minutes)

    metrics = {name: np.full(1, np.nan) for name in METRIC_NAMES}
    step = state.steps_taken
    if step and step % steps_per_epoch == 0:
        # A kill may have come between this epoch end's checkpoint and its sample grid,
        # which depends only on the restored state: redo it.
        outputs.end_of_epoch(step // steps_per_epoch, step)
    bar = progress.EpochProgress(
        steps_per_epoch, plan.total_epochs,
        None if total_steps is None else total_steps - step,
        None if config.max_train_minutes is None
        else 60 * config.max_train_minutes - outputs.train_seconds)
    # The chief's epoch lines say when the samples collapse; other workers print no warning.
    sample_diversity = _SampleDiversity(plan) if distribute.is_chief(strategy) else None
    iterator_end = step  # The first pass makes an iterator; a resume skips the steps taken.
    while step < end and not out_of_time():
        epoch = step // steps_per_epoch
        epoch_end = (epoch + 1) * steps_per_epoch
        if step == iterator_end:
            iterator, iterator_end = _step_batch_iterator(plan, strategy, step, end)
        bar.start_epoch()
        while step < min(epoch_end, end) and not out_of_time():
            period = config.checkpoint_every_steps
            num_steps = min(config.steps_per_call, end - step, epoch_end - step,
                            period - step % period)
            started = time.perf_counter()
            metrics = stop.run(
                lambda: state.gan_step.train(iterator, tf.constant(num_steps, tf.int32)))
            metrics = {name: values.numpy() for name, values in metrics.items()}
            seconds = time.perf_counter() - started
            images_per_sec = num_steps * plan.images_per_step / seconds
            first_step, step = step + 1, state.advance(num_steps)
            outputs.record_call(first_step, epoch + 1, metrics, seconds, images_per_sec)
            raise_if_non_finite(metrics, first_step, saver)
            bar.update(step - epoch * steps_per_epoch, num_steps,
                       num_steps * plan.images_per_step, seconds, metrics)
            if step in (epoch_end, end) or step % period == 0 or out_of_time():
                saver.save(step)
        checked = sample_diversity is not None and step >= DIVERSITY_WARMUP_STEPS
        bar.end_epoch(epoch + 1, metrics,
                      sample_diversity(state.sampling_generator) if checked else None)
        if step == epoch_end:
            outputs.end_of_epoch(epoch + 1, step)
    return metrics
