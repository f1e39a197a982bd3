"""eval.py and dcgan.evaluation.evaluator on a tiny real run directory."""

import csv
import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.spatial.distance
import tensorflow as tf
from conftest import REPO, assert_one_error_line, tiny_run

from dcgan import data
from dcgan.core.config import DEFAULT_DATA_DIR, SIGMOID_RANGE, TANH_RANGE, DataConfig
from dcgan.core.errors import ConfigError
from dcgan.data import pipeline
from dcgan.evaluation import bootstrap, classifier, evaluator, feature_cache, metrics, neighbours
from dcgan.experiments import zoo
from dcgan.gan import diversity
from dcgan.recipes.presets import DEFAULT_PRESET
from dcgan.rundir import checkpoints

pytestmark = pytest.mark.slow

# A tenth of the training split keeps the memorisation check's embedding short.
MEMORISATION_SPLIT = "train[:6000]"
# eval.py's runs here check its flags, files and errors, not what memorisation finds (the
# in-process tests do, on MEMORISATION_SPLIT): fewer training images to embed each start.
EVAL_PY_MEMORISATION_SPLIT = "train[:1000]"
# 20 bootstrap resamples, not 200: the tests here check that the intervals are written and
# ordered (tests/test_metrics.py their coverage), and the resamples were half of each
# evaluate() call.
SMALL = evaluator.EvalConfig(num_samples=300, batch_size=100, kid_subsets=5,
                             kid_subset_size=100, is_splits=3, fid_resamples=20,
                             train_split=MEMORISATION_SPLIT)


@pytest.fixture
def run_dir(trained_run, tmp_path):
    """This test's own copy of `trained_run`, which it may score or damage."""
    return shutil.copytree(trained_run, tmp_path / "run")


@pytest.fixture(scope="module")
def scorer():
    return evaluator.Evaluator(SMALL)


@pytest.fixture(scope="module")
def scored_run(trained_run, scorer, tmp_path_factory):
    """(A copy of `trained_run` that `evaluate_run` has scored, its rows, how many it
    evaluated.) Tests that write into it use a copy."""
    run_dir = shutil.copytree(trained_run, tmp_path_factory.mktemp("scored") / "run")
    rows, evaluated = evaluator.evaluate_run(run_dir, scorer, on_row=lambda row: None)
    return run_dir, rows, evaluated


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


def test_a_restored_generator_computes_in_float32_whatever_policy_a_run_left(
        trained_run, float32_policy_after):
    """sweep.py trains, which sets the run's dtype policy, then scores in the same process:
    the generator it restores must sample as eval.py's and the export do."""
    expected = checkpoints.restore_generator(trained_run)
    z = np.random.default_rng(0).normal(size=(8, expected.inputs[0].shape[1])).astype(np.float32)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    restored = checkpoints.restore_generator(trained_run)
    assert {layer.dtype_policy.name for layer in restored.layers} == {"float32"}
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    np.testing.assert_array_equal(restored(z, training=False), expected(z, training=False))


