"""The collapse check: `gan.diversity`'s measure against scipy and by hand, and the warning
under the epoch line for a generator that ignores z, none for one that does not. (eval.py's
warning: tests/test_evaluator.py.)"""

import dataclasses

import keras
import numpy as np
import pytest
import scipy.spatial.distance
import tensorflow as tf
from conftest import tiny_config

from dcgan import data, models, training
from dcgan.gan import diversity
from dcgan.recipes.plan import make_plan
from dcgan.training import loop, progress


def test_mean_pairwise_distance_of_three_points_by_hand():
    # Pairs (0,0)-(3,4): 5, (0,0)-(6,8): 10, (3,4)-(6,8): 5.
    points = np.array([[0, 0], [3, 4], [6, 8]], dtype=np.float32)
    distances = diversity.mean_pairwise_distances(points)
    assert distances.dtype == np.float64 and distances.shape == (1,)
    assert distances[0] == pytest.approx(20 / 3, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_pairwise_distances_match_scipy_pdist_per_class(dtype):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (300, 28, 28, 1)).astype(dtype)
    labels = rng.integers(0, 4, 300)
    flat = images.reshape(300, -1).astype(np.float64)
    expected = [scipy.spatial.distance.pdist(flat[labels == c]).mean() for c in range(4)]
    np.testing.assert_allclose(diversity.mean_pairwise_distances(images, labels, 4), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(diversity.mean_pairwise_distances(images),
                               [scipy.spatial.distance.pdist(flat).mean()], rtol=1e-6)
    # max_per_group: each class's first points only.
    expected_first = [scipy.spatial.distance.pdist(flat[labels == c][:10]).mean()
                      for c in range(4)]
    np.testing.assert_allclose(
        diversity.mean_pairwise_distances(images, labels, 4, max_per_group=10), expected_first,
        rtol=1e-6)


def test_the_blocks_add_up_to_the_whole(monkeypatch):
    points = np.random.default_rng(1).normal(size=(50, 7))
    whole = diversity.mean_pairwise_distances(points)
    monkeypatch.setattr(diversity, "_BLOCK_ELEMENTS", 3 * 50)  # Blocks of 3 rows.
    np.testing.assert_allclose(diversity.mean_pairwise_distances(points), whole, rtol=1e-12)
    np.testing.assert_allclose(whole, [scipy.spatial.distance.pdist(points).mean()], rtol=1e-12)


def test_a_class_of_one_point_has_no_distance():
    points = np.arange(8, dtype=np.float64).reshape(4, 2)
    distances = diversity.mean_pairwise_distances(points, [0, 0, 0, 2], 3)
    assert distances[0] > 0 and np.isnan(distances[1]) and np.isnan(distances[2])
    # No measure, no warning.
    assert progress.collapse_warning([1.0, np.nan, *[1.0] * 8]) is None


def test_copies_score_zero_and_a_set_against_itself_one():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(200, 16))
    labels = np.arange(200) % 4
    real_distances = diversity.mean_pairwise_distances(real, labels, 4)
    np.testing.assert_allclose(diversity.diversity_ratios(real, real_distances, labels), 1.0,
                               rtol=1e-12)
    # Class 2 drawn as one point repeated (with rounding-sized noise), the others as real.
    fake = real.copy()
    fake[labels == 2] = real[2] + 1e-9 * rng.normal(size=(50, 16))
    ratios = diversity.diversity_ratios(fake, real_distances, labels)
    assert ratios[2] < 1e-6 and np.allclose(ratios[[0, 1, 3]], 1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: diversity.mean_pairwise_distances(np.ones((3, 2)), [0, 1], 2), "shape"),
    (lambda: diversity.mean_pairwise_distances(np.ones((2, 2)), [0, 2], 2), "lie in"),
    (lambda: diversity.mean_pairwise_distances([[np.nan, 0.0], [0.0, 0.0]]), "non-finite"),
    (lambda: diversity.mean_pairwise_distances(np.ones((3, 2)), max_per_group=1), "a pair"),
    (lambda: diversity.diversity_ratios(np.ones((3, 2)), [0.0]), "positive"),
    (lambda: diversity.diversity_ratios(np.ones((3, 2)), [1.0, 2.0]), "no fake_labels"),
], ids=["labels_shape", "labels_range", "nan", "max_per_group", "zero_real", "no_labels"])
def test_bad_inputs_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_warning_names_the_collapsed_classes():
    ratios = np.ones(10)
    assert progress.collapse_warning(ratios) is None
    ratios[[5, 8]] = [0.012, 0.0]
    assert progress.collapse_warning(ratios) == (
        "Warning: mode collapse: the samples of Sandal, Bag are near-copies of each other "
        f"(their mean pixel distance is 0.012, 0 of the real images'; below "
        f"{diversity.COLLAPSE_RATIO})")
    assert progress.collapse_warning([0.05]).startswith(
        "Warning: mode collapse: the samples are near-copies of each other (their mean pixel "
        "distance is 0.05 of")
    assert progress.collapse_warning([diversity.COLLAPSE_RATIO]) is None


