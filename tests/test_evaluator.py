"""eval.py and dcgan.evaluator on a tiny real run directory."""

import csv
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_one_error_line, tiny_run

from dcgan import checkpoints, classifier, data, evaluator, metrics
from dcgan.config import TANH_RANGE, ConfigError, DataConfig

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parent.parent
# A tenth of the training split keeps the memorisation check's embedding short.
MEMORISATION_SPLIT = "train[:6000]"
# eval.py's runs here check its flags, files and errors, not what memorisation finds (the
# in-process tests do, on MEMORISATION_SPLIT): fewer training images to embed each start.
EVAL_PY_MEMORISATION_SPLIT = "train[:1000]"
SMALL = evaluator.EvalConfig(num_samples=300, batch_size=100, kid_subsets=5,
                             kid_subset_size=100, is_splits=3, train_split=MEMORISATION_SPLIT)


@pytest.fixture
def run_dir(trained_run, tmp_path):
    """This test's own copy of `trained_run`, which it may score or damage."""
    return shutil.copytree(trained_run, tmp_path / "run")


@pytest.fixture(scope="module")
def scorer():
    return evaluator.Evaluator(SMALL)


@pytest.fixture(scope="module")
def test_split_features(scorer):
    """Classifier features float64 [10000, 128] and labels [10000] of the test split,
    read here (in the generators' tanh range, not the evaluator's) rather than by it."""
    config = DataConfig(split="test", global_batch_size=500, drop_remainder=False)
    batches = data.load_split(config, TANH_RANGE, with_labels=True)
    features, _ = classifier.embed(scorer.classifier, batches.map(lambda x, y: x), TANH_RANGE)
    labels = np.concatenate([y for _, y in batches.as_numpy_iterator()])
    assert features.shape == (10_000, classifier.FEATURE_DIM)
    return features, labels


def test_rows_for_every_checkpoint_then_skipped(run_dir, scorer, test_split_features):
    rows, evaluated = evaluator.evaluate_run(run_dir, scorer, on_row=lambda row: None)
    assert evaluated == 2 and [row["step"] for row in rows] == [4, 8]
    for row in rows:
        assert row["num_samples"] == 300
        assert row["fid"] > 0 and row["is_mean"] >= 1 and 0 <= row["precision"] <= 1
    # The last row against the test split embedded here (metrics.fid and
    # metrics.inception_score are checked against scipy and closed forms elsewhere).
    samples, _ = scorer.samples(checkpoints.restore_generator(run_dir))
    features, probabilities = classifier.embed(scorer.classifier, samples, TANH_RANGE)
    real_features, _ = test_split_features
    assert rows[-1]["fid"] == pytest.approx(metrics.fid(real_features, features).value,
                                            rel=1e-6)
    assert rows[-1]["is_mean"] == pytest.approx(
        metrics.inception_score(probabilities, SMALL.is_splits, seed=SMALL.seed).mean,
        rel=1e-6)
    csv_lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("step,checkpoint,num_samples,fid")
    assert json.loads((run_dir / "metrics.json").read_text())["rows"] == rows
    assert tf.io.decode_png(tf.io.read_file(str(run_dir / "fid_curve.png"))).shape[-1] in (3, 4)

    before = (run_dir / "metrics.csv").stat().st_mtime_ns
    again, evaluated = evaluator.evaluate_run(run_dir, scorer, on_row=lambda row: None)
    assert evaluated == 0 and again == rows
    assert (run_dir / "metrics.csv").stat().st_mtime_ns == before
    reported = []
    evaluator.evaluate_run(run_dir, scorer, on_row=reported.append, include_cached=True)
    assert reported == rows  # eval.py's table lists the cached rows too.


def test_same_generator_same_scores(run_dir, scorer):
    generator = checkpoints.restore_generator(run_dir)
    first, second = scorer.evaluate(generator), scorer.evaluate(generator)
    assert first == second


def test_too_few_samples_for_fid_is_refused():
    with pytest.raises(ConfigError, match="exceed the classifier's 128 feature"):
        evaluator.EvalConfig(num_samples=128)


