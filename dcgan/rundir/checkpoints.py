"""Checkpoints of a run directory: saving without leaving anything partial, restoring
the newest one a resume can start from, and reading generators back from a checkpoint
or a `.keras` export; a checkpoint is restored only into objects whose variables have its
shapes."""

import os
import pathlib
import shutil
import zipfile

import keras
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from dcgan import models
from dcgan.core.errors import CheckpointError, DiskFullError, RunDirectoryError
from dcgan.rundir import records
from dcgan.rundir.layout import NEW_RUN_HINT, RunDirectory
from dcgan.runtime.files import disk_full_message, no_space_path

__all__ = ["checkpoint_step", "list_checkpoints", "load_generator", "remove_interrupted_saves",
           "restore_checkpoint", "restore_generator", "restore_latest", "save_checkpoint"]


def list_checkpoints(run_dir) -> list[str]:
    """Checkpoint prefixes of `run_dir`, oldest first (those the manager still keeps)."""
    state = tf.train.get_checkpoint_state(str(RunDirectory(run_dir).checkpoints))
    return list(state.all_model_checkpoint_paths) if state else []


def checkpoint_step(prefix: str) -> int:
    """The step a checkpoint prefix names: ".../checkpoints/ckpt-500" -> 500."""
    return int(prefix.rsplit("-", 1)[1])


def _shape_mismatches(checkpoint: tf.train.Checkpoint, reader) -> list[str]:
    """One "path: shape in the checkpoint, shape in the model" string for each variable of
    `checkpoint`'s objects whose counterpart in the checkpoint `reader` reads has another
    shape. Objects are paired as `restore` pairs them: by name, from the root down the
    checkpoint's object graph."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    # The key under which every object-based checkpoint stores its object graph.
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    saved_shapes = reader.get_variable_to_shape_map()
    mismatches, visited = [], set()

    def visit(trackable, node_id, path):
        if node_id in visited:  # e.g. a variable under its layer and under its optimizer.
            return
        visited.add(node_id)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE":
                saved = tuple(saved_shapes[attribute.checkpoint_key])
                # Compatible, as restore asks: a dimension of None takes any size.
                if not tf.TensorShape(trackable.shape).is_compatible_with(saved):
                    mismatches.append(f"{'/'.join(path)}: {saved} in the checkpoint, "
                                      f"{tuple(trackable.shape)} in the model")
        children = tf.train.TrackableView.children(trackable)
        for child in node.children:
            if child.local_name in children:
                visit(children[child.local_name], child.node_id, (*path, child.local_name))

    visit(checkpoint, 0, ())
    return mismatches


def restore_checkpoint(checkpoint: tf.train.Checkpoint, prefix: str):
    """`checkpoint.restore(prefix)`, after checking that every variable it would restore
    has the shape saved in `prefix`.

    `restore` raises at the first variable of another shape, before it returns the status
    whose `expect_partial()` would silence the partly restored checkpoint; TensorFlow then
    logs a "Value in checkpoint could not be found" warning for each value left when the
    restore's state is garbage-collected (`_CheckpointRestoreCoordinatorDeleter.__del__`
    in tensorflow/python/checkpoint/checkpoint.py), in a binary after its error line.

    Returns:
      The load status `restore` returns.

    Raises:
      ValueError: variables of other shapes; the message names the first and their count.
      tf.errors.OpError, IndexError: what TensorFlow raises for unreadable files.
    """
    mismatches = _shape_mismatches(checkpoint, tf.train.load_checkpoint(prefix))
    if mismatches:
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        raise ValueError(f"its variables have other shapes, {mismatches[0]}{more}")
    return checkpoint.restore(prefix)


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
            f"{disk_full_message(path or directory)} Checkpoint {checkpoint_number} was not "
            f"saved and nothing of it is left; {kept}. Free some space and run the same command to "
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


def restore_generator(run_dir, checkpoint_prefix=None) -> keras.Model:
    """Builds the run's generator and restores its weights from a checkpoint: the
    exponential moving average of G's weights when the run kept one, else G's own.

    Args:
      run_dir: a run directory written by `dcgan.training.train`.
      checkpoint_prefix: e.g. ".../checkpoints/ckpt-500"; default the latest.

    Raises:
      RunDirectoryError: no config.json.
      CheckpointError: no checkpoint, the checkpoint holds another architecture, or its
        files are truncated.
    """
    run = RunDirectory(run_dir)
    record = run.read_record()
    model_config = records.model_config(record)
    # Runs recorded before ema_decay existed have no such key.
    key = "ema_generator" if record["config"].get("ema_decay") else "generator"
    checkpoint_prefix = checkpoint_prefix or (list_checkpoints(run_dir) or [None])[-1]
    if checkpoint_prefix is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet.")
    # In float32 whatever policy a training run in this process left set (sweep.py trains
    # and scores in one): so it samples as eval.py and the exported generator.keras do.
    # Mixed precision keeps float32 weights, so nothing of the checkpoint is rounded.
    with models.global_policy("float32"):
        generator = models.build_generator(model_config)
    try:
        restore_checkpoint(tf.train.Checkpoint(**{key: generator}), checkpoint_prefix
                           ).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise CheckpointError(
            f"{checkpoint_prefix} does not hold a {model_config.architecture} generator, "
            f"the architecture {run.config_json} names: {error}. "
            "config.json and checkpoints/ must come from the same run.") from error
    except IndexError as error:  # What TensorFlow raises for a cut-off data file.
        raise CheckpointError(f"{checkpoint_prefix} could not be read, its files look "
                              f"truncated ({error}); an earlier checkpoint may still be "
                              "whole.") from error
    return generator


def load_generator(path) -> keras.Model:
    """A generator exported as `.keras`, or restored from a run directory's checkpoint.

    Raises:
      CheckpointError: the file is missing or not a Keras model (e.g. text, or a zip cut
        short), or see `restore_generator`.
    """
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        return restore_generator(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist.")
    # Keras reports a file that is not a zip archive as "File not found".
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a Keras model: a .keras file is a zip archive, "
                              "and this one is not one or is cut short.")
    try:
        return keras.models.load_model(path)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        # What Keras raises for a zip that does not hold a model it can build.
        raise CheckpointError(f"{path} is not a Keras model Keras can load: "
                              f"{str(error).strip().splitlines()[0]}") from error
