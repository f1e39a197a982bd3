"""Checkpoints -> samples -> classifier features -> FID/KID/IS/precision/recall -> files.

A conditional generator draws every class equally often (sample i is of class i mod 10)
and is also scored per class: FID within each class, their mean (intra-FID), and the
share of samples the classifier assigns to the class asked for (CONDITIONAL_COLUMNS).

Files written in a run directory (atomically; rows already there are kept and reused):
  metrics.json   {"classifier": {...}, "rows": [...]}, one row per evaluated checkpoint
  metrics.csv    the same rows (a column a row predates is left blank)
  fid_curve.png  FID, KID and IS against training steps
  memorisation.png  the latest checkpoint's samples closest to a training image, above
                 those training images
  tensorboard/   eval/* scalars beside the training ones
and, in the TFDS data directory, the real images' features (see `Evaluator`).
"""

import csv
import dataclasses
import json
import pathlib
import re

import numpy as np
import tensorflow as tf

from dcgan import data, models
from dcgan.core.config import DEFAULT_DATA_DIR, DataConfig
from dcgan.core.errors import CheckpointError, ConfigError, RunDirectoryError
from dcgan.evaluation import bootstrap, classifier, feature_cache, metrics, neighbours
from dcgan.gan import diversity
from dcgan.rundir import checkpoints
from dcgan.rundir.layout import RunDirectory
from dcgan.runtime import images
from dcgan.runtime.files import atomic_path, write_json

__all__ = ["CONDITIONAL_COLUMNS", "EvalConfig", "METRIC_COLUMNS", "Evaluator",
           "checkpoints_to_score", "class_column", "evaluate_run"]

# fid_low, fid_high: the 95% bootstrap interval of `bootstrap.fid_interval`, the generated
# samples resampled and the test split's statistics fixed: this run's FID against this
# reference. fid_pair_low, fid_pair_high: the 95% interval of
# `bootstrap.fid_two_sample_interval`, the test split resampled too: the distance between
# the generator's and the real data's distributions, the interval to compare runs by.
# Rows written before these columns existed lack them: they are kept as they are (blank
# in metrics.csv), not scored again.
# memorisation_ratio, memorisation_share: `neighbours.memorisation` of the samples' and the
# test images' distances to their nearest training image in classifier features.
METRIC_COLUMNS = ("fid", "fid_raw", "fid_low", "fid_high", "fid_pair_low", "fid_pair_high",
                  "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall",
                  "memorisation_ratio", "memorisation_share", "diversity")
# diversity: the lowest `gan.diversity.diversity_ratios` of the samples' classifier features
# (per class for a conditional G) against the test images', over the first
# DIVERSITY_POINTS of each: below `gan.diversity.COLLAPSE_RATIO` they are near-copies.
DIVERSITY_POINTS = 1000
# Generated samples (nearest to a training image first) shown with their nearest one.
MEMORISATION_PAIRS = 8
# What identifies a row: the checkpoint's step and name, and the samples it was scored on.
KEY_COLUMNS = ("step", "checkpoint", "num_samples")


def class_column(metric: str, class_name: str) -> str:
    """The column of a per-class metric: ("fid", "T-shirt/top") -> "fid_t_shirt_top"."""
    return f"{metric}_{re.sub(r'[^a-z0-9]+', '_', class_name.lower()).strip('_')}"


