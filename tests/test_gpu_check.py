"""scripts/gpu_check.py (issue 40): its one line without a GPU; the tables, checked
against rates made up by hand; and the whole check on two logical CPU devices in place of
GPUs: the step rates on 1 and 2 devices, a short training run on both, its FID."""

import dataclasses
import math
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import REPO, after_prelude, tiny_config

from dcgan.core.config import ScalingConfig
from dcgan.evaluation import evaluator
from dcgan.experiments import gpu_check
from dcgan.experiments.gpu_check import RunCheck, StepRate
from dcgan.gan.step import GanStep


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py")], capture_output=True,
        text=True, timeout=300, cwd=REPO, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert completed.returncode == 0, completed.stderr[-3000:]
    [line] = completed.stdout.splitlines()
    assert line.startswith("gpu_check.py: no GPU visible: TensorFlow ") and line.endswith(
        "lists none; nothing to check."), line
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("devices, counts", [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]),
                                             (4, [1, 2, 4]), (6, [1, 2, 4, 6]),
                                             (8, [1, 2, 4, 8])])
def test_the_scaling_is_measured_at_powers_of_two_and_at_all_devices(devices, counts):
    assert gpu_check.replica_counts(devices) == counts


def test_the_tables_of_rates_made_up_by_hand():
    """float32 without XLA: 2 x 900 img/s against 1 x 1,000 is 1.8x, 90% of 2x."""
    rates = [StepRate("float32", False, 1, 1000.0), StepRate("float32", False, 2, 900.0),
             StepRate("float32", True, 1, 1200.0),
             StepRate("float32", True, 2, None, "XLA compilation failed")]
    run = RunCheck(2, "float32", "global batch 16 (8 a replica x 2; the recipe's 32)", 4,
                   500.0, True, 87.0)
    assert gpu_check.markdown_tables("the title", rates, run) == "\n".join([
        "### the title",
        "",
        "| dtype policy | XLA | img/s per device: 1 device | 2 devices | speed-up 1 -> 2 |",
        "| --- | --- | ---: | ---: | ---: |",
        "| float32 | off | 1,000 | 900 | 1.80x (90%) |",
        "| float32 | on | 1,200 | failed |  |",
        "",
        "| training run | devices | dtype policy | steps | img/s per device | losses finite | FID |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: |",
        "| global batch 16 (8 a replica x 2; the recipe's 32) | 2 | float32 | 4 | 500 | yes | "
        "87.0 |",
        "",
        "- float32, XLA on, 2 devices: failed: XLA compilation failed"])


def test_one_device_has_no_speed_up_column_and_a_stopped_run_no_rate_nor_fid():
    table = gpu_check.markdown_tables(
        "one", [StepRate("mixed_bfloat16", False, 1, 3000.0)],
        RunCheck(1, "mixed_bfloat16", None, 3, None, False, None))
    assert "| dtype policy | XLA | img/s per device: 1 device |\n| --- | --- | ---: |" in table
    assert "| mixed_bfloat16 | off | 3,000 |" in table
    assert table.endswith("| the recipe as it is | 1 | mixed_bfloat16 | 3 |  | no (step 3) |  |")


def test_each_configuration_warms_up_over_the_split_and_a_refused_one_is_reported(
        tmp_path, monkeypatch):
    """A stand-in for the timing that takes 1,000 img/s a device and refuses float16 on 2
    devices: 256 images are 32 steps of 8 on 1 device and 16 of 16 on 2, + 1 to time
    from the cache."""
    timed = []

    def step_rate(config, policy, strategy, warmup_steps, steps, repeats):
        replicas = strategy.num_replicas_in_sync
        timed.append((policy, replicas, config.data.global_batch_size, warmup_steps))
        if policy == "mixed_float16" and replicas == 2:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating\nmore")
        return 1000.0 * replicas, None

    monkeypatch.setattr(gpu_check.throughput, "step_rate", step_rate)
    rates = list(gpu_check.step_rates(_scaled_default(tmp_path / "run"), ["/cpu:0", "/cpu:1"],
                                      ("float32", "mixed_float16"), (True,), warmup_steps=5,
                                      steps=2, repeats=1))
    assert timed == [("float32", 1, 8, 33), ("float32", 2, 16, 17),
                     ("mixed_float16", 1, 8, 33), ("mixed_float16", 2, 16, 17)]
    assert rates == [StepRate("float32", True, 1, 1000.0), StepRate("float32", True, 2, 1000.0),
                     StepRate("mixed_float16", True, 1, 1000.0),
                     StepRate("mixed_float16", True, 2, None, "OOM when allocating")]
    assert str(rates[-1]) == "mixed_float16, XLA on, 2 devices: failed: OOM when allocating"


