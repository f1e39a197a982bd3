"""The named recipes (`train.py --preset=NAME`): one TrainConfig each.

Each comment gives the paper or measurement the recipe follows; the dated logs under
docs/log/ hold the sweeps that chose the settings, and BUILD_NOTES.md indexes them.
`DEFAULT_PRESET` is "the default": what `python train.py` trains.
"""

import dataclasses

from dcgan.core.config import (
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    PenaltyConfig,
    TrainConfig,
)

__all__ = ["CONDITIONAL_PRESETS", "DEFAULT_PRESET", "PRESETS"]

# train.py's --preset; the model zoo ships its generator (dcgan.experiments.zoo).
DEFAULT_PRESET = "fast_deep_gd"


PRESETS = {
    # The TensorFlow DCGAN tutorial's recipe.
    "tutorial": TrainConfig(
        model=ModelConfig("tutorial", noise_dim=100),
        data=DataConfig(global_batch_size=256),
        generator_optimizer=OptimizerConfig(1e-4),
        discriminator_optimizer=OptimizerConfig(1e-4),
        update="simultaneous",
    ),
    # The Fashion-MNIST GAN this project grew from.
    "fashion128": TrainConfig(
        model=ModelConfig("fashion128", noise_dim=128),
        data=DataConfig(global_batch_size=128),
        generator_optimizer=OptimizerConfig(1e-4),
        discriminator_optimizer=OptimizerConfig(1e-5),
    ),
    # Quality per minute (docs/log/05-quality-per-minute.md): the "fast" networks (see
    # dcgan.models.builders), Adam 2e-4 and beta1 0.5 (Radford et al. 2016), batch 128 for
    # twice the updates per epoch, and samples from an EMA of G with a half-life of half
    # an epoch. 18 epochs (8,424 steps) fit in a quarter of the tutorial's 50-epoch time on
    # a 2-core CPU. The unit of sweep.py's budgets (default-epochs) and the first step
    # towards the default.
    "fast": TrainConfig(
        model=ModelConfig("fast", noise_dim=100),
        data=DataConfig(global_batch_size=128),
        generator_optimizer=OptimizerConfig(2e-4, beta_1=0.5),
        discriminator_optimizer=OptimizerConfig(2e-4, beta_1=0.5),
        update="simultaneous",
        ema_decay=0.997,
        epochs=18,
    ),
    # WGAN-GP as published (Gulrajani et al. 2017, algorithm 1) on the tutorial's
    # networks: the paper's hyper-parameters with its batch of 64, for which they were
    # chosen. Each G step reads 5 critic batches, so an epoch is 187 G steps at batch 64
    # and would be only 46 at 256.
    "wgan_gp_paper": TrainConfig(
        model=ModelConfig("tutorial_critic", noise_dim=100),
        data=DataConfig(global_batch_size=64),
        generator_optimizer=OptimizerConfig(1e-4, beta_1=0.5, beta_2=0.9),
        discriminator_optimizer=OptimizerConfig(1e-4, beta_1=0.5, beta_2=0.9),
        loss="wasserstein",
        update="alternating",
        n_critic=5,
        penalties=PenaltyConfig(gp_weight=10.0),
    ),
}


# A step on the way to the default (docs/history/defaults.md): fast with both rates doubled,
# at the same cost per step. fast's 18 epochs end while its FID still falls fast, and
# there a higher rate pays where a decay to zero does not: at 5 epochs FID 187.7 against
# fast's 214.7, and 254.3 for a cosine decay from 4e-4; at 18 epochs see
# docs/log/16-twice-the-learning-rates.md.
PRESETS["fast_2x_lr"] = dataclasses.replace(
    PRESETS["fast"],
    generator_optimizer=OptimizerConfig(4e-4, beta_1=0.5),
    discriminator_optimizer=OptimizerConfig(4e-4, beta_1=0.5))

# The next step: fast_2x_lr at batch 32. On a CPU a
# step's cost falls with the batch (bench.py on a 2-core Xeon: 0.576 of a batch-128 step at
# 64, 0.344 at 32), so in the same wall-clock G gets 2.9x the updates, and at these
# budgets the FID is limited by updates, not by their noise. 13 epochs (24,375 steps) cost
# 17.9 default-epochs there and score FID 56.5 over 3 seeds against fast_2x_lr's 64.4
# (docs/log/17-batch-32.md).
PRESETS["fast_batch32"] = dataclasses.replace(
    PRESETS["fast_2x_lr"], data=DataConfig(global_batch_size=32),
    epochs=13)

# The next: fast_batch32 with one more 3x3
# convolution in D at 7x7 (builders.fast_deep_d_discriminator) and both rates at 8e-4. Its
# step costs 1.19x fast_batch32's (bench.py on a 2-core AMX Xeon), so 10 epochs (18,750
# steps) cost 17.2 default-epochs there, and score FID 25.8 over 3 seeds against
# fast_batch32's 56.5 (docs/log/18-deeper-d.md).
PRESETS["fast_deep_d"] = dataclasses.replace(
    PRESETS["fast_batch32"],
    model=ModelConfig("fast_deep_d", noise_dim=100),
    generator_optimizer=OptimizerConfig(8e-4, beta_1=0.5),
    discriminator_optimizer=OptimizerConfig(8e-4, beta_1=0.5), epochs=10)

# The default (DEFAULT_PRESET): fast_deep_d with one more 3x3
# convolution in G at 14x14 too (builders.fast_deep_g_generator). Its step costs 0.488x
# fast's at batch 128 (bench.py on a 2-core AMX Xeon), so 9 epochs (16,875 steps) cost
# 17.6 default-epochs there, and score FID 14.1 over 3 seeds against fast_deep_d's 25.8
# (docs/log/19-deeper-g.md).
PRESETS["fast_deep_gd"] = dataclasses.replace(
    PRESETS["fast_deep_d"],
    model=ModelConfig("fast_deep_gd", noise_dim=100), epochs=9)

