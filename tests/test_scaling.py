"""Issue 40's rule for N replicas (`dcgan.recipes.scaling`): the rates under each rule and
the EMA half-life in images against values computed by hand, the batch split and the
nearest batch that splits, the start-up line and config.json of a scaled run, and a run
resumed on another number of replicas."""

import dataclasses
import json
import math
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    REPO,
    TRAIN_PY,
    assert_one_error_line,
    make_gan_step,
    random_batches,
    run_steps,
    tiny_config,
)

from dcgan import training
from dcgan.core.config import ModelConfig, ScalingConfig
from dcgan.core.errors import ConfigError, RunDirectoryError
from dcgan.experiments import sweeps
from dcgan.recipes.plan import make_plan
from dcgan.recipes.presets import PRESETS
from dcgan.recipes.scaling import nearest_divisible_batch, scale_for_replicas
from dcgan.recipes.validation import validate
from dcgan.rundir import records
from dcgan.training import progress


def _scaled(preset="fast_deep_gd", replicas=4, **scaling):
    """PRESETS[preset] with ScalingConfig(**scaling), scaled to `replicas`."""
    config = dataclasses.replace(PRESETS[preset], scaling=ScalingConfig(**scaling))
    return scale_for_replicas(config, replicas)


@pytest.mark.parametrize("rule, rate", [("constant", 8e-4), ("sqrt", 1.6e-3),
                                        ("linear", 3.2e-3)])
def test_the_default_at_32_a_replica_on_4_replicas_scales_its_rates_by_the_rule(rule, rate):
    """The default is tuned at 8e-4 for a global batch of 32; 4 x 32 is 4x that batch."""
    scaled, _ = _scaled(per_replica_batch_size=32, lr_scaling=rule)
    assert scaled.data.global_batch_size == 128
    assert scaled.generator_optimizer.learning_rate == pytest.approx(rate, rel=1e-12)
    assert scaled.discriminator_optimizer.learning_rate == pytest.approx(rate, rel=1e-12)
    # Nothing else of the optimizers changes.
    assert scaled.generator_optimizer.beta_1 == PRESETS["fast_deep_gd"].generator_optimizer.beta_1


def test_two_rates_scale_by_one_factor_and_a_smaller_batch_lowers_them():
    """G 2e-4 and D 8e-4 at 32; 8 images on 2 replicas is half that batch."""
    default = PRESETS["fast_deep_gd"]
    config = dataclasses.replace(
        default, scaling=ScalingConfig(per_replica_batch_size=8, lr_scaling="sqrt"),
        generator_optimizer=dataclasses.replace(default.generator_optimizer, learning_rate=2e-4))
    scaled, line = scale_for_replicas(config, 2)
    assert scaled.data.global_batch_size == 16
    assert scaled.generator_optimizer.learning_rate == pytest.approx(2e-4 / math.sqrt(2))
    assert scaled.discriminator_optimizer.learning_rate == pytest.approx(8e-4 / math.sqrt(2))
    assert "rates G 1.41e-4, D 5.66e-4 (sqrt rule, x0.707)" in line


def test_the_ema_keeps_its_half_life_in_images():
    """0.997 per update of 32 images; at 128 images an update, 0.997 ** 4 = 0.988053892081
    (0.997^2 = 0.994009, squared), whose weight after the same images is the same."""
    scaled, _ = _scaled(per_replica_batch_size=32)
    assert scaled.ema_decay == pytest.approx(0.988053892081, abs=1e-12)
    half_life_images = math.log(0.5) / math.log(0.997) * 32
    assert scaled.ema_decay ** (half_life_images / 128) == pytest.approx(0.5)


def test_the_recipes_warm_up_is_kept_in_images_and_a_longer_one_can_be_asked_for():
    recipe = dataclasses.replace(
        PRESETS["fast_deep_gd"],
        schedule=dataclasses.replace(PRESETS["fast_deep_gd"].schedule, warmup_steps=400))
    # 400 steps of 32 images are 100 steps of 128.
    scaled, line = scale_for_replicas(
        dataclasses.replace(recipe, scaling=ScalingConfig(per_replica_batch_size=32)), 4)
    assert scaled.schedule.warmup_steps == 100 and "warm-up 100 steps" in line
    # 64,000 images are 500 steps of 128, longer than the recipe's.
    scaled, _ = scale_for_replicas(dataclasses.replace(
        recipe, scaling=ScalingConfig(per_replica_batch_size=32, warmup_images=64_000)), 4)
    assert scaled.schedule.warmup_steps == 500


