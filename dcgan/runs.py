"""Keeping a run directory valid: what a resume must agree on, a lock against a second
trainer, moving an old run aside, and the checkpoint a resume starts from.

Nothing here deletes user data: a new run in an existing directory renames the old one
to `<run_dir>.old-<timestamp>`, and an unreadable checkpoint stops the run with advice
instead of being skipped.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
import tempfile
import time

import tensorflow as tf

from dcgan.checkpoints import restore_checkpoint
from dcgan.files import DiskFullError, disk_full_message, no_space_path

__all__ = [
    "RESUME_FIELDS",
    "RunDirectoryError",
    "config_record",
    "lock",
    "prepare",
    "recorded_dtype_policy",
    "remove_interrupted_saves",
    "restore_latest",
    "resume_mismatches",
    "save_checkpoint",
]

# Entries of config.json (dotted paths) that a resumed run must share with the run in the
# directory. They decide what the checkpoint holds (architecture, noise_dim, the classes
# and how D sees them, the fixed noise's shape, the dtype policy: mixed_float16 adds
# loss-scale variables) or what a step means (loss, update, batch size, split, seeds and
# shuffle buffer: the data order). A constant learning rate is a variable of the
# optimizer's checkpoint and a schedule is not, so the schedule, its warm-up, decay share
# and floor stay too.
# Everything else may change on resume: epochs and max_steps (that is how a run is
# extended), learning rates (how it is rescued after a non-finite loss), steps_per_call,
# checkpointing, jit_compile, sync batch norm and the number of replicas.
RESUME_FIELDS = (
    "config.model.architecture",
    "config.model.noise_dim",
    "config.model.num_classes",
    "config.model.conditioning",
    "config.num_fixed_samples",
    "dtype_policy",
    "config.loss",
    "config.update",
    "config.n_critic",
    "config.ema_decay",
    "config.lr_schedule",
    "config.lr_warmup_steps",
    "config.lr_decay_fraction",
    "config.lr_floor",
    "config.data.global_batch_size",
    "config.data.split",
    "config.data.pixel_range",
    "config.data.shuffle_seed",
    "config.data.shuffle_buffer",
    "config.seed",
)


def config_record(config) -> dict:
    """The "config" entry of config.json: the TrainConfig's fields, with the facts derived
    from them (`pixel_range`, `with_labels`, `shuffle_seed`) under "data", where
    config.json held them while they were DataConfig fields. So a run directory written
    before they became properties resumes as before, and one whose data order had a seed
    other than `seed` is refused (data.shuffle_seed differs) instead of silently changing
    its data order."""
    record = dataclasses.asdict(config)
    record["data"].update(pixel_range=config.pixel_range, with_labels=config.with_labels,
                          shuffle_seed=config.shuffle_seed)
    return record


NEW_RUN_HINT = "train.py --new_run moves the old directory aside and starts afresh"


class RunDirectoryError(RuntimeError):
    """The run directory cannot be used as it is; the message says why and what to do."""


_MISSING = object()


def _lookup(record: dict, dotted: str):
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def resume_mismatches(recorded: dict, current: dict) -> list[str]:
    """The RESUME_FIELDS in which two config.json records disagree.

    A pure function of the two records: `recorded` is the config.json already in the run
    directory, `current` the one the new command would write (tuples and lists compare
    equal, as JSON has only lists). A field missing from either record (a config.json
    written before the field existed) is not compared.

    Returns:
      One "field: 'recorded' in the run, 'current' now" string per disagreement, in
      RESUME_FIELDS order; [] when the run can be resumed with `current`.
    """
    current = json.loads(json.dumps(current))
    mismatches = []
    for field in RESUME_FIELDS:
        then, now = _lookup(recorded, field), _lookup(current, field)
        if _MISSING not in (then, now) and then != now:
            mismatches.append(f"{field.removeprefix('config.')}: {then!r} in the run, "
                              f"{now!r} now")
    return mismatches


def _free_name(run_dir: pathlib.Path) -> pathlib.Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{counter}")
        counter += 1
    return candidate


def recorded_dtype_policy(run_dir) -> str | None:
    """The dtype policy in the config.json of the run in `run_dir`; None where there is
    none or it cannot be read (`prepare` says why)."""
    try:
        return json.loads((pathlib.Path(run_dir) / "config.json").read_text()).get(
            "dtype_policy")
    except (OSError, ValueError, AttributeError):
        return None


def prepare(run_dir, record: dict, new_run: bool = False) -> pathlib.Path | None:
    """Makes `run_dir` ready for training with the config.json contents `record`.

    With `new_run`, an existing `run_dir` is renamed to `<run_dir>.old-<YYYYmmdd-HHMMSS>`
    (never deleted). Otherwise an existing config.json must agree with `record` on
    RESUME_FIELDS. Then the directory is created and a file is created in it and in its
    existing subdirectories, so an unwritable directory fails before any training.

    Returns:
      Where the old run went with `new_run`, else None.

    Raises:
      RunDirectoryError: the run there disagrees with `record`, another process trains
        in it, or it cannot be written.
    """
    run_dir = pathlib.Path(run_dir)
    moved = None
    if new_run and run_dir.exists():
        moved = _free_name(run_dir)
        with lock(run_dir):  # Never move a run that is training.
            try:
                os.rename(run_dir, moved)
            except OSError as error:
                raise RunDirectoryError(f"Cannot move {run_dir} aside to {moved}: "
                                        f"{error.strerror}.") from error
    recorded_path = run_dir / "config.json"
    if recorded_path.exists():
        try:
            recorded = json.loads(recorded_path.read_text())
        except (OSError, ValueError) as error:
            raise RunDirectoryError(f"{recorded_path} is unreadable ({error}); "
                                    f"{NEW_RUN_HINT}.") from error
        mismatches = resume_mismatches(recorded, record)
        if mismatches:
            raise RunDirectoryError(
                f"{run_dir} holds another run ({'; '.join(mismatches)}). Resume it with "
                f"its settings, pass another --run_dir, or {NEW_RUN_HINT}.")
    writable = [run_dir] + [path for path in run_dir.glob("*") if path.is_dir()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for directory in writable:
            with tempfile.TemporaryFile(dir=directory):
                pass
    except OSError as error:
        raise RunDirectoryError(f"Run directory {run_dir} is not writable: "
                                f"{error.strerror} ({error.filename or run_dir}).") from error
    return moved


@contextlib.contextmanager
def lock(run_dir):
    """Holds an exclusive lock on `run_dir` (a `.lock` file holding the owner's pid).

    The kernel releases it when the process ends, even on kill -9, so it never needs
    cleaning up. Readers (eval.py --watch) do not take it.

    Raises:
      RunDirectoryError: another process holds it.
    """
    path = pathlib.Path(run_dir) / ".lock"
    try:
        file = open(path, "a+")
    except OSError as error:
        raise RunDirectoryError(f"Cannot lock {run_dir}: {error.strerror}.") from error
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            owner = file.read().strip() or "unknown"
            raise RunDirectoryError(f"{run_dir} is in use by another training process "
                                    f"(pid {owner}).") from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def remove_interrupted_saves(directory) -> None:
    """Removes `<prefix>_temp` from a checkpoint directory: TensorFlow's staging area of a
    save that a kill interrupted (the state file never named it). Call it holding the lock."""
    for staging in pathlib.Path(directory).glob("*_temp"):
        shutil.rmtree(staging, ignore_errors=True)


def _remove_unlisted_save(directory: pathlib.Path, checkpoint_number: int) -> None:
    """Removes what a failed save of `checkpoint_number` wrote and the state file does not
    list: its staging directory, its merged files, the state file's temporary copy."""
    remove_interrupted_saves(directory)
    state = tf.train.get_checkpoint_state(str(directory))
    listed = {os.path.basename(prefix) for prefix in state.all_model_checkpoint_paths} \
        if state else set()
    for path in [*directory.glob(f"*-{checkpoint_number}.index"),
                 *directory.glob(f"*-{checkpoint_number}.data-*"),
                 *directory.glob("checkpoint.tmp*")]:
        if path.name.partition(".")[0] not in listed:
            path.unlink(missing_ok=True)


def save_checkpoint(manager: tf.train.CheckpointManager, checkpoint_number: int) -> str:
    """`manager.save(checkpoint_number=...)`, which on a full disk leaves nothing partial.

    Returns:
      The prefix of the checkpoint saved.

    Raises:
      DiskFullError: no space left for the save. Its files are removed again, so the
        state file's latest checkpoint is intact and whole; the message names the disk,
        its free bytes, the file and that checkpoint.
    """
    try:
        return manager.save(checkpoint_number=checkpoint_number)
    except (tf.errors.ResourceExhaustedError, OSError) as error:
        path = no_space_path(error)
        if path is None:
            raise
        directory = pathlib.Path(manager.directory)
        _remove_unlisted_save(directory, checkpoint_number)
        latest = tf.train.latest_checkpoint(str(directory))
        kept = (f"the last intact checkpoint is {latest}" if latest
                else "no checkpoint was saved before")
        raise DiskFullError(
            f"{disk_full_message(path or directory)} Checkpoint {checkpoint_number} was not saved and "
            f"nothing of it is left; {kept}. Free some space and run the same command to "
            "resume.") from error


def _first_line(error) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.strip().splitlines()[0]


def restore_latest(checkpoint: tf.train.Checkpoint, directory, repair=True) -> str | None:
    """Restores the newest checkpoint in `directory`; returns its prefix (None if none).

    Call it with the run directory locked and before building a CheckpointManager there:
    a checkpoint the state file lists but whose files are gone (moved aside after a
    restore failure, or deleted by a kill inside the manager's clean-up) is dropped from
    the state file with a printed note, and the newest one left is restored. With
    `repair=False` (a worker reading the chief's directory) the newest one left is
    restored and nothing is written.

    Raises:
      RunDirectoryError: the newest checkpoint cannot be restored (truncated, corrupt, or
        of other models), or the state file lists checkpoints and none of them exists.
        The message names the files and the previous checkpoint.
    """
    directory = pathlib.Path(directory)
    state = tf.train.get_checkpoint_state(str(directory))
    if state is None:
        return None
    recorded = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    timestamps = dict(zip(recorded, state.all_model_checkpoint_timestamps))
    existing = [prefix for prefix in recorded if tf.io.gfile.exists(prefix + ".index")]
    if not existing:
        raise RunDirectoryError(
            f"{directory} lists checkpoints {[os.path.basename(p) for p in recorded]} but "
            f"none of their files exists. Put them back, or {NEW_RUN_HINT}.")
    if existing != recorded and repair:
        gone = [os.path.basename(prefix) for prefix in recorded if prefix not in existing]
        print(f"Checkpoints {gone} are listed in {directory / 'checkpoint'} but missing; "
              f"resuming from {os.path.basename(existing[-1])}.")
        # Names relative to the directory, as the manager writes them: the run directory
        # can still be moved or copied.
        tf.compat.v1.train.update_checkpoint_state(
            str(directory), os.path.basename(existing[-1]),
            [os.path.basename(prefix) for prefix in existing],
            all_model_checkpoint_timestamps=[timestamps[p] for p in existing] if timestamps
            else None,
            last_preserved_timestamp=state.last_preserved_timestamp)
    prefix = existing[-1]
    try:
        restore_checkpoint(checkpoint, prefix).assert_existing_objects_matched()
    except Exception as error:  # noqa: BLE001 - TensorFlow raises OpErrors, IndexError
        # ("Read less bytes than requested" for a truncated file), ValueError, AssertionError.
        if len(existing) > 1:
            advice = (f"To resume from the previous checkpoint {existing[-2]}, move "
                      f"{prefix}.index and {prefix}.data-* out of {directory} and run the "
                      "same command again")
        else:
            advice = f"No earlier checkpoint is kept; {NEW_RUN_HINT}"
        raise RunDirectoryError(f"Cannot restore checkpoint {prefix}: "
                                f"{_first_line(error)}. {advice}.") from error
    return prefix
