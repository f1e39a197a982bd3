"""The errors a user can cause or fix, under one base class that the binaries catch.

Each is named for what failed and carries a one-line message that says what to do;
`dcgan.runtime.console.run` prints it as `<binary>: error: <message>` with exit status 1.
Anything else that escapes is a bug and keeps its traceback. `TrainingInterrupted` is no
failure but a stop on request: the binaries print the command that resumes.
"""

import signal

__all__ = [
    "CheckpointError",
    "ClassifierIntegrityError",
    "ConfigError",
    "DatasetUnavailableError",
    "DcganError",
    "DiskFullError",
    "LossLogError",
    "NonFiniteError",
    "OutputPathError",
    "RunDirectoryError",
    "SweepError",
    "TrainingInterrupted",
    "ZooError",
]


class DcganError(Exception):
    """A failure the user can act on; the message is one line saying what and why."""


class ConfigError(DcganError, ValueError):
    """A configuration value, flag or TF_CONFIG is invalid; the message says which."""


class DatasetUnavailableError(DcganError):
    """Fashion-MNIST is not prepared in the data directory, or its files are damaged."""


class RunDirectoryError(DcganError):
    """The run directory cannot be used as it is: another run, locked, unwritable, or a
    checkpoint a resume cannot start from."""


class CheckpointError(DcganError):
    """A checkpoint or an exported model cannot be read as a generator."""


class NonFiniteError(DcganError):
    """A loss or a weight became NaN or infinite; nothing of that state was saved.

    Attributes:
      step: the first step whose losses were non-finite (or after which the weights were).
    """

    def __init__(self, message, step):
        super().__init__(message)
        self.step = step


class ClassifierIntegrityError(DcganError):
    """The metric classifier's weights are not the ones this version ships."""


class DiskFullError(DcganError):
    """A write found no space left on its disk; the message names the disk, its free
    bytes and the file, and what was kept."""


class LossLogError(DcganError):
    """losses.csv lacks what a caller asked of it."""


class ZooError(DcganError):
    """A model-zoo entry is unknown, missing or not what its sidecar says."""


class SweepError(DcganError):
    """A sweep's grid, results table or budget cannot be used."""


class OutputPathError(DcganError):
    """An output file cannot be written where the user asked for it."""


class TrainingInterrupted(Exception):
    """A stop signal ended training after a checkpoint of the step reached.

    Attributes:
      signal_number: the signal this process received; None on a worker that stopped
        because another worker of its cluster received one.
      step: the step reached and saved.
      checkpoint: the prefix of the checkpoint holding it (None if no step was taken).
    """

    def __init__(self, signal_number, step, checkpoint):
        cause = (f"by {signal.Signals(signal_number).name}" if signal_number
                 else "with the other workers, one of which received a stop signal,")
        saved = f"saved in {checkpoint}" if checkpoint else "no checkpoint yet"
        super().__init__(f"Stopped {cause} at step {step} ({saved}).")
        self.signal_number = signal_number
        self.step = step
        self.checkpoint = checkpoint

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal; a
        worker stopped by another's signal reports SIGTERM's 143."""
        return 128 + (self.signal_number or signal.SIGTERM)
