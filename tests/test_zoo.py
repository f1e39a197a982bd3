"""The model zoo: the shipped entry scores what its sidecar records, generate.py and eval.py
fall back on it before any training, and scripts/make_zoo_entry.py records the run it
copies."""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest
from conftest import REPO

from dcgan import models
from dcgan.core.config import ModelConfig
from dcgan.core.errors import ZooError
from dcgan.evaluation import evaluator
from dcgan.experiments import zoo
from dcgan.recipes.presets import DEFAULT_PRESET, PRESETS
from dcgan.rundir import checkpoints
from dcgan.runtime import hardware
from dcgan.runtime.files import sha256

ENTRY = zoo.generator_path(DEFAULT_PRESET)
# On one machine the FID repeats to the last bit. Other kernels round float32 otherwise:
# oneDNN limited to AVX2 or to SSE4.1, or TensorFlow's Eigen kernels instead of oneDNN's
# (each with real features of its own), moved it by at most 5e-8 of itself (BUILD_NOTES.md,
# "Model zoo"). 1e-5 (0.002 at FID 214) leaves 200x that for other CPUs, and is 1/3,300
# of the FID's own 95% interval (210.37-217.38), which another sample would move it in.
FID_TOLERANCE = 1e-5


def _run(script, *args, cwd=REPO, timeout=600):
    # PYTHONPATH: scripts/make_zoo_entry.py would otherwise import an installed dcgan.
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_the_default_preset_has_an_entry_inside_the_package():
    assert ENTRY.is_relative_to(REPO / "dcgan" / "assets") and ENTRY.exists()
    sidecar = zoo.read_sidecar(DEFAULT_PRESET)
    assert sidecar["preset"] == DEFAULT_PRESET
    assert sidecar["file"] == {"name": ENTRY.name, "bytes": ENTRY.stat().st_size,
                               "sha256": sha256(ENTRY)}
    assert ENTRY.stat().st_size < 20 * 2**20
    exported = keras.models.load_model(ENTRY)
    assert {layer.dtype_policy.name for layer in exported.layers} == {"float32"}
    # Scored as eval.py scores by default.
    defaults = evaluator.EvalConfig()
    assert (sidecar["metrics"]["num_samples"], sidecar["metrics"]["seed"]) == (
        defaults.num_samples, defaults.seed)


