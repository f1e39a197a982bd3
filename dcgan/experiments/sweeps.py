"""Time-to-quality sweeps: configurations as `preset[:flag=value...]`, the rows of
sweep.csv (one per configuration, seed and training budget), their summary over seeds,
and runs scored by eval.py brought in as references.

A budget is training minutes (sweep.csv's first column `budget_minutes`; --minutes and
--budgets, the latter in default-epochs) or epochs of the configuration's own batch
(`budget_epochs`; --epochs): a step count, so the same on every machine and unmoved by a
machine that slows down mid-sweep, and the only budget a learning-rate schedule can plan
for. Epochs are equal wall-clock only for configurations of equal step cost, which
bench.py measures back to back.

sweep.py trains and scores; this module holds what it reads and writes.
"""

import collections
import csv
import dataclasses
import json
import pathlib
import re
import tempfile

import numpy as np
import scipy.stats

from dcgan import training
from dcgan.core.errors import ConfigError, SweepError
from dcgan.recipes import overrides
from dcgan.recipes.presets import PRESETS
from dcgan.rundir import loss_log
from dcgan.rundir.layout import RunDirectory
from dcgan.runtime import hardware, images
from dcgan.runtime.files import atomic_path, write_json

__all__ = [
    "BUDGET_COLUMNS",
    "GRID_DIR",
    "SWEEP_COLUMNS",
    "SweepLog",
    "budget_of",
    "default_epoch",
    "differing_pairs",
    "directory_name",
    "grid_name",
    "leaderboard",
    "out_dir_leaderboard",
    "parse_config",
    "plot",
    "t_interval",
    "reference_rows",
    "run_dir",
    "summarize",
]

# sweep.csv's first column by the unit of its budgets, as tables and file names give it.
BUDGET_COLUMNS = {"min": "budget_minutes", "epochs": "budget_epochs"}
# Under a sweep's out_dir: each scored run's final sample grid, named by `grid_name`.
GRID_DIR = "grids"
SWEEP_COLUMNS = ("config", "seed", "minutes", "step", "fid", "kid_mean", "is_mean",
                 "precision", "recall", "intra_fid", "class_accuracy")
# Scored for conditional generators only; empty in the rows of others.
CONDITIONAL_COLUMNS = ("intra_fid", "class_accuracy")


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


