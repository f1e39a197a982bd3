"""The training loop: resume, steps, checkpoints, and every artifact of a run directory.

Run directory layout:
  config.json                   the resolved config, flags, versions, git commit
  checkpoints/                  tf.train.CheckpointManager (G, D, optimizers, step, RNG,
                                the EMA generator when `ema_decay` is set)
  losses.csv                    one row per step (a step is one G update)
  loss_curves.png               the columns of losses.csv against steps
  samples/epoch_0001.png        the fixed noise through G after each epoch (a conditional
                                G: one row per class, labelled with its name)
  progress.gif                  those grids as an animation (written when training ends,
                                like loss_curves.png and the exported models)
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
after each save (`artifacts.WorkerOutputs`). All of them must therefore see the run directory at
the same path: one machine, or storage they share.
"""

import contextlib
import dataclasses
import math
import pathlib
import subprocess
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan import data, distribute, preemption, progress, runs
from dcgan.artifacts import ChiefOutputs, WorkerOutputs, remove_leftovers
from dcgan.config import TrainConfig
from dcgan.files import write_json
from dcgan.loss_log import CSV_COLUMNS, LossLog
from dcgan.preemption import TrainingInterrupted
from dcgan.run_state import RunState, build_run_state, planned_steps
from dcgan.saver import NonFiniteError, Saver, raise_if_non_finite
from dcgan.train_step import METRIC_NAMES
from dcgan.validation import validate

__all__ = ["CSV_COLUMNS", "NonFiniteError", "RunState", "TrainingInterrupted", "train"]


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
        exported models (exported from it then) hold the last finite state.
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
        "config": runs.config_record(config),
        "dtype_policy": policy_name,
        "replicas": strategy.num_replicas_in_sync,
        "workers": distribute.num_workers(strategy),
        "steps_per_epoch": steps_per_epoch,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": _git_commit(),
        **(run_info or {}),
    }


def _dtype_policy(config, new_run) -> str:
    """The run's Keras policy: `config.dtype_policy` resolved, except that "auto" resumes
    a run in the policy its config.json records, which auto's timing of this machine
    (`distribute.resolve_dtype_policy`) need not give again."""
    if config.dtype_policy == "auto" and not new_run:
        recorded = runs.recorded_dtype_policy(config.run_dir)
        if recorded:
            return recorded
    return distribute.resolve_dtype_policy(config.dtype_policy)


def _start_chief(config, strategy, record, new_run, cleanup):
    """Locks the run directory and restores its run state; returns (state, outputs)."""
    run_dir = pathlib.Path(config.run_dir)
    moved = runs.prepare(run_dir, record, new_run=new_run)
    if moved:
        print(f"Moved the previous run in {run_dir} to {moved}.")
    cleanup.enter_context(runs.lock(run_dir))
    remove_leftovers(run_dir)
    keras.mixed_precision.set_global_policy(record["dtype_policy"])
    state = build_run_state(config, record["dtype_policy"], strategy)
    write_json(run_dir / "config.json", record)
    log = LossLog(run_dir / "losses.csv", restored_step=state.steps_taken)
    return state, ChiefOutputs(config, state, log)


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
    return state, WorkerOutputs(scratch_dir)


def _check_one_restored_step(strategy, state: RunState, run_dir):
    """Raises RunDirectoryError unless every worker restored the same step."""
    steps = distribute.gather_from_replicas(strategy, state.step)
    if len(set(steps)) > 1:
        raise runs.RunDirectoryError(
            f"The workers restored different steps ({steps}, in replica order): every "
            f"worker reads the chief's checkpoints in {run_dir}, so it must be one "
            "directory that all of them see at that path (shared storage).")


# Epochs one input iterator serves. Deleting a tf.data iterator that has run for minutes
# blocks until its pipeline's background threads next wake, which can be up to a minute
# later: with one iterator per epoch, 0-60 s at epoch ends, 13-20% of a run's wall.
EPOCHS_PER_ITERATOR = 25