@pytest.mark.parametrize("per_replica, replicas, sync_below, sync_flag, synchronized", [
    (8, 4, 16, False, True),     # 8 images a replica: statistics over too few.
    (32, 4, 16, False, False),
    (8, 1, 16, False, False),    # One replica: nothing to synchronise.
    (8, 4, 0, False, False),     # The rule turned off...
    (32, 4, 16, True, True),     # ...and --sync_batch_norm on at any batch.
])
def test_batch_norm_is_synchronised_below_the_threshold(per_replica, replicas, sync_below,
                                                        sync_flag, synchronized):
    recipe = PRESETS["fast_deep_gd"]
    recipe = dataclasses.replace(
        recipe, model=dataclasses.replace(recipe.model, synchronized_batch_norm=sync_flag),
        scaling=ScalingConfig(per_replica_batch_size=per_replica,
                              sync_batch_norm_below=sync_below))
    scaled, line = scale_for_replicas(recipe, replicas)
    assert scaled.model.synchronized_batch_norm == synchronized
    assert line.endswith(f"sync BN {'on' if synchronized else 'off'}")


@pytest.mark.parametrize("per_replica, synchronized", [(16, True), (31, True), (32, False)])
def test_the_rule_synchronises_batch_norm_below_32_a_replica_by_default(per_replica,
                                                                        synchronized):
    """At 4 x 16, synchronised batch norm scored 0.88x the FID on three seeds (log 23)."""
    scaled, _ = _scaled(per_replica_batch_size=per_replica)
    assert scaled.model.synchronized_batch_norm == synchronized


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 7])
def test_any_replica_count_splits_the_global_batch_it_makes(replicas):
    scaled, _ = _scaled(replicas=replicas, per_replica_batch_size=24)
    assert scaled.data.global_batch_size == 24 * replicas
    validate(scaled, num_replicas=replicas)
    # Scaling again for as many replicas changes nothing.
    assert scale_for_replicas(scaled, replicas)[0] == scaled


def test_without_a_per_replica_batch_the_recipe_is_left_as_it_is():
    recipe = PRESETS["fast_deep_gd"]
    assert scale_for_replicas(recipe, 4) == (recipe, None)


def test_the_line_says_what_the_scaling_made_of_the_recipe():
    """ln(0.5) / ln(0.997) = 230.702 updates of 32 images: 7,382 images."""
    _, line = _scaled(per_replica_batch_size=32)
    assert line == ("global batch 128 (32 a replica x 4; the recipe's 32), 36 epochs (the "
                    "recipe's 9, its steps kept), rates 1.6e-3 (sqrt rule, x2), EMA decay "
                    "0.98805 (the recipe's half-life, 7,382 images), sync BN off")


@pytest.mark.parametrize("per_replica, replicas, keeps, epochs, line", [
    # The default's 9 epochs of 32 are 16,875 steps; 36 epochs of 128 are as many.
    (32, 4, "steps", 36, "36 epochs (the recipe's 9, its steps kept)"),
    (8, 2, "steps", 5, "5 epochs (the recipe's 9, its steps kept)"),     # k = 1/2: 4.5 up.
    (24, 3, "steps", 21, "21 epochs (the recipe's 9, its steps kept)"),  # k = 2.25: 20.25 up.
    (32, 4, "epochs", 9, "9 epochs (the recipe's 9, x0.25 its steps)"),
])
def test_the_run_keeps_the_recipes_steps_unless_told_to_keep_its_epochs(per_replica, replicas,
                                                                        keeps, epochs, line):
    assert PRESETS["fast_deep_gd"].epochs == 9
    scaled, description = _scaled(replicas=replicas, per_replica_batch_size=per_replica,
                                  keeps=keeps)
    assert scaled.epochs == epochs and f", {line}, " in description
    # Steps of the 60,000 training images, the last partial batch of an epoch dropped.
    steps_per_epoch = 60_000 // scaled.data.global_batch_size
    steps, recipe_steps = steps_per_epoch * scaled.epochs, 60_000 // 32 * 9
    if keeps == "steps":  # Within an epoch of the recipe's 16,875 (36 x 468 = 16,848).
        assert abs(steps - recipe_steps) < steps_per_epoch
    else:
        assert steps == pytest.approx(recipe_steps * 32 / scaled.data.global_batch_size, rel=0.01)


