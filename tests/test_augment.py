"""DiffAugment: each transformation on hand-made images, its gradient, the pixel range,
and the step showing D every real and generated batch through the policy; an augmented
run's exact resume. The jit step's draws: test_train_step's jit_compile test."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan import models
from dcgan.core.config import ModelConfig, OptimizerConfig, PenaltyConfig
from dcgan.core.errors import ConfigError
from dcgan.gan import augment
from dcgan.gan.step import GanStep
from dcgan.recipes.presets import PRESETS


def _reference_translation(image, dy, dx, fill):
    """out[i, j] = image[i - dy, j - dx], or fill outside: by loops, for [H, W]."""
    height, width = image.shape
    out = np.full_like(image, fill)
    for i in range(height):
        for j in range(width):
            if 0 <= i - dy < height and 0 <= j - dx < width:
                out[i, j] = image[i - dy, j - dx]
    return out


def test_translation_moves_the_image_and_fills_with_background():
    image = np.arange(36, dtype=np.float32).reshape(6, 6) / 36
    offsets = [(1, -2), (-3, 0), (0, 0), (5, 5)]
    moved = augment.translate(tf.constant(np.stack([image] * 4)[..., None]),
                              tf.constant(offsets, tf.int32), fill=-1.0).numpy()[..., 0]
    for out, (dy, dx) in zip(moved, offsets):
        np.testing.assert_array_equal(out, _reference_translation(image, dy, dx, -1.0))
    assert moved[0, 3, 1] == image[2, 3]  # One pixel by hand: down 1, left 2.
    assert np.all(moved[0, 0, :] == -1) and np.all(moved[0, :, 4:] == -1)


def test_cutout_blanks_its_square_clipped_at_the_edges():
    images = tf.ones([2, 5, 5, 1])
    out = augment.cut_out(images, tf.constant([[-1, 2], [1, 1]], tf.int32), 3,
                          fill=0.0).numpy()[..., 0]
    expected_first = np.ones((5, 5))
    expected_first[0:2, 2:5] = 0  # Rows -1..1 and columns 2..4, inside the image.
    expected_second = np.ones((5, 5))
    expected_second[1:4, 1:4] = 0
    np.testing.assert_array_equal(out, [expected_first, expected_second])


def test_brightness_and_contrast_follow_their_formulas():
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 1)), tf.float32)
    shift = tf.constant([0.1, -0.2])[:, None, None, None]
    np.testing.assert_allclose(augment.brightness(images, shift), images + shift)
    factor = tf.constant([0.5, 1.5])[:, None, None, None]
    out = augment.contrast(images, factor).numpy()
    for image, result, f in zip(images.numpy(), out, (0.5, 1.5)):
        np.testing.assert_allclose(result, image.mean() + f * (image - image.mean()), rtol=1e-5)
        assert result.mean() == pytest.approx(image.mean(), abs=1e-6)


def test_draws_cover_the_papers_ranges():
    rng = tf.random.Generator.from_seed(0)
    parameters = augment.draw(("color", "translation", "cutout"), rng, 4000)
    brightness, contrast = (p.numpy() for p in parameters["color"])
    assert brightness.shape == (4000, 1, 1, 1) and contrast.shape == (4000, 1, 1, 1)
    assert -0.25 <= brightness.min() < -0.24 and 0.24 < brightness.max() < 0.25
    assert 0.5 <= contrast.min() < 0.51 and 1.49 < contrast.max() < 1.5
    # Shifts of up to 28 / 8 = 3.5, rounded: 4 pixels each way, every one drawn.
    assert set(np.unique(parameters["translation"].numpy())) == set(range(-4, 5))
    # Squares of 14 centred anywhere in [0, 28]: corners in [-7, 21].
    assert set(np.unique(parameters["cutout"].numpy())) == set(range(-7, 22))


@pytest.mark.parametrize("pixel_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_translation_and_cutout_keep_the_pixel_range(pixel_range):
    low, high = pixel_range
    images = tf.constant(np.random.default_rng(1).uniform(low, high, (64, 28, 28, 1)),
                         tf.float32)
    policy = ("translation", "cutout")
    parameters = augment.draw(policy, tf.random.Generator.from_seed(1), 64)
    out = augment.apply(images, policy, parameters, pixel_range).numpy()
    assert low <= out.min() and out.max() <= high
    assert np.mean(out == low) > 0.1  # Background came in (squares average ~1/5 of 28x28).


def test_gradients_through_translation_and_cutout_are_the_moved_and_masked_ones():
    """d sum(w * T(x)) / dx: the weights moved back by the shift, and zero under the
    square."""
    rng = np.random.default_rng(2)
    images = tf.constant(rng.uniform(-1, 1, (2, 6, 6, 1)), tf.float32)
    weights = tf.constant(rng.normal(size=(2, 6, 6, 1)), tf.float32)
    offsets = tf.constant([[1, -2], [0, 3]], tf.int32)
    corners = tf.constant([[0, 0], [3, 2]], tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        moved = tf.reduce_sum(weights * augment.translate(images, offsets, -1.0))
        cut = tf.reduce_sum(weights * augment.cut_out(images, corners, 3, -1.0))
    for b, (dy, dx) in enumerate(offsets.numpy()):
        np.testing.assert_allclose(tape.gradient(moved, images)[b, ..., 0],
                                   _reference_translation(weights[b, ..., 0].numpy(), -dy,
                                                          -dx, 0.0), rtol=1e-6)
    mask = np.ones((2, 6, 6, 1), np.float32)
    mask[0, 0:3, 0:3] = 0
    mask[1, 3:6, 2:5] = 0
    np.testing.assert_allclose(tape.gradient(cut, images), weights * mask, rtol=1e-6)


def test_the_gradient_through_every_policy_matches_finite_differences():
    """For fixed parameters every policy is affine in the pixels, so a central difference
    of any step is exact; a step of 1 keeps float32 rounding of the sum small."""
    rng = np.random.default_rng(3)
    images = tf.constant(rng.uniform(-1, 1, (2, 28, 28, 1)), tf.float64)
    policy = ("color", "translation", "cutout")
    parameters = augment.draw(policy, tf.random.Generator.from_seed(3), 2)
    weights = tf.constant(rng.normal(size=(2, 28, 28, 1)), tf.float32)

    def score(x):
        return tf.reduce_sum(weights * augment.apply(x, policy, parameters, (-1.0, 1.0)))

    with tf.GradientTape() as tape:
        tape.watch(images)
        total = score(images)
    gradient = tape.gradient(total, images).numpy()
    # Contrast's mean reaches every pixel, even those later cut or shifted out.
    assert np.all(gradient != 0)
    for index in [(0, 10, 12, 0), (1, 3, 20, 0), (0, 27, 0, 0)]:
        step = np.zeros(images.shape)
        step[index] = 1.0
        difference = (score(images + step) - score(images - step)).numpy() / 2
        assert difference == pytest.approx(gradient[index], rel=1e-3, abs=1e-4)


def test_unknown_or_repeated_policies_are_refused():
    for policy in (("translation", "flip"), ("cutout", "cutout")):
        with pytest.raises(ConfigError, match="augment must name each"):
            dataclasses.replace(PRESETS["fast"], augment=policy)


def _gan_step(policy, **options):
    """The fast_sn networks on batches of 8, Adam 1e-3, alternating unless `options` say."""
    model = ModelConfig("fast_sn")
    config = dataclasses.replace(
        PRESETS["fast"], model=model, data=dataclasses.replace(PRESETS["fast"].data,
                                                               global_batch_size=8),
        generator_optimizer=OptimizerConfig(1e-3), discriminator_optimizer=OptimizerConfig(1e-3),
        ema_decay=0.0, augment=policy, **{"update": "alternating", **options})
    keras.utils.set_random_seed(0)
    return GanStep.from_config(config, models.build_networks(model, with_ema=False),
                               tf.random.Generator.from_seed(0), "float32")


def _real_batch():
    return tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)), tf.float32)


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_the_step_shows_d_every_batch_through_the_policy_with_fresh_parameters(update):
    """Run eagerly, so that Python sees every call: D's inputs are exactly the
    augmentation's outputs, for the real and the generated batch of D's update and for
    the generated batch of G's, each with parameters of its own."""
    policy = ("translation", "cutout")
    gan_step = _gan_step(policy, update=update)
    augmented, seen = [], []
    apply, critic = augment.apply, gan_step._critic

    def recording_apply(images, policy_applied, parameters, pixel_range):
        assert policy_applied == policy and pixel_range == (-1.0, 1.0)
        augmented.append((images, parameters, apply(images, policy, parameters, pixel_range)))
        return augmented[-1][2]

    def recording_critic(labels):
        def record_then_score(images, training):
            seen.append(images)
            return critic(labels)(images, training)
        return record_then_score

    real = _real_batch()
    tf.config.run_functions_eagerly(True)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(augment, "apply", recording_apply)
            patch.setattr(gan_step, "_critic", recording_critic)
            gan_step.train(iter([real]), tf.constant(1, tf.int32))
    finally:
        tf.config.run_functions_eagerly(False)
    calls = 3 if update == "alternating" else 2  # Simultaneous: one D pass for both.
    assert len(augmented) == len(seen) == calls
    np.testing.assert_array_equal(augmented[0][0], real)
    for (_, _, out), images in zip(augmented, seen):
        np.testing.assert_array_equal(images, out)
    corners = [parameters["cutout"].numpy() for _, parameters, _ in augmented]
    assert all(not np.array_equal(a, b) for a, b in zip(corners, corners[1:]))


@pytest.mark.slow
def test_an_augmented_run_with_lazy_r1_and_r2_resumes_exactly(tmp_path, short_run,
                                                              resumes_exactly, two_replicas,
                                                              float32_policy_after):
    """One exact resume of options whose effects have tests of their own (above, and
    test_lazy_penalties'): the augmentation, whose draws come from the checkpointed noise
    generator, so a resumed run draws what the uninterrupted one drew; R3GAN's loss with
    R1 and R2 every 4 D updates, whose count the checkpointed optimizer step gives; the
    fast recipe's EMA generator; D's spectral norm, whose power-iteration vectors the
    losses depend on. R3GAN's own D is this one without the spectral norm."""
    # 8 steps of the fast recipe, stopped after 3.
    config = short_run(tmp_path / "run", "fast", model=ModelConfig("fast_sn", noise_dim=100),
                       augment=("color", "translation", "cutout"), loss="relativistic",
                       penalties=PenaltyConfig(r1_weight=1.0, r2_weight=1.0, every=4))
    rows = resumes_exactly(config, two_replicas, calls=1)
    assert len(rows) == 8
    assert [int(row["step"]) for row in rows if float(row["d_penalty"]) > 0] == [1, 5]