# Rows of conditional generators have these too. intra_fid: the mean of the per-class
# FIDs; class_accuracy: the share of all samples classified as the class asked for;
# fid_<class>, accuracy_<class>: the same within each class.
CONDITIONAL_COLUMNS = ("intra_fid", "class_accuracy") + tuple(
    class_column(metric, name) for name in data.CLASS_NAMES for metric in ("fid", "accuracy"))


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How generated images are scored.

    Attributes:
      num_samples: generated images per evaluation; must exceed the classifier's feature
        dimension for FID. Real images: the whole test split.
      seed: seeds the noise, so a checkpoint always gets the same samples.
      batch_size: images per generator/classifier call.
      data_dir: TFDS data directory.
      kid_subsets, kid_subset_size: KID's subsets (the size is capped at num_samples).
      is_splits: Inception Score splits.
      nearest_neighbours: k of the precision/recall manifolds.
      fid_resamples: bootstrap resamples of each of FID's two 95% intervals.
      train_split: the training images (a TFDS split) the memorisation check measures
        distances to; a generator that copies images outside it goes unnoticed. None:
        no memorisation check (nor the time to embed the training images).
    """

    num_samples: int = 10_000
    seed: int = 0
    batch_size: int = 500
    data_dir: str = DEFAULT_DATA_DIR
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    nearest_neighbours: int = 3
    fid_resamples: int = 200
    train_split: str | None = "train"

    def __post_init__(self):
        if self.num_samples <= classifier.FEATURE_DIM:
            raise ConfigError(
                f"num_samples must exceed the classifier's {classifier.FEATURE_DIM} feature "
                f"dimensions for FID to be defined, got {self.num_samples}.")
        if self.num_samples < self.is_splits:
            raise ConfigError(f"num_samples must be at least is_splits={self.is_splits}.")


class Evaluator:
    """Scores generators against the real test split with the shipped classifier, and
    their memorisation against the training split.

    What it computes at the start, the test split's features and labels and, with a
    train_split, that split's features, its images as uint8 and each test image's
    distance to its nearest training image, is cached on disk (`dcgan.evaluation.feature_cache`) in
    `<data_dir>/dcgan_features/`, keyed by everything those numbers depend on: the
    classifier's sha256, the split, the pixel range, the batch size, the TFDS dataset
    version, and the TensorFlow and NumPy versions. The next Evaluator with the same ones
    loads them instead of embedding 70,000 images again. Delete that directory to clear
    the cache.

    Raises:
      DatasetUnavailableError: Fashion-MNIST is not prepared in `config.data_dir`.
      ClassifierIntegrityError: the classifier's weights are not the shipped ones.
    """

    def __init__(self, config: EvalConfig):
        self.config = config
        self.classifier = classifier.load_classifier()
        key = {"classifier_sha256": classifier.CLASSIFIER_SHA256,
               "pixel_range": list(classifier.CLASSIFIER_PIXEL_RANGE),
               "batch_size": config.batch_size,
               "dataset_version": data.dataset_version(config.data_dir),
               "tensorflow": tf.__version__, "numpy": np.__version__}
        test = feature_cache.cached_arrays(config.data_dir, "test", {"split": "test", **key},
                                           self._embed_test)
        self.real_features, self.real_labels = test["features"], test["labels"]
        if config.train_split is not None:
            train = feature_cache.cached_arrays(
                config.data_dir, config.train_split,
                {"split": config.train_split, "distances_of": "test", **key},
                self._embed_train)
            self.train_features, self.train_images, self.test_distances = (
                train["features"], train["images"], train["test_distances"])

    def _embed_test(self) -> dict[str, np.ndarray]:
        pixels, labels = self._load("test", with_labels=True)
        return {"features": self._embed(pixels), "labels": labels}

    def _embed_train(self) -> dict[str, np.ndarray]:
        """The train_split's features, its uint8 images (for the pictures of the closest
        pairs: a quarter of float32's 188 MB) and the test images' distances to it."""
        pixels = self._load(self.config.train_split, with_labels=False)
        features = self._embed(pixels)
        test_distances, _ = neighbours.nearest_neighbours(self.real_features, features)
        return {"features": features,
                "images": images.to_uint8(pixels, classifier.CLASSIFIER_PIXEL_RANGE),
                "test_distances": test_distances}

    def _embed(self, pixels) -> np.ndarray:
        features, _ = classifier.embed(self.classifier, pixels,
                                       classifier.CLASSIFIER_PIXEL_RANGE, self.config.batch_size)
        return features

    def _load(self, split, with_labels):
        """A split's images in the classifier's pixel range (and labels)."""
        return data.load_arrays(DataConfig(
            data_dir=self.config.data_dir, split=split,
            global_batch_size=self.config.batch_size, drop_remainder=False),
            classifier.CLASSIFIER_PIXEL_RANGE, with_labels)

    def samples(self, generator) -> tuple[np.ndarray, np.ndarray | None]:
        """`num_samples` images from seeded noise: (float32 [N, 28, 28, 1] in G's range,
        int32 labels [N] of a conditional G, sample i of class i mod its classes, or
        None)."""
        return models.seeded_samples(generator, self.config.num_samples, self.config.seed,
                                     self.config.batch_size)

    def evaluate(self, generator, pairs_path=None) -> dict:
        """All metrics of one generator, keyed by METRIC_COLUMNS, and for a conditional one
        CONDITIONAL_COLUMNS (without the memorisation columns when the config has no
        train_split). Given `pairs_path`, also writes there a PNG of the
        MEMORISATION_PAIRS samples closest to a training image (top row) above those
        training images (bottom row).

        Raises:
          ConfigError: a conditional generator whose classes are not Fashion-MNIST's, or
            too few samples per class for a per-class FID.
        """
        num_classes = models.generator_num_classes(generator)
        if num_classes:
            self._check_conditional(num_classes)
        samples, labels = self.samples(generator)
        fake_features, fake_probabilities = classifier.embed(
            self.classifier, samples, models.generator_output_range(generator),
            self.config.batch_size)
        fid = metrics.fid(self.real_features, fake_features)
        fid_interval, fid_pair_interval = (
            interval(self.real_features, fake_features, num_resamples=self.config.fid_resamples,
                     seed=self.config.seed)
            for interval in (bootstrap.fid_interval, bootstrap.fid_two_sample_interval))
        kid = metrics.kernel_inception_distance(
            self.real_features, fake_features, num_subsets=self.config.kid_subsets,
            subset_size=min(self.config.kid_subset_size, self.config.num_samples),
            seed=self.config.seed)
        inception = metrics.inception_score(fake_probabilities, self.config.is_splits,
                                            seed=self.config.seed)
        precision_recall = neighbours.precision_recall(
            self.real_features, fake_features, k=self.config.nearest_neighbours)
        scores = {"fid": fid.value, "fid_raw": fid.raw, "fid_low": fid_interval.low,
                  "fid_high": fid_interval.high, "fid_pair_low": fid_pair_interval.low,
                  "fid_pair_high": fid_pair_interval.high, "kid_mean": kid.mean,
                  "kid_std": kid.std, "is_mean": inception.mean, "is_std": inception.std,
                  "precision": precision_recall.precision, "recall": precision_recall.recall}
        if self.config.train_split is not None:
            fake_distances, nearest = neighbours.nearest_neighbours(fake_features,
                                                                    self.train_features)
            memorisation = neighbours.memorisation(fake_distances, self.test_distances)
            scores.update(memorisation_ratio=memorisation.ratio,
                          memorisation_share=memorisation.share)
            if pairs_path is not None:
                self._write_pairs(pairs_path, samples, generator, fake_distances, nearest)
        if num_classes:
            scores.update(self._per_class(fake_features, fake_probabilities, labels))
        scores["diversity"] = self._diversity(fake_features, labels)
        return scores

    def _diversity(self, fake_features, labels) -> float:
        """The "diversity" column: per class when `labels` [N] (a conditional G), else
        over all the samples."""
        num_classes = 0 if labels is None else len(data.CLASS_NAMES)
        real = diversity.mean_pairwise_distances(
            self.real_features, None if labels is None else self.real_labels, num_classes,
            max_per_group=DIVERSITY_POINTS)
        return float(np.min(diversity.diversity_ratios(fake_features, real, labels,
                                                       max_per_group=DIVERSITY_POINTS)))

    def _write_pairs(self, path, samples, generator, fake_distances, nearest):
        closest = np.argsort(fake_distances)[:MEMORISATION_PAIRS]
        pairs = np.concatenate([
            images.to_uint8(samples[closest], models.generator_output_range(generator)),
            self.train_images[nearest[closest]]])
        images.write_png(path, images.labelled_grid(
            pairs, (0, 255), ["generated", "nearest training image"], scale=4))

    def _check_conditional(self, num_classes):
        if num_classes != len(data.CLASS_NAMES):
            raise CheckpointError(f"The generator is conditioned on {num_classes} classes, "
                                  f"Fashion-MNIST has {len(data.CLASS_NAMES)}.")
        needed = num_classes * (classifier.FEATURE_DIM + 1)
        if self.config.num_samples < needed:
            raise ConfigError(
                f"num_samples must be at least {needed} for a conditional generator: its "
                f"per-class FIDs need more than the classifier's {classifier.FEATURE_DIM} "
                f"feature dimensions in each of its {num_classes} classes, got "
                f"{self.config.num_samples}.")

    def _per_class(self, fake_features, fake_probabilities, labels) -> dict:
        """CONDITIONAL_COLUMNS of samples whose requested classes are `labels` [N]."""
        num_classes = len(data.CLASS_NAMES)
        fids = [distance.value for distance in metrics.per_class_fid(
            self.real_features, self.real_labels, fake_features, labels, num_classes)]
        accuracies = metrics.per_class_accuracy(fake_probabilities, labels, num_classes)
        scores = {"intra_fid": float(np.mean(fids)),
                  "class_accuracy": float(np.mean(fake_probabilities.argmax(axis=1) == labels))}
        for name, fid, accuracy in zip(data.CLASS_NAMES, fids, accuracies):
            scores[class_column("fid", name)] = fid
            scores[class_column("accuracy", name)] = float(accuracy)
        return scores

    def classifier_record(self) -> dict:
        return {"sha256": classifier.CLASSIFIER_SHA256, "version": classifier.CLASSIFIER_VERSION}

    def report(self, generator) -> dict:
        """What `eval.py --generator --output_json` writes: `evaluate`'s metrics, with the
        classifier, the number of samples and the seed they were scored with."""
        return {"classifier": self.classifier_record(), "num_samples": self.config.num_samples,
                "seed": self.config.seed, **self.evaluate(generator)}


def _load_rows(path: pathlib.Path, evaluator: Evaluator) -> list[dict]:
    """Rows of an earlier evaluation that used the same classifier and sample count."""
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    if record.get("classifier") != evaluator.classifier_record():
        return []
    return [row for row in record["rows"] if row["num_samples"] == evaluator.config.num_samples]


def _metric_columns(row: dict) -> tuple[str, ...]:
    """The metrics of a row: METRIC_COLUMNS, and CONDITIONAL_COLUMNS for a conditional G."""
    return METRIC_COLUMNS + (CONDITIONAL_COLUMNS if CONDITIONAL_COLUMNS[0] in row else ())


def _write(run_dir: RunDirectory, rows: list[dict], evaluator: Evaluator):
    write_json(run_dir.metrics_json, {"classifier": evaluator.classifier_record(),
                                      "rows": rows})
    columns = KEY_COLUMNS + _metric_columns(rows[0])
    with atomic_path(run_dir.metrics_csv) as partial, partial.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    steps = np.array([row["step"] for row in rows])
    images.plot_columns(run_dir.fid_curve, steps, {
        "FID": [row["fid"] for row in rows], "KID": [row["kid_mean"] for row in rows],
        "IS": [row["is_mean"] for row in rows]}, xlabel="step",
        title=f"{run_dir.path.name}: {evaluator.config.num_samples} samples vs the test split")


def checkpoints_to_score(run_dir) -> list[str]:
    """The checkpoint prefixes of `run_dir`, oldest first: what `evaluate_run` scores (or
    skips as scored), checkable before an `Evaluator` embeds the real images.

    Raises:
      RunDirectoryError: `run_dir` does not exist or has no checkpoint.
    """
    if not pathlib.Path(run_dir).is_dir():
        raise RunDirectoryError(f"Run directory {run_dir} does not exist.")
    prefixes = checkpoints.list_checkpoints(run_dir)
    if not prefixes:
        raise RunDirectoryError(f"{run_dir} has no checkpoint to evaluate.")
    return prefixes


def evaluate_run(run_dir, evaluator: Evaluator, on_row=print, include_cached=False,
                 on_start=None) -> tuple[list[dict], int]:
    """Evaluates every checkpoint of `run_dir` that has no row yet, calling `on_row` with
    each new row as soon as it is scored (and first with the rows already scored, in step
    order, when `include_cached`). `on_start`, if given, is called with the number of
    checkpoints to score, before the first is.

    Returns:
      (all rows sorted by step, how many were evaluated now).

    Raises:
      RunDirectoryError: `run_dir` does not exist or has no checkpoint.
      CheckpointError: a checkpoint does not match the run's architecture. Nothing is
        written then.
    """
    prefixes = checkpoints_to_score(run_dir)
    run_dir = RunDirectory(run_dir)
    rows = {row["step"]: row for row in _load_rows(run_dir.metrics_json, evaluator)}
    new = [prefix for prefix in prefixes if checkpoints.checkpoint_step(prefix) not in rows]
    if include_cached:
        for step in sorted(rows):
            on_row(rows[step])
    if on_start is not None:
        on_start(len(new))
    writer = tf.summary.create_file_writer(str(run_dir.tensorboard))
    for prefix in new:
        generator = checkpoints.restore_generator(run_dir.path, prefix)
        row = {"step": checkpoints.checkpoint_step(prefix),
               "checkpoint": pathlib.Path(prefix).name,
               "num_samples": evaluator.config.num_samples,
               **evaluator.evaluate(generator, pairs_path=run_dir.memorisation)}
        rows[row["step"]] = row
        with writer.as_default():
            for name in (name for name in _metric_columns(row) if name in row):
                tf.summary.scalar(f"eval/{name}", row[name], step=row["step"])
        on_row(row)
        _write(run_dir, sorted(rows.values(), key=lambda r: r["step"]), evaluator)
    writer.flush()
    return sorted(rows.values(), key=lambda r: r["step"]), len(new)