def test_a_run_bounded_by_steps_or_minutes_keeps_its_bound():
    recipe = dataclasses.replace(PRESETS["fast_deep_gd"], epochs=None, max_steps=500,
                                 scaling=ScalingConfig(per_replica_batch_size=32))
    scaled, line = scale_for_replicas(recipe, 4)
    assert (scaled.epochs, scaled.max_steps) == (None, 500) and " epochs" not in line
    with pytest.raises(ConfigError, match="keeps must be one of"):
        ScalingConfig(keeps="images")


@pytest.mark.parametrize("batch, replicas, nearest", [
    (32, 3, 33), (32, 5, 30), (34, 4, 36), (2, 4, 4), (32, 4, 32), (31, 1, 31)])
def test_the_nearest_batch_that_splits(batch, replicas, nearest):
    """33 is 1 from 32 where 30 is 2; 30 is 2 where 35 is 3; 32 and 36 are both 2 from 34:
    the larger; no batch below 4 splits 4 ways."""
    assert nearest_divisible_batch(batch, replicas) == nearest


def test_a_batch_that_does_not_split_is_refused_with_the_nearest_that_does():
    with pytest.raises(ConfigError, match=r"The global batch size 32 is not divisible by the 3 "
                       r"replicas: the nearest that is, 33 \(--batch_size=33\), or "
                       r"--per_replica_batch_size"):
        validate(PRESETS["fast_deep_gd"], num_replicas=3)


def test_train_py_refuses_a_batch_that_does_not_split_in_one_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, TRAIN_PY, f"--run_dir={tmp_path / 'run'}", "--cpu_devices=3",
         "--train_examples=256", "--max_steps=1"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert_one_error_line(completed, "train.py", "the nearest that is, 33 (--batch_size=33)")
    assert not (tmp_path / "run").exists()


