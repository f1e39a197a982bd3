import functools
import platform
import types

import pytest
import tensorflow as tf

from dcgan.runtime import distribute, hardware


@pytest.mark.parametrize("flags, expected, extension", [
    ("fpu sse2 avx512f avx512_bf16 fma", True, ", AVX512-BF16"),  # AMD EPYC (Zen 4)
    # Intel Sapphire Rapids: AMX named, as what sets it apart from other Xeons.
    ("fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile", True, ", AMX-BF16"),
    ("fpu sse2 avx2 fma avx512f", False, ""),
])
def test_cpu_bf16_detection_reads_cpuinfo_flags(tmp_path, flags, expected, extension):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Xeon\nflags\t\t: {flags}\n")
    assert hardware.cpu_supports_bf16(cpuinfo) is expected
    assert hardware.cpu_label(cpuinfo) == "Xeon" + extension


def test_missing_cpuinfo_means_no_bf16(tmp_path):
    assert hardware.cpu_supports_bf16(tmp_path / "absent") is False


def test_cpu_model_is_the_first_model_name_else_the_platforms(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n")
    assert hardware.cpu_model(cpuinfo) == "AMD EPYC 7B13 64-Core Processor"
    assert hardware.cpu_model(tmp_path / "absent") == (platform.processor()
                                                         or platform.machine())


def test_explicit_dtype_policy_is_kept():
    assert hardware.resolve_dtype_policy("float32") == "float32"
    assert hardware.resolve_dtype_policy("mixed_float16") == "mixed_float16"


@pytest.mark.parametrize("capabilities, cpu_flags, bf16_speedup, expected", [
    ([(8, 0)], "avx2", None, "mixed_bfloat16"),  # A100: bf16 tensor cores.
    ([(8, 0), (8, 6)], "avx2", None, "mixed_bfloat16"),
    ([(7, 5)], "avx512_bf16", None, "float32"),  # T4: no bf16; the CPU's flags do not count.
    ([(8, 0), (7, 5)], "avx2", None, "float32"),  # One GPU without bf16 holds the others back.
    ([], "avx512f avx512_bf16", 2.0, "mixed_bfloat16"),
    ([], "avx512f avx512_bf16", 0.6, "float32"),  # bf16 instructions, but slow ones.
    ([], "avx2 avx512f", None, "float32"),
], ids=["cc8.0", "cc8.0+8.6", "cc7.5", "cc8.0+7.5", "cpu-bf16", "cpu-slow-bf16",
        "cpu-no-bf16"])
def test_auto_dtype_policy_follows_the_hardware(monkeypatch, tmp_path, capabilities, cpu_flags,
                                             bf16_speedup, expected):
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{index}", "GPU")
            for index in range(len(capabilities))]
    details = {gpu.name: {"compute_capability": cc} for gpu, cc in zip(gpus, capabilities)}
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda device_type=None: gpus if device_type == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: details[device.name])
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {cpu_flags}\n")
    # The real flag parser, on this cpuinfo instead of the machine's.
    monkeypatch.setattr(hardware, "cpu_supports_bf16",
                        functools.partial(hardware.cpu_supports_bf16, cpuinfo))
    # The matmul timing only where the flags promise bf16 on a CPU-only machine.
    timings = []
    monkeypatch.setattr(hardware, "cpu_bf16_matmul_speedup",
                        lambda: timings.append(bf16_speedup) or bf16_speedup)
    assert hardware.resolve_dtype_policy("auto") == expected
    assert timings == ([] if bf16_speedup is None else [bf16_speedup])


def test_matmul_rate_counts_two_flops_per_multiply_add(monkeypatch):
    """On a clock that gives each timed matmul 0.25 s: 2 * 64^3 FLOPs / 0.25 s."""
    clock = iter(range(100))
    monkeypatch.setattr(hardware.time, "perf_counter", lambda: 0.25 * next(clock))
    assert hardware.matmul_gflops("bfloat16", 64, 3) == pytest.approx(2 * 64**3 / 0.25 / 1e9)


def test_matmul_rate_is_the_median_repeat_not_the_luckiest(monkeypatch):
    """Timed matmuls of 1, 0.25 and 0.5 s: the rate of 0.5 s."""
    clock = iter([0.0, 1.0, 1.0, 1.25, 1.25, 1.75])
    monkeypatch.setattr(hardware.time, "perf_counter", lambda: next(clock))
    assert hardware.matmul_gflops("float32", 64, 3) == pytest.approx(2 * 64**3 / 0.5 / 1e9)


def test_strategy_uses_the_logical_cpu_devices():
    assert distribute.make_strategy().num_replicas_in_sync == 2  # conftest splits the CPU


def _strategy_on(*devices):
    """A stand-in for a strategy whose replicas run on `devices`, e.g. GPUs."""
    return types.SimpleNamespace(extended=types.SimpleNamespace(
        worker_devices=[f"/job:localhost/replica:0/task:0/device:{device}"
                        for device in devices]))


def test_on_gpus_means_every_replica_on_a_gpu():
    assert not distribute.on_gpus(distribute.make_strategy())  # conftest's logical CPUs
    assert distribute.on_gpus(_strategy_on("GPU:0", "GPU:1"))
    assert not distribute.on_gpus(_strategy_on("GPU:0", "CPU:0"))


def test_splitting_again_after_initialisation_is_refused():
    tf.constant(0)  # Initialises the devices.
    with pytest.raises(RuntimeError, match="before running any op"):
        distribute.split_cpu(3)