def _step_batch_iterator(config: TrainConfig, strategy, step: int, steps_per_epoch: int,
                         end: float):
    """An iterator over the distributed step batches from `step` on, through the end of
    EPOCHS_PER_ITERATOR epochs or of the epoch holding step `end` (math.inf: no end),
    and the step after which it runs out."""
    epoch = step // steps_per_epoch
    num_epochs = (EPOCHS_PER_ITERATOR if end == math.inf else
                  min(EPOCHS_PER_ITERATOR, math.ceil(end / steps_per_epoch) - epoch))
    # A step's n_critic batches are read as one, so that an epoch drops its remainder of
    # less than a step and a resumed run skips whole steps; then split back into batches.
    step_data = dataclasses.replace(
        config.data, global_batch_size=config.n_critic * config.data.global_batch_size)

    def dataset_fn(context):
        steps = data.load_split(step_data, config.pixel_range, with_labels=config.with_labels,
                                shuffle_seed=config.shuffle_seed, epochs=num_epochs,
                                first_epoch=epoch).skip(step - epoch * steps_per_epoch)
        return distribute.replica_batches(steps, config.data.global_batch_size, context)

    return (iter(strategy.distribute_datasets_from_function(dataset_fn)),
            (epoch + num_epochs) * steps_per_epoch)


def _train(config, strategy, run_info, new_run, signals, cleanup) -> dict:
    strategy = strategy or distribute.make_strategy()
    run_dir = pathlib.Path(config.run_dir)
    policy_name = _dtype_policy(config, new_run)
    steps_per_epoch, total_steps = planned_steps(config)
    validate(config, strategy.num_replicas_in_sync, distribute.num_workers(strategy),
             steps_per_epoch)
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
    print(progress.header((run_info or {}).get("preset", config.model.architecture), state,
                          config.data.global_batch_size, policy_name, strategy, run_dir),
          flush=True)
    saver = Saver(state, outputs, run_dir / "checkpoints")
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        stop = preemption.ClusterStop(signals, strategy, state.manager, saver.save_for_stop)
    else:
        stop = preemption.LocalStop(signals, saver.save_for_stop)
    cleanup.callback(stop.close)

    try:
        metrics = _train_steps(config, strategy, state, outputs, saver, stop,
                               steps_per_epoch, total_steps)
    except NonFiniteError:
        # The exports are otherwise made when training ends (`outputs.final`).
        outputs.export_checkpoint(saver.latest)
        raise
    outputs.final()
    stop.close()
    if distribute.num_workers(strategy) > 1:
        # A barrier: the chief, whose process runs the cluster's coordination service,
        # returns only when every worker is done with it.
        distribute.gather_from_replicas(strategy, state.step)
    return {"step": state.steps_taken,
            "metrics": {name: float(values[-1]) for name, values in metrics.items()}}


def _train_steps(config, strategy, state, outputs, saver, stop, steps_per_epoch,
                 total_steps) -> np.ndarray:
    """Trains from the restored step to `total_steps` (None: no limit), or until
    `max_train_minutes` of training: one `tf.function` call at a time, each within one
    epoch and one checkpoint period. Checkpoints at every period's end, epoch end and the
    last step.

    Returns:
      {name: float32 [steps]}, the metrics of the last call (NaN when no call ran).
    """
    images_per_step = config.n_critic * config.data.global_batch_size
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
        steps_per_epoch, None if total_steps is None else -(-total_steps // steps_per_epoch),
        None if total_steps is None else total_steps - step,
        None if config.max_train_minutes is None
        else 60 * config.max_train_minutes - outputs.train_seconds)
    iterator_end = step  # The first pass makes an iterator; a resume skips the steps taken.
    while step < end and not out_of_time():
        epoch = step // steps_per_epoch
        epoch_end = (epoch + 1) * steps_per_epoch
        if step == iterator_end:
            iterator, iterator_end = _step_batch_iterator(config, strategy, step,
                                                          steps_per_epoch, end)
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
            images_per_sec = num_steps * images_per_step / seconds
            first_step, step = step + 1, state.advance(num_steps)
            outputs.record_call(first_step, epoch + 1, metrics, seconds, images_per_sec)
            raise_if_non_finite(metrics, first_step, saver)
            bar.update(step - epoch * steps_per_epoch, num_steps, num_steps * images_per_step,
                       seconds, metrics)
            if step == epoch_end:
                state.epoch.assign(epoch + 1)
            if step in (epoch_end, end) or step % period == 0 or out_of_time():
                saver.save(step)
        bar.end_epoch(epoch + 1, metrics)
        if step == epoch_end:
            outputs.end_of_epoch(epoch + 1, step)
    return metrics
