"""Time-to-quality sweeps: configurations as `preset[:flag=value...]`, the rows of
sweep.csv (one per configuration, seed and training budget), and runs scored by eval.py
brought in as references; `dcgan.experiments.leaderboard` summarises the rows.

A budget is training minutes (sweep.csv's first column `budget_minutes`; --minutes),
default-epochs (`budget_default_epochs`; --budgets): minutes in units of one epoch of
preset `fast` on the machine that trained the row, so that rows from a fast and a slow
machine compare and one table can be filled over several sessions and machines, or
epochs of the configuration's own batch (`budget_epochs`; --epochs) or its steps, G updates
(`budget_steps`; --steps): step counts, so the same on every machine and unmoved by a
machine that slows down mid-sweep, and the only budgets a learning-rate schedule can plan
for. Epochs are equal wall-clock only for configurations of equal step cost, which
bench.py measures back to back; steps compare batch sizes per update.

A configuration may also say `cpu_devices=N`: it trains on N logical CPU devices, one
replica each, as train.py's --cpu_devices, e.g. to measure a multi-GPU recipe's quality per
step on a CPU.

Each row also records where it was trained: the default-epoch's minutes there (with
--budgets), the CPU model and the git commit of the code.

sweep.py trains and scores; this module holds what it reads and writes.
"""

import csv
import dataclasses
import json
import pathlib
import re
import tempfile

from dcgan import training
from dcgan.core.errors import ConfigError, SweepError
from dcgan.recipes import overrides, plan, scaling
from dcgan.recipes.presets import PRESETS
from dcgan.rundir import checkpoints, loss_log
from dcgan.rundir.layout import RunDirectory
from dcgan.runtime import hardware
from dcgan.runtime.files import atomic_path, write_json

__all__ = [
    "BUDGET_COLUMNS",
    "CPU_DEVICES",
    "GRID_DIR",
    "STEP_COUNT_UNITS",
    "SWEEP_COLUMNS",
    "SweepLog",
    "budget_of",
    "cpu_devices",
    "default_epoch",
    "epoch_cost",
    "directory_name",
    "grid_name",
    "parse_config",
    "past_budget",
    "placement",
    "reference_rows",
    "run_dir",
]

# sweep.csv's first column by the unit of its budgets, as tables and file names give it.
BUDGET_COLUMNS = {"min": "budget_minutes", "default_epochs": "budget_default_epochs",
                  "epochs": "budget_epochs", "steps": "budget_steps"}
# The units that count steps, not a clock: what a learning-rate schedule can plan for.
STEP_COUNT_UNITS = ("epochs", "steps")
# A configuration's setting read by sweep.py, not an override of the config: train on
# this many logical CPU devices, one replica each (train.py's --cpu_devices).
CPU_DEVICES = "cpu_devices"
# Under a sweep's out_dir: each scored run's final sample grid, named by `grid_name`.
GRID_DIR = "grids"
SWEEP_COLUMNS = ("config", "seed", "minutes", "step", "fid", "kid_mean", "is_mean",
                 "fid_pair_low", "fid_pair_high",
                 "precision", "recall", "intra_fid", "class_accuracy",
                 "default_epoch_minutes", "cpu", "commit")
# Scored for conditional generators only; empty in the rows of others.
CONDITIONAL_COLUMNS = ("intra_fid", "class_accuracy")


def _settings(spec: str) -> tuple[str, dict]:
    """`preset[:flag=value...]` -> (preset name, {flag: value as written})."""
    preset_name, *settings = spec.split(":")
    if preset_name not in PRESETS:
        raise ConfigError(f"Unknown preset {preset_name!r} in {spec!r}; known: {sorted(PRESETS)}.")
    values = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in (*overrides.OVERRIDES, CPU_DEVICES) or not value:
            raise ConfigError(f"Cannot apply {setting!r} in {spec!r}; overridable: "
                              f"{sorted(overrides.OVERRIDES)} and {CPU_DEVICES}, as flag=value.")
        values[name] = value
    return preset_name, values


def parse_config(spec: str):
    """`preset[:flag=value...]` -> TrainConfig (run_dir and seed not yet set); the flags
    are those of `overrides.OVERRIDES`, as train.py's, and `CPU_DEVICES` (`cpu_devices`)."""
    preset_name, values = _settings(spec)
    values.pop(CPU_DEVICES, None)
    return overrides.apply(PRESETS[preset_name], {
        name: overrides.parse(name, value) for name, value in values.items()})


def cpu_devices(spec: str) -> int:
    """The logical CPU devices, one replica each, that `spec` trains on: its
    `cpu_devices=N` setting, else 1."""
    value = _settings(spec)[1].get(CPU_DEVICES, "1")
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{CPU_DEVICES} must be a positive integer, got {value!r} in {spec!r}.")
    return int(value)


def placement(devices_by_spec: dict[str, int], num_gpus: int) -> dict[str, tuple[int, bool]]:
    """{spec: (replicas, on GPUs)}: where sweep.py trains each spec, from its `cpu_devices`
    (`devices_by_spec`) and the machine's GPUs. With no spec above one device, all train on
    every GPU (on the CPU whole without one); otherwise each on its own logical CPUs."""
    if num_gpus and max(devices_by_spec.values(), default=1) == 1:
        return dict.fromkeys(devices_by_spec, (num_gpus, True))
    return {spec: (count, False) for spec, count in devices_by_spec.items()}


