"""Time-to-quality sweeps: configurations as `preset[:flag=value...]`, the rows of
sweep.csv (one per configuration, seed and training budget), their summary over seeds,
and runs scored by eval.py brought in as references.

sweep.py trains and scores; this module holds what it reads and writes.
"""

import collections
import csv
import pathlib

import numpy as np

from dcgan import checkpoints, images, overrides
from dcgan.config import PRESETS, ConfigError
from dcgan.files import atomic_path

__all__ = [
    "SWEEP_COLUMNS",
    "SweepLog",
    "parse_config",
    "plot",
    "print_table",
    "reference_rows",
    "summarize",
    "trained_minutes",
]

SWEEP_COLUMNS = ("config", "seed", "minutes", "step", "fid", "kid_mean", "is_mean",
                 "precision", "recall")


def parse_config(spec: str):
    """`preset[:flag=value...]` -> TrainConfig (run_dir and seed not yet set); the flags
    are those of `overrides.OVERRIDES`, as train.py's."""
    preset_name, *settings = spec.split(":")
    if preset_name not in PRESETS:
        raise ConfigError(f"Unknown preset {preset_name!r} in {spec!r}; known: {sorted(PRESETS)}.")
    values = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in overrides.OVERRIDES or not value:
            raise ConfigError(f"Cannot apply {setting!r} in {spec!r}; overridable: "
                              f"{sorted(overrides.OVERRIDES)} as flag=value.")
        values[name] = overrides.parse(name, value)
    return overrides.apply(PRESETS[preset_name], values)


def trained_minutes(run_dir: pathlib.Path, step: int) -> float:
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
    at its logged training minutes or, given `images_per_second`, at that rate (counted
    as bench.py and losses.csv count it: a step reads n_critic batches)."""
    if not (run_dir / "metrics.csv").exists():
        raise ConfigError(f"Reference run {run_dir} has no metrics.csv: score it first with "
                          f"`python eval.py --run_dir={run_dir}`.")
    recorded = checkpoints.recorded_config(run_dir)
    # Runs recorded before n_critic existed took one batch a step.
    images_per_step = recorded["data"]["global_batch_size"] * recorded.get("n_critic", 1)
    with (run_dir / "metrics.csv").open(newline="") as file:
        scored = list(csv.DictReader(file))
    rows = []
    for row in scored:
        step = int(row["step"])
        minutes = (step * images_per_step / images_per_second / 60 if images_per_second
                   else trained_minutes(run_dir, step))
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
