"""The model zoo: trained generators that ship in the package, so that `python
generate.py` and `python eval.py` work before any training.

An entry is named after the preset that trained it and is two files in ZOO_DIR
(dcgan/assets/zoo/):
  <preset>.keras  the run's exported generator.keras, copied byte for byte (float32
                  whatever precision trained it; loads with `keras.models.load_model`)
  <preset>.json   its sidecar, `entry_record`: the run it comes from and the metrics
                  `eval.py --generator=<preset>.keras --output_json` writes for it

`make_entry` makes or replaces one (scripts/make_zoo_entry.py); the binaries fall back on
the entry of `presets.DEFAULT_PRESET` when the default run directory has nothing to score
or sample yet.
"""

import json
import pathlib
import shutil

import keras
import numpy as np
import tensorflow as tf

from dcgan.core.errors import ZooError
from dcgan.evaluation import evaluator
from dcgan.rundir import checkpoints, loss_log
from dcgan.rundir.layout import RunDirectory
from dcgan.runtime import hardware
from dcgan.runtime.files import atomic_path, sha256, write_json

__all__ = ["ZOO_DIR", "entry_record", "fallback_line", "generator_path", "make_entry",
           "read_sidecar", "recorded_fid_line", "sidecar_path"]

ZOO_DIR = pathlib.Path(__file__).parents[1] / "assets" / "zoo"


def generator_path(preset: str, zoo_dir=ZOO_DIR) -> pathlib.Path:
    """The entry's generator, `<zoo_dir>/<preset>.keras`."""
    return pathlib.Path(zoo_dir) / f"{preset}.keras"


def sidecar_path(preset: str, zoo_dir=ZOO_DIR) -> pathlib.Path:
    """The entry's sidecar, `<zoo_dir>/<preset>.json`."""
    return pathlib.Path(zoo_dir) / f"{preset}.json"


def read_sidecar(preset: str, zoo_dir=ZOO_DIR) -> dict:
    """The entry's sidecar (see `entry_record`).

    Raises:
      ZooError: the zoo has no entry for `preset`.
    """
    path = sidecar_path(preset, zoo_dir)
    if not path.exists():
        raise ZooError(f"The model zoo has no entry for preset {preset}: {path} is missing.")
    return json.loads(path.read_text())


def fallback_line(reason: str, preset: str) -> str:
    """What a binary prints when it uses the zoo's entry for `preset` instead of a run:
    "<reason>: using the model zoo's generator of preset fast instead, <path> (seed 1,
    2,360 steps = 5.0 epochs; recorded FID 213.68)"."""
    entry = read_sidecar(preset)
    return (f"{reason}: using the model zoo's generator of preset {preset} instead, "
            f"{generator_path(preset)} (seed {entry['seed']}, {entry['step']:,} steps = "
            f"{entry['epochs']:.1f} epochs; recorded FID {entry['metrics']['fid']:.2f})")


def recorded_fid_line(report: dict, preset: str) -> str:
    """The FID of `report` (an `Evaluator.report` of the zoo's entry for `preset`) beside
    the FID its sidecar records, with the sample count and seed behind that one."""
    recorded = read_sidecar(preset)["metrics"]
    return (f"FID {report['fid']:.4f} measured, {recorded['fid']:.4f} recorded "
            f"({recorded['num_samples']:,} samples, seed {recorded['seed']}) in "
            f"{sidecar_path(preset)}")


def _preset(run: dict, preset: str | None) -> str:
    """The preset of a run: the one its config.json records (train.py records it,
    sweep.py does not), else `preset`; both given must agree."""
    recorded = run.get("preset")
    if recorded and preset and recorded != preset:
        raise ZooError(f"The run's config.json records preset {recorded}, not {preset}.")
    if not (recorded or preset):
        raise ZooError("The run's config.json records no preset (sweep.py's runs do "
                       "not): name the preset that trained it.")
    return recorded or preset