def test_rows_for_every_checkpoint_then_skipped(scored_run, scorer, test_split_features):
    run_dir, rows, evaluated = scored_run
    assert evaluated == 2 and [row["step"] for row in rows] == [4, 8]
    for row in rows:
        assert row["num_samples"] == 300
        assert row["fid"] > 0 and row["is_mean"] >= 1 and 0 <= row["precision"] <= 1
        # Both intervals about the estimate (the basic bootstrap subtracts FID's upward
        # bias, so F may lie a little above one).
        for low, high in (("fid_low", "fid_high"), ("fid_pair_low", "fid_pair_high")):
            assert 0 <= row[low] < row[high] and row[low] < row["fid"] < 1.1 * row[high], low
    # The same generator gets the same scores, called again.
    generator = checkpoints.restore_generator(run_dir)
    assert {name: rows[-1][name] for name in evaluator.METRIC_COLUMNS} == scorer.evaluate(
        generator)
    # The last row against the test split embedded here (metrics.fid and
    # metrics.inception_score are checked against scipy and closed forms elsewhere).
    samples, _ = scorer.samples(generator)
    features, probabilities = classifier.embed(scorer.classifier, samples, TANH_RANGE)
    real_features, _ = test_split_features
    assert rows[-1]["fid"] == pytest.approx(metrics.fid(real_features, features).value,
                                            rel=1e-6)
    assert rows[-1]["is_mean"] == pytest.approx(
        metrics.inception_score(probabilities, SMALL.is_splits, seed=SMALL.seed).mean,
        rel=1e-6)
    for keys, interval in ((("fid_low", "fid_high"), bootstrap.fid_interval),
                           (("fid_pair_low", "fid_pair_high"), bootstrap.fid_two_sample_interval)):
        expected = interval(real_features, features, num_resamples=SMALL.fid_resamples,
                            seed=SMALL.seed)
        assert [rows[-1][key] for key in keys] == pytest.approx(expected, rel=1e-6), keys
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


def test_too_few_samples_for_fid_is_refused():
    with pytest.raises(ConfigError, match="exceed the classifier's 128 feature"):
        evaluator.EvalConfig(num_samples=128)


def _eval(*args):
    args = (f"--memorisation_split={EVAL_PY_MEMORISATION_SPLIT}", *args)
    return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def _say_fashion128(run):
    """Edits `run`'s config.json to claim a fashion128 generator, whose first Dense kernel
    is (128, 6272) where the tutorial G's checkpoint holds (100, 12544)."""
    config = json.loads((run / "config.json").read_text())
    config["config"]["model"] = {"architecture": "fashion128", "noise_dim": 128,
                                 "synchronized_batch_norm": False}
    (run / "config.json").write_text(json.dumps(config))


def _truncate_last_checkpoint(run):
    [data_file] = run.glob("checkpoints/ckpt-4.data-*")
    data_file.write_bytes(data_file.read_bytes()[:1000])


@pytest.mark.parametrize("damage, flags, fragments", [
    (shutil.rmtree, (), ("does not exist",)),
    (lambda run: shutil.rmtree(run / "checkpoints"), ("--num_samples=300",),
     ("no checkpoint",)),
    (_say_fashion128, ("--num_samples=300",),
     ("does not hold a fashion128 generator",
      "(100, 12544) in the checkpoint, (128, 6272) in the model")),
    (_truncate_last_checkpoint, ("--num_samples=300",),
     ("ckpt-4 could not be read, its files look truncated",)),
    (lambda run: None, ("--num_samples=50",), ("num_samples must exceed",)),
], ids=["missing", "no_checkpoints", "other_architecture", "truncated", "few_samples"])
def test_bad_run_dir(run_dir, damage, flags, fragments):
    """eval.py on a damaged run directory (or with too few samples) ends in one error line
    that says what is wrong, and writes no metrics.json."""
    damage(run_dir)
    line = assert_one_error_line(_eval(f"--run_dir={run_dir}", *flags), "eval.py",
                                 fragments[0])
    assert all(fragment in line for fragment in fragments[1:]), line
    assert not (run_dir / "metrics.json").exists()


