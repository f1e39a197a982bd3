"""Devices, the distribution strategy, how replicas share a batch, and the mixed-precision
policy."""

import pathlib

import tensorflow as tf

__all__ = ["cpu_supports_bf16", "make_strategy", "replica_batches", "resolve_precision",
           "split_cpu"]


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


def make_strategy() -> tf.distribute.MirroredStrategy:
    """MirroredStrategy over every GPU, else over every logical CPU device."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


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


def cpu_supports_bf16(cpuinfo_path="/proc/cpuinfo") -> bool:
    """True if the CPU has native bf16 matrix instructions (AMX-BF16 or AVX512-BF16)."""
    try:
        flags = pathlib.Path(cpuinfo_path).read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _gpus_support_bf16() -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability")
                    for gpu in gpus]
    return bool(gpus) and all(cc and cc[0] >= 8 for cc in capabilities)


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy name for a `--precision` value.

    "auto" is "mixed_bfloat16" where the hardware computes bf16 natively (GPUs of compute
    capability 8+, CPUs with AMX-BF16 or AVX512-BF16) and "float32" elsewhere.
    """
    if precision != "auto":
        return precision
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    native_bf16 = _gpus_support_bf16() if has_gpu else cpu_supports_bf16()
    return "mixed_bfloat16" if native_bf16 else "float32"
