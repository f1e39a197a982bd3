"""The presets: each per-loss preset and the conditional ones train on 2 logical CPU
replicas, with the loss, networks and penalties they name, and their runs write what a run
writes; the steps towards the default are the overrides their sweeps measured
(docs/log/16-19), and the default resumes exactly."""

import dataclasses

import numpy as np
import pytest
from conftest import checkpoint_steps, loss_rows

from dcgan import data, models, training
from dcgan.experiments import sweeps
from dcgan.gan import diversity
from dcgan.gan.step import METRIC_NAMES
from dcgan.recipes.presets import DEFAULT_PRESET, PRESETS
from dcgan.rundir import checkpoints

PER_LOSS_PRESETS = ("hinge", "least_squares", "wgan_gp", "r3gan", "conditional",
                    "hinge_conditional")


@pytest.mark.slow
@pytest.mark.parametrize("preset", PER_LOSS_PRESETS)
def test_each_loss_preset_trains_on_two_replicas(preset, tmp_path, short_run, two_replicas,
                                                 float32_policy_after):
    config = short_run(tmp_path / preset, preset, epochs=2)
    assert config.model.architecture == PRESETS[preset].model.architecture
    result = training.train(config, two_replicas)
    rows = loss_rows(tmp_path / preset)
    assert result["step"] == len(rows) >= 2
    values = np.array([[float(row[name]) for name in METRIC_NAMES] for row in rows])
    assert np.all(np.isfinite(values))
    penalised = (config.penalties.gp_weight or config.penalties.r1_weight
                 or config.penalties.r2_weight)
    penalties = values[:, METRIC_NAMES.index("d_penalty")]
    # r3gan's lazy penalties enter every 16th D update only, the first among them.
    assert (np.any(penalties > 0) if penalised else np.all(penalties == 0))
    assert checkpoint_steps(tmp_path / preset)[-1] == result["step"]
    generator = checkpoints.restore_generator(tmp_path / preset)
    # The default's generator, whatever the loss.
    assert generator.name == "fast_deep_g_generator"
    assert models.generator_num_classes(generator) == config.model.num_classes


@pytest.mark.slow
def test_the_conditional_preset_draws_distinct_samples_within_each_class(
        tmp_path, short_run, two_replicas, float32_policy_after):
    """After 500 steps on 2 replicas, each class's samples for distinct z spread at least
    COLLAPSE_RATIO of the real images' of that class (a G that ignores z: 0). A guard
    against a conditional G that ignores z, not a replay of issue 39: the default's rates,
    which collapsed the conditional GAN by 3 epochs of the full data, still spread 0.47-0.49
    at 500-1,000 steps of this setting (docs/testing.md, "The conditional preset's test")."""
    config = short_run(tmp_path / "run", "conditional", train_examples=16_000,
                       steps_per_call=50)
    assert training.train(config, two_replicas)["step"] == 500
    generator = checkpoints.restore_generator(config.run_dir)
    samples, labels = models.seeded_samples(generator, 640, seed=5, batch_size=640)
    real = dataclasses.replace(config.data, global_batch_size=1000, drop_remainder=False,
                               cache=False)
    [(images, real_labels)] = data.load_split(
        real, models.output_range(config.model.architecture),
        with_labels=True).take(1).as_numpy_iterator()
    ratios = diversity.diversity_ratios(
        samples, diversity.mean_pairwise_distances(images, real_labels, 10), labels)
    assert np.all(ratios > diversity.COLLAPSE_RATIO), ratios


@pytest.mark.parametrize("preset", PER_LOSS_PRESETS)
def test_each_loss_preset_departs_from_the_default_only_where_its_loss_needs(preset):
    """The board compares losses, not networks or budgets: the default's generator,
    batch, EMA and epochs throughout, and its D unless a penalty needs one that scores
    each image on its own."""
    config, default = PRESETS[preset], PRESETS[DEFAULT_PRESET]
    assert config.data == default.data and config.ema_decay == default.ema_decay
    assert config.epochs == default.epochs
    assert models.ARCHITECTURES[config.model.architecture].build_generator is (
        models.ARCHITECTURES[default.model.architecture].build_generator)
    expected_d = "fast_deep_gd_nf" if config.penalties.any else default.model.architecture
    assert config.model.architecture == expected_d


DEEP_D_SWEPT = "fast_batch32:architecture=fast_deep_d:g_learning_rate=8e-4:d_learning_rate=8e-4"
DEEP_GD_SWEPT = "fast_deep_d:architecture=fast_deep_gd"


@pytest.mark.parametrize("preset, swept, epochs", [
    ("fast_2x_lr", "fast:g_learning_rate=4e-4:d_learning_rate=4e-4", 18),
    ("fast_batch32", "fast:batch_size=32:g_learning_rate=4e-4:d_learning_rate=4e-4", 13),
    ("fast_deep_d", DEEP_D_SWEPT, 10),
    ("fast_deep_gd", DEEP_GD_SWEPT, 9),
    ("best", DEEP_GD_SWEPT, 27),
])
def test_frontier_presets_are_the_overrides_their_sweeps_measured(preset, swept, epochs):
    """Issue 22's rows in BUILD_NOTES.md were trained with sweep.py --epochs as these
    overrides, and the model zoo's entry is one of them: each preset must stay
    its override at the budget it stands for (`epochs`)."""
    measured = sweeps.parse_config(swept)
    assert dataclasses.replace(measured, run_dir=f"runs/{preset}", epochs=epochs) == PRESETS[preset]


@pytest.mark.slow
def test_the_default_preset_resumes_exactly_on_two_replicas(tmp_path, short_run,
                                                            resumes_exactly, two_replicas,
                                                            float32_policy_after):
    """The default's networks and recipe (its EMA generator included), stopped after one
    call of 3 steps and resumed on 2 replicas, train the same 8 steps to the same weights
    as an uninterrupted run: the other resume tests run other presets."""
    config = short_run(tmp_path / "run", DEFAULT_PRESET)
    assert config.ema_decay > 0
    rows = resumes_exactly(config, two_replicas, calls=1)
    assert len(rows) == 8
