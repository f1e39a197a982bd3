import hashlib
import shutil

import keras
import numpy as np
import pytest

from dcgan import data
from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE, DataConfig
from dcgan.core.errors import ClassifierIntegrityError
from dcgan.evaluation import classifier


def _test_split(pixel_range, split="test", with_labels=False):
    config = DataConfig(split=split, global_batch_size=1000, drop_remainder=False)
    return data.load_split(config, pixel_range, with_labels=with_labels)


def _numpy(dataset):
    batches = list(dataset.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


@pytest.fixture(scope="module")
def shipped():
    return classifier.load_classifier()


@pytest.fixture(scope="module")
def embedded_test_split(shipped):
    images, labels = _numpy(_test_split(SIGMOID_RANGE, with_labels=True))
    features, probabilities = classifier.embed(shipped, images, SIGMOID_RANGE)
    return features, probabilities, labels


def test_shipped_weights_have_the_recorded_sha256():
    digest = hashlib.sha256(classifier.DEFAULT_WEIGHTS_PATH.read_bytes()).hexdigest()
    assert digest == classifier.CLASSIFIER_SHA256
    assert classifier.DEFAULT_WEIGHTS_PATH.stat().st_size < 5_000_000


@pytest.mark.slow
def test_shipped_classifier_reaches_93_percent_on_the_test_split(embedded_test_split):
    _, probabilities, labels = embedded_test_split
    assert len(labels) == 10_000
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.93


@pytest.mark.slow
def test_real_test_features_have_full_rank(embedded_test_split):
    # A singular real covariance makes FID ill-defined: sqrtm turns complex or NaN
    # (bioinf-jku/TTUR#4)..
    features, _, _ = embedded_test_split
    centered = features - features.mean(axis=0)
    assert np.linalg.matrix_rank(centered) == classifier.FEATURE_DIM
    eigenvalues = np.linalg.eigvalsh(np.cov(features, rowvar=False))
    assert eigenvalues.min() > 1e-6 * eigenvalues.max()


def test_weights_with_a_different_sha256_are_refused(tmp_path):
    damaged = tmp_path / "classifier.weights.h5"
    shutil.copy(classifier.DEFAULT_WEIGHTS_PATH, damaged)
    contents = bytearray(damaged.read_bytes())
    contents[-1] ^= 0xFF
    damaged.write_bytes(bytes(contents))
    actual = hashlib.sha256(bytes(contents)).hexdigest()
    with pytest.raises(ClassifierIntegrityError) as error:
        classifier.load_classifier(damaged)
    message = str(error.value)
    for part in (str(damaged), actual, classifier.CLASSIFIER_SHA256,
                 "python -m dcgan.evaluation.classifier"):
        assert part in message


def test_missing_weights_are_refused(tmp_path):
    with pytest.raises(ClassifierIntegrityError, match="missing"):
        classifier.load_classifier(tmp_path / "absent.weights.h5")


def test_both_pixel_ranges_give_the_same_classifier_input():
    tanh = _numpy(_test_split(TANH_RANGE, split="test[:500]"))
    sigmoid = _numpy(_test_split(SIGMOID_RANGE, split="test[:500]"))
    assert tanh.min() < 0  # Really the tanh range.
    from_tanh = classifier.to_classifier_input(tanh, TANH_RANGE)
    from_sigmoid = classifier.to_classifier_input(sigmoid, SIGMOID_RANGE)
    assert from_tanh.dtype == from_sigmoid.dtype == np.float32
    assert from_tanh.min() == 0.0 and from_tanh.max() == 1.0
    np.testing.assert_allclose(from_tanh, from_sigmoid, atol=1e-6)
    levels = np.array([-1.0, 0.0, 0.5, 1.0], np.float32).reshape(4, 1, 1, 1)
    converted = classifier.to_classifier_input(np.broadcast_to(levels, (4, 28, 28, 1)), TANH_RANGE)
    np.testing.assert_array_equal(converted[:, 0, 0, 0], [0.0, 0.5, 0.75, 1.0])


@pytest.mark.parametrize("value, pixel_range", [
    (-0.01, SIGMOID_RANGE), (1.01, SIGMOID_RANGE), (-1.01, TANH_RANGE), (np.nan, TANH_RANGE),
])
def test_out_of_range_input_is_rejected(value, pixel_range):
    images = np.full((2, 28, 28, 1), 0.5, np.float32)
    images[1, 3, 4, 0] = value
    with pytest.raises(ValueError, match="must lie in"):
        classifier.to_classifier_input(images, pixel_range)


def test_rounding_overshoot_is_tolerated_and_clipped():
    images = np.full((1, 28, 28, 1), 1.0 + 1e-7, np.float32)
    assert classifier.to_classifier_input(images, SIGMOID_RANGE).max() == 1.0


def test_bad_shape_and_unknown_range_are_rejected():
    for images in (np.zeros((2, 28, 28)), np.zeros((0, 28, 28, 1))):
        with pytest.raises(ValueError, match="shape"):
            classifier.to_classifier_input(images, SIGMOID_RANGE)
    with pytest.raises(ValueError, match="pixel_range"):
        classifier.to_classifier_input(np.zeros((2, 28, 28, 1)), (0.0, 255.0))


def test_embed_shapes_dtypes_and_padding(shipped):
    images = _numpy(_test_split(TANH_RANGE, split="test[:40]"))
    features, probabilities = classifier.embed(shipped, images, TANH_RANGE, batch_size=16)
    assert features.shape == (40, classifier.FEATURE_DIM) and features.dtype == np.float64
    assert probabilities.shape == (40, 10) and probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    # Seven images: one batch padded with nine blanks, which must not leak into the rows.
    few_features, few_probabilities = classifier.embed(shipped, images[:7], TANH_RANGE,
                                                       batch_size=16)
    assert few_features.shape == (7, classifier.FEATURE_DIM)
    np.testing.assert_allclose(few_features, features[:7], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(few_probabilities, probabilities[:7], rtol=1e-5, atol=1e-6)
    # Against the model itself, unpadded: the probabilities are the softmax of its logits.
    logits = shipped(classifier.to_classifier_input(images, TANH_RANGE), training=False)
    np.testing.assert_allclose(probabilities, keras.ops.softmax(logits).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_embed_accepts_a_dataset(shipped):
    dataset = _test_split(TANH_RANGE, split="test[:30]")
    from_dataset = classifier.embed(shipped, dataset, TANH_RANGE, batch_size=16)
    from_array = classifier.embed(shipped, _numpy(dataset), TANH_RANGE, batch_size=16)
    for a, b in zip(from_dataset, from_array):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_classifier_computes_in_float32_under_a_mixed_policy(policy, shipped):
    model = classifier.load_classifier()
    computing = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert all(layer.compute_dtype == "float32" for layer in computing)
    images = _numpy(_test_split(SIGMOID_RANGE, split="test[:8]"))
    mixed = classifier.embed(model, images, SIGMOID_RANGE, batch_size=8)
    reference = classifier.embed(shipped, images, SIGMOID_RANGE, batch_size=8)
    for a, b in zip(mixed, reference):
        np.testing.assert_array_equal(a, b)
