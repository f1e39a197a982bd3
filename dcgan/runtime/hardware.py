"""What this machine computes fast: the CPU's model and bf16 instructions, the matmul
rate of a dtype, and the mixed-precision policy `--dtype_policy=auto` resolves to."""

import functools
import pathlib
import platform
import statistics
import time

import tensorflow as tf

__all__ = ["BF16_MIN_MATMUL_SPEEDUP", "cpu_bf16_matmul_speedup", "cpu_label", "cpu_model",
           "cpu_supports_bf16", "fast_bf16", "matmul_gflops", "resolve_dtype_policy"]


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


def cpu_label(cpuinfo_path="/proc/cpuinfo") -> str:
    """`cpu_model` with the CPU's bf16 matrix instructions, e.g. "Intel(R) Xeon(R)
    Processor, AMX-BF16": Xeons with and without AMX share one model name and differ 2-3x
    in a bf16 step's speed."""
    flags = _cpuinfo(cpuinfo_path).split()
    extensions = [name for flag, name in (("amx_bf16", "AMX-BF16"),
                                          ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return ", ".join([cpu_model(cpuinfo_path)] + extensions[:1])


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
    """This machine's matmul rate in `dtype`: GFLOP/s of the median of `repeats` [size,
    size] x [size, size] `tf.matmul`s (2 size^3 FLOPs each), after two untimed ones.

    A square matmul this large is what oneDNN runs closest to the cores' FMA rate, so its
    rate is the most a step's convolutions (which are matmuls) can reach in that dtype.
    The median, not the best: on a shared machine one lucky repeat read the bf16 rate
    twice as high as the rest an hour later (1,455 against 762 GFLOP/s).
    """
    a, b = (tf.cast(tf.random.stateless_normal([size, size], seed=[0, seed]), dtype)
            for seed in (1, 2))
    # Reduced inside the function so that a scalar, not the product, is copied out; the
    # sum is size^2 of the 2 size^3 FLOPs.
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    for _ in range(2):
        matmul(a, b).numpy()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, b).numpy()
        seconds.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(seconds) / 1e9


@functools.cache
def cpu_bf16_matmul_speedup() -> float:
    """How many times float32's rate this CPU multiplies bf16 matrices at (1024-square
    matmuls, the best of 5 each; ~0.5 s, once per process)."""
    return matmul_gflops("bfloat16", 1024, 5) / matmul_gflops("float32", 1024, 5)


# A bf16 step gains less than its matmuls do (it also casts, and runs element-wise ops),
# so bf16 must multiply well ahead of float32 to pay. The flags alone do not tell: an
# AMD EPYC with AVX512-BF16 ran the fast step 1.4-1.75x faster in bf16, but an Intel Xeon
# with AVX512-BF16 and no AMX multiplied bf16 at 0.6x float32's rate and ran the step at
# 0.79x (docs/log/01-training-speed.md, "Precision on a CPU whose bf16 is slow").
BF16_MIN_MATMUL_SPEEDUP = 1.2


def fast_bf16() -> bool:
    """Whether this machine computes bf16 natively and fast: GPUs of compute capability
    8+, or a CPU with AMX-BF16 or AVX512-BF16 whose bf16 matmuls run at least
    BF16_MIN_MATMUL_SPEEDUP times as fast as float32's (`cpu_bf16_matmul_speedup`,
    timed once per process)."""
    if tf.config.list_physical_devices("GPU"):
        return _gpus_support_bf16()
    return cpu_supports_bf16() and cpu_bf16_matmul_speedup() >= BF16_MIN_MATMUL_SPEEDUP


def resolve_dtype_policy(dtype_policy: str) -> str:
    """The Keras dtype policy name for a `--dtype_policy` value: "auto" is
    "mixed_bfloat16" where `fast_bf16`, "float32" elsewhere. A timing can differ between
    processes on a loaded machine: `dcgan.training.loop` resumes a run in the policy it
    started in.
    """
    if dtype_policy != "auto":
        return dtype_policy
    return "mixed_bfloat16" if fast_bf16() else "float32"