def test_train_py_refuses_xla_with_synchronised_batch_norm_off_gpus_in_one_line(tmp_path):
    """On CPU replicas MirroredStrategy all-reduces inside XLA by a merge_call, which fails
    with a long trace when the step traces its compiled passes: refused before the run."""
    completed = subprocess.run(
        [sys.executable, TRAIN_PY, f"--run_dir={tmp_path / 'run'}", "--cpu_devices=2",
         "--per_replica_batch_size=8", "--jit_compile", "--train_examples=256",
         "--max_steps=1"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert_one_error_line(completed, "train.py", "Synchronised batch norm under --jit_compile "
                          "needs every replica on a GPU")
    assert not (tmp_path / "run").exists()


def test_xla_with_synchronised_batch_norm_passes_on_gpus_alone():
    default = PRESETS["fast_deep_gd"]
    config = dataclasses.replace(default, jit_compile=True, model=dataclasses.replace(
        default.model, synchronized_batch_norm=True))
    validate(config, num_replicas=2, replicas_on_gpus=True)
    with pytest.raises(ConfigError, match="needs every replica on a GPU"):
        validate(config, num_replicas=1)


def test_sweep_configurations_reach_the_scaling_options():
    config = sweeps.parse_config("fast_deep_gd:per_replica_batch_size=64:lr_scaling=linear"
                                 ":scaling_warmup_images=1000:sync_batch_norm_below=8")
    assert config.scaling == ScalingConfig(64, "linear", 1000, 8)


def test_the_plan_trains_the_scaled_config():
    """The default on 2 replicas of 64 images: 60,000 // 128 steps an epoch."""
    config = dataclasses.replace(PRESETS["fast_deep_gd"],
                                 scaling=ScalingConfig(per_replica_batch_size=64))
    plan = make_plan(config, 2, dtype_policy="float32")
    assert plan.config == scale_for_replicas(config, 2)[0]
    assert plan.steps_per_epoch == 60_000 // 128
    assert plan.scaling == scale_for_replicas(config, 2)[1]


def test_the_header_gives_the_scaling_line_in_place_of_the_global_batch():
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    state = types.SimpleNamespace(generator=network, discriminator=network)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    line = progress.header("fast", state, 128, "float32", strategy, "runs/x",
                           "global batch 128 (32 a replica x 4; the recipe's 32)")
    assert ("parameters, global batch 128 (32 a replica x 4; the recipe's 32), float32, "
            "1 replica") in line


@pytest.mark.parametrize("synchronized", [False, True])
def test_synchronised_batch_norm_gives_both_replicas_the_global_batchs_statistics(
        two_replicas, synchronized):
    """After one step on 2 replicas of different images and noise, the moving mean of G's
    first batch norm is the same on both exactly when they shared their statistics."""
    gan_step = make_gan_step(
        two_replicas, ModelConfig("fast_deep_gd", synchronized_batch_norm=synchronized))
    run_steps(gan_step, random_batches(two_replicas), 1)
    [norm, *_] = [layer for layer in gan_step.generator.layers if hasattr(layer, "moving_mean")]
    first, second = two_replicas.experimental_local_results(norm.moving_mean.value)
    assert np.allclose(first.numpy(), second.numpy(), rtol=1e-5) == synchronized


def _record(run_dir):
    return json.loads((run_dir / "config.json").read_text())


def _scaled_run(run_dir, per_replica, **fields):
    """2 steps of the default on 256 images, float32, with a per-replica batch."""
    return tiny_config(run_dir, 256, 32, "fast_deep_gd",
                       **{"max_steps": 2, "steps_per_call": 2, "num_fixed_samples": 4,
                          "scaling": ScalingConfig(per_replica_batch_size=per_replica),
                          **fields})


@pytest.mark.slow
def test_a_scaled_run_prints_and_records_its_scaling_and_resumes_on_another_replica_count_as_told(
        tmp_path, two_replicas, capsys, float32_policy_after):
    """8 images on each of 2 replicas: the global batch 16, half the default's 32, so the
    rates are 8e-4 / sqrt(2), its 9 epochs 4.5 rounded up, and batch norm is synchronised.
    On 1 replica the same flags would train at 8: refused in one line that says how to
    resume, and resumed so."""
    run_dir = tmp_path / "run"
    training.train(_scaled_run(run_dir, 8), two_replicas)
    line = ("global batch 16 (8 a replica x 2; the recipe's 32), 5 epochs (the recipe's 9, "
            "its steps kept), rates 5.66e-4 (sqrt rule, x0.707), EMA decay 0.9985 (the "
            "recipe's half-life, 7,382 images), sync BN on")
    [header] = [text for text in capsys.readouterr().out.splitlines()
                if text.startswith("fast_deep_gd: G ")]
    assert f"parameters, {line}, float32, 2 replicas (CPU:0, CPU:1)" in header
    record = _record(run_dir)
    assert record["scaling"] == line and record["replicas"] == 2
    assert record["config"]["data"]["global_batch_size"] == 16
    assert record["config"]["scaling"]["per_replica_batch_size"] == 8
    assert record["config"]["model"]["synchronized_batch_norm"] is True
    rate = 8e-4 / math.sqrt(2)
    assert record["config"]["generator_optimizer"]["learning_rate"] == pytest.approx(rate)

    one_replica = tf.distribute.MirroredStrategy(["/cpu:0"])
    with pytest.raises(RunDirectoryError) as refused:
        training.train(_scaled_run(run_dir, 8), one_replica)
    message = str(refused.value)
    assert "\n" not in message
    assert ("data.global_batch_size: 16 in the run, 8 now; replicas: 2 in the run, 1 now, at "
            "--per_replica_batch_size=8 (--per_replica_batch_size=16 resumes it here)") in message

    assert training.train(_scaled_run(run_dir, 16, max_steps=4), one_replica)["step"] == 4
    record = _record(run_dir)
    assert record["replicas"] == 1 and record["config"]["data"]["global_batch_size"] == 16
    assert record["scaling"].startswith("global batch 16 (16 a replica x 1; the recipe's 32), "
                                        "5 epochs (the recipe's 9, its steps kept), rates 5.66e-4")
    assert record["config"]["model"]["synchronized_batch_norm"] is False


def test_a_run_without_a_per_replica_batch_resumes_on_another_replica_count(
        tmp_path, two_replicas, float32_policy_after):
    """Its global batch 32 stays, split 16 a replica: the rule has nothing to change."""
    config = tiny_config(tmp_path / "run", 256, 32, "fast_deep_gd", max_steps=2,
                         steps_per_call=2, num_fixed_samples=4)
    training.train(config, tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert _record(tmp_path / "run")["replicas"] == 1
    assert training.train(dataclasses.replace(config, max_steps=4), two_replicas)["step"] == 4
    record = _record(tmp_path / "run")
    assert record["replicas"] == 2 and record["scaling"] is None
    assert record["config"]["data"]["global_batch_size"] == 32


def test_the_replicas_mismatch_says_when_the_run_does_not_split_here():
    recorded = {"replicas": 4, "config": {"data": {"global_batch_size": 128}}}
    current = {"replicas": 3, "config": {"data": {"global_batch_size": 96},
                                         "scaling": {"per_replica_batch_size": 32}}}
    assert records.resume_mismatches(recorded, current) == [
        "data.global_batch_size: 128 in the run, 96 now",
        "replicas: 4 in the run, 3 now, at --per_replica_batch_size=32 (its global batch 128 "
        "does not split over 3)"]
