"""Devices, the distribution strategy, how replicas share a batch, and the mixed-precision
policy.

One process trains under `MirroredStrategy` (every GPU, else every logical CPU device);
several processes, one per machine, train under `MultiWorkerMirroredStrategy`, which
reads the cluster from the `TF_CONFIG` environment variable:

  {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 1}}

The chief (the "chief" task if the cluster has one, else worker 0) writes the run's
artifacts; every task runs the same steps in lockstep.
"""

import dataclasses
import functools
import json
import os
import pathlib
import platform
import time

import tensorflow as tf

from dcgan.config import ConfigError

__all__ = [
    "STRATEGIES",
    "ClusterTask",
    "cpu_bf16_matmul_speedup",
    "cpu_model",
    "cpu_supports_bf16",
    "gather_from_replicas",
    "is_chief",
    "make_strategy",
    "matmul_gflops",
    "num_workers",
    "parse_tf_config",
    "replica_batches",
    "resolve_dtype_policy",
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


def _cpuinfo(path) -> str:
    """The text of /proc/cpuinfo (Linux), "" where there is none."""
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return ""


def cpu_model(cpuinfo_path="/proc/cpuinfo") -> str:
    """The CPU's model name, e.g. "AMD EPYC 7B13": the first "model name" of cpuinfo, else
    what `platform` knows (e.g. "arm" or "x86_64")."""
    return next((line.split(":", 1)[1].strip() for line in _cpuinfo(cpuinfo_path).splitlines()
                 if line.startswith("model name")),
                platform.processor() or platform.machine())


def cpu_supports_bf16(cpuinfo_path="/proc/cpuinfo") -> bool:
    """True if the CPU has native bf16 matrix instructions (AMX-BF16 or AVX512-BF16)."""
    flags = _cpuinfo(cpuinfo_path).split()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _gpus_support_bf16() -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability")
                    for gpu in gpus]
    return bool(gpus) and all(cc and cc[0] >= 8 for cc in capabilities)


def matmul_gflops(dtype, size=2048, repeats=3) -> float:
    """This machine's matmul rate in `dtype`: GFLOP/s of the best of `repeats` [size, size]
    x [size, size] `tf.matmul`s (2 size^3 FLOPs each), after one untimed warm-up.

    A square matmul this large is what oneDNN runs closest to the cores' FMA rate, so its
    rate is the most a step's convolutions (which are matmuls) can reach in that dtype.
    """
    a, b = (tf.cast(tf.random.stateless_normal([size, size], seed=[0, seed]), dtype)
            for seed in (1, 2))
    # Reduced inside the function so that a scalar, not the product, is copied out; the
    # sum is size^2 of the 2 size^3 FLOPs.
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    matmul(a, b).numpy()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, b).numpy()
        seconds.append(time.perf_counter() - started)
    return 2 * size**3 / min(seconds) / 1e9


@functools.cache
def cpu_bf16_matmul_speedup() -> float:
    """How many times float32's rate this CPU multiplies bf16 matrices at (1024-square
    matmuls, the best of 5 each; ~0.5 s, once per process)."""
    return matmul_gflops("bfloat16", 1024, 5) / matmul_gflops("float32", 1024, 5)


# A bf16 step gains less than its matmuls do (it also casts, and runs element-wise ops),
# so bf16 must multiply well ahead of float32 to pay. The flags alone do not tell: an
# AMD EPYC with AVX512-BF16 ran the fast step 1.4-1.75x faster in bf16, but an Intel Xeon
# with AVX512-BF16 and no AMX multiplied bf16 at 0.6x float32's rate and ran the step at
# 0.79x (BUILD_NOTES.md, "Precision on a CPU whose bf16 is slow").
BF16_MIN_MATMUL_SPEEDUP = 1.2


def resolve_dtype_policy(dtype_policy: str) -> str:
    """The Keras dtype policy name for a `--dtype_policy` value.

    "auto" is "mixed_bfloat16" where the hardware computes bf16 natively and fast: GPUs
    of compute capability 8+, and CPUs with AMX-BF16 or AVX512-BF16 whose bf16 matmuls
    run at least BF16_MIN_MATMUL_SPEEDUP times as fast as float32's
    (`cpu_bf16_matmul_speedup`, timed once per process); "float32" elsewhere. A timing
    can differ between processes on a loaded machine: `dcgan.trainer` resumes a run in
    the policy it started in.
    """
    if dtype_policy != "auto":
        return dtype_policy
    if tf.config.list_physical_devices("GPU"):
        native_bf16 = _gpus_support_bf16()
    else:
        native_bf16 = (cpu_supports_bf16()
                       and cpu_bf16_matmul_speedup() >= BF16_MIN_MATMUL_SPEEDUP)
    return "mixed_bfloat16" if native_bf16 else "float32"