def epoch_cost(config, strategy, warmup_steps=20, timed_steps=300) -> dict:
    """The wall-clock of one epoch of `config` (a TrainConfig with its data_dir) on this
    machine, from a short run in a temporary run directory: `warmup_steps` (tracing,
    first batches) and then `timed_steps` more, each rounded up to whole calls of
    `steps_per_call` steps; the logged training seconds of the timed steps, per step,
    times the configuration's steps per epoch give the epoch.

    Returns:
      {"minutes", "seconds_per_step", "steps_per_epoch", "timed_steps", "cpu"}.
    """
    per_call = config.steps_per_call
    warmup = -(-warmup_steps // per_call) * per_call
    total = warmup + -(-timed_steps // per_call) * per_call
    with tempfile.TemporaryDirectory() as run_dir:
        training.train(dataclasses.replace(config, run_dir=run_dir, max_steps=total), strategy)
        run_dir = pathlib.Path(run_dir)
        seconds = loss_log.train_seconds(run_dir)
        steps_per_epoch = RunDirectory(run_dir).read_record()["steps_per_epoch"]
    seconds_per_step = (seconds[total] - seconds[warmup]) / (total - warmup)
    return {"minutes": seconds_per_step * steps_per_epoch / 60,
            "seconds_per_step": seconds_per_step, "steps_per_epoch": steps_per_epoch,
            "timed_steps": total - warmup, "cpu": hardware.cpu_label()}


def past_budget(config, run_dir: pathlib.Path, replicas: int) -> str | None:
    """Why `config`'s budget cannot be scored from the run in `run_dir` (one run continues
    from budget to budget): the run already trained past it, e.g. a shorter budget asked
    for after a longer one. None when it can.

    A budget in steps or epochs is past once the latest checkpoint is beyond its steps. A
    budget in minutes (`max_train_minutes`) stops a run at the end of the call in which its
    clock passes the budget, so that call's overshoot is the budget's own: the run is past
    it only when a whole call of steps (`steps_per_call`) or more followed the step whose
    losses.csv clock first reached the budget."""
    saved = checkpoints.list_checkpoints(run_dir)
    if not saved:
        return None
    trained = checkpoints.checkpoint_step(saved[-1])
    config = scaling.scale_for_replicas(config, replicas)[0]
    if config.max_train_minutes is not None:
        budget_seconds = 60 * config.max_train_minutes
        reached = min((step for step, seconds in loss_log.train_seconds(run_dir).items()
                       if seconds >= budget_seconds), default=None)
        if reached is None or trained - reached < config.steps_per_call:
            return None
        return (f"its run in {run_dir} reached {config.max_train_minutes:.4g} min of "
                f"training at step {reached:,} and is at step {trained:,}, a call "
                f"({config.steps_per_call} steps) or more past it; score it from another "
                "--out_dir.")
    _, steps = plan.planned_steps(config)
    if steps is None or trained <= steps:
        return None
    return (f"its run in {run_dir} is at step {trained:,}, past this budget's {steps:,}; "
            "score it from another --out_dir.")


def default_epoch(path: pathlib.Path, strategy, data_dir, warmup_steps=20,
                  timed_steps=300) -> dict:
    """The wall-clock of one epoch of preset `fast` on this machine (`epoch_cost`): the
    unit of the sweep's --budgets, so that tables from a fast and a slow machine compare.

    Measured once, then read back from `path` (JSON), so a resumed sweep keeps the unit it
    started with.
    """
    if path.exists():
        return json.loads(path.read_text())
    config = PRESETS["fast"]
    record = epoch_cost(dataclasses.replace(
        config, data=dataclasses.replace(config.data, data_dir=data_dir)), strategy,
        warmup_steps, timed_steps)
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
                   and float(row[self.budget_column]) == budget for row in self.rows)

    def missing(self, specs, seeds, budgets) -> list[tuple[str, int, float]]:
        """The (config, seed, budget) of `specs` x `seeds` x `budgets` without a row."""
        return [(spec, seed, budget) for budget in budgets for spec in specs
                for seed in seeds if not self.has(spec, seed, budget)]

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


def directory_name(spec: str) -> str:
    """`spec` as a file name: what is not a letter, digit or one of `_.=-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)


def run_dir(out_dir: pathlib.Path, spec: str, seed: int, budget, unit) -> pathlib.Path:
    """Where sweep.py trains `spec` with `seed` for `budget` in `unit`: one run continued
    from budget to budget, except for a learning-rate schedule in epochs or steps, planned
    over its budget and so trains each budget anew."""
    seed_dir = pathlib.Path(out_dir) / directory_name(spec) / f"seed_{seed}"
    if unit in STEP_COUNT_UNITS and parse_config(spec).schedule.kind != "constant":
        return seed_dir / f"{unit}_{budget:g}"
    return seed_dir


def grid_name(spec: str, seed: int, budget: float, unit="min") -> str:
    """The file name of the sample grid of `spec`'s run with `seed` at a budget, in
    `unit` (a key of BUDGET_COLUMNS): a whole budget in full (16875 steps, not
    1.688e+04), any other to four significant digits."""
    budget_text = f"{budget:.0f}" if float(budget).is_integer() else f"{budget:.4g}"
    return f"{directory_name(spec)}_seed{seed}_{budget_text}{unit}.png"
