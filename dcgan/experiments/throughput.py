"""Training throughput of the GanStep, timed apart from tracing and compilation: what
bench.py measures on the CPU or the GPUs, and scripts/gpu_check.py on 1 to N GPUs."""

import dataclasses
import functools
import statistics
import time

import keras
import tensorflow as tf

from dcgan import data, models
from dcgan.core.config import TrainConfig
from dcgan.gan.step import GanStep

__all__ = ["median_rate", "step_rate", "strategy_on"]


def median_rate(run_steps, steps: int, images_per_step: int, repeats: int) -> float:
    """Median images/s of `repeats` calls of run_steps(steps), a step reading
    `images_per_step` images."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_steps(steps)
        rates.append(steps * images_per_step / (time.perf_counter() - started))
    return statistics.median(rates)


@functools.cache
def strategy_on(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy per device set for the whole process. Every MirroredStrategy
    numbers its all-reduces from the same keys and the runtime keeps each key's shape for
    the process, so a second strategy whose step reduces other shapes (float16's overflow
    flag, another replica count) would abort: each new strategy moves the base of its
    keys, as TensorFlow's own tests do between strategies, and one strategy gives each
    new all-reduce a new key."""
    tf.distribute.MirroredStrategy._collective_key_base += 100_000
    return tf.distribute.MirroredStrategy(list(devices))


def step_rate(config: TrainConfig, policy_name: str, strategy, warmup_steps: int, steps: int,
              repeats: int):
    """The training images/s of `config`'s GanStep on `strategy`'s replicas.

    The step reads `config.data` (its global batch and split) through the input pipeline,
    `config.steps_per_call` steps per call; `warmup_steps` untimed steps first (tracing,
    compilation), then the median of `repeats` timed runs of `steps`. The EMA generator is
    left out: it is not part of the step's cost being compared.

    Args:
      policy_name: a resolved Keras dtype policy (not "auto"), set globally here.

    Returns:
      (images/s, run_steps), run_steps(n) running n more steps, for a profile.
    """
    config = dataclasses.replace(config, ema_decay=0.0)
    keras.mixed_precision.set_global_policy(policy_name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        gan_step = GanStep.from_config(
            config, models.build_networks(config.model, with_ema=False),
            tf.random.Generator.from_seed(0), policy_name)
    iterator = iter(strategy.experimental_distribute_dataset(
        data.load_split(config.data, models.output_range(config.model.architecture),
                        with_labels=config.with_labels, shuffle_seed=0, epochs=1000)))

    def run_steps(num_steps):
        for chunk in range(0, num_steps, config.steps_per_call):
            calls = min(config.steps_per_call, num_steps - chunk)
            metrics = gan_step.train(iterator, tf.constant(calls, tf.int32))
        metrics["d_loss"].numpy()  # Waits for the last call.

    run_steps(warmup_steps)
    # A step reads n_critic batches.
    rate = median_rate(run_steps, steps, config.n_critic * config.data.global_batch_size,
                       repeats)
    return rate, run_steps
