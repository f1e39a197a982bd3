"""bench.py end to end in a tiny configuration (its JSON, its table and its profile), and
the FLOP counts it reports against counts by hand and TensorFlow's own."""

import dataclasses
import json
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from conftest import REPO, assert_no_noise
from keras import layers

from dcgan import models
from dcgan.experiments import profiling
from dcgan.gan.step import GanStep
from dcgan.recipes.presets import PRESETS
from dcgan.runtime import hardware


def tensorflow_flops(concrete_function):
    """TensorFlow's own FLOP count (`tf.compat.v1.profiler`'s registered statistics) of
    the ops the function's outputs depend on. A tape's gradient functions also build
    gradients nothing uses (the filter gradients of D when only G's are asked for, the
    input gradient of the first layer): the runtime prunes them, and so does this."""
    live, pending = set(), [tensor.op for tensor in concrete_function.outputs]
    while pending:
        op = pending.pop()
        if op.name not in live:
            live.add(op.name)
            pending.extend(tensor.op for tensor in op.inputs)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"

    def live_flops(node):
        return (node.float_ops if node.name in live else 0) + sum(map(live_flops, node.children))

    return live_flops(tf.compat.v1.profiler.profile(graph=concrete_function.graph,
                                                    options=options))


def test_forward_flops_of_dense_conv_and_transposed_conv_match_a_count_by_hand():
    model = keras.Sequential([
        keras.Input((8,)),
        layers.Dense(4 * 4 * 3),
        layers.Reshape((4, 4, 3)),
        layers.Conv2D(5, 3, padding="same"),                          # -> 4x4x5
        layers.BatchNormalization(),
        layers.Conv2DTranspose(2, 2, strides=2, padding="same"),      # -> 8x8x2
        layers.Conv2D(6, 3, strides=2, padding="valid", groups=2),   # -> 3x3x6
        layers.Flatten(),
        layers.SpectralNormalization(layers.Dense(1)),
    ])
    multiply_adds = (8 * 48                # Dense: inputs x units
                     + 4 * 4 * 5 * 3 * 3 * 3  # Conv2D: output positions x out x kernel x in
                     + 4 * 4 * 2 * 2 * 2 * 5  # transposed: input positions x kernel x out x in
                     + 3 * 3 * 6 * 3 * 3 * 1  # grouped: each output sees in / groups = 1
                     + 54 * 1)
    assert profiling.forward_flops(model) == 2 * multiply_adds


def test_forward_flops_of_a_nested_model_add_up():
    inner = keras.Sequential([keras.Input((6,)), layers.Dense(5)])
    outer = keras.Sequential([keras.Input((3,)), layers.Dense(6), inner])
    assert profiling.forward_flops(outer) == 2 * (3 * 6 + 6 * 5)


def test_forward_flops_refuses_a_layer_it_does_not_count():
    model = keras.Sequential([keras.Input((4, 4, 2)), layers.DepthwiseConv2D(3)])
    with pytest.raises(ValueError, match="depthwise_conv2d"):
        profiling.forward_flops(model)


@pytest.mark.parametrize("preset", ["fast", "tutorial", "fashion128", "wgan_gp_paper", "wgan_gp"])
def test_forward_flops_agree_with_tensorflows_count(preset):
    """TensorFlow counts bias adds and normalisation too: within 1%."""
    for model in (models.build_generator(PRESETS[preset].model),
                  models.build_discriminator(PRESETS[preset].model)):
        forward = tf.function(lambda inputs, model=model: model(inputs, training=False))
        counted = tensorflow_flops(forward.get_concrete_function(
            tf.TensorSpec([1, *model.inputs[0].shape[1:]])))
        assert profiling.forward_flops(model) == pytest.approx(counted, rel=0.01)


def test_train_step_flops_of_fast_are_the_documented_passes():
    config = PRESETS["fast"].model
    generator, discriminator = models.build_generator(config), models.build_discriminator(config)
    g_forward = profiling.forward_flops(generator)
    d_forward = profiling.forward_flops(discriminator)
    # The fast networks by hand, in multiply-adds per image.
    assert g_forward == 2 * (100 * 7 * 7 * 256 + 7 * 7 * 3 * 3 * 256 * 128
                             + 7 * 7 * 4 * 4 * 128 * 64 + 14 * 14 * 4 * 4 * 64 * 1)
    assert d_forward == 2 * (14 * 14 * 64 * 4 * 4 * 1 + 7 * 7 * 128 * 4 * 4 * 64 + 7 * 7 * 128)
    # The multiplicities of step_passes's docstring.
    # (update, n_critic, gp_weight, r1_weight, r2_weight, penalty_every): preset wgan_gp's
    # lazy penalty every 4th D update adds 6 / 4 D passes, r3gan's R1 + R2 every 16th 12 / 16.
    for (update, n_critic, *penalties), (g_passes, d_passes) in {
            ("simultaneous", 1, 0.0, 0.0, 0.0, 1): (3, 7),
            ("alternating", 1, 0.0, 0.0, 0.0, 1): (4, 8),
            ("alternating", 5, 10.0, 0.0, 0.0, 1): ((5 + 3) / 5, (5 * 12 + 2) / 5),
            ("alternating", 1, 10.0, 0.0, 0.0, 4): (4, 8 + 6 / 4),
            ("alternating", 1, 0.0, 0.1, 0.1, 16): (4, 8 + 12 / 16)}.items():
        assert profiling.train_step_flops(
            generator, discriminator, update, n_critic, *penalties) == pytest.approx(
                g_passes * g_forward + d_passes * d_forward)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fast", "wgan_gp_paper"])