def _eval(*args):
    args = (f"--memorisation_split={EVAL_PY_MEMORISATION_SPLIT}", *args)
    return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def test_missing_run_dir(tmp_path):
    assert_one_error_line(_eval(f"--run_dir={tmp_path / 'absent'}"), "eval.py",
                          "does not exist")


def test_run_dir_without_checkpoints(tmp_path):
    assert_one_error_line(_eval(f"--run_dir={tmp_path}", "--num_samples=300"), "eval.py",
                          "no checkpoint")
    assert not (tmp_path / "metrics.json").exists()


def test_checkpoint_of_another_architecture(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["config"]["model"] = {"architecture": "fashion128", "noise_dim": 128,
                                 "synchronized_batch_norm": False}
    (other / "config.json").write_text(json.dumps(config))
    line = assert_one_error_line(_eval(f"--run_dir={other}", "--num_samples=300"),
                                 "eval.py", "does not hold a fashion128 generator")
    # The tutorial G's first Dense kernel against fashion128's.
    assert "(100, 12544) in the checkpoint, (128, 6272) in the model" in line
    assert not (other / "metrics.json").exists()


def test_truncated_checkpoint(run_dir, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    [data_file] = cut.glob("checkpoints/ckpt-4.data-*")
    data_file.write_bytes(data_file.read_bytes()[:1000])
    assert_one_error_line(_eval(f"--run_dir={cut}", "--num_samples=300"), "eval.py",
                          "ckpt-4 could not be read, its files look truncated")


def test_num_samples_too_small(run_dir):
    assert_one_error_line(_eval(f"--run_dir={run_dir}", "--num_samples=50"), "eval.py",
                          "num_samples must exceed")
    assert not (run_dir / "metrics.json").exists()


def test_exported_generator(run_dir, tmp_path):
    output = tmp_path / "scores.json"
    result = _eval(f"--generator={run_dir / 'generator.keras'}", "--num_samples=300",
                   f"--output_json={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(output.read_text())
    assert scores["num_samples"] == 300 and np.isfinite(scores["fid"])
    assert "FID" in result.stdout


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A conditional run with a checkpoint at step 4; tests use a copy."""
    return tiny_run(tmp_path_factory.mktemp("eval") / "conditional", epochs=1, num_classes=10)


@pytest.fixture
def conditional_run_dir(conditional_run, tmp_path):
    return shutil.copytree(conditional_run, tmp_path / "conditional")


def test_conditional_run_is_scored_per_class(conditional_run_dir, test_split_features):
    result = _eval(f"--run_dir={conditional_run_dir}", "--num_samples=1300")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "intra-FID" in result.stdout and "Ankle boot" in result.stdout
    [row] = json.loads((conditional_run_dir / "metrics.json").read_text())["rows"]
    with (conditional_run_dir / "metrics.csv").open(newline="") as file:
        [csv_row] = list(csv.DictReader(file))
    columns = (evaluator.KEY_COLUMNS + evaluator.METRIC_COLUMNS
               + evaluator.CONDITIONAL_COLUMNS)
    assert tuple(csv_row) == columns and len(columns) == 3 + 12 + 2 + 2 * 10
    for column in columns[3:]:
        assert float(csv_row[column]) == pytest.approx(row[column], rel=1e-12)

    # The same samples (same seed and batches as eval.py), classified and compared here.
    # Only its samples and classifier are used: no training images to embed.
    scorer = evaluator.Evaluator(evaluator.EvalConfig(num_samples=1300, train_split=None))
    samples, labels = scorer.samples(checkpoints.restore_generator(conditional_run_dir))
    assert np.array_equal(np.bincount(labels), [130] * 10)
    features, probabilities = classifier.embed(scorer.classifier, samples, TANH_RANGE)
    for label, name in enumerate(data.CLASS_NAMES):
        asked = labels == label
        share = np.mean(probabilities[asked].argmax(axis=1) == label)
        assert row[evaluator.class_column("accuracy", name)] == pytest.approx(share)
    assert row["class_accuracy"] == pytest.approx(
        np.mean([row[evaluator.class_column("accuracy", n)] for n in data.CLASS_NAMES]))
    # The FID of the sneakers alone, against the sneakers of the test split as embedded
    # here (metrics.fid is checked against scipy elsewhere).
    sneaker = data.CLASS_NAMES.index("Sneaker")
    real_features, real_labels = test_split_features
    expected_fid = metrics.fid(real_features[real_labels == sneaker],
                               features[labels == sneaker]).value
    assert row["fid_sneaker"] == pytest.approx(expected_fid, rel=1e-6)
    assert row["intra_fid"] == pytest.approx(
        np.mean([row[evaluator.class_column("fid", n)] for n in data.CLASS_NAMES]))


def test_too_few_samples_per_class_is_refused(conditional_run_dir):
    result = _eval(f"--generator={conditional_run_dir / 'generator.keras'}",
                   "--num_samples=1000")
    assert_one_error_line(result, "eval.py",
                          "num_samples must be at least 1290 for a conditional")


def _scores_of_samples(scorer, run_dir, monkeypatch, samples, tmp_path):
    """evaluate() of the run's generator with its samples replaced by `samples` [300, 28,
    28, 1] in the classifier's range, mapped to G's tanh range."""
    low, high = classifier.CLASSIFIER_PIXEL_RANGE
    as_tanh = (samples.astype(np.float32) - low) / (high - low) * 2 - 1
    monkeypatch.setattr(scorer, "samples", lambda generator: (as_tanh, None))
    return scorer.evaluate(checkpoints.restore_generator(run_dir),
                           pairs_path=tmp_path / "pairs.png")


def test_memorisation_flags_a_generator_that_returns_training_images(
        run_dir, scorer, monkeypatch, tmp_path):
    copies = scorer.train_images[:300].astype(np.float32) / 255 * (
        classifier.CLASSIFIER_PIXEL_RANGE[1] - classifier.CLASSIFIER_PIXEL_RANGE[0]) + (
        classifier.CLASSIFIER_PIXEL_RANGE[0])
    scores = _scores_of_samples(scorer, run_dir, monkeypatch, copies, tmp_path)
    assert scores["memorisation_ratio"] < 0.01 and scores["memorisation_share"] == 1.0
    # The picture: 8 samples above the training images they copy, pixel for pixel.
    picture = tf.io.decode_png(tf.io.read_file(str(tmp_path / "pairs.png"))).numpy()
    assert picture.shape[0] == 4 * (2 * (28 + 2) + 2)
    right = picture[:, -4 * (8 * 30 + 2):, 0]
    cells = right.reshape(2 * 4 * 30 + 8, -1)
    top, bottom = cells[8:8 + 4 * 28], cells[8 + 4 * 30:8 + 4 * 30 + 4 * 28]
    np.testing.assert_array_equal(top, bottom)


def test_memorisation_passes_a_generator_that_returns_test_images(
        run_dir, scorer, monkeypatch, tmp_path):
    test_images = scorer._load("test", with_labels=False)[:300]
    scores = _scores_of_samples(scorer, run_dir, monkeypatch, test_images, tmp_path)
    assert 0.8 < scores["memorisation_ratio"] < 1.25
    assert scores["memorisation_share"] == 0.0


def test_rows_cached_before_the_interval_columns_are_kept(run_dir, scorer, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    evaluator.evaluate_run(old, scorer, on_row=lambda row: None)
    record = json.loads((old / "metrics.json").read_text())
    # As an eval.py of before the interval and memorisation wrote it, without step 8.
    new_columns = ("fid_low", "fid_high", "memorisation_ratio", "memorisation_share")
    record["rows"] = [{key: value for key, value in row.items() if key not in new_columns}
                      for row in record["rows"] if row["step"] == 4]
    (old / "metrics.json").write_text(json.dumps(record))
    rows, evaluated = evaluator.evaluate_run(old, scorer, on_row=lambda row: None)
    assert evaluated == 1 and "fid_low" not in rows[0] and rows[1]["fid_low"] > 0
    with (old / "metrics.csv").open(newline="") as file:
        old_row, new_row = csv.DictReader(file)
    assert old_row["fid_low"] == "" and float(old_row["fid"]) == rows[0]["fid"]
    assert 0 <= float(new_row["fid_low"]) <= float(new_row["fid_high"])
    assert (old / "memorisation.png").exists()
