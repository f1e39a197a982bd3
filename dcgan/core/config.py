"""Frozen configuration dataclasses: the one place where defaults live.

Binaries turn flags into these once; library code receives them and never reads flags.
"""

import dataclasses
import math
import os

from dcgan.core.errors import ConfigError

__all__ = [
    "AUGMENTATIONS",
    "CONDITIONINGS",
    "DEFAULT_DATA_DIR",
    "DataConfig",
    "LR_SCALINGS",
    "LR_SCHEDULES",
    "ModelConfig",
    "OptimizerConfig",
    "PenaltyConfig",
    "ScalingConfig",
    "ScheduleConfig",
    "DTYPE_POLICIES",
    "SCALING_KEEPS",
    "SIGMOID_RANGE",
    "TANH_RANGE",
    "TrainConfig",
]

DEFAULT_DATA_DIR = os.environ.get("DCGAN_DATA_DIR", "~/tensorflow_datasets")
TANH_RANGE = (-1.0, 1.0)
SIGMOID_RANGE = (0.0, 1.0)
# How a conditional discriminator sees the class: `projection` adds the inner product of
# the class's embedding with D's features to its logit (Miyato & Koyama 2018); `concat`
# gives the convolutions the class's learned 28x28 map as a second image channel.
CONDITIONINGS = ("projection", "concat")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How to read Fashion-MNIST. The pixel range, the labels and the shuffle seed are
    arguments of `dcgan.data.load_split` instead: a training run derives them from its
    model and seed (`RunPlan.pixel_range`, `TrainConfig.with_labels`, `TrainConfig.shuffle_seed`).

    Attributes:
      data_dir: TFDS data directory that holds (or will hold) `fashion_mnist`.
      split: a TFDS split, slices included (e.g. "train", "test", "train[:512]").
      global_batch_size: images per batch across all replicas.
      shuffle_buffer: examples in the shuffle buffer. TFDS already stores the split in a
        shuffled order, and filling a 60,000-image buffer costs ~2.5 s of PNG decoding
        before the first batch, so the default is smaller.
      drop_remainder: drop the last partial batch (a multi-replica step needs full ones).
      cache: keep the decoded uint8 images in memory after the first pass.
    """

    data_dir: str = DEFAULT_DATA_DIR
    split: str = "train"
    global_batch_size: int = 256
    shuffle_buffer: int = 10_000
    drop_remainder: bool = True
    cache: bool = True

    def __post_init__(self):
        if self.global_batch_size < 1:
            raise ConfigError(f"global_batch_size must be positive, got {self.global_batch_size}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which generator/discriminator pair to build.

    Attributes:
      architecture: a name registered in `dcgan.models.ARCHITECTURES`.
      noise_dim: length of the generator's input noise vector z.
      synchronized_batch_norm: batch-norm statistics over the global batch rather than
        each replica's share (only matters with more than one replica).
      fused_batch_norm: train batch norm with TensorFlow's fused kernel
        (`dcgan.models.normalization`): the same maths in fewer ops; not with
        synchronized_batch_norm, which takes Keras' layer.
      num_classes: classes the networks are conditioned on (0: unconditional). G then
        takes (z, label) and concatenates z with the label's learned embedding; D takes
        (images, label) and sees the label as `conditioning` says.
      conditioning: one of CONDITIONINGS, how a conditional D sees the label.
    """

    architecture: str = "tutorial"
    noise_dim: int = 100
    synchronized_batch_norm: bool = False
    fused_batch_norm: bool = True
    num_classes: int = 0
    conditioning: str = "projection"

    def __post_init__(self):
        if self.noise_dim < 1:
            raise ConfigError(f"noise_dim must be positive, got {self.noise_dim}")
        if self.num_classes < 0 or self.num_classes == 1:
            raise ConfigError(f"num_classes must be 0 (unconditional) or at least 2, got "
                              f"{self.num_classes}")
        if self.conditioning not in CONDITIONINGS:
            raise ConfigError(f"conditioning must be one of {CONDITIONINGS}, got "
                              f"{self.conditioning!r}")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam hyper-parameters of one network.

    Attributes:
      learning_rate: Adam step size, > 0.
      beta_1: decay of the first-moment estimate, in [0, 1).
      beta_2: decay of the second-moment estimate, in [0, 1).
    """

    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")


DTYPE_POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
UPDATES = ("alternating", "simultaneous")
LR_SCHEDULES = ("constant", "linear", "cosine")
# Differentiable augmentations of D's inputs (see `dcgan.gan.augment`).
AUGMENTATIONS = ("color", "translation", "cutout")


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """How both learning rates change over a run (see `dcgan.gan.schedules`).

    Attributes:
      kind: one of LR_SCHEDULES. "linear" and "cosine" decay the rates to `floor` times
        their setting at the run's last step, epochs * steps_per_epoch or `max_steps` if
        fewer (not `max_train_minutes`, which is unknown in steps: a schedule or warm-up
        needs `epochs` or `max_steps`).
      warmup_steps: steps of linear warm-up from 0 before the schedule (0: none).
      floor: the fraction of each learning rate a decay ends at, in [0, 1].
      decay_fraction: the last share of the run (after warm-up) that a decay spans, in
        (0, 1]; before it the rates hold at their setting (warmup-stable-decay).
    """

    kind: str = "constant"
    warmup_steps: int = 0
    floor: float = 0.0
    decay_fraction: float = 1.0

    def __post_init__(self):
        if self.kind not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.kind!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"lr_warmup_steps must be non-negative, got {self.warmup_steps}")
        if not 0 <= self.floor <= 1:
            raise ConfigError(f"lr_floor must be in [0, 1], got {self.floor}")
        if not 0 < self.decay_fraction <= 1:
            raise ConfigError(f"lr_decay_fraction must be in (0, 1], got {self.decay_fraction}")

    @property
    def varies(self) -> bool:
        """Whether the rates change during the run (a decay or a warm-up), so that the
        schedule needs the run's length in steps."""
        return self.kind != "constant" or self.warmup_steps > 0


