import pytest
import tensorflow as tf

from dcgan import distribute


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx512f avx512_bf16 fma", True),  # AMD EPYC (Zen 4)
    ("fpu sse2 avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
    ("fpu sse2 avx2 fma avx512f", False),
])
def test_cpu_bf16_detection_reads_cpuinfo_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert distribute.cpu_supports_bf16(cpuinfo) is expected


def test_missing_cpuinfo_means_no_bf16(tmp_path):
    assert distribute.cpu_supports_bf16(tmp_path / "absent") is False


def test_explicit_precision_is_kept_and_auto_follows_this_cpu():
    assert distribute.resolve_precision("float32") == "float32"
    assert distribute.resolve_precision("mixed_float16") == "mixed_float16"
    expected = "mixed_bfloat16" if distribute.cpu_supports_bf16() else "float32"
    assert distribute.resolve_precision("auto") == expected


def test_strategy_uses_the_logical_cpu_devices():
    assert distribute.make_strategy().num_replicas_in_sync == 2  # conftest splits the CPU


def test_splitting_again_after_initialisation_is_refused():
    tf.constant(0)  # Initialises the devices.
    with pytest.raises(RuntimeError, match="before running any op"):
        distribute.split_cpu(3)
