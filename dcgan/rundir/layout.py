"""The run directory: the one object that knows its file names, reads and writes its
config.json, locks it against a second trainer and moves an old run aside.

  config.json                   what the run is (`dcgan.rundir.records`)
  checkpoints/                  tf.train.CheckpointManager's (`dcgan.rundir.checkpoints`)
  losses.csv                    one row per step (`dcgan.rundir.loss_log`)
  loss_curves.png               the columns of losses.csv against steps
  samples/epoch_0001.png        the fixed noise through G after each epoch
  progress.gif                  those grids as an animation
  final_grid.png                5x5 samples of the final generator
  generator.keras, discriminator.keras   plain Keras models (no dcgan import needed)
  tensorboard/                  training and evaluation scalars, sample grids
  metrics.json, metrics.csv, fid_curve.png, memorisation.png   eval.py's

Nothing here deletes user data: a new run in an existing directory renames the old one
to `<run_dir>.old-<timestamp>`.
"""

import contextlib
import fcntl
import json
import os
import pathlib
import tempfile
import time

from dcgan.core.errors import RunDirectoryError
from dcgan.rundir import records
from dcgan.runtime.files import write_json

__all__ = ["NEW_RUN_HINT", "RunDirectory"]

NEW_RUN_HINT = "train.py --new_run moves the old directory aside and starts afresh"


class RunDirectory:
    """A run directory at `path` (it need not exist yet).

    Attributes:
      path: the directory; every other attribute is a path inside it.
    """

    # The files the trainer writes in the directory itself (eval.py writes others).
    TRAINER_FILES = ("config.json", "losses.csv", "loss_curves.png", "progress.gif",
                     "final_grid.png", "generator.keras", "discriminator.keras")

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.config_json = self.path / "config.json"
        self.checkpoints = self.path / "checkpoints"
        self.losses_csv = self.path / "losses.csv"
        self.loss_curves = self.path / "loss_curves.png"
        self.samples = self.path / "samples"
        self.progress_gif = self.path / "progress.gif"
        self.final_grid = self.path / "final_grid.png"
        self.tensorboard = self.path / "tensorboard"
        self.metrics_json = self.path / "metrics.json"
        self.metrics_csv = self.path / "metrics.csv"
        self.fid_curve = self.path / "fid_curve.png"
        self.memorisation = self.path / "memorisation.png"

    def __str__(self):
        return str(self.path)

    def exported(self, network: str) -> pathlib.Path:
        """The exported model of `network`, "generator" or "discriminator"."""
        return self.path / f"{network}.keras"

    def epoch_grid(self, epoch: int) -> pathlib.Path:
        """The sample grid of the 1-based `epoch`."""
        return self.samples / f"epoch_{epoch:04d}.png"

    def epoch_grids(self) -> list[pathlib.Path]:
        """The sample grids written so far, in epoch order."""
        return sorted(self.samples.glob("epoch_*.png"))

    def read_record(self) -> dict:
        """config.json as the trainer wrote it, upgraded to today's layout
        (`records.upgrade`).

        Raises:
          RunDirectoryError: there is no config.json, or it is not JSON.
        """
        if not self.config_json.exists():
            raise RunDirectoryError(f"{self.config_json} is missing: {self.path} is not a "
                                    "dcgan run directory.")
        try:
            return records.upgrade(json.loads(self.config_json.read_text()))
        except (OSError, ValueError) as error:
            raise RunDirectoryError(f"{self.config_json} is unreadable ({error}); "
                                    f"{NEW_RUN_HINT}.") from error

    def write_record(self, record: dict) -> None:
        write_json(self.config_json, record)

    def recorded_dtype_policy(self) -> str | None:
        """The dtype policy config.json records; None where there is none or it cannot
        be read (`prepare` says why)."""
        try:
            return self.read_record().get("dtype_policy")
        except (RunDirectoryError, AttributeError):
            return None

    def _free_name(self) -> pathlib.Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate = self.path.with_name(f"{self.path.name}.old-{stamp}")
        counter = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.old-{stamp}-{counter}")
            counter += 1
        return candidate

    def prepare(self, record: dict, new_run: bool = False) -> pathlib.Path | None:
        """Makes the directory ready for training with the config.json contents `record`.

        With `new_run`, an existing directory is renamed to
        `<run_dir>.old-<YYYYmmdd-HHMMSS>` (never deleted). Otherwise an existing
        config.json must agree with `record` on `records.RESUME_FIELDS`. Then the directory
        is created and a file is created in it and in its existing subdirectories, so an
        unwritable directory fails before any training.

        Returns:
          Where the old run went with `new_run`, else None.

        Raises:
          RunDirectoryError: the run there disagrees with `record`, another process trains
            in it, or it cannot be written.
        """
        moved = None
        if new_run and self.path.exists():
            moved = self._free_name()
            with self.lock():  # Never move a run that is training.
                try:
                    os.rename(self.path, moved)
                except OSError as error:
                    raise RunDirectoryError(f"Cannot move {self.path} aside to {moved}: "
                                            f"{error.strerror}.") from error
        if self.config_json.exists():
            mismatches = records.resume_mismatches(self.read_record(), record)
            if mismatches:
                raise RunDirectoryError(
                    f"{self.path} holds another run ({'; '.join(mismatches)}). Resume it "
                    f"with its settings, pass another --run_dir, or {NEW_RUN_HINT}.")
        writable = [self.path] + [path for path in self.path.glob("*") if path.is_dir()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for directory in writable:
                with tempfile.TemporaryFile(dir=directory):
                    pass
        except OSError as error:
            raise RunDirectoryError(f"Run directory {self.path} is not writable: "
                                    f"{error.strerror} ({error.filename or self.path})."
                                    ) from error
        return moved

    @contextlib.contextmanager
    def lock(self):
        """Holds an exclusive lock on the directory (a `.lock` file holding the owner's
        pid).

        The kernel releases it when the process ends, even on kill -9, so it never needs
        cleaning up. Readers (eval.py --watch) do not take it.

        Raises:
          RunDirectoryError: another process holds it.
        """
        try:
            file = open(self.path / ".lock", "a+")
        except OSError as error:
            raise RunDirectoryError(f"Cannot lock {self.path}: {error.strerror}.") from error
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                owner = file.read().strip() or "unknown"
                raise RunDirectoryError(f"{self.path} is in use by another training process "
                                        f"(pid {owner}).") from None
            file.seek(0)
            file.truncate()
            file.write(f"{os.getpid()}\n")
            file.flush()
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)
