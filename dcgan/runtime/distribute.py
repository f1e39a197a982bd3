"""Devices, the distribution strategy and how replicas share a batch (what the hardware
can compute fast is `hardware`'s).

One process trains under `MirroredStrategy` (every GPU, else every logical CPU device);
several processes, one per machine, train under `MultiWorkerMirroredStrategy`, which
reads the cluster from the `TF_CONFIG` environment variable:

  {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 1}}

The chief (the "chief" task if the cluster has one, else worker 0) writes the run's
artifacts; every task runs the same steps in lockstep.
"""

import dataclasses
import json
import os

import tensorflow as tf

from dcgan.core.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "ClusterTask",
    "cpu_strategy",
    "gather_from_replicas",
    "is_chief",
    "make_strategy",
    "num_workers",
    "num_gpus",
    "on_gpus",
    "parse_tf_config",
    "replica_batches",
    "split_cpu",
    "tf_config",
]

# auto: multi_worker when TF_CONFIG is set, else mirrored.
STRATEGIES = ("auto", "mirrored", "multi_worker")
# The task types a TF_CONFIG cluster may hold here: parameter servers and evaluators
# belong to other strategies and to other training loops.
_TASK_TYPES = ("chief", "worker")


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices, so MirroredStrategy runs that
    many real replicas on a machine without GPUs. Must run before TensorFlow initialises
    its devices (before any op); a second call with the same count is a no-op."""
    if num_devices < 1:
        raise ValueError(f"num_devices must be positive, got {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as error:
        raise RuntimeError(
            f"Cannot split the CPU into {num_devices} devices once TensorFlow has "
            "initialised them; split before running any op.") from error


def cpu_strategy(num_replicas: int) -> tf.distribute.Strategy:
    """MirroredStrategy over the first `num_replicas` logical CPU devices (`split_cpu`
    made them), e.g. runs of 1 and 4 replicas side by side in one process."""
    devices = tf.config.list_logical_devices("CPU")
    if num_replicas > len(devices):
        raise ConfigError(f"{num_replicas} replicas need as many logical CPU devices; the "
                          f"CPU is split into {len(devices)}.")
    return tf.distribute.MirroredStrategy([device.name for device in devices[:num_replicas]])


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's task in a TF_CONFIG cluster.

    Attributes:
      cluster: task type -> the "host:port" addresses of its tasks.
      task_type: "chief" or "worker".
      task_index: this task's index among those of its type.
    """

    cluster: dict
    task_type: str
    task_index: int


def _check_address(address, where: str) -> None:
    host, _, port = str(address).rpartition(":")
    if not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"TF_CONFIG: {where} is {address!r}, not a \"host:port\" address.")


def parse_tf_config(text: str) -> ClusterTask:
    """The task described by a `TF_CONFIG` value, checked.

    Raises:
      ConfigError: one line naming what is wrong: not JSON, no cluster or task, a task
        type other than "chief" and "worker", more than one chief, an address that is not
        "host:port", or a task that is not in the cluster.
    """
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}): {text!r}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict) \
            or not isinstance(spec.get("task"), dict):
        raise ConfigError('TF_CONFIG needs a "cluster" and a "task" object, e.g. '
                          + tf_config(["host0:2222", "host1:2222"], 1))
    cluster, task = spec["cluster"], spec["task"]
    unsupported = sorted(set(cluster) - set(_TASK_TYPES))
    if unsupported:
        raise ConfigError(f"TF_CONFIG: task types {unsupported} are not supported; "
                          f"multi-worker training uses {list(_TASK_TYPES)} only.")
    for task_type, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f"TF_CONFIG: cluster.{task_type} must be a non-empty list of "
                              f"\"host:port\" addresses, got {addresses!r}.")
        for index, address in enumerate(addresses):
            _check_address(address, f"cluster.{task_type}[{index}]")
    if len(cluster.get("chief", ())) > 1:
        raise ConfigError(f"TF_CONFIG: a cluster has at most one chief, got "
                          f"{cluster['chief']}.")
    task_type, task_index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise ConfigError(f"TF_CONFIG: task.type is {task_type!r}, not one of the "
                          f"cluster's task types {sorted(cluster)}.")
    if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise ConfigError(f"TF_CONFIG: task.index is {task_index!r}, but cluster.{task_type} "
                          f"has {len(cluster[task_type])} task(s).")
    return ClusterTask(cluster, task_type, task_index)