def _generator(ignores_z: bool) -> keras.Model:
    """A tiny conditional generator (z of 8, Fashion-MNIST's 10 classes, tanh pixels); when
    `ignores_z`, its images depend on the label alone: one image per class, a collapse."""
    z = keras.Input((8,))
    label = keras.Input((), dtype="int32")
    one_hot = keras.layers.CategoryEncoding(len(data.CLASS_NAMES), output_mode="one_hot")(label)
    random = keras.initializers.RandomNormal(stddev=2.0, seed=0)
    pixels = keras.layers.Add()([
        keras.layers.Dense(28 * 28, kernel_initializer=random)(one_hot),
        # z times 0 when the generator ignores it, so that z is still one of its inputs.
        keras.layers.Dense(28 * 28, use_bias=False,
                           kernel_initializer="zeros" if ignores_z else random)(z)])
    images = keras.layers.Activation("tanh")(keras.layers.Reshape((28, 28, 1))(pixels))
    return keras.Model([z, label], images)


@pytest.fixture(scope="module")
def sample_diversity(tmp_path_factory):
    """The training loop's check of a conditional run on the first 256 training images."""
    config = tiny_config(tmp_path_factory.mktemp("diversity") / "run", 256, 32)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                   num_classes=10))
    return loop._SampleDiversity(make_plan(config, 1))


@pytest.mark.parametrize("ignores_z", [True, False], ids=["ignores_z", "uses_z"])
def test_the_epoch_line_warns_of_a_generator_that_ignores_z(sample_diversity, capsys,
                                                              ignores_z):
    ratios = sample_diversity(_generator(ignores_z))
    assert ratios.shape == (10,) and np.all(np.isfinite(ratios))
    assert sample_diversity.real_distances.shape == (10,)
    if ignores_z:
        np.testing.assert_allclose(ratios, 0.0, atol=1e-6)
    else:
        assert ratios.min() > diversity.COLLAPSE_RATIO
    bar = progress.EpochProgress(steps_per_epoch=4, last_epoch=2, remaining_steps=8)
    bar.start_epoch()
    bar.end_epoch(1, {"d_loss": [0.5]}, ratios)
    epoch_line, *warning = capsys.readouterr().out.splitlines()
    assert epoch_line.startswith("Epoch 1/2: d_loss 0.5, ")
    if ignores_z:
        assert warning == [progress.collapse_warning(ratios)]
        assert "the samples of T-shirt/top, Trouser, " in warning[0]
    else:
        assert warning == []


def test_the_real_reference_is_the_training_images_in_the_generators_range(sample_diversity):
    plan = sample_diversity.plan
    real_distances = sample_diversity._measure_real()
    images, labels = data.load_arrays(dataclasses.replace(plan.config.data, drop_remainder=False),
                                      plan.pixel_range, with_labels=True)
    assert len(images) == 256
    np.testing.assert_allclose(
        real_distances, diversity.mean_pairwise_distances(images, labels, 10), rtol=1e-10)


@pytest.mark.slow
def test_a_run_warns_under_the_epoch_line_when_its_samples_collapse(tmp_path, monkeypatch,
                                                                     capsys,
                                                                     float32_policy_after):
    """The loop's wiring: every sample of a class replaced by one image, the warning
    follows the line of each epoch that ends after DIVERSITY_WARMUP_STEPS."""
    seeded_samples = models.seeded_samples

    def collapsed_samples(generator, num_images, seed, batch_size):
        samples, labels = seeded_samples(generator, num_images, seed, batch_size)
        return samples[labels], labels  # Sample c (of class c) for each of class c.

    monkeypatch.setattr(loop.models, "seeded_samples", collapsed_samples)
    monkeypatch.setattr(loop, "DIVERSITY_WARMUP_STEPS", 5)  # Epochs end at steps 4 and 8.
    config = tiny_config(tmp_path / "run", 128, 32, epochs=2, num_fixed_samples=4)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                   num_classes=10))
    training.train(config, tf.distribute.MirroredStrategy(["/cpu:0"]))
    header, first, second, warning = capsys.readouterr().out.splitlines()
    assert header.startswith("tutorial: G ")
    assert first.startswith("Epoch 1/2: ") and second.startswith("Epoch 2/2: ")
    assert warning.startswith("Warning: mode collapse: the samples of T-shirt/top, Trouser, "
                              "Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot "
                              "are near-copies of each other")