def default_epoch(path: pathlib.Path, strategy, data_dir, warmup_steps=20,
                  timed_steps=300) -> dict:
    """The wall-clock of one epoch of preset `fast` on this machine: the unit of the
    sweep's --budgets, so that tables from a fast and a slow machine compare.

    Measured once, then read back from `path` (JSON), so a resumed sweep keeps the unit it
    started with: `fast` trains `warmup_steps` (tracing, first batches) and then
    `timed_steps` more in a temporary run directory, and the logged training seconds
    of the timed steps, per step, times `fast`'s steps per epoch give the epoch. Both step
    counts are rounded up to whole calls of `steps_per_call` steps.

    Returns:
      {"minutes", "seconds_per_step", "steps_per_epoch", "timed_steps", "cpu"}.
    """
    if path.exists():
        return json.loads(path.read_text())
    config = PRESETS["fast"]
    per_call = config.steps_per_call
    warmup = -(-warmup_steps // per_call) * per_call
    total = warmup + -(-timed_steps // per_call) * per_call
    with tempfile.TemporaryDirectory() as run_dir:
        training.train(dataclasses.replace(
            config, run_dir=run_dir, max_steps=total,
            data=dataclasses.replace(config.data, data_dir=data_dir)), strategy)
        run_dir = pathlib.Path(run_dir)
        seconds = loss_log.train_seconds(run_dir)
        steps_per_epoch = RunDirectory(run_dir).read_record()["steps_per_epoch"]
    seconds_per_step = (seconds[total] - seconds[warmup]) / (total - warmup)
    record = {"minutes": seconds_per_step * steps_per_epoch / 60,
              "seconds_per_step": seconds_per_step, "steps_per_epoch": steps_per_epoch,
              "timed_steps": total - warmup, "cpu": hardware.cpu_model()}
    write_json(path, record)
    return record


def budget_of(row) -> tuple[float, str]:
    """(budget, unit) of a sweep row: its `budget_minutes` or `budget_epochs`, and the
    unit's key in BUDGET_COLUMNS."""
    [(unit, value)] = [(unit, row[column]) for unit, column in BUDGET_COLUMNS.items()
                       if row.get(column)]
    return float(value), unit


class SweepLog:
    """sweep.csv: one row per (config, seed, budget) scored, rewritten atomically, with
    budgets in one unit throughout: `unit` (a key of BUDGET_COLUMNS), or None for the
    file's own (minutes in a new file)."""

    def __init__(self, path: pathlib.Path, unit=None):
        self.path = path
        self.rows = []
        if path.exists():
            with path.open(newline="") as file:
                self.rows = list(csv.DictReader(file))
        held = budget_of(self.rows[0])[1] if self.rows else None
        if unit and held and unit != held:
            raise SweepError(f"{path} holds budgets in {held}, not in {unit}: give this "
                             "sweep its own --out_dir.")
        self.budget_column = BUDGET_COLUMNS[unit or held or "min"]

    def has(self, spec, seed, budget):
        return any(row["config"] == spec and int(row["seed"]) == seed
                   and row.get(self.budget_column) == str(budget) for row in self.rows)

    def add(self, row):
        self.rows.append({key: str(value) for key, value in row.items()})
        with atomic_path(self.path) as partial, partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, (self.budget_column,) + SWEEP_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)


def reference_rows(run_dir: pathlib.Path, images_per_second=None) -> list[dict]:
    """Rows like sweep.csv's for the checkpoints of a run scored by eval.py (metrics.csv),
    at its logged training minutes or, given `images_per_second`, at that rate (counted
    as bench.py and losses.csv count it: a step reads n_critic batches)."""
    if not (run_dir / "metrics.csv").exists():
        raise SweepError(f"Reference run {run_dir} has no metrics.csv: score it first with "
                         f"`python eval.py --run_dir={run_dir}`.")
    recorded = RunDirectory(run_dir).read_record()["config"]
    # Runs recorded before n_critic existed took one batch a step.
    images_per_step = recorded["data"]["global_batch_size"] * recorded.get("n_critic", 1)
    with (run_dir / "metrics.csv").open(newline="") as file:
        scored = list(csv.DictReader(file))
    rows = []
    for row in scored:
        step = int(row["step"])
        minutes = (step * images_per_step / images_per_second / 60 if images_per_second
                   else loss_log.trained_minutes(run_dir, step))
        rows.append({"budget_minutes": minutes, "minutes": minutes, "seed": 0,
                     "config": f"{run_dir.name} (reference run)",
                     **{key: row[key] for key in ("step", "fid")}})
    return rows


def summarize(rows) -> dict:
    """{config: (budget, mean FID, min FID, max FID, mean trained minutes)}, over seeds,
    each as an array sorted by budget (in the rows' unit)."""
    by_point = collections.defaultdict(list)
    for row in rows:
        by_point[row["config"], budget_of(row)[0]].append(
            (float(row["fid"]), float(row["minutes"])))
    curves = collections.defaultdict(list)
    for (spec, budget), values in sorted(by_point.items()):
        fids, minutes = np.array(values).T
        curves[spec].append((budget, fids.mean(), fids.min(), fids.max(), minutes.mean()))
    return {spec: tuple(np.array(points).T) for spec, points in curves.items()}


def t_interval(values, confidence=0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t confidence interval of the mean of `values`, e.g. FIDs
    over seeds, mean -+ t_{(1+confidence)/2, n-1} s / sqrt(n) with s the sample standard
    deviation (ddof=1). With n = 3 seeds t = 4.30: the interval is wide, honestly so.
    (low, high) are NaN for a single value: one seed says nothing of the spread."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half_width = (scipy.stats.t.ppf((1 + confidence) / 2, len(values) - 1)
                  * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half_width, mean + half_width


def _fids_by_budget(rows) -> dict:
    """{budget: {config: [FID of each seed]}}."""
    fids = collections.defaultdict(lambda: collections.defaultdict(list))
    for row in rows:
        fids[budget_of(row)[0]][row["config"]].append(float(row["fid"]))
    return fids


def differing_pairs(fids: dict, alpha=0.05) -> list[tuple[str, str]]:
    """Pairs (a, b) of configurations whose mean FIDs differ by Welch's t-test (unequal
    variances) at level `alpha`, two-sided, from `fids` = {config: [FID of each seed]};
    a has the lower mean. A configuration with fewer than 2 seeds is in no pair. No
    correction for the number of pairs: with many configurations, some pairs "differ"
    by chance (1 in 20 of equal ones)."""
    pairs = []
    names = sorted(name for name, values in fids.items() if len(values) >= 2)
    for index, first in enumerate(names):
        for second in names[index + 1:]:
            test = scipy.stats.ttest_ind(fids[first], fids[second], equal_var=False)
            if test.pvalue < alpha:
                pairs.append(tuple(sorted((first, second), key=lambda n: np.mean(fids[n]))))
    return pairs


def directory_name(spec: str) -> str:
    """`spec` as a file name: what is not a letter, digit or one of `_.=-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)


def run_dir(out_dir: pathlib.Path, spec: str, seed: int, budget, unit) -> pathlib.Path:
    """Where sweep.py trains `spec` with `seed` for `budget` in `unit`: one run continued
    from budget to budget, except for a learning-rate schedule in epochs, which is planned
    over its budget and so trains each budget anew."""
    seed_dir = pathlib.Path(out_dir) / directory_name(spec) / f"seed_{seed}"
    if unit == "epochs" and parse_config(spec).schedule.kind != "constant":
        return seed_dir / f"epochs_{budget:g}"
    return seed_dir


def grid_name(spec: str, seed: int, budget: float, unit="min") -> str:
    """The file name of the sample grid of `spec`'s run with `seed` at a budget, in
    `unit` (a key of BUDGET_COLUMNS)."""
    return f"{directory_name(spec)}_seed{seed}_{budget:.4g}{unit}.png"


def _first_grid(grid_dir: pathlib.Path, spec, seeds, budget, unit) -> str:
    """Markdown for the grid of the first of `seeds` that has one in `grid_dir`, or "-"."""
    for seed in seeds:
        name = grid_name(spec, seed, budget, unit)
        if (grid_dir / name).exists():
            return f"![{spec}, seed {seed}]({grid_dir.name}/{name})"
    return "-"


def leaderboard(rows, epoch=None, grid_dir=None) -> str:
    """A markdown table of sweep rows (sweep.csv's, read as strings): per budget and
    configuration, best mean first, the mean FID over seeds with its 95% t-interval
    (`t_interval`), the seeds, the mean trained minutes, and the configurations whose
    FID it beats by Welch's t-test at 5% (`differing_pairs`).

    Args:
      rows: sweep.csv's rows, their budgets all in one unit.
      epoch: the sweep's default-epoch (`default_epoch`'s record), or None: with it, a
        first line names it and its CPU, and budgets in minutes are given in
        default-epochs.
      grid_dir: a directory of sample grids named by `grid_name`, or None: with it, a
        last column shows the grid of each row's lowest seed that has one, linked
        relative to the directory that holds `grid_dir`.

    Where rows of conditional generators are among them, two columns give their mean
    intra-FID and class accuracy over seeds ("-" in the rows of unconditional ones).
    """
    minutes = collections.defaultdict(list)
    seeds = collections.defaultdict(list)
    conditional_scores = collections.defaultdict(list)
    for row in rows:
        point = budget_of(row)[0], row["config"]
        minutes[point].append(float(row["minutes"]))
        seeds[point].append(int(row["seed"]))
        if row.get("class_accuracy"):
            conditional_scores[point].append([float(row[key]) for key in CONDITIONAL_COLUMNS])
    unit = budget_of(rows[0])[1] if rows else "min"
    in_default_epochs = epoch is not None and unit == "min"
    shown_unit = "default-epochs" if in_default_epochs else unit
    header = (f"| budget ({shown_unit}) | configuration | FID mean | FID 95% t-interval | "
              "seeds | trained (min) | better than (Welch, 5%) |")
    if conditional_scores:
        header += " intra-FID mean | class accuracy mean |"
    lines = [] if not in_default_epochs else [
        f"One default-epoch (an epoch of preset fast): {epoch['minutes']:.2f} min on "
        f"{epoch['cpu']}.", ""]
    lines += [header + (" samples |" if grid_dir else ""),
              "|---" * (header.count("|") - 1 + bool(grid_dir)) + "|"]
    for budget, fids in sorted(_fids_by_budget(rows).items()):
        beaten = collections.defaultdict(list)
        for better, worse in differing_pairs(fids):
            beaten[better].append(worse)
        for spec in sorted(fids, key=lambda name: np.mean(fids[name])):
            mean, low, high = t_interval(fids[spec])
            # Brackets: with few seeds the low end can be negative (FID itself cannot).
            interval = "-" if np.isnan(low) else f"[{low:.1f}, {high:.1f}]"
            shown_budget = budget / epoch["minutes"] if in_default_epochs else budget
            line = (f"| {shown_budget:.3g} | {spec} | {mean:.1f} | {interval} | "
                    f"{len(fids[spec])} | {np.mean(minutes[budget, spec]):.1f} | "
                    f"{', '.join(beaten[spec]) or '-'} |")
            if conditional_scores:
                scores = conditional_scores[budget, spec]
                line += (" {:.1f} | {:.3f} |".format(*np.mean(scores, axis=0)) if scores
                         else " - | - |")
            if grid_dir:
                grid = _first_grid(grid_dir, spec, sorted(seeds[budget, spec]), budget, unit)
                line += f" {grid} |"
            lines.append(line)
    return "\n".join(lines)


def out_dir_leaderboard(out_dir, rows) -> str:
    """`leaderboard` of `rows` as sweep.py writes it to <out_dir>/leaderboard.md: in
    default-epochs if <out_dir>/default_epoch.json holds the sweep's, with the grids of
    <out_dir>/GRID_DIR if there are any."""
    out_dir = pathlib.Path(out_dir)
    epoch_path = out_dir / "default_epoch.json"
    epoch = json.loads(epoch_path.read_text()) if epoch_path.exists() else None
    grid_dir = out_dir / GRID_DIR
    return leaderboard(rows, epoch, grid_dir if grid_dir.is_dir() else None)


def plot(path, rows):
    curves = {f"{spec} ({len({r['seed'] for r in rows if r['config'] == spec})} seeds)":
              (minutes, mean, low, high)
              for spec, (_, mean, low, high, minutes) in summarize(rows).items()}
    images.plot_bands(path, curves, xlabel="training minutes on this machine",
                      ylabel="FID (10k samples, shipped classifier)",
                      title="FID against training time: mean and range over seeds")