@pytest.mark.slow
def test_without_a_run_generate_and_eval_use_the_entry_and_eval_measures_its_fid(tmp_path):
    """In a directory with no runs/, as in a fresh clone: both binaries say they use the
    entry, and eval.py, at its defaults, measures the FID the sidecar records."""
    default_run = PRESETS[DEFAULT_PRESET].run_dir
    generated = _run("generate.py", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr[-3000:]
    lines = generated.stdout.splitlines()
    assert lines[0] == zoo.fallback_line(f"{default_run}/generator.keras does not exist",
                                         DEFAULT_PRESET)
    assert f"generator {ENTRY} (unconditional" in lines[1]
    assert (tmp_path / "generated" / "images.npy").exists()

    scored = _run("eval.py", f"--output_json={tmp_path / 'm.json'}", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    lines = scored.stdout.splitlines()
    assert lines[0] == zoo.fallback_line(f"{default_run} has no checkpoint", DEFAULT_PRESET)
    assert lines[1].startswith(f"eval.py: generator {ENTRY}; ")
    measured = json.loads((tmp_path / "m.json").read_text())
    recorded = zoo.read_sidecar(DEFAULT_PRESET)["metrics"]
    assert lines[-1] == (f"FID {measured['fid']:.4f} measured, {recorded['fid']:.4f} recorded "
                         f"(10,000 samples, seed 0) in {zoo.sidecar_path(DEFAULT_PRESET)}")
    # The sidecar holds the scores eval.py gave when the entry was made; columns added
    # since (e.g. "diversity") are measured too.
    assert recorded.keys() <= measured.keys()
    for name in ("fid", "fid_low", "fid_high"):
        assert measured[name] == pytest.approx(recorded[name], rel=FID_TOLERANCE), name
    assert ({name: measured[name] for name in ("classifier", "num_samples", "seed")}
            == {name: recorded[name] for name in ("classifier", "num_samples", "seed")})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["generated", "m.json"]


@pytest.mark.slow
def test_flags_that_name_the_default_run_do_not_fall_back(tmp_path):
    default_run = PRESETS[DEFAULT_PRESET].run_dir
    for binary, flag in (("generate.py", f"--generator={default_run}/generator.keras"),
                         ("eval.py", f"--run_dir={default_run}")):
        result = _run(binary, flag, cwd=tmp_path)
        assert result.returncode == 1 and "does not exist" in result.stderr, result.stderr
        assert "model zoo" not in result.stdout


@pytest.mark.slow
def test_make_zoo_entry_records_the_run_and_scores_as_eval_py(trained_run, tmp_path):
    """The tool on trained_run (training.train's, so its config.json names no preset, as
    sweep.py's runs do: --preset names it)."""
    zoo_dir = tmp_path / "zoo"
    command = "python train.py --preset=tutorial --train_examples=128 --batch_size=32"
    made = _run("scripts/make_zoo_entry.py", f"--run_dir={trained_run}", "--preset=tutorial",
                f"--zoo_dir={zoo_dir}", f"--command={command}", "--num_samples=200")
    assert made.returncode == 0, made.stderr[-3000:]

    copied = zoo_dir / "tutorial.keras"
    assert copied.read_bytes() == (trained_run / "generator.keras").read_bytes()
    sidecar = zoo.read_sidecar("tutorial", zoo_dir)
    run = json.loads((trained_run / "config.json").read_text())
    with open(trained_run / "losses.csv", newline="") as file:
        last = list(csv.DictReader(file))[-1]
    assert {name: sidecar[name] for name in (
        "preset", "seed", "step", "epochs", "train_minutes", "command", "git_commit",
        "dtype_policy", "config")} == {
        "preset": "tutorial", "seed": run["config"]["seed"], "step": 8, "epochs": 8 / 4,
        "train_minutes": float(last["train_seconds"]) / 60, "command": command,
        "git_commit": run["git_commit"], "dtype_policy": run["dtype_policy"],
        "config": run["config"]}
    assert last["step"] == "8" and run["steps_per_epoch"] == 4
    assert sidecar["file"] == {"name": copied.name, "bytes": copied.stat().st_size,
                               "sha256": sha256(copied)}
    assert sidecar["scored_on"]["cpu"] == hardware.cpu_model()
    assert made.stdout.splitlines()[-1].startswith(f"Wrote {copied} ")
    # eval.py --generator's report, from the same code on the same machine: equal to the bit.
    report = evaluator.Evaluator(evaluator.EvalConfig(num_samples=200)).report(
        checkpoints.load_generator(copied))
    assert sidecar["metrics"] == json.loads(json.dumps(report))


@pytest.mark.slow
def test_make_entry_refuses_what_it_cannot_vouch_for(trained_run, tmp_path):
    """A run whose config.json names no preset (trained_run is training.train's, as sweep.py
    runs are), and a generator.keras that is not the latest checkpoint's: refused before
    anything is scored or written."""
    run_dir, zoo_dir = tmp_path / "run", tmp_path / "zoo"
    shutil.copytree(trained_run, run_dir)
    config = evaluator.EvalConfig(num_samples=200)
    with pytest.raises(ZooError, match="records no preset"):
        zoo.make_entry(run_dir, "python train.py", config, zoo_dir=zoo_dir)
    models.build_generator(ModelConfig("tutorial")).save(run_dir / "generator.keras")
    with pytest.raises(ZooError, match="does not hold the weights of the run's latest"):
        zoo.make_entry(run_dir, "python train.py", config, preset="tutorial", zoo_dir=zoo_dir)
    assert list(zoo_dir.glob("*")) == []
