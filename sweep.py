r"""Trains configurations for the same training time each and scores FID against minutes.

  python sweep.py --configs=tutorial,fast --seeds=0,1,2 --minutes=5,10,20
  python sweep.py --configs=fast,fast:d_learning_rate=4e-4,fast:batch_size=256 --minutes=5

A configuration is a preset, optionally with overrides `preset:flag=value:flag=value` of
the flags listed in OVERRIDES. Each (configuration, seed) trains in
<out_dir>/<configuration>/seed_<seed>, one segment per entry of --minutes (training time,
start-up and pictures excluded), and its latest checkpoint is scored after each segment.
Rows go to <out_dir>/sweep.csv and the curves to <out_dir>/fid_vs_minutes.png.

Stopped and re-run with the same flags, a sweep continues where it was: scored rows are
kept and every run resumes from its latest checkpoint.

--reference_run adds a run trained and scored before (train.py, then eval.py) to the plot
and the table, e.g. the tutorial's 50 epochs; --reference_images_per_second places its
checkpoints at the minutes they take at that rate (bench.py's), for a run whose logged
time was on a shared machine.
"""

import collections
import csv
import dataclasses
import os
import pathlib
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from dcgan import checkpoints, data, distribute, evaluator, images, trainer  # noqa: E402
from dcgan.config import DEFAULT_DATA_DIR, PRESETS, ConfigError  # noqa: E402
from dcgan.files import atomic_path  # noqa: E402

flags.DEFINE_list("configs", ["tutorial", "fast"], "Configurations: preset[:flag=value...].")
flags.DEFINE_list("seeds", ["0"], "Seeds; each configuration runs once per seed.")
flags.DEFINE_list("minutes", ["5", "10", "20"], "Training minutes at which FID is scored.")
flags.DEFINE_string("out_dir", "runs/sweep", "Where the runs, sweep.csv and the plot go.")
flags.DEFINE_integer("num_samples", 10_000, "Generated images per FID.", lower_bound=129)
flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "TFDS data directory.")
flags.DEFINE_string("reference_run", None, "A run directory scored by eval.py to draw too.")
flags.DEFINE_float("reference_images_per_second", None, "Place the reference run's "
                   "checkpoints at this training rate instead of its logged minutes.")

FLAGS = flags.FLAGS

SWEEP_COLUMNS = ("config", "seed", "minutes", "step", "fid", "kid_mean", "is_mean",
                 "precision", "recall")


def _set_learning_rate(network):
    def override(config, value):
        name = f"{network}_optimizer"
        optimizer = dataclasses.replace(getattr(config, name), learning_rate=float(value))
        return dataclasses.replace(config, **{name: optimizer})
    return override


OVERRIDES = {
    "g_learning_rate": _set_learning_rate("generator"),
    "d_learning_rate": _set_learning_rate("discriminator"),
    "batch_size": lambda config, value: dataclasses.replace(
        config, data=dataclasses.replace(config.data, global_batch_size=int(value))),
    "update": lambda config, value: dataclasses.replace(config, update=value),
    "precision": lambda config, value: dataclasses.replace(config, precision=value),
    "loss": lambda config, value: dataclasses.replace(config, loss=value),
}


def parse_config(spec: str):
    """`preset[:flag=value...]` -> TrainConfig (run_dir and seed not yet set)."""
    preset_name, *overrides = spec.split(":")
    if preset_name not in PRESETS:
        raise ConfigError(f"Unknown preset {preset_name!r} in {spec!r}; known: {sorted(PRESETS)}.")
    config = PRESETS[preset_name]
    for override in overrides:
        name, _, value = override.partition("=")
        if name not in OVERRIDES or not value:
            raise ConfigError(f"Cannot apply {override!r} in {spec!r}; overridable: "
                              f"{sorted(OVERRIDES)} as flag=value.")
        config = OVERRIDES[name](config, value)
    return config


def run_config(spec: str, seed: int, run_dir: pathlib.Path, minutes: float):
    """The configuration `spec` trained with `seed` in `run_dir` for `minutes` in all."""
    config = parse_config(spec)
    return dataclasses.replace(
        config, run_dir=str(run_dir), seed=seed, max_train_minutes=minutes,
        epochs=10_000,  # The clock stops it.
        data=dataclasses.replace(config.data, data_dir=FLAGS.data_dir, shuffle_seed=seed))


def _directory_name(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)


def _trained_minutes(run_dir: pathlib.Path, step: int) -> float:
    with (run_dir / "losses.csv").open(newline="") as file:
        seconds = {int(row["step"]): float(row["train_seconds"]) for row in csv.DictReader(file)}
    return seconds[step] / 60