def _scaled_default(run_dir):
    """The default on 256 images at 8 a replica, 2 steps a call."""
    return tiny_config(run_dir, 256, 32, "fast_deep_gd", steps_per_call=2, num_fixed_samples=4,
                       scaling=ScalingConfig(per_replica_batch_size=8))


# Runs scripts/gpu_check.py with the two logical CPU devices listed as its GPUs.
CPUS_AS_GPUS = """
import tensorflow as tf
from dcgan.runtime import distribute
distribute.split_cpu(2)
_list = tf.config.list_logical_devices
tf.config.list_logical_devices = lambda kind=None: _list("CPU" if kind == "GPU" else kind)
"""


@pytest.mark.slow
def test_the_binary_prints_both_tables_after_its_header_and_each_measurement():
    completed = subprocess.run(
        after_prelude(CPUS_AS_GPUS, REPO / "scripts" / "gpu_check.py")
        + ["--dtype_policies=float32", "--jit=false", "--warmup_steps=1", "--steps=2",
           "--repeats=1", "--bench_examples=64", "--per_replica_batch_size=8",
           "--train_steps=2", "--num_samples=200"],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("gpu_check.py: preset fast_deep_gd, 8 images a GPU; step rates "
                               "of float32 x XLA false on 1, 2 GPUs; then 2 steps on 2 and FID "
                               "of 200 samples; devices CPU:0, CPU:1")
    assert lines[1].startswith("float32, XLA off, 1 device: ") and lines[2].startswith(
        "float32, XLA off, 2 devices: ")
    assert lines.index("| dtype policy | XLA | img/s per device: 1 device | 2 devices | "
                       "speed-up 1 -> 2 |") > 2
    [rates] = [line.split(" | ") for line in lines if line.startswith("| float32 | off | ")]
    assert len(rates) == 5 and re.fullmatch(r"\d+\.\d\dx \(\d+%\) \|", rates[-1]), rates
    assert all(float(cell.replace(",", "")) > 0 for cell in rates[2:4])
    [run] = [line.split(" | ") for line in lines
             if line.startswith("| global batch 16 (8 a replica x 2; the recipe's 32)")]
    # devices, dtype policy (the preset's auto), steps, img/s per device, finite, FID.
    assert run[1] == "2" and run[3] == "2" and run[5] == "yes", run
    assert float(run[4].replace(",", "")) > 0 and 0 < float(run[6].rstrip(" |")) < math.inf


def test_a_run_whose_losses_turn_non_finite_is_reported_not_raised(
        tmp_path, two_replicas, monkeypatch, float32_policy_after):
    """The second call's losses made NaN: the loop stops at its first step, 3."""
    original, calls = GanStep.train, []

    def nan_from_the_second_call(gan_step, iterator, num_steps):
        metrics = original.__get__(gan_step, GanStep)(iterator, num_steps)
        calls.append(num_steps)
        return ({name: values * math.nan for name, values in metrics.items()}
                if len(calls) > 1 else metrics)

    monkeypatch.setattr(GanStep, "train", nan_from_the_second_call)
    run = gpu_check.check_run(dataclasses.replace(_scaled_default(tmp_path / "run"),
                                                  max_steps=4), two_replicas,
                              evaluator.EvalConfig())  # Never scored.
    assert (run.finite, run.steps, run.images_per_sec, run.fid) == (False, 3, None, None)
    assert run.scaling.startswith("global batch 16 (8 a replica x 2")
