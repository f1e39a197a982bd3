"""Reading generators back from a run directory: its checkpoints or its `.keras` export;
and restoring a checkpoint only into objects whose variables have its shapes."""

import json
import pathlib
import zipfile

import keras
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from dcgan import models
from dcgan.config import ConfigError, ModelConfig

__all__ = ["checkpoint_step", "list_checkpoints", "load_generator", "recorded_config",
           "restore_checkpoint", "restore_generator", "run_model_config", "run_record"]


def run_record(run_dir) -> dict:
    """`run_dir/config.json` as the trainer wrote it: the config, the dtype policy, the
    versions, the git commit...

    Raises:
      ConfigError: there is no config.json.
    """
    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError(f"{path} is missing: {run_dir} is not a dcgan run directory.")
    return json.loads(path.read_text())


def recorded_config(run_dir) -> dict:
    """The TrainConfig recorded in `run_dir/config.json` by the trainer, as a dict."""
    return run_record(run_dir)["config"]


def run_model_config(run_dir) -> ModelConfig:
    """The ModelConfig recorded in `run_dir/config.json` by the trainer."""
    return ModelConfig(**recorded_config(run_dir)["model"])


def list_checkpoints(run_dir) -> list[str]:
    """Checkpoint prefixes of `run_dir`, oldest first (those the manager still keeps)."""
    state = tf.train.get_checkpoint_state(str(pathlib.Path(run_dir) / "checkpoints"))
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


def restore_generator(run_dir, checkpoint_prefix=None) -> keras.Model:
    """Builds the run's generator and restores its weights from a checkpoint: the
    exponential moving average of G's weights when the run kept one, else G's own.

    Args:
      run_dir: a run directory written by `dcgan.trainer`.
      checkpoint_prefix: e.g. ".../checkpoints/ckpt-500"; default the latest.

    Raises:
      ConfigError: no config.json or no checkpoint, the checkpoint holds another
        architecture, or its files are truncated.
    """
    model_config = run_model_config(run_dir)
    # Runs recorded before ema_decay existed have no such key.
    key = "ema_generator" if recorded_config(run_dir).get("ema_decay") else "generator"
    checkpoint_prefix = checkpoint_prefix or (list_checkpoints(run_dir) or [None])[-1]
    if checkpoint_prefix is None:
        raise ConfigError(f"{run_dir} has no checkpoint yet.")
    # In float32 whatever policy a training run in this process left set (sweep.py trains
    # and scores in one): so it samples as eval.py and the exported generator.keras do.
    # Mixed precision keeps float32 weights, so nothing of the checkpoint is rounded.
    with models.global_policy("float32"):
        generator = models.build_generator(model_config)
    try:
        restore_checkpoint(tf.train.Checkpoint(**{key: generator}), checkpoint_prefix
                           ).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise ConfigError(
            f"{checkpoint_prefix} does not hold a {model_config.architecture} generator, "
            f"the architecture {pathlib.Path(run_dir) / 'config.json'} names: {error}. "
            "config.json and checkpoints/ must come from the same run.") from error
    except IndexError as error:  # What TensorFlow raises for a cut-off data file.
        raise ConfigError(f"{checkpoint_prefix} could not be read, its files look truncated "
                          f"({error}); an earlier checkpoint may still be whole.") from error
    return generator


def load_generator(path) -> keras.Model:
    """A generator exported as `.keras`, or restored from a run directory's checkpoint.

    Raises:
      ConfigError: the file is missing or not a Keras model (e.g. text, or a zip cut
        short), or see `restore_generator`.
    """
    path = pathlib.Path(path)
    if path.suffix != ".keras":
        return restore_generator(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist.")
    # Keras reports a file that is not a zip archive as "File not found".
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path} is not a Keras model: a .keras file is a zip archive, "
                          "and this one is not one or is cut short.")
    try:
        return keras.models.load_model(path)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
        # What Keras raises for a zip that does not hold a model it can build.
        raise ConfigError(f"{path} is not a Keras model Keras can load: "
                          f"{str(error).strip().splitlines()[0]}") from error
