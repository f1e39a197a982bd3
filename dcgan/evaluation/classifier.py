"""The project's own Fashion-MNIST classifier: the features for FID, KID and precision/recall
and the softmax for the Inception Score.

Inception-v3 features mean little on 28x28 grayscale images (bioinf-jku/TTUR#24), so the metrics in
`dcgan.evaluation.metrics` run on this network instead. Scores computed with it are
comparable only with other scores computed with the same weights: report them as e.g.
"FID (dcgan classifier v1)", and check `CLASSIFIER_SHA256`.

The weights ship in the package (`dcgan/assets/`); `python -m dcgan.evaluation.classifier`
retrains them deterministically and prints the new sha256 to put in `CLASSIFIER_SHA256` (another CPU
or TensorFlow build may round differently and give another file).
"""

import pathlib
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dcgan import data
from dcgan.core.config import DEFAULT_DATA_DIR, SIGMOID_RANGE, TANH_RANGE, DataConfig
from dcgan.core.errors import ClassifierIntegrityError
from dcgan.runtime.files import atomic_path, sha256

__all__ = [
    "CLASSIFIER_PIXEL_RANGE",
    "CLASSIFIER_SHA256",
    "CLASSIFIER_VERSION",
    "ClassifierIntegrityError",
    "DEFAULT_WEIGHTS_PATH",
    "FEATURE_DIM",
    "FEATURE_LAYER",
    "build_classifier",
    "embed",
    "evaluate_accuracy",
    "load_classifier",
    "to_classifier_input",
    "train_classifier",
]

CLASSIFIER_VERSION = 1
CLASSIFIER_SHA256 = "d17de18921c4cf4063838207e33f0051802a91fc268f4d6458009bd4657bb77c"
CLASSIFIER_PIXEL_RANGE = SIGMOID_RANGE
DEFAULT_WEIGHTS_PATH = (
    pathlib.Path(__file__).parents[1] / "assets" / "fashion_mnist_classifier.weights.h5")
TRAIN_COMMAND = "python -m dcgan.evaluation.classifier"
FEATURE_LAYER = "features"
FEATURE_DIM = 128
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
# Pixels may overshoot the nominal range by float32 rounding, e.g. 255 * (2 / 255) - 1.
RANGE_TOLERANCE = 1e-5


def build_classifier() -> keras.Model:
    """Images [batch, 28, 28, 1] float32 in [0, 1] -> logits [batch, 10] float32.

    The layer named `FEATURE_LAYER` is the 128-d embedding for FID/KID/precision-recall. It
    is taken before its ReLU: a linear map of the pooled convolutions has full rank on real
    data, whereas a ReLU output can hold dead units that make the covariance singular.

    Every layer computes in float32 whatever the global mixed-precision policy is, so a
    metric does not depend on the policy its caller trains with.
    """
    f32 = "float32"
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    x = images
    for filters, pool in ((32, True), (64, True), (128, True), (256, False)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=f32)(x)
        x = layers.BatchNormalization(dtype=f32)(x)
        x = layers.ReLU(dtype=f32)(x)
        if pool:  # 28x28 -> 14x14 -> 7x7 -> 4x4
            x = layers.MaxPooling2D(padding="same", dtype=f32)(x)
    x = layers.Flatten(dtype=f32)(x)
    x = layers.Dropout(0.3, dtype=f32)(x)
    x = layers.Dense(FEATURE_DIM, name=FEATURE_LAYER, dtype=f32)(x)
    x = layers.ReLU(dtype=f32)(x)
    x = layers.Dropout(0.3, dtype=f32)(x)
    logits = layers.Dense(NUM_CLASSES, name="logits", dtype=f32)(x)
    return keras.Model(images, logits, name="fashion_mnist_classifier")


def load_classifier(path=DEFAULT_WEIGHTS_PATH) -> keras.Model:
    """The classifier with the weights in `path`, whose sha256 must be `CLASSIFIER_SHA256`.

    Raises:
      ClassifierIntegrityError: the file is missing or its sha256 differs.
    """
    path = pathlib.Path(path)
    retrain = (f"Retrain with `{TRAIN_COMMAND}` and set CLASSIFIER_SHA256 in "
               "dcgan/evaluation/classifier.py to the hash it prints (scores then change).")
    if not path.exists():
        raise ClassifierIntegrityError(f"Classifier weights {path} are missing. {retrain}")
    actual = sha256(path)
    if actual != CLASSIFIER_SHA256:
        raise ClassifierIntegrityError(
            f"Classifier weights {path} have sha256 {actual}, expected {CLASSIFIER_SHA256}. "
            f"{retrain}")
    classifier = build_classifier()
    classifier.load_weights(path)
    return classifier


def to_classifier_input(images, pixel_range) -> np.ndarray:
    """Images of either generator range -> float32 [N, 28, 28, 1] in `CLASSIFIER_PIXEL_RANGE`.

    The one preprocessing step for real and generated images alike.

    Args:
      images: array-like [N >= 1, 28, 28, 1] in `pixel_range` (up to `RANGE_TOLERANCE`).
      pixel_range: TANH_RANGE or SIGMOID_RANGE.

    Raises:
      ValueError: an unknown range, a wrong shape, or pixels outside `pixel_range`.
    """
    if tuple(pixel_range) not in (TANH_RANGE, SIGMOID_RANGE):
        raise ValueError(f"pixel_range must be {TANH_RANGE} or {SIGMOID_RANGE}, got {pixel_range}")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
        raise ValueError(f"images must have shape [N >= 1, 28, 28, 1], got {images.shape}")
    low, high = pixel_range
    if not (np.all(np.isfinite(images))
            and images.min() >= low - RANGE_TOLERANCE and images.max() <= high + RANGE_TOLERANCE):
        raise ValueError(
            f"images must lie in {pixel_range}, got values in "
            f"[{np.nanmin(images)}, {np.nanmax(images)}] (wrong pixel_range?)")
    target_low, target_high = CLASSIFIER_PIXEL_RANGE
    scaled = (images - low) * ((target_high - target_low) / (high - low)) + target_low
    return np.clip(scaled, target_low, target_high)


