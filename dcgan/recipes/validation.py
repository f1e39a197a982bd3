"""The checks that relate fields of a `TrainConfig` to each other, to the registries and
to where the run trains (replicas, workers, the split's size): one function, one place.

Each config's `__post_init__` checks its fields one by one (a range, a name among the
allowed). Checks across fields live here rather than in `TrainConfig.__post_init__`
because some need the registries (`dcgan.models`, `dcgan.gan.losses`), which sit above
`dcgan.core.config`. None of them builds a model.
"""

from dcgan import data, models
from dcgan.core.config import TrainConfig
from dcgan.core.errors import ConfigError
from dcgan.gan import losses
from dcgan.recipes.scaling import nearest_divisible_batch

__all__ = ["validate"]


def validate(config: TrainConfig, num_replicas: int = 1, num_workers: int = 1,
             steps_per_epoch: int | None = None, replicas_on_gpus: bool = False) -> None:
    """Refuses a config whose fields disagree with each other or with the run's place.

    Args:
      config: the run's configuration.
      num_replicas: replicas in sync (`strategy.num_replicas_in_sync`), >= 1.
      num_workers: processes of the cluster (`distribute.num_workers`), >= 1.
      steps_per_epoch: steps in one pass over `config.data.split`, when known (it needs
        the split's size: `dcgan.recipes.plan.planned_steps`); None skips that check.
      replicas_on_gpus: whether every replica's device is a GPU (`distribute.on_gpus`).

    Raises:
      ConfigError: the first disagreement, in a message that names the fields.
    """
    if config.n_critic > 1 and config.update != "alternating":
        raise ConfigError(f"n_critic={config.n_critic} needs the alternating update, "
                          f"got {config.update!r}")
    if config.loss == "wasserstein" and not (config.penalties.gp_weight
                                             or config.penalties.r1_weight):
        # There is no weight clipping here: without a penalty the critic is unbounded.
        raise ConfigError("loss 'wasserstein' needs a penalty that keeps the critic "
                          "Lipschitz: set gp_weight (10 in the WGAN-GP paper), or use "
                          "the wgan_gp preset")
    if config.model.num_classes not in (0, len(data.CLASS_NAMES)):
        raise ConfigError(f"A conditional model of Fashion-MNIST has {len(data.CLASS_NAMES)} "
                          f"classes, got num_classes={config.model.num_classes}.")
    # Both raise ConfigError for a name that is not registered.
    models.output_range(config.model.architecture)
    losses.get_loss(config.loss)
    if config.penalties.any and models.mixes_examples(config.model.architecture):
        raise ConfigError(
            f"The {config.model.architecture} discriminator has batch norm, which mixes the "
            "images of a batch, so a gradient penalty (each image's own gradient) cannot "
            "apply: use --architecture=fast_deep_gd_nf, the default's networks with a "
            "norm-free D (or fast_deep_gd_ln, fast_deep_gd_sn).")
    if config.data.global_batch_size % num_replicas:
        nearest = nearest_divisible_batch(config.data.global_batch_size, num_replicas)
        raise ConfigError(f"The global batch size {config.data.global_batch_size} is not "
                          f"divisible by the {num_replicas} replicas: the nearest that is, "
                          f"{nearest} (--batch_size={nearest}), or --per_replica_batch_size "
                          "to scale the recipe to the replicas.")
    if config.jit_compile and config.model.synchronized_batch_norm and not replicas_on_gpus:
        # MirroredStrategy all-reduces inside an XLA-compiled function only when all its
        # devices are GPUs (its `_use_merge_call`); elsewhere the all-reduce is a
        # merge_call, which fails when the step traces its compiled passes.
        raise ConfigError("Synchronised batch norm under --jit_compile needs every replica "
                          "on a GPU: drop --jit_compile, or leave batch norm per replica "
                          "(no --sync_batch_norm, --sync_batch_norm_below at most the "
                          "per-replica batch).")
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ConfigError(f"The split {config.data.split!r} holds fewer images than one step's "
                          f"{config.n_critic} batch(es) of {config.data.global_batch_size}.")
    if config.epochs is None and config.max_steps is None:
        if config.max_train_minutes is None:
            raise ConfigError("epochs=None trains until max_train_minutes, which is not set: "
                              "set max_train_minutes, epochs or max_steps.")
        if config.schedule.varies:
            # The schedule's horizon is the run's last step, unknown when only the clock
            # stops the run.
            raise ConfigError(f"lr_schedule={config.schedule.kind!r} with lr_warmup_steps="
                              f"{config.schedule.warmup_steps} needs the run's length in steps, "
                              "which epochs=None does not give: set epochs or max_steps, "
                              "or use the constant schedule without warm-up.")
    if config.max_train_minutes is not None and num_workers > 1:
        # Each worker times its own steps; workers that stopped at different steps would
        # wait for each other's all-reduces forever.
        raise ConfigError("max_train_minutes needs a single worker.")
