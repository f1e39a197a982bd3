"""The recipe on N replicas: how the global batch, the learning rates, the warm-up, the
EMA and batch-norm synchronisation follow the replica count (issue 40).

A recipe is tuned at its global batch B0 (the default's 32, on one CPU replica). Given a
per-replica batch p (`ScalingConfig.per_replica_batch_size`), N replicas train at the
global batch B = p * N, and with k = B / B0:

  - both learning rates are multiplied by 1, sqrt(k) or k (`lr_scaling`). Linear scaling
    keeps SGD's update per image (Goyal et al. 2017); square-root scaling keeps the
    variance of an Adam step's gradient noise (Krizhevsky 2014, Malladi et al. 2022's
    square-root rule for Adam). The default is sqrt: on 4 logical CPU replicas of 16, 32
    and 64 images it scored as constant scaling within the seeds (one, three and five
    each), and linear scaling was worse at 32 and 64 a replica (log 23 in docs/);
  - the EMA decay per G update d becomes d ** k, which keeps its half-life in images
    (log 0.5 / log d updates of k times the images each);
  - the recipe's warm-up is kept in images (warmup_steps / k steps), and `warmup_images`
    may ask for a longer one;
  - batch norm is synchronised across replicas when p is below `sync_batch_norm_below`,
    32 by default. In Wu & He 2018 (Group Normalization, fig. 1) batch norm's ImageNet
    error rises quickly as the batch per GPU falls below 16; this GAN is more sensitive:
    4 replicas of 8 images scored 1.36x the FID of one replica of 32 without it and
    matched it with it, and at 4 x 16 synchronising scored 0.88x on three seeds (lower on
    each, Welch p 0.053). At 4 x 32 it scored 0.96x, within the seeds (p 0.20), and
    cost its all-reduces on every step: not worth it from 32 a replica on.

The run keeps the recipe's steps (`keeps="steps"`): its epochs are multiplied by k (rounded
up), about as many updates of k times the images. In log 23's rows a larger batch won at
equal steps at every length measured (at the default's 16,875 steps, 4 x 32 scored FID 10.7
against the default's 14.5, three seeds each, Welch p 0.046) and lost at equal epochs whatever the
rates; on GPUs a step costs about the same at a larger batch, so equal steps are about
equal wall-clock there. `keeps="epochs"` keeps the passes over the data instead (k times
fewer steps). `max_steps`, `max_train_minutes` and `checkpoint_every_steps` stay as given.
Adam's betas are not scaled. Without a per-replica batch the recipe is used as it is, its
global batch split over the replicas (`nearest_divisible_batch` names the nearest that
splits when it does not).
"""

import dataclasses
import math

from dcgan.core.config import TrainConfig

__all__ = ["lr_factor", "nearest_divisible_batch", "scale_for_replicas"]


def nearest_divisible_batch(batch_size: int, replicas: int) -> int:
    """The positive multiple of `replicas` nearest to `batch_size` (of two equally near,
    the larger, which leaves the devices less idle): the global batch nearest to it that
    `replicas` replicas split evenly. `batch_size` itself when it splits."""
    lower = batch_size // replicas * replicas
    upper = lower + replicas
    return upper if lower == 0 or upper - batch_size <= batch_size - lower else lower


def lr_factor(lr_scaling: str, batch_ratio: float) -> float:
    """What a learning rate is multiplied by at `batch_ratio` (> 0) times the recipe's
    global batch: 1 ("constant"), sqrt(batch_ratio) ("sqrt") or batch_ratio ("linear")."""
    return {"constant": 1.0, "sqrt": math.sqrt(batch_ratio), "linear": batch_ratio}[lr_scaling]