def embed(classifier, images, pixel_range, batch_size=500) -> tuple[np.ndarray, np.ndarray]:
    """Features and class probabilities of `images`.

    Every batch has exactly `batch_size` images (the last one is zero-padded, its padding
    stripped), so the network is traced once and never retraced on a ragged last batch.

    Args:
      classifier: a model from `build_classifier` (normally `load_classifier()`).
      images: array-like [N, 28, 28, 1], or a `tf.data.Dataset` of such batches, in
        `pixel_range`.
      pixel_range: TANH_RANGE or SIGMOID_RANGE.
      batch_size: images per forward pass.

    Returns:
      (features float64 [N, FEATURE_DIM], probabilities float64 [N, 10]).
    """
    if isinstance(images, tf.data.Dataset):
        images = np.concatenate(list(images.as_numpy_iterator()))
    images = to_classifier_input(images, pixel_range)
    extractor = keras.Model(
        classifier.inputs, [classifier.get_layer(FEATURE_LAYER).output, classifier.outputs[0]])
    forward = tf.function(
        lambda x: extractor(x, training=False),
        input_signature=[tf.TensorSpec((batch_size, *IMAGE_SHAPE), tf.float32)])
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        padded = np.zeros((batch_size, *IMAGE_SHAPE), np.float32)
        padded[:len(batch)] = batch
        batch_features, batch_logits = forward(padded)
        features.append(batch_features.numpy()[:len(batch)])
        logits.append(batch_logits.numpy()[:len(batch)])
    features = np.concatenate(features).astype(np.float64)
    logits = np.concatenate(logits).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return features, probabilities


def _split(split, seed=None, batch_size=256, data_dir=DEFAULT_DATA_DIR) -> DataConfig:
    return DataConfig(data_dir=data_dir, split=split, global_batch_size=batch_size,
                      drop_remainder=seed is not None)


def _random_flips(dataset, seed) -> tf.data.Dataset:
    """Mirrors each image left-right with probability 1/2, a function of (seed, batch index)."""
    def flip(index, batch):
        images, labels = batch
        flip_seed = tf.stack([tf.constant(seed, tf.int64), index])
        return tf.image.stateless_random_flip_left_right(images, flip_seed), labels

    return dataset.enumerate().map(flip, num_parallel_calls=tf.data.AUTOTUNE)


def train_classifier(epochs=10, batch_size=128, seed=0, data_dir=DEFAULT_DATA_DIR,
                     verbose=2) -> keras.Model:
    """Trains a fresh classifier on the 60,000 Fashion-MNIST training images.

    AdamW with cosine learning-rate decay and random left-right flips, which bought the
    accuracy within the CPU budget. The network classifies mirrored clothes alike, but its
    features still tell them apart: FID of the test split against its mirror image is 54,
    against 10,000 training images 0.5 (docs/log/03-evaluation-and-metrics.md).

    Deterministic on a given machine and TensorFlow build: seeds Keras' global RNGs and
    enables TensorFlow op determinism for the whole process.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    config = _split("train", seed, batch_size, data_dir)
    steps_per_epoch = data.num_examples(config) // batch_size
    dataset = _random_flips(data.load_split(config, CLASSIFIER_PIXEL_RANGE, with_labels=True,
                                            shuffle_seed=seed, epochs=epochs), seed)
    classifier = build_classifier()
    learning_rate = keras.optimizers.schedules.CosineDecay(1e-3, epochs * steps_per_epoch)
    classifier.compile(
        # Decoupled weight decay lifted test accuracy from 93.0% to 93.6%
        # (docs/log/03-evaluation-and-metrics.md).
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    # With steps_per_epoch set, fit keeps one iterator over all `epochs` passes.
    classifier.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose)
    return classifier


def evaluate_accuracy(classifier, data_dir=DEFAULT_DATA_DIR) -> float:
    """Top-1 accuracy on the full Fashion-MNIST test split (10,000 images)."""
    images, labels = data.load_arrays(_split("test", data_dir=data_dir), CLASSIFIER_PIXEL_RANGE,
                                      with_labels=True)
    _, probabilities = embed(classifier, images, CLASSIFIER_PIXEL_RANGE)
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def main(argv=None):
    import argparse  # Only this entry point parses arguments.

    parser = argparse.ArgumentParser(description="Train the Fashion-MNIST metric classifier.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--output", default=str(DEFAULT_WEIGHTS_PATH))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    classifier = train_classifier(epochs=args.epochs, data_dir=args.data_dir)
    seconds = time.perf_counter() - start
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # A compiled model's weights file also holds the optimizer state: ship the network only.
    network = build_classifier()
    network.set_weights(classifier.get_weights())
    with atomic_path(output) as partial:
        network.save_weights(partial)
    accuracy = evaluate_accuracy(classifier, args.data_dir)
    print(f"trained in {seconds:.0f} s; test accuracy {accuracy:.4f}")
    print(f"{output}: sha256 {sha256(output)} ({output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