@dataclasses.dataclass(frozen=True)
class PenaltyConfig:
    """D's gradient penalties (see `dcgan.gan.penalties`), each 0 for none.

    Attributes:
      gp_weight: weight of the WGAN-GP gradient penalty in D's loss.
      r1_weight: weight (the paper's gamma) of the R1 penalty on real images.
      r2_weight: weight of the R2 penalty on generated images; R3GAN (Huang et al. 2025)
        pairs it with R1 of the same weight and the `relativistic` loss.
      every: compute the penalties in every this many D updates only (n_critic per
        step), with their weights multiplied by it: lazy regularisation (Karras et al.
        2020, who use 16). 1: in every update.
    """

    gp_weight: float = 0.0
    r1_weight: float = 0.0
    r2_weight: float = 0.0
    every: int = 1

    def __post_init__(self):
        for name in ("gp_weight", "r1_weight", "r2_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.every < 1:
            raise ConfigError(f"penalty_every must be positive, got {self.every}")

    @property
    def any(self) -> bool:
        """Whether any penalty is on."""
        return bool(self.gp_weight or self.r1_weight or self.r2_weight)


LR_SCALINGS = ("constant", "sqrt", "linear")
SCALING_KEEPS = ("steps", "epochs")


@dataclasses.dataclass(frozen=True)
class ScalingConfig:
    """How the recipe follows the number of replicas (`dcgan.recipes.scaling`); the
    recipe's own global batch is the batch its rates, EMA and warm-up were tuned at.

    Attributes:
      per_replica_batch_size: images a replica computes per batch. The global batch
        becomes this times the replicas, and the rates, the EMA decay and the warm-up
        follow it from the recipe's (`lr_scaling`, half-lives kept in images); batch
        norm is synchronised below `sync_batch_norm_below`. None: the recipe as it is,
        its global batch split over the replicas.
      lr_scaling: one of LR_SCALINGS, how both learning rates follow the ratio k of the
        scaled global batch to the recipe's: x1, x sqrt(k) or x k (sqrt: as good as
        constant within two seeds, linear worse, on logical CPU replicas).
      warmup_images: with a per-replica batch, warm the rates up linearly over at least
        this many images (Goyal et al. 2017 warm linearly scaled rates up over 5 epochs);
        0: only the recipe's own warm-up, kept in images.
      sync_batch_norm_below: with a per-replica batch and several replicas, batch norm
        takes its statistics over the global batch when a replica's batch is below this
        (0: never; --sync_batch_norm turns it on at any batch). 32: at 16 a replica,
        synchronising scored 0.88x the FID on three seeds.
      keeps: with a per-replica batch, what of the run's length `epochs` the scaled run
        keeps, one of SCALING_KEEPS: "steps" multiplies the epochs by k (rounded up), about
        as many updates as the recipe of k times the images, which is where a larger batch
        wins on this GAN; "epochs" keeps the passes over the data, k times fewer steps.
        `max_steps` and `max_train_minutes` are kept as given.
    """

    per_replica_batch_size: int | None = None
    lr_scaling: str = "sqrt"
    warmup_images: int = 0
    sync_batch_norm_below: int = 32
    keeps: str = "steps"

    def __post_init__(self):
        if self.per_replica_batch_size is not None and self.per_replica_batch_size < 1:
            raise ConfigError(f"per_replica_batch_size must be positive, got "
                              f"{self.per_replica_batch_size}")
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr_scaling must be one of {LR_SCALINGS}, got "
                              f"{self.lr_scaling!r}")
        if self.keeps not in SCALING_KEEPS:
            raise ConfigError(f"keeps must be one of {SCALING_KEEPS}, got {self.keeps!r}")
        for name in ("warmup_images", "sync_batch_norm_below"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    Attributes:
      run_dir: directory of checkpoints and artifacts; re-running resumes from it.
      model: the networks to build.
      data: the input pipeline (its labels and shuffle seed are this config's
        properties of those names; its pixel range, the run plan's).
      generator_optimizer: Adam settings of G.
      discriminator_optimizer: Adam settings of D.
      loss: a name registered in `dcgan.gan.losses.LOSSES`.
      update: one of UPDATES, how a step updates D and G (see `dcgan.gan.step`).
      n_critic: D updates per G update, each on its own batch (alternating update only).
        A step is one G update: it reads n_critic batches, and an epoch has
        examples // (n_critic * global_batch_size) steps.
      penalties: D's gradient penalties and how often they are computed.
      ema_decay: keep an exponential moving average of G's weights with this decay (after
        a ramp-up, see `dcgan.gan.ema.ema_decay_after`), and sample, export and
        evaluate with it (0: none). Its half-life is log(0.5) / log(ema_decay) G updates:
        0.997 gives 231, half an epoch of batch 128.
      augment: names of AUGMENTATIONS, the random transformations D sees every real and
        generated image through, in this order, in D's and G's updates (DiffAugment,
        see `dcgan.gan.augment`); () for none.
      schedule: how both learning rates change over the run.
      scaling: how the batch, the rates, the EMA and batch norm follow the replicas.
      epochs: passes over the training split (None: as many as `max_train_minutes` or
        `max_steps` allows, for comparisons at equal time).
      max_steps: stop after this many steps in all (None: run all epochs).
      max_train_minutes: stop once the steps have taken this long, over all resumes
        (None: no limit); for comparisons at equal compute.
      steps_per_call: training steps inside one `tf.function` call; metrics are read once
        per call.
      dtype_policy: the Keras dtype policy, one of DTYPE_POLICIES; "auto" picks
        mixed_bfloat16 where the hardware computes bf16 faster than float32
        (`dcgan.runtime.hardware.resolve_dtype_policy`).
      jit_compile: compile the gradient computation with XLA.
      fused_adam: apply Adam with TensorFlow's fused kernel, one op per variable
        (`dcgan.gan.optimizers.FusedAdam`): the same maths in fewer ops.
      seed: seeds weights, noise, dropout and the data order.
      deterministic: enable TensorFlow's deterministic ops (exactly repeatable runs).
      checkpoint_every_steps: save a checkpoint every this many steps (and at epoch ends).
      max_checkpoints: checkpoints kept on disk.
      num_fixed_samples: images in the per-epoch sample grid of an unconditional run, a
        square n = k * k; a conditional run shows one row per class of k images instead,
        the same k noise vectors in every row.
    """

    run_dir: str = "runs/tutorial"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    generator_optimizer: OptimizerConfig = OptimizerConfig()
    discriminator_optimizer: OptimizerConfig = OptimizerConfig()
    loss: str = "non_saturating"
    update: str = "alternating"
    n_critic: int = 1
    penalties: PenaltyConfig = PenaltyConfig()
    ema_decay: float = 0.0
    augment: tuple[str, ...] = ()
    schedule: ScheduleConfig = ScheduleConfig()
    scaling: ScalingConfig = ScalingConfig()
    epochs: int | None = 50
    max_steps: int | None = None
    max_train_minutes: float | None = None
    steps_per_call: int = 10
    dtype_policy: str = "auto"
    jit_compile: bool = False
    fused_adam: bool = True
    seed: int = 0
    deterministic: bool = False
    checkpoint_every_steps: int = 500
    max_checkpoints: int = 3
    num_fixed_samples: int = 64

    def __post_init__(self):
        # Each field on its own; checks across fields, and against the registries and the
        # strategy, are `dcgan.recipes.validation.validate`'s.
        for name in ("epochs", "max_steps", "n_critic", "steps_per_call",
                     "checkpoint_every_steps", "max_checkpoints"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ConfigError(f"max_train_minutes must be positive, got {self.max_train_minutes}")
        if self.update not in UPDATES:
            raise ConfigError(f"update must be one of {UPDATES}, got {self.update!r}")
        unknown = set(self.augment) - set(AUGMENTATIONS)
        if unknown or len(set(self.augment)) < len(self.augment):
            raise ConfigError(f"augment must name each of {AUGMENTATIONS} at most once, got "
                              f"{tuple(self.augment)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.dtype_policy not in DTYPE_POLICIES:
            raise ConfigError(f"dtype_policy must be one of {DTYPE_POLICIES}, got "
                              f"{self.dtype_policy!r}")
        if math.isqrt(self.num_fixed_samples) ** 2 != self.num_fixed_samples:
            raise ConfigError(f"num_fixed_samples must be a square, got {self.num_fixed_samples}")

    # Facts that follow from the fields above, so that no field can disagree with them
    # (the pixel range follows the architecture: `dcgan.recipes.plan.RunPlan`).

    @property
    def with_labels(self) -> bool:
        """Whether the data yields (images, labels): exactly when the model is conditional."""
        return self.model.num_classes > 0

    @property
    def shuffle_seed(self) -> int:
        """Seeds the data order (with the epoch: `dcgan.data.load_split`)."""
        return self.seed