def test_exported_generator(run_dir, tmp_path):
    output = tmp_path / "scores.json"
    result = _eval(f"--generator={run_dir / 'generator.keras'}", "--num_samples=300",
                   f"--output_json={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(output.read_text())
    assert scores["num_samples"] == 300 and np.isfinite(scores["fid"])
    assert "FID" in result.stdout
    # The samples of 8 steps are grey blobs alike, which no score tells from a collapse:
    # the warning under the table says both.
    assert scores["diversity"] < diversity.COLLAPSE_RATIO
    assert result.stdout.splitlines()[-1].startswith(
        "Warning: mode collapse, or a generator that has not learnt yet: the samples are "
        "near-copies")


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
    assert tuple(csv_row) == columns and len(columns) == 3 + 15 + 2 + 2 * 10
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


def test_diversity_is_the_lowest_spread_over_the_test_images(scorer):
    """The "diversity" column: the samples' mean pairwise distance over the first
    DIVERSITY_POINTS test images' (computed here with scipy), per class given labels; test
    images score about 1, copies of one image 0."""
    features, labels = scorer.real_features[5000:5300], scorer.real_labels[5000:5300]

    def mean_distance(points):
        return scipy.spatial.distance.pdist(points).mean()

    real = scorer.real_features
    assert scorer._diversity(features, None) == pytest.approx(
        mean_distance(features) / mean_distance(real[:evaluator.DIVERSITY_POINTS]), rel=1e-9)
    per_class = [mean_distance(features[labels == c]) / mean_distance(
        real[scorer.real_labels == c][:evaluator.DIVERSITY_POINTS]) for c in range(10)]
    assert scorer._diversity(features, labels) == pytest.approx(min(per_class), rel=1e-9)
    assert 0.8 < min(per_class) and scorer._diversity(features, None) > 0.8
    assert scorer._diversity(np.repeat(features[:1], 300, axis=0), None) < 1e-6


def _one_image_whatever_z(path):
    """Saves to `path` a generator that ignores z, as the collapsed run of issue 39 did
    within each class: it draws the first test image whatever z."""
    image = data.load_arrays(DataConfig(split="test[:1]", global_batch_size=1), TANH_RANGE)
    z = keras.Input((8,))
    ignored = keras.layers.Dense(28 * 28, kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(
                                     np.arctanh(np.clip(image.ravel(), -1 + 1e-6, 1 - 1e-6))))
    generator = keras.Model(z, keras.layers.Activation("tanh")(
        keras.layers.Reshape((28, 28, 1))(ignored(z))))  # z times 0, plus the image.
    generator.save(path)


@pytest.mark.parametrize("collapsed", [True, False], ids=["ignores_z", "model_zoo"])
def test_eval_warns_under_the_table_of_a_generator_that_ignores_z(tmp_path, collapsed):
    """A generator that draws one image (precision 1, recall 0, diversity 0) gets a
    warning line under the table, with both reasons; the model zoo's generator none."""
    path, output = tmp_path / "collapsed.keras", tmp_path / "scores.json"
    if collapsed:
        _one_image_whatever_z(path)
    else:
        path = zoo.generator_path(DEFAULT_PRESET)
    result = _eval(f"--generator={path}", "--num_samples=300", f"--output_json={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(output.read_text())
    lines = result.stdout.splitlines()
    warnings = [line for line in lines if "Warning" in line]
    if not collapsed:
        assert scores["diversity"] > 0.8 and warnings == []
        return
    assert scores["diversity"] < 1e-6 and scores["recall"] < 0.01
    assert scores["precision"] == 1.0
    assert warnings == [lines[-1]]  # Under the table.
    assert warnings[0] == (
        "Warning: mode collapse, or a generator that has not learnt yet: the samples are "
        "near-copies of each other (their mean distance in classifier features is "
        f"{scores['diversity']:.2g} of the test images'; below {diversity.COLLAPSE_RATIO}); "
        f"recall {scores['recall']:.3f} at precision 1.000: realistic samples that cover "
        "almost none of the test images")


def test_rows_cached_before_the_interval_columns_are_kept(scored_run, scorer, tmp_path):
    old = shutil.copytree(scored_run[0], tmp_path / "old")
    record = json.loads((old / "metrics.json").read_text())
    # As an eval.py of before the interval and memorisation wrote it, without step 8.
    new_columns = ("fid_low", "fid_high", "fid_pair_low", "fid_pair_high",
                   "memorisation_ratio", "memorisation_share")
    record["rows"] = [{key: value for key, value in row.items() if key not in new_columns}
                      for row in record["rows"] if row["step"] == 4]
    (old / "metrics.json").write_text(json.dumps(record))
    rows, evaluated = evaluator.evaluate_run(old, scorer, on_row=lambda row: None)
    assert evaluated == 1 and "fid_low" not in rows[0] and rows[1]["fid_low"] > 0
    with (old / "metrics.csv").open(newline="") as file:
        old_row, new_row = csv.DictReader(file)
    assert old_row["fid_low"] == old_row["fid_pair_low"] == ""
    assert float(old_row["fid"]) == rows[0]["fid"]
    assert 0 <= float(new_row["fid_low"]) <= float(new_row["fid_high"])
    assert 0 <= float(new_row["fid_pair_low"]) <= float(new_row["fid_pair_high"])
    assert (old / "memorisation.png").exists()


# The feature cache's tests: their own data directories, the prepared dataset linked in,
# so they neither depend on the order they run in nor on the shared cache in
# DEFAULT_DATA_DIR (which the tests above fill and reuse, run after run).
CACHE_CONFIG = dataclasses.replace(SMALL, train_split="train[:1000]")


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """(An Evaluator of CACHE_CONFIG in a data directory of its own, which it has filled
    with its two cache entries, and that config.) Tests that add or damage entries use a
    copy of the directory (`copy_data_dir`)."""
    data_dir = tmp_path_factory.mktemp("cached") / "data"
    data_dir.mkdir()
    (data_dir / data.DATASET_NAME).symlink_to(
        pathlib.Path(DEFAULT_DATA_DIR).expanduser() / data.DATASET_NAME)
    config = dataclasses.replace(CACHE_CONFIG, data_dir=str(data_dir))
    return evaluator.Evaluator(config), config


def copy_data_dir(config, tmp_path):
    """`config` with a copy of its data directory (the dataset still linked, the cache
    copied)."""
    copy = shutil.copytree(config.data_dir, tmp_path / "data", symlinks=True)
    return dataclasses.replace(config, data_dir=str(copy))


def cache_entries(config) -> list[str]:
    """The file names in `config`'s cache directory without their hashes, sorted."""
    directory = pathlib.Path(config.data_dir) / feature_cache.CACHE_DIRECTORY
    return sorted(path.name.rsplit("-", 1)[0] for path in directory.iterdir())


@pytest.fixture
def embeddings(monkeypatch):
    """The batch sizes of every `classifier.embed` call and the splits of every TFDS read
    from here on."""
    calls = {"embed": [], "read": []}
    embed, load_split = classifier.embed, data.load_split

    def counted_embed(model, images, pixel_range, batch_size=500):
        calls["embed"].append(batch_size)
        return embed(model, images, pixel_range, batch_size)

    def counted_load_split(config, *args, **kwargs):
        calls["read"].append(config.split)
        return load_split(config, *args, **kwargs)

    monkeypatch.setattr(classifier, "embed", counted_embed)
    # load_arrays reads through the pipeline module's own name, the package re-exports it.
    monkeypatch.setattr(data, "load_split", counted_load_split)
    monkeypatch.setattr(pipeline, "load_split", counted_load_split)
    return calls


CACHED_ARRAYS = ("real_features", "real_labels", "train_features", "train_images",
                 "test_distances")


def test_a_second_evaluator_loads_the_cache_bit_for_bit(cached, embeddings):
    first, config = cached
    assert cache_entries(config) == ["test", "train_1000"]  # No partial file left.
    second = evaluator.Evaluator(config)
    assert embeddings == {"embed": [], "read": []}
    for name in CACHED_ARRAYS:
        assert getattr(second, name).dtype == getattr(first, name).dtype
        assert np.array_equal(getattr(second, name), getattr(first, name)), name

    # As embedded here, read from TFDS outside the evaluator.
    def split(name):
        return DataConfig(data_dir=config.data_dir, split=name,
                          global_batch_size=config.batch_size, drop_remainder=False)

    test_pixels, test_labels = data.load_arrays(split("test"), SIGMOID_RANGE, with_labels=True)
    train_pixels = data.load_arrays(split(config.train_split), SIGMOID_RANGE)
    test_features, _ = classifier.embed(second.classifier, test_pixels, SIGMOID_RANGE,
                                        config.batch_size)
    train_features, _ = classifier.embed(second.classifier, train_pixels, SIGMOID_RANGE,
                                         config.batch_size)
    assert np.array_equal(second.real_features, test_features)
    assert np.array_equal(second.real_labels, test_labels)
    assert np.array_equal(second.train_features, train_features)
    assert np.array_equal(second.train_images, np.round(train_pixels * 255).astype(np.uint8))
    assert np.array_equal(second.test_distances,
                          neighbours.nearest_neighbours(test_features, train_features)[0])


def test_another_split_or_batch_size_is_a_miss(cached, embeddings, tmp_path):
    _, config = cached
    config = copy_data_dir(config, tmp_path)
    # The test split's entry is reused; the other training split's embedded.
    other_split = evaluator.Evaluator(dataclasses.replace(config, train_split="train[:500]"))
    assert embeddings["embed"] == [config.batch_size]
    assert len(other_split.train_features) == 500
    embeddings["embed"].clear()
    evaluator.Evaluator(dataclasses.replace(config, batch_size=200, train_split=None))
    assert embeddings["embed"] == [200]
    assert cache_entries(config) == ["test", "test", "train_1000", "train_500"]


def test_a_damaged_cache_file_is_recomputed_with_a_warning(cached, trained_run, tmp_path,
                                                           caplog):
    first, config = cached
    config = copy_data_dir(config, tmp_path)
    [entry] = (pathlib.Path(config.data_dir) / feature_cache.CACHE_DIRECTORY).glob("train*")
    size = entry.stat().st_size
    entry.write_bytes(entry.read_bytes()[:size // 2])
    recomputed = evaluator.Evaluator(config)
    [warning] = [record for record in caplog.records if "Feature cache" in record.getMessage()]
    assert warning.levelname == "WARNING"
    assert f"Feature cache {entry} could not be read" in warning.getMessage()
    assert "\n" not in warning.getMessage()
    assert entry.stat().st_size == size  # Rewritten whole.
    for name in CACHED_ARRAYS:
        assert np.array_equal(getattr(recomputed, name), getattr(first, name)), name
    generator = checkpoints.restore_generator(trained_run)
    assert recomputed.evaluate(generator) == first.evaluate(generator)


def test_a_cache_file_of_another_key_is_recomputed_with_a_warning(tmp_path, caplog):
    computed = []

    def compute(value):
        computed.append(value)
        return {"values": np.full(3, value, np.float64)}

    first = feature_cache.cached_arrays(tmp_path, "x", {"value": 1}, lambda: compute(1))
    again = feature_cache.cached_arrays(tmp_path, "x", {"value": 1}, lambda: compute(1))
    assert computed == [1] and np.array_equal(again["values"], first["values"])
    # As if two keys' hashes collided: key 2's file holds key 1's entry.
    shutil.copy(feature_cache.cache_path(tmp_path, "x", {"value": 1}),
                feature_cache.cache_path(tmp_path, "x", {"value": 2}))
    other = feature_cache.cached_arrays(tmp_path, "x", {"value": 2}, lambda: compute(2))
    assert computed == [1, 2] and np.array_equal(other["values"], [2.0, 2.0, 2.0])
    [warning] = [record for record in caplog.records if "Feature cache" in record.getMessage()]
    assert warning.levelname == "WARNING"
    assert "holds the features of another key" in warning.getMessage()
    feature_cache.cached_arrays(tmp_path, "x", {"value": 2}, lambda: compute(2))
    assert computed == [1, 2]  # Rewritten with key 2.
