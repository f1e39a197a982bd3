"""The run plan: what a TrainConfig means where it runs (the recipe scaled to the
replicas, the dtype policy, the replicas and workers, the steps of an epoch and of the
run, the pixel range), resolved and validated once before training and handed down to
everything that needs it."""

import dataclasses

from dcgan import data, models
from dcgan.core.config import TrainConfig
from dcgan.recipes.scaling import scale_for_replicas
from dcgan.recipes.validation import validate
from dcgan.runtime import hardware

__all__ = ["RunPlan", "make_plan", "planned_steps"]


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A validated TrainConfig and the facts that follow from it where it runs.

    Attributes:
      config: the run's configuration, scaled to its replicas
        (`dcgan.recipes.scaling.scale_for_replicas`).
      dtype_policy: the Keras dtype policy the run computes in, resolved ("auto" is
        never left here).
      replicas: replicas in sync over all workers (`strategy.num_replicas_in_sync`).
      workers: processes of the cluster (1 unless MultiWorkerMirroredStrategy).
      steps_per_epoch: steps in one pass over the training split (a step reads
        n_critic batches).
      total_steps: the steps of the whole run before any `max_train_minutes` stop; None
        when neither `epochs` nor `max_steps` bounds it.
      pixel_range: (low, high) of the generator's output, which the real images are
        scaled to (the architecture's).
      scaling: what the scaling to the replicas made of the recipe, one line; None when
        the config has no per-replica batch.
    """

    config: TrainConfig
    dtype_policy: str
    replicas: int
    workers: int
    steps_per_epoch: int
    total_steps: int | None
    pixel_range: tuple[float, float]
    scaling: str | None

    @property
    def images_per_step(self) -> int:
        """Real images one step reads over all replicas: n_critic global batches."""
        return self.config.n_critic * self.config.data.global_batch_size

    @property
    def total_epochs(self) -> int | None:
        """Epochs the run starts, the last perhaps in part (None: no step bound)."""
        return None if self.total_steps is None else -(-self.total_steps // self.steps_per_epoch)


def planned_steps(config: TrainConfig) -> tuple[int, int | None]:
    """(steps per epoch, steps of the whole run), before any `max_train_minutes` stop;
    the second is None when neither `epochs` nor `max_steps` bounds the run."""
    # A step is one G update and reads n_critic batches.
    steps_per_epoch = data.num_examples(config.data) // (
        config.n_critic * config.data.global_batch_size)
    epoch_steps = None if config.epochs is None else config.epochs * steps_per_epoch
    bounds = [steps for steps in (epoch_steps, config.max_steps) if steps is not None]
    return steps_per_epoch, min(bounds, default=None)


def make_plan(config: TrainConfig, replicas: int = 1, workers: int = 1,
              dtype_policy: str | None = None, replicas_on_gpus: bool = False) -> RunPlan:
    """The plan of `config` on `replicas` replicas in `workers` processes, the config
    scaled to them first.

    Args:
      dtype_policy: the policy to run in, e.g. the one a resumed run recorded; None
        resolves `config.dtype_policy` on this machine
        (`hardware.resolve_dtype_policy`, which times bf16 for "auto").
      replicas_on_gpus: whether every replica's device is a GPU (`distribute.on_gpus`).

    Raises:
      ConfigError: `validate` refuses the config where it runs.
      DatasetUnavailableError: the training split is not prepared, or a file of it is
        damaged (`data.verify_records`: read here, not in the middle of training).
    """
    config, scaling = scale_for_replicas(config, replicas)
    steps_per_epoch, total_steps = planned_steps(config)
    data.verify_records(config.data)
    validate(config, replicas, workers, steps_per_epoch, replicas_on_gpus)
    dtype_policy = dtype_policy or hardware.resolve_dtype_policy(config.dtype_policy)
    return RunPlan(config=config, dtype_policy=dtype_policy,
                   replicas=replicas, workers=workers, steps_per_epoch=steps_per_epoch,
                   total_steps=total_steps,
                   pixel_range=models.output_range(config.model.architecture),
                   scaling=scaling)