def tf_config(worker_addresses, index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of `worker_addresses` (no chief task:
    worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": list(worker_addresses)},
                       "task": {"type": "worker", "index": index}})


def make_strategy(kind: str = "mirrored") -> tf.distribute.Strategy:
    """The strategy named by `kind`, one of STRATEGIES.

    mirrored: MirroredStrategy over every GPU, else over every logical CPU device.
    multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (without it,
      a cluster of this process alone), one replica per GPU, or one for the CPU. It sets
      up the collective ops, which must happen before TensorFlow runs its first op: make
      it at the start of the program.

    Raises:
      ConfigError: an unknown kind, a TF_CONFIG that `parse_tf_config` refuses, or a CPU
        split into several devices under multi_worker (it would use one of them).
    """
    if kind not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {kind!r}")
    tf_config_text = os.environ.get("TF_CONFIG")
    if kind == "auto":
        kind = "multi_worker" if tf_config_text else "mirrored"
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if tf_config_text:
        parse_tf_config(tf_config_text)
    cpu = tf.config.list_physical_devices("CPU")[0]
    if not tf.config.list_physical_devices("GPU") \
            and len(tf.config.get_logical_device_configuration(cpu) or [None]) > 1:
        raise ConfigError("Multi-worker training runs one replica per worker on a CPU: "
                          "leave the CPU whole (--cpu_devices=1).")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's checkpoints and artifacts: always under a
    single-process strategy, on the chief alone under MultiWorkerMirroredStrategy."""
    return strategy.extended.should_checkpoint


def num_gpus() -> int:
    """The machine's GPUs. Counting them does not start TensorFlow's runtime: the CPU can
    still be split (`split_cpu`) afterwards."""
    return len(tf.config.list_physical_devices("GPU"))


def on_gpus(strategy: tf.distribute.Strategy) -> bool:
    """Whether every replica of `strategy` in this process runs on a GPU."""
    return all(tf.DeviceSpec.from_string(device).device_type == "GPU"
               for device in strategy.extended.worker_devices)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes that train together under `strategy` (1 unless multi-worker)."""
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict() if resolver else {}
    return max(1, sum(len(cluster.get(task_type, ())) for task_type in _TASK_TYPES))


def gather_from_replicas(strategy: tf.distribute.Strategy, value: tf.Variable) -> list:
    """The value of the scalar variable `value` on every replica, in replica order.

    A collective: under MultiWorkerMirroredStrategy every worker must call it, and it
    returns the same list on all of them.
    """
    @tf.function
    def gather():
        per_replica = strategy.run(lambda: tf.reshape(value.read_value(), [1]))
        return strategy.gather(per_replica, axis=0)

    return gather().numpy().tolist()


def replica_batches(global_batches: tf.data.Dataset, global_batch_size: int,
                    context: tf.distribute.InputContext) -> tf.data.Dataset:
    """This input pipeline's replicas' shares of `global_batches`, for
    `strategy.distribute_datasets_from_function`.

    Replica r (in sync-group order) gets the r-th of the num_replicas_in_sync equal
    slices of each global batch: the split MirroredStrategy makes of a global batch in
    one process. Each pipeline (one per worker, whose replicas are consecutive in that
    order) keeps its own replicas' slices and drops the rest, so what a replica trains on
    depends on the global batch and the number of replicas only, never on how many
    workers read them: a run on two machines computes what the same replicas compute in
    one process, and the data order stays a function of (seed, epoch) as a resume needs.
    Every worker reads and shuffles the whole split for that, which costs little next to
    a step.

    Args:
      global_batches: a dataset of batches of `global_batch_size` (a multiple of
        `context.num_replicas_in_sync`), or of several global batches each, one after
        the other; any structure, batched on the first axis.
      global_batch_size: examples per global batch.
      context: the `tf.distribute.InputContext` that the strategy passes.

    Returns:
      The per-replica batches of this pipeline's replicas, one replica's batch per
      element, in the order the strategy hands them to its local replicas.
    """
    pipelines = context.num_input_pipelines
    return (global_batches
            .rebatch(global_batch_size // pipelines, drop_remainder=True)
            .shard(pipelines, context.input_pipeline_id)
            .rebatch(context.get_per_replica_batch_size(global_batch_size),
                     drop_remainder=True))