# The longer preset (3x the default's cost): fast_deep_gd for 27 epochs
# (50,625 steps, 52.7 default-epochs on the 2-core AMX Xeon), FID 6.6 over 3 seeds, where
# fast_deep_d for 31 epochs scored 15.8 (docs/log/19-deeper-g.md).
PRESETS["best"] = dataclasses.replace(PRESETS["fast_deep_gd"], epochs=27)

def _default_with(**fields) -> TrainConfig:
    """The default (PRESETS[DEFAULT_PRESET]) with `fields` replaced."""
    return dataclasses.replace(PRESETS[DEFAULT_PRESET], **fields)


# The default's networks with a D that scores each image on its own (no batch norm), for
# the losses with penalties on per-example gradients (builders.fast_deep_gd_nf_discriminator).
_PER_EXAMPLE_D_MODEL = ModelConfig("fast_deep_gd_nf", noise_dim=100)
# The default's networks conditioned on the class: a projection D (Miyato & Koyama 2018).
_CONDITIONAL_MODEL = ModelConfig("fast_deep_gd", noise_dim=100, num_classes=10)

# The other losses, and the conditional GAN, on the default's networks, batch, EMA and
# epochs, so that a comparison of losses is not a comparison of networks; each tuned by a
# short sweep of what its paper says it needs (docs/log/22-losses-on-the-default.md),
# where a setting departs from the default's. The README's board ranks them at the
# default's cost.
PRESETS.update({
    # Lim & Ye 2017. At 3 epochs FID 43.8, the default's 44.1.
    "hinge": _default_with(loss="hinge"),
    # Mao et al. 2017, the 0-1 coding (a = 0, b = c = 1), at the default's rates (at 3
    # epochs FID 85.4, 116.9 at the 2e-4 of the paper's experiments) with Adam beta_2 0.9:
    # at 3 epochs 66.0, against 71.1 at 0.99 and 85.4 at Adam's 0.999.
    "least_squares": _default_with(
        loss="least_squares",
        generator_optimizer=OptimizerConfig(8e-4, beta_1=0.5, beta_2=0.9),
        discriminator_optimizer=OptimizerConfig(8e-4, beta_1=0.5, beta_2=0.9)),
    # Gulrajani et al. 2017 with the penalty every 4th critic update at 4x its weight of 10
    # (Karras et al. 2020's lazy regularisation) and one critic update per G step instead of
    # algorithm 1's 5: in the fast-era sweeps (docs/log/14-leaderboard-per-loss.md) 3-4x
    # algorithm 1's G steps in the same minutes and a lower FID. Its D without
    # normalisation: at 3 epochs FID 184.4, against 265.5 with layer norm and 523.2 with
    # spectral norm. Adam beta_1 0 (the paper's beta_2 0.9) and both rates at the default's
    # 8e-4: at 3 epochs FID 37.2, against 93.3 with beta_1 0.5 and 184.4 with G at 2e-4.
    "wgan_gp": _default_with(
        model=_PER_EXAMPLE_D_MODEL,
        generator_optimizer=OptimizerConfig(8e-4, beta_1=0.0, beta_2=0.9),
        discriminator_optimizer=OptimizerConfig(8e-4, beta_1=0.0, beta_2=0.9),
        loss="wasserstein", update="alternating",
        penalties=PenaltyConfig(gp_weight=10.0, every=4)),
    # R3GAN (Huang et al. 2025): the relativistic pairing loss with R1 and R2 of one gamma
    # on a normalisation-free D, Adam beta_1 = 0 (their beta_2 0.99), and the penalties
    # lazily every 16 D updates (Karras et al. 2020) to keep their double backpropagation
    # cheap. The default's rates: at 3 epochs FID 57.2 against 103.1 at the fast-era
    # preset's 2e-4. gamma 0.3, above their small-image 0.05-0.1: at 3 epochs FID 49.3,
    # against 91.2, 67.8, 57.2 and 60.9 at 0.01, 0.03, 0.1 and 1.
    "r3gan": _default_with(
        model=_PER_EXAMPLE_D_MODEL,
        generator_optimizer=OptimizerConfig(8e-4, beta_1=0.0, beta_2=0.99),
        discriminator_optimizer=OptimizerConfig(8e-4, beta_1=0.0, beta_2=0.99),
        loss="relativistic", penalties=PenaltyConfig(r1_weight=0.3, r2_weight=0.3, every=16)),
    # What `train.py --conditional` trains (CONDITIONAL_PRESETS): the default's rates
    # collapse it, each class to a few images whatever z (at 3 epochs FID 138.6, recall
    # 0.23 at 8e-4; 148.6 at 4e-4); a quarter of them does not (25.2, recall 0.60).
    "conditional": _default_with(
        model=_CONDITIONAL_MODEL,
        generator_optimizer=OptimizerConfig(2e-4, beta_1=0.5),
        discriminator_optimizer=OptimizerConfig(2e-4, beta_1=0.5)),
})
PRESETS["hinge_conditional"] = dataclasses.replace(PRESETS["conditional"], loss="hinge")

# `train.py --conditional` with --preset=key trains the preset of its value instead; a
# preset not here is made conditional as it is.
CONDITIONAL_PRESETS = {DEFAULT_PRESET: "conditional", "hinge": "hinge_conditional"}

# Each recipe trains in runs/<its name> (train.py's --run_dir moves it).
PRESETS = {name: dataclasses.replace(config, run_dir=f"runs/{name}")
           for name, config in PRESETS.items()}