def test_train_step_flops_agree_with_tensorflows_count_of_the_step(preset):
    """The pass multiplicities against what the step's graphs compute, at batch 1: the
    gradient functions of GanStep, as each update scheme calls them."""
    preset = dataclasses.replace(
        PRESETS[preset], data=dataclasses.replace(PRESETS[preset].data, global_batch_size=1),
        ema_decay=0.0)
    generator = models.build_generator(preset.model)
    discriminator = models.build_discriminator(preset.model)
    gan_step = GanStep.from_config(preset, models.Networks(generator, discriminator, None),
                                   tf.random.Generator.from_seed(0), "float32")
    images, z = tf.TensorSpec([1, 28, 28, 1]), tf.TensorSpec([1, preset.model.noise_dim])
    alpha = tf.TensorSpec([1, 1, 1, 1]) if preset.penalties.gp_weight else None
    no_augmentation = (None, None)
    both = tensorflow_flops(gan_step._both_gradients.get_concrete_function(
        images, None, z, alpha, no_augmentation))
    d_update = tensorflow_flops(gan_step._d_gradients.get_concrete_function(
        images, None, z, alpha, no_augmentation))
    g_update = tensorflow_flops(gan_step._g_gradients.get_concrete_function(
        tf.TensorSpec([1, 1]), None, z, None))
    for update, n_critic, counted in [("simultaneous", 1, both),
                                      ("alternating", 1, d_update + g_update),
                                      ("alternating", 5, (5 * d_update + g_update) / 5)]:
        # The convention counts the first layers' unused input gradients: within 2%.
        assert profiling.train_step_flops(
            generator, discriminator, update, n_critic,
            preset.penalties.gp_weight) == pytest.approx(counted, rel=0.02)


def test_step_passes_refuses_what_the_step_refuses():
    with pytest.raises(ValueError, match="update"):
        profiling.step_passes("sequential")
    with pytest.raises(ValueError, match="n_critic"):
        profiling.step_passes("simultaneous", n_critic=5)


@pytest.mark.slow
def test_bench_writes_its_rows_and_a_profile(tmp_path):
    """Without --preset it measures `fast`, the unit of default-epochs. 1,024 images
    (--train_examples) spare the test three decodes of the 60,000."""
    json_path, profile_dir = tmp_path / "bench.json", tmp_path / "profile"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench.py"), "--batch_sizes=64", "--dtype_policies=float32",
         "--replicas=2",
         "--steps=4", "--warmup_steps=2", "--steps_per_call=2", "--repeats=1",
         "--matmul_size=256", "--train_examples=1024", f"--json_out={json_path}",
         f"--profile_dir={profile_dir}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    # The console: one header line first, and none of the start-up noise nor the
    # auto-shard warning of each of the dataset's 1,000 epochs.
    assert result.stdout.splitlines()[0] == (
        "bench.py: preset fast, 1 configuration: dtype_policies float32 x jit false x replicas 2 "
        "x steps_per_call 2 x updates simultaneous x fused_batch_norm true x fused_adam true x "
        "batch 64; 1 repeat "
        "of 4 steps after 2 "
        f"warm-up; results to {json_path}; devices CPU:0, CPU:1; CPU {hardware.cpu_model()}")
    assert_no_noise(result.stderr)

    report = json.loads(json_path.read_text())
    assert report["cpu"] == hardware.cpu_model()
    names = [row["name"] for row in report["rows"]]
    assert names == ["baseline (tutorial loop, float32)", "input pipeline only",
                     "dcgan fast simultaneous float32 jit=False replicas=2 steps_per_call=2 "
                     "fused_bn=True fused_adam=True"]
    baseline = report["rows"][0]["images_per_sec"]
    for row in report["rows"]:
        assert row["batch_size"] == 64 and row["images_per_sec"] > 0
        assert row["ratio"] == pytest.approx(row["images_per_sec"] / baseline)
    assert report["peak_rss_mib"] > 100

    # FLOPs from the networks each row ran, and the fraction of the measured peak.
    [peak] = report["peak_gflops"].values()
    assert report["peak_gflops"].keys() == {"float32"} and peak > 0
    fast = PRESETS["fast"].model
    tutorial = PRESETS["tutorial"].model
    expected_flops = [
        profiling.train_step_flops(models.build_generator(tutorial),
                                   models.build_discriminator(tutorial), "simultaneous"),
        None,
        profiling.train_step_flops(models.build_generator(fast),
                                   models.build_discriminator(fast), "simultaneous")]
    for row, flops in zip(report["rows"], expected_flops):
        assert row.get("flops_per_image") == flops
        if flops:
            assert row["gflops_per_sec"] == pytest.approx(row["images_per_sec"] * flops / 1e9)
            assert row["peak_fraction"] == pytest.approx(row["gflops_per_sec"] / peak)
            assert f"{row['gflops_per_sec']:>8.1f} {100 * row['peak_fraction']:>6.1f}%" in (
                result.stdout)

    # The printed shares come from the trace left in --profile_dir.
    [trace] = profile_dir.glob("plugins/profile/*/*.xplane.pb")
    seconds = profiling.op_seconds(trace)
    networks = {network for network, _, _, _ in seconds}
    assert {"generator", "discriminator"} <= networks
    assert ("generator", "backward", "matmul/conv", "Conv2DBackpropFilter") in seconds
    assert {part for _, _, part, _ in seconds} <= set(profiling.OP_PARTS)
    assert "normalization" in {part for _, _, part, _ in seconds}
    assert "generator backward" in result.stdout and "matmul/conv" in result.stdout
