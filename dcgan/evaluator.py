"""Checkpoints -> samples -> classifier features -> FID/KID/IS/precision/recall -> files.

Files written in a run directory (atomically; rows already there are kept and reused):
  metrics.json   {"classifier": {...}, "rows": [...]}, one row per evaluated checkpoint
  metrics.csv    the same rows
  fid_curve.png  FID, KID and IS against training steps
  tensorboard/   eval/* scalars beside the training ones
"""

import csv
import dataclasses
import json
import pathlib

import numpy as np
import tensorflow as tf

from dcgan import checkpoints, classifier, data, images, metrics, models
from dcgan.config import DEFAULT_DATA_DIR, ConfigError, DataConfig
from dcgan.files import atomic_path, write_json

__all__ = ["EvalConfig", "METRIC_COLUMNS", "Evaluator", "evaluate_run"]

METRIC_COLUMNS = ("fid", "fid_raw", "kid_mean", "kid_std", "is_mean", "is_std", "precision",
                  "recall")
ROW_COLUMNS = ("step", "checkpoint", "num_samples") + METRIC_COLUMNS


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
    """

    num_samples: int = 10_000
    seed: int = 0
    batch_size: int = 500
    data_dir: str = DEFAULT_DATA_DIR
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    nearest_neighbours: int = 3

    def __post_init__(self):
        if self.num_samples <= classifier.FEATURE_DIM:
            raise ConfigError(
                f"num_samples must exceed the classifier's {classifier.FEATURE_DIM} feature "
                f"dimensions for FID to be defined, got {self.num_samples}.")
        if self.num_samples < self.is_splits:
            raise ConfigError(f"num_samples must be at least is_splits={self.is_splits}.")


class Evaluator:
    """Scores generators against the real test split with the shipped classifier."""

    def __init__(self, config: EvalConfig):
        self.config = config
        self.classifier = classifier.load_classifier()
        test_split = DataConfig(data_dir=config.data_dir, split="test", shuffle_seed=None,
                                global_batch_size=config.batch_size, drop_remainder=False,
                                pixel_range=classifier.CLASSIFIER_PIXEL_RANGE)
        self.real_features, _ = classifier.embed(
            self.classifier, data.load_split(test_split), classifier.CLASSIFIER_PIXEL_RANGE,
            config.batch_size)

    def samples(self, generator) -> np.ndarray:
        """`num_samples` images from seeded noise: float32 [N, 28, 28, 1] in G's range."""
        noise = tf.random.Generator.from_seed(self.config.seed)
        batches = []
        for start in range(0, self.config.num_samples, self.config.batch_size):
            count = min(self.config.batch_size, self.config.num_samples - start)
            z = noise.normal([count, generator.input_shape[-1]])
            batches.append(generator(z, training=False).numpy().astype(np.float32))
        return np.concatenate(batches)

    def evaluate(self, generator) -> dict:
        """All metrics of one generator, keyed by METRIC_COLUMNS."""
        fake_features, fake_probabilities = classifier.embed(
            self.classifier, self.samples(generator), models.generator_output_range(generator),
            self.config.batch_size)
        fid = metrics.fid(self.real_features, fake_features)
        kid = metrics.kernel_inception_distance(
            self.real_features, fake_features, num_subsets=self.config.kid_subsets,
            subset_size=min(self.config.kid_subset_size, self.config.num_samples),
            seed=self.config.seed)
        inception = metrics.inception_score(fake_probabilities, self.config.is_splits,
                                            seed=self.config.seed)
        precision_recall = metrics.precision_recall(
            self.real_features, fake_features, k=self.config.nearest_neighbours)
        return {"fid": fid.value, "fid_raw": fid.raw, "kid_mean": kid.mean, "kid_std": kid.std,
                "is_mean": inception.mean, "is_std": inception.std,
                "precision": precision_recall.precision, "recall": precision_recall.recall}

    def classifier_record(self) -> dict:
        return {"sha256": classifier.CLASSIFIER_SHA256, "version": classifier.CLASSIFIER_VERSION}


def _checkpoint_step(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def _load_rows(path: pathlib.Path, evaluator: Evaluator) -> list[dict]:
    """Rows of an earlier evaluation that used the same classifier and sample count."""
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    if record.get("classifier") != evaluator.classifier_record():
        return []
    return [row for row in record["rows"] if row["num_samples"] == evaluator.config.num_samples]


def _write(run_dir: pathlib.Path, rows: list[dict], evaluator: Evaluator):
    write_json(run_dir / "metrics.json", {"classifier": evaluator.classifier_record(),
                                         "rows": rows})
    with atomic_path(run_dir / "metrics.csv") as partial, partial.open("w", newline="") as file:
        writer = csv.DictWriter(file, ROW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    steps = np.array([row["step"] for row in rows])
    images.plot_columns(run_dir / "fid_curve.png", steps, {
        "FID": [row["fid"] for row in rows], "KID": [row["kid_mean"] for row in rows],
        "IS": [row["is_mean"] for row in rows]}, xlabel="step",
        title=f"{run_dir.name}: {evaluator.config.num_samples} samples vs the test split")


def evaluate_run(run_dir, evaluator: Evaluator, on_row=print,
                 include_cached=False) -> tuple[list[dict], int]:
    """Evaluates every checkpoint of `run_dir` that has no row yet, calling `on_row` with
    each new row as soon as it is scored (and first with the rows already scored, in step
    order, when `include_cached`).

    Returns:
      (all rows sorted by step, how many were evaluated now).

    Raises:
      ConfigError: `run_dir` does not exist, has no checkpoint, or a checkpoint does not
        match the run's architecture. Nothing is written then.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"Run directory {run_dir} does not exist.")
    prefixes = checkpoints.list_checkpoints(run_dir)
    if not prefixes:
        raise ConfigError(f"{run_dir} has no checkpoint to evaluate.")
    rows = {row["step"]: row for row in _load_rows(run_dir / "metrics.json", evaluator)}
    new = [prefix for prefix in prefixes if _checkpoint_step(prefix) not in rows]
    if include_cached:
        for step in sorted(rows):
            on_row(rows[step])
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
    for prefix in new:
        generator = checkpoints.restore_generator(run_dir, prefix)
        row = {"step": _checkpoint_step(prefix), "checkpoint": pathlib.Path(prefix).name,
               "num_samples": evaluator.config.num_samples, **evaluator.evaluate(generator)}
        rows[row["step"]] = row
        with writer.as_default():
            for name in METRIC_COLUMNS:
                tf.summary.scalar(f"eval/{name}", row[name], step=row["step"])
        on_row(row)
        _write(run_dir, sorted(rows.values(), key=lambda r: r["step"]), evaluator)
    writer.flush()
    return sorted(rows.values(), key=lambda r: r["step"]), len(new)
