"""Issue 40's check of a machine with several GPUs, as markdown tables to paste into an
issue: the training step's images/s per device under each dtype policy, with and without
XLA, on 1 to N devices (`throughput.step_rate`, bench.py's measurement), then a short
training run on all N, scaled to them (`recipes.scaling`), and its FID.

scripts/gpu_check.py runs it on the GPUs; the tests run it on logical CPU devices.
"""

import dataclasses
import itertools
import math

import tensorflow as tf

from dcgan import data, training
from dcgan.core.config import TrainConfig
from dcgan.core.errors import NonFiniteError
from dcgan.evaluation import evaluator
from dcgan.experiments import throughput
from dcgan.recipes.scaling import scale_for_replicas
from dcgan.rundir import checkpoints, loss_log
from dcgan.rundir.layout import RunDirectory

__all__ = ["DTYPE_POLICIES", "RunCheck", "StepRate", "check_run", "markdown_tables",
           "replica_counts", "step_rates"]

# What a GPU may compute in: bf16 is native from compute capability 8 (Ampere) on,
# float16 (with loss scaling) before.
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def replica_counts(num_devices: int) -> list[int]:
    """The replica counts the scaling is measured at: the powers of 2 below
    `num_devices` (>= 1), then `num_devices` itself; e.g. [1, 2, 4, 6] for 6."""
    counts = [2 ** power for power in range(math.ceil(math.log2(num_devices)))]
    return counts + [num_devices]


@dataclasses.dataclass(frozen=True)
class StepRate:
    """The step's throughput in one configuration.

    Attributes:
      dtype_policy: the Keras dtype policy it computed in.
      jit_compile: whether XLA compiled it.
      replicas: the devices it ran on, the first of the check's.
      images_per_sec: training images per second per device; None where it failed.
      error: the first line of the failure, or None.
    """

    dtype_policy: str
    jit_compile: bool
    replicas: int
    images_per_sec: float | None
    error: str | None = None

    def __str__(self):
        where = (f"{self.dtype_policy}, XLA {'on' if self.jit_compile else 'off'}, "
                 f"{self.replicas} device{'s' * (self.replicas > 1)}")
        if self.error:
            return f"{where}: failed: {self.error}"
        return f"{where}: {self.images_per_sec:,.0f} img/s per device"