def _short(number: float) -> str:
    """A rate as people write it: 0.0016 -> "1.6e-3", 0.0008 -> "8e-4"."""
    mantissa, exponent = f"{number:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _description(config: TrainConfig, reference_batch: int, reference_epochs: int | None,
                 replicas: int, factor: float) -> str:
    """The scaled `config`'s line for the start-up line and config.json."""
    scaling = config.scaling
    g_rate = config.generator_optimizer.learning_rate
    d_rate = config.discriminator_optimizer.learning_rate
    rates = (f"rates {_short(g_rate)}" if g_rate == d_rate
             else f"rates G {_short(g_rate)}, D {_short(d_rate)}")
    parts = [f"global batch {config.data.global_batch_size} ({scaling.per_replica_batch_size} "
             f"a replica x {replicas}; the recipe's {reference_batch})"]
    if config.epochs:
        steps = ("its steps kept" if scaling.keeps == "steps"
                 else f"x{reference_batch / config.data.global_batch_size:.3g} its steps")
        parts.append(f"{config.epochs} epochs (the recipe's {reference_epochs}, {steps})")
    parts.append(f"{rates} ({scaling.lr_scaling} rule, x{factor:.3g})")
    if config.schedule.warmup_steps:
        parts.append(f"warm-up {config.schedule.warmup_steps:,} steps")
    if config.ema_decay:
        images_per_update = config.n_critic * config.data.global_batch_size
        half_life = math.log(0.5) / math.log(config.ema_decay) * images_per_update
        parts.append(f"EMA decay {config.ema_decay:.5g} (the recipe's half-life, "
                     f"{half_life:,.0f} images)")
    parts.append(f"sync BN {'on' if config.model.synchronized_batch_norm else 'off'}")
    return ", ".join(parts)


def scale_for_replicas(config: TrainConfig, replicas: int) -> tuple[TrainConfig, str | None]:
    """`config` as it trains on `replicas` replicas, by its `scaling` (see the module's
    docstring), and the one line that says so.

    Idempotent: the scaled config's global batch is the per-replica batch times
    `replicas`, so scaling it again for as many replicas changes nothing (k = 1).

    Args:
      config: the run's configuration; its global batch is the recipe's, the batch its
        rates, EMA and warm-up are for.
      replicas: replicas in sync (`strategy.num_replicas_in_sync`), >= 1.

    Returns:
      (the scaled config, e.g. "global batch 128 (32 a replica x 4; the recipe's 32),
      36 epochs (the recipe's 9, its steps kept), rates 1.6e-3 (sqrt rule, x2), EMA decay
      0.98805 (the recipe's half-life, 7,382 images), sync BN off"); `config` itself and
      None when it has no per-replica batch.
    """
    scaling = config.scaling
    if scaling.per_replica_batch_size is None:
        return config, None
    reference_batch = config.data.global_batch_size
    batch = scaling.per_replica_batch_size * replicas
    ratio = batch / reference_batch
    factor = lr_factor(scaling.lr_scaling, ratio)
    warmup_steps = config.schedule.warmup_steps
    if warmup_steps:
        warmup_steps = max(1, round(warmup_steps / ratio))
    warmup_steps = max(warmup_steps,
                       math.ceil(scaling.warmup_images / (config.n_critic * batch)))
    epochs = config.epochs
    if epochs and scaling.keeps == "steps":
        epochs = -(-epochs * batch // reference_batch)  # epochs * k rounded up, in integers
    synchronized = config.model.synchronized_batch_norm or (
        replicas > 1 and scaling.per_replica_batch_size < scaling.sync_batch_norm_below)
    scaled = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, global_batch_size=batch),
        generator_optimizer=dataclasses.replace(
            config.generator_optimizer,
            learning_rate=config.generator_optimizer.learning_rate * factor),
        discriminator_optimizer=dataclasses.replace(
            config.discriminator_optimizer,
            learning_rate=config.discriminator_optimizer.learning_rate * factor),
        ema_decay=config.ema_decay ** ratio if config.ema_decay else 0.0,
        schedule=dataclasses.replace(config.schedule, warmup_steps=warmup_steps),
        model=dataclasses.replace(config.model, synchronized_batch_norm=synchronized),
        epochs=epochs)
    return scaled, _description(scaled, reference_batch, config.epochs, replicas, factor)
