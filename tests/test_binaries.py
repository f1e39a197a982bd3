"""The absl binaries as a user runs them: subprocesses, exit codes, one-line errors."""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from conftest import REPO, assert_one_error_line, train_binary

from dcgan import data, models
from dcgan.core.config import ModelConfig
from dcgan.core.errors import CheckpointError, ConfigError, DiskFullError
from dcgan.recipes.presets import DEFAULT_PRESET, PRESETS
from dcgan.rundir import checkpoints
from dcgan.runtime import hardware


def _run(script, *args, timeout=300):
    # PYTHONPATH: scripts/local_workers.py would otherwise import an installed dcgan.
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


# Bounded, so that a regression in the validation trains a step rather than a whole run.
BOUNDED = ("--max_steps=1", "--train_examples=256")


@pytest.fixture(scope="module")
def train_flags():
    """`train_flags(*args)`: train.py's config_from_flags() after parsing `args` as its
    command line, in this process (no TensorFlow start); the flags are reset after."""
    train = train_binary()

    def config_from(*args):
        try:
            train.FLAGS(["train.py", *args])
            return train.config_from_flags()
        finally:
            train.FLAGS.unparse_flags()

    return config_from


@pytest.mark.parametrize("flag, message", [
    ("--g_learning_rate=-1", "learning_rate must be positive, got -1.0"),
    ("--n_critic=0", "n_critic must be positive, got 0"),
    ("--conditioning=concat", "--conditioning applies only with --conditional"),
    ("--r1_weight=10",
     f"The {PRESETS[DEFAULT_PRESET].model.architecture} discriminator has batch norm"),
    ("--loss=wasserstein", "loss 'wasserstein' needs a penalty"),
])
def test_train_rejects_bad_flags(train_flags, flag, message):
    """The flags reach the config and its validation. How train.py prints the error (one
    line, exit status 1, no run directory): test_console's
    test_verbosity_and_the_environment_bring_the_info_lines_back[default]."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        train_flags(flag)


def test_train_flags_set_the_config(train_flags):
    config = train_flags("--conditional", "--conditioning=concat", "--ema_decay=0.9",
                         "--train_examples=128")
    assert (config.model.num_classes, config.model.conditioning) == (10, "concat")
    assert (config.ema_decay, config.data.split) == (0.9, "train[:128]")


@pytest.mark.parametrize("args, preset", [
    (["--conditional"], "conditional"),
    (["--conditional", "--preset=hinge"], "hinge_conditional"),
    (["--conditional", "--preset=least_squares"], "least_squares"),
    (["--preset=conditional"], "conditional"),
])
def test_conditional_trains_the_tuned_conditional_preset(train_flags, args, preset):
    """--conditional with the default or hinge trains their tuned conditional presets, in
    its run directory; another preset is made conditional as it is."""
    config = train_flags(*args)
    expected = PRESETS[preset]
    assert config.model.num_classes == 10
    assert (config.model.architecture, config.loss, config.generator_optimizer,
            config.discriminator_optimizer, config.run_dir) == (
        expected.model.architecture, expected.loss, expected.generator_optimizer,
        expected.discriminator_optimizer, expected.run_dir)


def test_train_flag_parser_rejects_out_of_range_values(tmp_path, train_flags):
    """absl refuses these before main() runs, in its own two-line format."""
    with pytest.raises(flags.IllegalFlagValueError,
                       match=re.escape("flag --dtype_policy=float8: value should be one of")):
        train_flags("--dtype_policy=float8")
    result = _run("train.py", f"--run_dir={tmp_path / 'run'}", *BOUNDED, "--batch_size=0")
    assert result.returncode == 1
    assert ("FATAL Flags parsing error: flag --batch_size=0: 0 is not a positive integer"
            in result.stderr), result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_then_generate(tmp_path):
    run_dir = tmp_path / "run"
    # In bf16 (emulated where the CPU lacks it), which the export must not carry: it
    # samples in float32, as the checkpoint restored from the run directory does.
    result = _run("train.py", f"--run_dir={run_dir}", "--train_examples=128",
                  "--batch_size=32", "--epochs=1", "--cpu_devices=2", "--ema_decay=0.9",
                  "--dtype_policy=mixed_bfloat16")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["dtype_policy"] == "mixed_bfloat16"
    for name in ("generator", "discriminator"):
        exported = keras.models.load_model(run_dir / f"{name}.keras")
        assert {layer.dtype_policy.name for layer in exported.layers} == {"float32"}
    # The flag reaches the trainer (the EMA itself is checked in test_extensions).
    assert json.loads((run_dir / "config.json").read_text())["config"]["ema_decay"] == 0.9
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    saved = [name for name, _ in tf.train.list_variables(checkpoint)]
    assert any(name.startswith("ema_generator/") for name in saved)
    peak_rss_mib = float(re.search(r"peak RSS ([\d,]+) MiB", result.stdout)[1].replace(",", ""))
    assert 200 < peak_rss_mib < 24 * 1024

    out_dir = tmp_path / "generated"
    outputs = []
    for source in (run_dir / "generator.keras", run_dir):
        result = _run("generate.py", f"--generator={source}", f"--out_dir={out_dir}",
                      "--num_images=6", "--individual", "--seed=3")
        assert result.returncode == 0, result.stderr[-3000:]
        # The console: a header, the files written, and nothing on stderr.
        assert result.stderr == "", result.stderr[-3000:]
        assert result.stdout.splitlines() == [
            f"generate.py: 6 images, seed 3; generator {source} (unconditional, pixel range "
            f"(-1.0, 1.0)); into {out_dir}: grid.png, image_*.png, images.npy; devices "
            f"CPU:0; CPU {hardware.cpu_model()}", f"Wrote 6 images to {out_dir}"]
        samples = np.load(out_dir / "images.npy")
        assert samples.shape == (6, 28, 28, 1) and samples.dtype == np.float32
        assert samples.min() >= -1 and samples.max() <= 1
        assert len(list(out_dir.glob("image_*.png"))) == 6
        first = tf.io.decode_png(tf.io.read_file(str(out_dir / "image_00000.png"))).numpy()
        assert first.shape == (28, 28, 1)
        outputs.append(samples)
    # The same seed gives the same images, from the export as from the run's checkpoint.
    np.testing.assert_array_equal(*outputs)
    refused_dir = tmp_path / "refused"
    asked_a_class = _run("generate.py", f"--generator={run_dir}", f"--out_dir={refused_dir}",
                         "--class_name=Bag")
    assert_one_error_line(asked_a_class, "generate.py", "holds an unconditional generator")
    assert not refused_dir.exists()


@pytest.mark.slow
def test_generate_a_class_of_a_conditional_generator(tmp_path):
    """Untrained: what generate.py does with the labels does not need a trained one (how
    train.py --conditional sets the config: test_train_flags_set_the_config)."""
    path = tmp_path / "generator.keras"
    models.build_generator(ModelConfig(num_classes=10, conditioning="concat")).save(path)

    def generate(out_dir, *flags):
        result = _run("generate.py", f"--generator={path}", f"--out_dir={out_dir}", *flags)
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


def test_what_generate_and_eval_load_is_refused_with_what_is_wrong(tmp_path):
    """The messages of their one error line (the line itself:
    test_a_file_that_is_not_a_keras_model_is_one_error_line)."""
    with pytest.raises(CheckpointError,
                       match=re.escape(f"{tmp_path / 'nope.keras'} does not exist")):
        checkpoints.load_generator(tmp_path / "nope.keras")
    for junk in _junk_models(tmp_path):
        with pytest.raises(CheckpointError, match=re.escape(f"{junk} is not a Keras model")):
            checkpoints.load_generator(junk)
    with pytest.raises(ConfigError, match=re.escape(
            "Unknown class name 'Snekaer'; Fashion-MNIST's classes are T-shirt/top, Trouser, "
            "Pullover")):
        data.class_index("Snekaer")


def _junk_models(directory):
    """A .keras file holding text, and one cut short: the first 2 kB of a real export."""
    text = directory / "text.keras"
    text.write_text("not a model\n")
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    model.save(directory / "whole.keras")
    cut = directory / "cut.keras"
    cut.write_bytes((directory / "whole.keras").read_bytes()[:2000])
    return text, cut


@pytest.mark.slow
@pytest.mark.parametrize("binary", ["eval.py", "generate.py"])
def test_a_file_that_is_not_a_keras_model_is_one_error_line(tmp_path, binary):
    # The other kinds of junk: test_what_generate_and_eval_load_is_refused_with_what_is_wrong.
    junk = tmp_path / "text.keras"
    junk.write_text("not a model\n")
    result = _run(binary, f"--generator={junk}", f"--out_dir={tmp_path / 'out'}"
                  if binary == "generate.py" else f"--data_dir={tmp_path / 'no_data'}")
    assert_one_error_line(result, binary, f"{junk} is not a Keras model")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("binary, args, fragment", [
    ("bench.py", ["--data_dir={tmp}", "--json_out={tmp}/bench.json", "--steps=1"],
     "Fashion-MNIST"),
    # A worker's error goes to stdout, behind its index; the launcher's line says so.
    ("scripts/local_workers.py", ["--num_workers=1", "--", "--run_dir={tmp}/run",
                                  "--n_critic=0", "--max_steps=2"],
     "the chief (worker 0) failed"),
])
def test_every_binary_ends_a_failure_in_one_error_line(tmp_path, binary, args, fragment):
    # train.py: test_console's test_verbosity_and_the_environment_bring_the_info_lines_back;
    # eval.py and generate.py: test_a_file_that_is_not_a_keras_model_is_one_error_line;
    # sweep.py: test_sweep's test_sweep_refuses_a_learning_rate_schedule_before_training.
    result = _run(binary, *(arg.format(tmp=tmp_path) for arg in args))
    assert_one_error_line(result, pathlib.Path(binary).name, fragment)


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) mounts a tmpfs of `size` (e.g. "600k") at tmp_path/disk, or resizes it;
    unmounted after the test. Skips where mounting is refused (not root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = []

    def mount(size):
        options = f"remount,size={size}" if mounted else f"size={size}"
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(size)
        return disk

    yield mount
    if mounted:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def _checkpoint_files(directory):
    return sorted(path.name for path in directory.iterdir())


def test_a_checkpoint_save_on_a_full_disk_leaves_nothing_partial(small_disk):
    # Checkpoints of 400 kB on a 600 kB disk: the first fits, the second does not.
    directory = small_disk("600k") / "checkpoints"
    variable = tf.Variable(tf.range(100_000, dtype=tf.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), str(directory),
                                         max_to_keep=1)
    first = checkpoints.save_checkpoint(manager, 1)
    before = _checkpoint_files(directory)
    with pytest.raises(DiskFullError) as error:
        checkpoints.save_checkpoint(manager, 2)
    message = str(error.value)
    assert f"No space left on the disk mounted at {directory.parent} (" in message
    assert f"to write {directory}/ckpt-2_temp/" in message
    assert f"the last intact checkpoint is {first}" in message
    assert _checkpoint_files(directory) == before  # No ckpt-2_temp, no ckpt-2.*.
    assert tf.train.latest_checkpoint(str(directory)) == first
    variable.assign(tf.zeros_like(variable))
    tf.train.Checkpoint(v=variable).restore(first).assert_existing_objects_matched()
    np.testing.assert_array_equal(variable.numpy(), np.arange(100_000))
    small_disk("2m")
    assert checkpoints.save_checkpoint(manager, 2) == str(directory / "ckpt-2")


@pytest.mark.slow
def test_train_py_on_a_full_disk_stops_in_one_line_and_resumes_once_freed(small_disk):
    # A checkpoint of the fast networks is 29 MB: ckpt-1 fits in 40 MB, ckpt-2 beside it
    # (max_checkpoints=1 deletes ckpt-1 only once ckpt-2 is saved) does not.
    run_dir = small_disk("40m") / "run"
    args = [f"--run_dir={run_dir}", "--train_examples=1024", "--batch_size=64",
            "--max_steps=3", "--checkpoint_every_steps=1", "--max_checkpoints=1"]
    full = _run("train.py", *args)
    assert_one_error_line(full, "train.py", f"No space left on the disk mounted at "
                          f"{run_dir.parent} (")
    assert (f"the last intact checkpoint is {run_dir}/checkpoints/ckpt-1. Free some space "
            "and run the same command to resume.") in full.stderr
    assert "Traceback" not in full.stderr
    assert _checkpoint_files(run_dir / "checkpoints") == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    assert not list(run_dir.rglob("*.partial*")) and not list(run_dir.rglob("*_temp"))
    first_row = (run_dir / "losses.csv").read_text().splitlines()[1]

    small_disk("120m")
    resumed = _run("train.py", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = (run_dir / "losses.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [1, 2, 3]
    # Step 1 is the first run's row, timings included: the run went on from ckpt-1.
    assert rows[0] == first_row
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-3")


@pytest.mark.slow
def test_generate_py_on_a_full_disk_is_one_error_line(tmp_path, small_disk):
    path = tmp_path / "generator.keras"
    models.build_generator(ModelConfig()).save(path)
    out_dir = small_disk("16k") / "out"
    result = _run("generate.py", f"--generator={path}", f"--out_dir={out_dir}")
    assert_one_error_line(result, "generate.py",
                          f"No space left on the disk mounted at {out_dir.parent} (")
    assert not list(out_dir.glob("*.partial*"))


@pytest.mark.slow
def test_an_output_json_that_cannot_be_written_is_one_line_before_any_evaluation(tmp_path):
    path = tmp_path / "generator.keras"
    models.build_generator(ModelConfig()).save(path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # No data in --data_dir: an evaluation would fail on that, so the line below proves
    # the output was checked first.
    result = _run("eval.py", f"--generator={path}", f"--data_dir={tmp_path / 'no_data'}",
                  f"--output_json={blocker / 'metrics.json'}")
    assert_one_error_line(result, "eval.py",
                          f"Cannot write {blocker / 'metrics.json'}: {blocker} is a file")
