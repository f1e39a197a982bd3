"""The state of a run: G, D, their optimizers, the EMA generator, the step counter, the
noise RNG and the fixed noise, composed into one `tf.train.Checkpoint`."""

import dataclasses
import math

import keras
import tensorflow as tf

from dcgan import models
from dcgan.gan.step import GanStep
from dcgan.recipes.plan import RunPlan
from dcgan.rundir import checkpoints

__all__ = ["RunState", "build_run_state", "grid_noise_count"]


@dataclasses.dataclass
class RunState:
    """The models and variables of a run, built under a strategy's scope.

    `step` is the run's one step counter: the loop advances it after every call and the
    checkpoint manager numbers its checkpoints by it.
    """

    networks: models.Networks
    gan_step: GanStep
    step: tf.Variable
    fixed_noise: tf.Variable
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager

    @property
    def generator(self) -> keras.Model:
        return self.networks.generator

    @property
    def discriminator(self) -> keras.Model:
        return self.networks.discriminator

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator behind samples and exports: the EMA one when the run keeps it."""
        ema_generator = self.networks.ema_generator
        return self.networks.generator if ema_generator is None else ema_generator

    @property
    def steps_taken(self) -> int:
        """The value of `step`: steps taken (restored, then trained) so far."""
        return int(self.step.numpy())

    def advance(self, num_steps: int) -> int:
        """Counts `num_steps` more steps taken; returns `steps_taken`."""
        self.step.assign_add(num_steps)
        return self.steps_taken


def grid_noise_count(grid_size: int, conditional: bool) -> int:
    """Noise vectors behind a sample grid of `grid_size` (a square) images: one per image,
    or for a conditional G one per column, every row (class) drawing from the same ones."""
    return math.isqrt(grid_size) if conditional else grid_size


def _layer_rng_states(model):
    # Keras 3 keeps each Dropout's RNG in a SeedGenerator that tf.train.Checkpoint does not
    # reach through the model; without it a resumed run would draw other dropout masks.
    return [layer.seed_generator.state for layer in model.layers
            if hasattr(layer, "seed_generator")]


def _take_the_configs_constant_learning_rates(config, gan_step: GanStep):
    """Sets both optimizers' constant learning rates to the config's after a restore.

    A constant rate is an optimizer variable, which the restore has just set to the saved
    run's; a resume may lower it (the advice after a non-finite loss). A schedule is a
    function of the update count and stores nothing.
    """
    if config.schedule.varies:
        return
    for optimizer, settings in ((gan_step.generator_optimizer, config.generator_optimizer),
                                (gan_step.discriminator_optimizer,
                                 config.discriminator_optimizer)):
        optimizer.learning_rate = settings.learning_rate


def build_run_state(plan: RunPlan, strategy, checkpoint_dir, restore=True,
                    scratch_dir=None) -> RunState:
    """Builds G, D, optimizers, RNG and the checkpoint, restoring the latest one if any.

    Args:
      plan: the run's plan; its dtype policy must be Keras's global one already.
      checkpoint_dir: the run directory's checkpoints.
      restore: restore the newest checkpoint of `checkpoint_dir`.
      scratch_dir: None on the chief, whose CheckpointManager keeps the run's checkpoints;
        on another worker, the directory its manager saves into, and the run directory
        is only read.
    """
    config = plan.config
    with strategy.scope():
        networks = models.build_networks(config.model, with_ema=bool(config.ema_decay))
        noise = tf.random.Generator.from_seed(config.seed)
        fixed_noise = tf.Variable(
            tf.random.Generator.from_seed(config.seed + 1).normal(
                [grid_noise_count(config.num_fixed_samples, bool(config.model.num_classes)),
                 config.model.noise_dim]),
            trainable=False, name="fixed_noise")
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        gan_step = GanStep.from_config(config, networks, noise, plan.dtype_policy,
                                       total_steps=plan.total_steps)
    generator, discriminator, ema_generator = networks
    checkpointed = dict(
        generator=generator, discriminator=discriminator,
        layer_rng_states=_layer_rng_states(generator) + _layer_rng_states(discriminator),
        generator_optimizer=gan_step.generator_optimizer,
        discriminator_optimizer=gan_step.discriminator_optimizer,
        noise=noise, fixed_noise=fixed_noise, step=step)
    if ema_generator is not None:
        checkpointed["ema_generator"] = ema_generator  # The key checkpoints.py restores.
    checkpoint = tf.train.Checkpoint(**checkpointed)
    if restore:
        # Before the manager reads the state file, which restore_latest may repair.
        checkpoints.restore_latest(checkpoint, checkpoint_dir, repair=scratch_dir is None)
        _take_the_configs_constant_learning_rates(config, gan_step)
    manager = tf.train.CheckpointManager(
        checkpoint, scratch_dir or checkpoint_dir, max_to_keep=config.max_checkpoints,
        step_counter=step)
    return RunState(networks, gan_step, step, fixed_noise, checkpoint, manager)
