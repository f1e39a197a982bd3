"""losses.csv: one row per training step, and its repair when a run resumes."""

import csv
import pathlib

import numpy as np

from dcgan.core.errors import LossLogError
from dcgan.gan.step import METRIC_NAMES
from dcgan.runtime.files import atomic_path

__all__ = ["CSV_COLUMNS", "LossLog", "train_seconds", "trained_minutes"]

# train_seconds: time spent in training steps since the run began, over all resumes
# (checkpoints, pictures and start-up excluded, but the first call after each start
# includes its tf.function tracing): the clock that time-to-quality uses.
CSV_COLUMNS = ("step", "epoch") + METRIC_NAMES + ("images_per_sec", "train_seconds")


def train_seconds(run_dir) -> dict[int, float]:
    """{step: train_seconds} of the run directory's losses.csv."""
    with (pathlib.Path(run_dir) / "losses.csv").open(newline="") as file:
        return {int(row["step"]): float(row["train_seconds"]) for row in csv.DictReader(file)}


def trained_minutes(run_dir, step: int) -> float:
    """The minutes of training steps (train_seconds) of the run up to `step`.

    Raises:
      LossLogError: losses.csv has no row of `step`.
    """
    seconds = train_seconds(run_dir)
    if step not in seconds:
        raise LossLogError(f"{pathlib.Path(run_dir) / 'losses.csv'} has no row of step {step}.")
    return seconds[step] / 60


def _complete_row(row) -> int | None:
    """The step of a losses.csv row whose every column parses as a number, else None."""
    if None in row or any(row.get(name) in (None, "") for name in CSV_COLUMNS):
        return None
    try:
        [float(row[name]) for name in CSV_COLUMNS]
        return int(row["step"])
    except ValueError:
        return None


class LossLog:
    """losses.csv, one row per step, appended once per training call.

    On resume it keeps exactly one row per step up to the restored step: rows beyond it
    (computed after the last checkpoint), a last row cut short by a kill (no newline), and
    rows that do not parse are dropped; of duplicated steps the newest row is kept.

    Attributes:
      path: the file.
      train_seconds: the train_seconds of the last row: training time so far.
    """

    def __init__(self, path: pathlib.Path, restored_step: int):
        self.path = path
        rows = {}
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            if lines and not lines[-1].endswith("\n"):
                lines.pop()
            for row in csv.DictReader(lines):
                step = _complete_row(row)
                if step is not None and 1 <= step <= restored_step:
                    rows[step] = row
        if len(rows) < restored_step:
            print(f"Note: {path} lacks {restored_step - len(rows)} of the steps 1 to "
                  f"{restored_step}, which cannot be recomputed.")
        with atomic_path(path) as partial, partial.open("w", newline="") as file:
            writer = csv.DictWriter(file, CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows[step] for step in sorted(rows))
        self.train_seconds = float(rows[max(rows)]["train_seconds"]) if rows else 0.0

    def append(self, rows):
        with self.path.open("a", newline="") as file:
            csv.DictWriter(file, CSV_COLUMNS).writerows(rows)

    def read_columns(self) -> dict:
        """{column: float64 array [rows]} of the whole file."""
        with self.path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        return {name: np.array([float(row[name]) for row in rows]) for name in CSV_COLUMNS}
