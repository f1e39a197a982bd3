"""The absl binaries as a user runs them: subprocesses, exit codes, one-line errors."""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_one_error_line

REPO = pathlib.Path(__file__).resolve().parent.parent


def _run(script, *args, timeout=300):
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


# Bounded, so that a regression in the validation trains a step rather than a whole run.
BOUNDED = ("--max_steps=1", "--train_examples=256")


@pytest.mark.parametrize("flag, message", [
    ("--g_learning_rate=-1", "train.py: error: learning_rate must be positive, got -1.0"),
    ("--n_critic=0", "train.py: error: n_critic must be positive, got 0"),
    ("--conditioning=concat", "train.py: error: --conditioning applies only with --conditional"),
    ("--r1_weight=10", "train.py: error: The fast discriminator has batch norm"),
    ("--architecture=fashion128", "does not match the fashion128 generator's output"),
])
def test_train_rejects_bad_flags_with_one_line(tmp_path, flag, message):
    result = _run("train.py", f"--run_dir={tmp_path / 'run'}", *BOUNDED, flag)
    assert_one_error_line(result, "train.py", message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, message", [
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),
    ("--precision=float8", "flag --precision=float8: value should be one of"),
])
def test_train_flag_parser_rejects_out_of_range_values(tmp_path, flag, message):
    """absl refuses these before main() runs, in its own two-line format."""
    result = _run("train.py", f"--run_dir={tmp_path / 'run'}", *BOUNDED, flag)
    assert result.returncode == 1
    assert f"FATAL Flags parsing error: {message}" in result.stderr, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_then_generate(tmp_path):
    run_dir = tmp_path / "run"
    result = _run("train.py", f"--run_dir={run_dir}", "--train_examples=128",
                  "--batch_size=32", "--epochs=1", "--cpu_devices=2", "--ema_decay=0.9")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "generator.keras").exists()
    # The flag reaches the trainer (the EMA itself is checked in test_extensions).
    assert json.loads((run_dir / "config.json").read_text())["config"]["ema_decay"] == 0.9
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    saved = [name for name, _ in tf.train.list_variables(checkpoint)]
    assert any(name.startswith("ema_generator/") for name in saved)
    peak_rss_mib = float(re.search(r"peak RSS ([\d,]+) MiB", result.stdout)[1].replace(",", ""))
    assert 200 < peak_rss_mib < 24 * 1024

    out_dir = tmp_path / "generated"
    for source in (run_dir / "generator.keras", run_dir):
        result = _run("generate.py", f"--generator={source}", f"--out_dir={out_dir}",
                      "--num_images=6", "--individual", "--seed=3")
        assert result.returncode == 0, result.stderr[-3000:]
        samples = np.load(out_dir / "images.npy")
        assert samples.shape == (6, 28, 28, 1) and samples.dtype == np.float32
        assert samples.min() >= -1 and samples.max() <= 1
        assert len(list(out_dir.glob("image_*.png"))) == 6
        first = tf.io.decode_png(tf.io.read_file(str(out_dir / "image_00000.png"))).numpy()
        assert first.shape == (28, 28, 1)
    again = _run("generate.py", f"--generator={run_dir}", f"--out_dir={tmp_path / 'again'}",
                 "--num_images=6", "--seed=3")
    assert again.returncode == 0  # The same seed gives the same images.
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "images.npy"),
                                  np.load(out_dir / "images.npy"))
    refused_dir = tmp_path / "refused"
    asked_a_class = _run("generate.py", f"--generator={run_dir}", f"--out_dir={refused_dir}",
                         "--class_name=Bag")
    assert_one_error_line(asked_a_class, "generate.py", "holds an unconditional generator")
    assert not refused_dir.exists()


@pytest.mark.slow
def test_conditional_train_then_generate_a_class(tmp_path):
    run_dir = tmp_path / "run"
    result = _run("train.py", f"--run_dir={run_dir}", "--conditional", "--conditioning=concat",
                  "--train_examples=128", "--batch_size=32", "--epochs=1", "--cpu_devices=2")
    assert result.returncode == 0, result.stderr[-3000:]
    model = json.loads((run_dir / "config.json").read_text())["config"]["model"]
    assert (model["num_classes"], model["conditioning"]) == (10, "concat")

    def generate(out_dir, *flags):
        result = _run("generate.py", f"--generator={run_dir / 'generator.keras'}",
                      f"--out_dir={out_dir}", *flags)
        assert result.returncode == 0, result.stderr[-3000:]
        return np.load(out_dir / "images.npy"), np.load(out_dir / "labels.npy")

    sneakers, labels = generate(tmp_path / "by_name", "--num_images=12", "--class_name=sneaker")
    assert sneakers.shape == (12, 28, 28, 1) and labels.tolist() == [7] * 12
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "by_name" / "grid.png"))).numpy()
    assert grid.shape == (3 * (2 * 30 + 2), 3 * (10 * 30 + 2), 1)  # 10 wide, 2 rows
    by_id, labels = generate(tmp_path / "by_id", "--num_images=12", "--class_id=7")
    np.testing.assert_array_equal(by_id, sneakers)
    every_class, labels = generate(tmp_path / "every_class", "--num_images=12")
    assert labels.tolist() == [*range(10), 0, 1]
    # The same noise: image 7 is a sneaker either way, the others are other classes.
    np.testing.assert_allclose(every_class[7], sneakers[7], atol=1e-6)
    assert not np.allclose(every_class[6], sneakers[6])

    refused_dir = tmp_path / "refused"
    misspelt = _run("generate.py", f"--generator={run_dir}", f"--out_dir={refused_dir}",
                    "--class_name=Snekaer")
    assert_one_error_line(misspelt, "generate.py", "Unknown class name 'Snekaer'; "
                          "Fashion-MNIST's classes are T-shirt/top, Trouser, Pullover")
    assert not refused_dir.exists()


def test_generate_reports_a_missing_generator(tmp_path):
    result = _run("generate.py", f"--generator={tmp_path / 'nope.keras'}",
                  f"--out_dir={tmp_path / 'out'}")
    assert_one_error_line(result, "generate.py", "does not exist")
    assert not (tmp_path / "out").exists()