def step_rates(config: TrainConfig, devices, dtype_policies, jit_compiles, warmup_steps: int,
               steps: int, repeats: int):
    """Yields a StepRate for each dtype policy x jit_compile x `replica_counts` of the
    devices, as measured.

    Each configuration is `config` scaled to its replicas (`scale_for_replicas`: its
    per-replica batch and its batch-norm synchronisation), timed by `throughput.step_rate`
    on the first that many `devices`. Its warm-up is at least one pass over
    `config.data.split`, so that the timed steps read decoded images from memory, as a
    training run does after its first epoch, not the PNG decoder's rate: keep the split
    small (e.g. train[:10000]). A configuration the runtime refuses (XLA, memory, a dtype
    the device lacks) yields its error and the others go on.

    Args:
      config: the recipe, with a per-replica batch (`config.scaling`).
      devices: device names, e.g. ["/gpu:0", "/gpu:1"].
      dtype_policies: resolved Keras policies (of DTYPE_POLICIES).
      jit_compiles: the jit_compile values to measure, e.g. (False, True).
      warmup_steps, steps, repeats: as `throughput.step_rate`'s.
    """
    examples = data.num_examples(config.data)
    for policy, jit_compile in itertools.product(dtype_policies, jit_compiles):
        for count in replica_counts(len(devices)):
            scaled, _ = scale_for_replicas(dataclasses.replace(config, jit_compile=jit_compile),
                                           count)
            images_per_step = scaled.n_critic * scaled.data.global_batch_size
            warmup = max(warmup_steps, -(-examples // images_per_step) + 1)
            try:
                rate, _ = throughput.step_rate(
                    scaled, policy, throughput.strategy_on(tuple(devices[:count])), warmup,
                    steps, repeats)
            except tf.errors.OpError as error:
                yield StepRate(policy, jit_compile, count, None,
                               error.message.strip().splitlines()[0])
                continue
            yield StepRate(policy, jit_compile, count, rate / count)


@dataclasses.dataclass(frozen=True)
class RunCheck:
    """A short training run on all the devices, and its score.

    Attributes:
      replicas: the devices it trained on.
      dtype_policy: the Keras dtype policy it trained in (config.json's).
      scaling: what the scaling to the replicas made of the recipe (config.json's).
      steps: the steps trained; where a loss or a weight became non-finite, that step.
      images_per_sec: training images per second per device after the first call
        (tracing), None where the run stopped.
      finite: whether every loss and weight stayed finite.
      fid: FID of the run's (EMA) generator, None where the run stopped.
    """

    replicas: int
    dtype_policy: str
    scaling: str | None
    steps: int
    images_per_sec: float | None
    finite: bool
    fid: float | None


def check_run(config: TrainConfig, strategy, eval_config: evaluator.EvalConfig) -> RunCheck:
    """Trains `config` on `strategy`'s replicas from scratch in `config.run_dir` (which
    must not hold a run) and scores it by `eval_config`'s FID.

    Raises:
      Everything `training.train` raises but NonFiniteError, which the result reports.
    """
    replicas = strategy.num_replicas_in_sync
    try:
        steps = training.train(config, strategy)["step"]
    except NonFiniteError as error:
        record = RunDirectory(config.run_dir).read_record()
        return RunCheck(replicas, record["dtype_policy"], record["scaling"], error.step, None,
                        False, None)
    record = RunDirectory(config.run_dir).read_record()
    seconds = loss_log.train_seconds(config.run_dir)
    # The first call traces the step: time the others where there are any.
    first = config.steps_per_call if steps > config.steps_per_call else 0
    images = (steps - first) * config.n_critic * record["config"]["data"]["global_batch_size"]
    rate = images / (seconds[steps] - seconds.get(first, 0.0)) / replicas
    fid = evaluator.Evaluator(eval_config).evaluate(
        checkpoints.restore_generator(config.run_dir))["fid"]
    return RunCheck(replicas, record["dtype_policy"], record["scaling"], steps, rate, True, fid)


def _rates_table(rates) -> str:
    """One row per dtype policy and XLA setting, a column of images/s per device per
    replica count, and the speed-up from the fewest devices to the most."""
    counts = sorted({rate.replicas for rate in rates})
    rows = {}
    for rate in rates:
        rows.setdefault((rate.dtype_policy, rate.jit_compile), {})[rate.replicas] = rate
    columns = [f"{count} device{'s' * (count > 1)}" for count in counts]
    if len(counts) > 1:
        columns.append(f"speed-up {counts[0]} -> {counts[-1]}")
    lines = ["| dtype policy | XLA | img/s per device: " + " | ".join(columns) + " |",
             "| --- | --- |" + " ---: |" * len(columns)]
    for (policy, jit_compile), by_count in rows.items():
        cells = [("failed" if by_count[count].error else
                  f"{by_count[count].images_per_sec:,.0f}") for count in counts]
        if len(counts) > 1:
            first, last = by_count[counts[0]], by_count[counts[-1]]
            if first.error or last.error:
                cells.append("")
            else:
                speedup = (last.images_per_sec * last.replicas
                           / (first.images_per_sec * first.replicas))
                cells.append(f"{speedup:.2f}x ({speedup / (last.replicas / first.replicas):.0%})")
        lines.append(f"| {policy} | {'on' if jit_compile else 'off'} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def _run_table(run: RunCheck) -> str:
    """The training run's one row."""
    rate = "" if run.images_per_sec is None else f"{run.images_per_sec:,.0f}"
    finite = "yes" if run.finite else f"no (step {run.steps})"
    fid = "" if run.fid is None else f"{run.fid:.1f}"
    return "\n".join([
        "| training run | devices | dtype policy | steps | img/s per device | losses finite | FID |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: |",
        f"| {run.scaling or 'the recipe as it is'} | {run.replicas} | {run.dtype_policy} | "
        f"{run.steps:,} | {rate} | {finite} | {fid} |"])


def markdown_tables(title: str, rates, run: RunCheck) -> str:
    """What scripts/gpu_check.py prints last: `title` as a heading, the StepRates'
    table, the run's, and the failures' messages under them."""
    failures = [f"- {rate}" for rate in rates if rate.error]
    return "\n\n".join([f"### {title}", _rates_table(rates), _run_table(run),
                         *(["\n".join(failures)] if failures else [])])