class SweepLog:
    """sweep.csv: one row per (config, seed, minutes) scored, rewritten atomically."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.rows = []
        if path.exists():
            with path.open(newline="") as file:
                self.rows = list(csv.DictReader(file))

    def has(self, spec, seed, budget):
        return any(row["config"] == spec and int(row["seed"]) == seed
                   and row.get("budget_minutes") == str(budget) for row in self.rows)

    def add(self, row):
        self.rows.append({key: str(value) for key, value in row.items()})
        with atomic_path(self.path) as partial, partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, ("budget_minutes",) + SWEEP_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)


def reference_rows(run_dir: pathlib.Path, images_per_second=None) -> list[dict]:
    """Rows like sweep.csv's for the checkpoints of a run scored by eval.py (metrics.csv),
    at its logged training minutes or, given `images_per_second`, at that rate."""
    if not (run_dir / "metrics.csv").exists():
        raise ConfigError(f"Reference run {run_dir} has no metrics.csv: score it first with "
                          f"`python eval.py --run_dir={run_dir}`.")
    batch_size = checkpoints.recorded_config(run_dir)["data"]["global_batch_size"]
    with (run_dir / "metrics.csv").open(newline="") as file:
        scored = list(csv.DictReader(file))
    rows = []
    for row in scored:
        step = int(row["step"])
        minutes = (step * batch_size / images_per_second / 60 if images_per_second
                   else _trained_minutes(run_dir, step))
        rows.append({"budget_minutes": minutes, "minutes": minutes, "seed": 0,
                     "config": f"{run_dir.name} (reference run)",
                     **{key: row[key] for key in ("step", "fid")}})
    return rows


def summarize(rows) -> dict:
    """{config: (budget minutes, mean FID, min FID, max FID, mean trained minutes)}, over
    seeds, each as an array sorted by budget."""
    by_point = collections.defaultdict(list)
    for row in rows:
        by_point[row["config"], float(row["budget_minutes"])].append(
            (float(row["fid"]), float(row["minutes"])))
    curves = collections.defaultdict(list)
    for (spec, budget), values in sorted(by_point.items()):
        fids, minutes = np.array(values).T
        curves[spec].append((budget, fids.mean(), fids.min(), fids.max(), minutes.mean()))
    return {spec: tuple(np.array(points).T) for spec, points in curves.items()}


def print_table(rows):
    print("| configuration | budget (min) | trained (min) | FID mean | FID min-max | seeds |")
    print("|---|---|---|---|---|---|")
    for spec, (budgets, mean, low, high, minutes) in summarize(rows).items():
        seeds = len({row["seed"] for row in rows if row["config"] == spec})
        for point in zip(budgets, minutes, mean, low, high):
            print("| {} | {:g} | {:.1f} | {:.1f} | {:.1f}-{:.1f} | {} |".format(
                spec, *point, seeds))


def plot(path, rows):
    curves = {f"{spec} ({len({r['seed'] for r in rows if r['config'] == spec})} seeds)":
              (minutes, mean, low, high)
              for spec, (_, mean, low, high, minutes) in summarize(rows).items()}
    images.plot_bands(path, curves, xlabel="training minutes on this machine",
                      ylabel="FID (10k samples, shipped classifier)",
                      title="FID against training time: mean and range over seeds")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        budgets = sorted(float(minutes) for minutes in FLAGS.minutes)
        for spec in FLAGS.configs:
            parse_config(spec)  # Refuse a bad configuration before hours of training.
        out_dir = pathlib.Path(FLAGS.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        log = SweepLog(out_dir / "sweep.csv")
        scorer = evaluator.Evaluator(evaluator.EvalConfig(num_samples=FLAGS.num_samples,
                                                          data_dir=FLAGS.data_dir))
        strategy = distribute.make_strategy()
        reference = []
        if FLAGS.reference_run:
            reference = reference_rows(pathlib.Path(FLAGS.reference_run),
                                       FLAGS.reference_images_per_second)
        for seed in map(int, FLAGS.seeds):
            for spec in FLAGS.configs:
                run_dir = out_dir / _directory_name(spec) / f"seed_{seed}"
                for budget in budgets:
                    if log.has(spec, seed, budget):
                        continue
                    print(f"== {spec}, seed {seed}: training to {budget:g} minutes")
                    result = trainer.train(run_config(spec, seed, run_dir, budget), strategy)
                    generator = checkpoints.restore_generator(run_dir)
                    row = {"budget_minutes": budget, "config": spec, "seed": seed,
                           "minutes": _trained_minutes(run_dir, result["step"]),
                           "step": result["step"], **scorer.evaluate(generator)}
                    log.add({key: row[key] for key in ("budget_minutes",) + SWEEP_COLUMNS})
                    print(f"   step {row['step']}, {row['minutes']:.2f} min: "
                          f"FID {row['fid']:.2f}")
                    plot(out_dir / "fid_vs_minutes.png", log.rows + reference)
        plot(out_dir / "fid_vs_minutes.png", log.rows + reference)
        print_table(log.rows + reference)
    except (ConfigError, data.DatasetUnavailableError) as error:
        sys.exit(f"sweep.py: error: {error}")


if __name__ == "__main__":
    app.run(main)