def entry_record(run_dir, preset: str, generator_file, report: dict, command: str) -> dict:
    """The sidecar of the zoo's entry for `preset`, made from the finished run in
    `run_dir` (its config.json, losses.csv and latest checkpoint are read).

    Args:
      generator_file: the entry's .keras file, whose size and sha256 are recorded.
      report: `Evaluator.report` of that file, recorded as "metrics".
      command: the command that trained the run (config.json does not record it).

    Returns:
      {"preset", "seed", "step", "epochs" (step / steps per epoch), "train_minutes",
      "command", "git_commit" (the code of the trainer's last start, "-dirty" if it had
      uncommitted changes), "dtype_policy" (the training's; the file computes in
      float32), "file": {"name", "bytes", "sha256"}, "trained_with" and "scored_on"
      (versions, and the CPU that computed the metrics, whose kernels their last digits
      depend on), "metrics", "config" (the run's TrainConfig)}.
    """
    run_dir = pathlib.Path(run_dir)
    run = RunDirectory(run_dir).read_record()
    step = checkpoints.checkpoint_step(checkpoints.list_checkpoints(run_dir)[-1])
    return {
        "preset": preset,
        "seed": run["config"]["seed"],
        "step": step,
        "epochs": step / run["steps_per_epoch"],
        "train_minutes": loss_log.trained_minutes(run_dir, step),
        "command": command,
        "git_commit": run["git_commit"],
        "dtype_policy": run["dtype_policy"],
        "file": {"name": generator_path(preset).name,
                 "bytes": pathlib.Path(generator_file).stat().st_size,
                 "sha256": sha256(generator_file)},
        "trained_with": {"tensorflow": run["tensorflow"], "keras": run["keras"]},
        "scored_on": {"cpu": hardware.cpu_model(), "tensorflow": tf.__version__,
                      "keras": keras.__version__, "numpy": np.__version__},
        "metrics": report,
        "config": run["config"],
    }


def _check_finished(run_dir: pathlib.Path, generator: keras.Model):
    """Raises ZooError unless `generator` holds the weights of the run's latest
    checkpoint, as the run's export does once it has finished."""
    restored = checkpoints.restore_generator(run_dir)
    if not all(np.array_equal(exported, saved) for exported, saved in
               zip(generator.get_weights(), restored.get_weights(), strict=True)):
        raise ZooError(f"{run_dir / 'generator.keras'} does not hold the weights of the "
                       "run's latest checkpoint: the run has not finished since it was "
                       "last started. Finish it (run its command again) first.")


def make_entry(run_dir, command: str, config: evaluator.EvalConfig,
               preset: str | None = None, zoo_dir=ZOO_DIR) -> dict:
    """Makes (or replaces) the zoo's entry of the finished run in `run_dir`: copies its
    generator.keras to `<zoo_dir>/<preset>.keras`, scores the copy as `eval.py
    --generator` does with `config`, and writes the sidecar beside it. Nothing is
    replaced when the copy, the check that the run has finished or the scoring fails.

    Args:
      preset: the run's preset, needed where its config.json records none (`_preset`).

    Returns:
      The sidecar (see `entry_record`).

    Raises:
      ZooError: no config.json or generator.keras, a run that has not finished, no
        preset known.
    """
    run_dir = pathlib.Path(run_dir)
    preset = _preset(RunDirectory(run_dir).read_record(), preset)
    source = run_dir / "generator.keras"
    if not source.exists():
        raise ZooError(f"{source} does not exist: the run has not finished.")
    target = generator_path(preset, zoo_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as copy:
        shutil.copyfile(source, copy)
        generator = checkpoints.load_generator(copy)
        _check_finished(run_dir, generator)
        report = evaluator.Evaluator(config).report(generator)
        record = entry_record(run_dir, preset, copy, report, command)
        write_json(sidecar_path(preset, zoo_dir), record)
    return record
