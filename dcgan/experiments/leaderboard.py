"""The leaderboard of a sweep: sweep.csv's rows summarised over seeds, as a markdown
table with t-intervals and Welch's tests between configurations, and as a plot of FID
against training minutes.
"""

import collections
import json
import pathlib

import numpy as np
import scipy.stats

from dcgan.experiments.sweeps import (
    CONDITIONAL_COLUMNS,
    GRID_DIR,
    budget_of,
    grid_name,
)
from dcgan.recipes.presets import DEFAULT_PRESET
from dcgan.runtime import images

__all__ = ["differing_pairs", "fids_by_budget", "leaderboard", "out_dir_leaderboard", "plot",
           "summarize", "t_interval"]


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


def fids_by_budget(rows) -> dict:
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


def _machines(rows) -> str:
    """Each CPU of `rows` (rows in default-epochs) with its rows' count and default-epoch."""
    by_cpu = collections.defaultdict(list)
    for row in rows:
        by_cpu[row.get("cpu") or "unknown CPU"].append(float(row["default_epoch_minutes"]))
    return "; ".join(f"{cpu} ({len(epochs)} row{'s' * (len(epochs) != 1)}, a default-epoch "
                     f"{np.mean(epochs):.2f} min)"
                     for cpu, epochs in sorted(by_cpu.items()))


def _against_default(fids: dict, spec) -> str:
    """`spec`'s mean FID over the default preset's, and Welch's two-sided p between their
    seeds, from `fids` = {config: [FID of each seed]}; "-" without the default's rows."""
    if spec == DEFAULT_PRESET or DEFAULT_PRESET not in fids:  # Not at this budget.
        return "-"
    ratio = np.mean(fids[spec]) / np.mean(fids[DEFAULT_PRESET])
    if min(len(fids[spec]), len(fids[DEFAULT_PRESET])) < 2:
        return f"{ratio:.2f}"
    test = scipy.stats.ttest_ind(fids[spec], fids[DEFAULT_PRESET], equal_var=False)
    return f"{ratio:.2f}, p {test.pvalue:.2g}"


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
    (`t_interval`), the seeds, the mean trained minutes, its mean FID over the default
    preset's with Welch's p between their seeds (where the default has rows), and the
    configurations whose FID it beats by Welch's t-test at 5% (`differing_pairs`).

    Args:
      rows: sweep.csv's rows, their budgets all in one unit; rows in default-epochs get a
        first line naming the CPUs that trained them, with their default-epochs.
      epoch: for rows in minutes, the sweep's default-epoch (`default_epoch`'s record),
        or None: with it, a first line names it and its CPU, and the budgets are given in
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
    shown_unit = "default-epochs" if in_default_epochs or unit == "default_epochs" else unit
    with_default = any(row["config"] == DEFAULT_PRESET for row in rows)
    header = (f"| budget ({shown_unit}) | configuration | FID mean | FID 95% t-interval | "
              "seeds | trained (min) | "
              + (f"vs {DEFAULT_PRESET} (ratio, Welch p) | " if with_default else "")
              + "better than (Welch, 5%) |")
    if conditional_scores:
        header += " intra-FID mean | class accuracy mean |"
    lines = [] if not in_default_epochs else [
        f"One default-epoch (an epoch of preset fast): {epoch['minutes']:.2f} min on "
        f"{epoch['cpu']}.", ""]
    if unit == "default_epochs":
        lines = [f"Rows trained on: {_machines(rows)}.", ""]
    lines += [header + (" samples |" if grid_dir else ""),
              "|---" * (header.count("|") - 1 + bool(grid_dir)) + "|"]
    for budget, fids in sorted(fids_by_budget(rows).items()):
        beaten = collections.defaultdict(list)
        for better, worse in differing_pairs(fids):
            beaten[better].append(worse)
        for spec in sorted(fids, key=lambda name: np.mean(fids[name])):
            mean, low, high = t_interval(fids[spec])
            # Brackets: with few seeds the low end can be negative (FID itself cannot).
            interval = "-" if np.isnan(low) else f"[{low:.1f}, {high:.1f}]"
            # Budgets given in minutes are shown converted (3 figures); others as given.
            shown_budget = (f"{budget / epoch['minutes']:.3g}" if in_default_epochs
                            else f"{budget:g}")
            line = (f"| {shown_budget} | {spec} | {mean:.1f} | {interval} | "
                    f"{len(fids[spec])} | {np.mean(minutes[budget, spec]):.1f} | "
                    + (f"{_against_default(fids, spec)} | " if with_default else "")
                    + f"{', '.join(beaten[spec]) or '-'} |")
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
