"""What the binaries print on the console: no start-up noise, and one line per failure.

Every binary (train.py, eval.py, generate.py, bench.py, sweep.py, scripts/local_workers.py)
starts with

  from dcgan.runtime import console
  console.quiet_startup()      # before anything imports TensorFlow
  ...
  if __name__ == "__main__":
      console.run(main)        # app.run(main), failures as one `<binary>: error:` line

By default TensorFlow's C++ INFO lines, absl INFO logs and the "failed call to cuInit" error
of a machine without an NVIDIA driver are hidden; warnings (Python's `warnings.warn` and
WARNING-level logs) and errors still show. `--verbosity=0` (absl's flag) brings back the
INFO logs of Python code, `TF_CPP_MIN_LOG_LEVEL=0` those of TensorFlow's C++ code, and
`DCGAN_VERBOSE=1` everything, unfiltered.

This module imports no TensorFlow at its top: it must run before TensorFlow loads.
"""

import atexit
import os
import re
import shlex
import signal
import subprocess
import sys

__all__ = ["VERBOSE_ENV", "quiet_startup", "resume_command", "run"]

VERBOSE_ENV = "DCGAN_VERBOSE"

# A C++ log line that TensorFlow's absl logging writes before absl::InitializeLog(), which
# TensorFlow never calls: "I0000 00:00:1796113842.127219    6627 port.cc:153] ...". Its date
# is always 0000 00:00, which tells it from absl's Python log lines (real dates). Such
# lines ignore TF_CPP_MIN_LOG_LEVEL (tensorflow/tensorflow#100442), so the filter below
# applies that level to them.
_CPP_LINE = re.compile(r"[IWEF]0000 00:00:\S+\s+\d+ \S+:\d+\] ")
_CPP_LEVELS = "IWEF"
_NOISE = (
    # absl's note that the lines above go to stderr, printed once per TensorFlow library.
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called"),
    # A tf.data note on datasets built from Python generators (TFDS's, tf.distribute's):
    # they run as they are, nothing is wrong.
    re.compile(r"Input of GeneratorDatasetOp::Dataset will not be optimized"),
    # tf.distribute's auto-sharding drops the cardinality assertion TFDS puts in each
    # epoch of a split (so once per epoch, 1,000 lines for bench.py's 1,000 epochs); the
    # batches are the same, only a check of their count is gone.
    re.compile(r"The `assert_cardinality` transformation is currently not handled by the "
               r"auto-shard rewrite"),
    # Grappler's remapper failing to fuse a Conv2D+BiasAdd+LeakyRelu of the tutorial
    # discriminator's gradient: the meta-optimizer logs the failed pass and keeps the graph
    # as it was before it, which runs unfused with the same results. An ERROR line that
    # alarms for nothing.
    re.compile(r"\] remapper failed: INVALID_ARGUMENT: Mutation::Apply error"),
    # A run that stops inside its first epoch (a sweep's segment, a max_steps or a clock
    # budget) leaves the decoded-image cache half filled; tf.data discards that part and
    # the next run's first epoch fills it again, so nothing is lost or repeated.
    re.compile(r"The calling iterator did not fully read the dataset being cached"),
    # Echoes of an op's error status, which reaches Python as an exception anyway (and
    # is then handled, e.g. OUT_OF_RANGE at a dataset's end, or reported).
    re.compile(r"\] OP_REQUIRES failed at "),
    re.compile(r"\] Local rendezvous is aborting with status"),
)
# TensorFlow logs this as an ERROR on every machine without a usable CUDA driver. It is
# noise only where there is no NVIDIA driver at all; on a machine with one it says why the
# GPU is not used, so there it still shows.
_CUINIT = re.compile(r"failed call to cuInit")


_filtering = False  # Whether quiet_startup has routed stderr through the filter.
_original_stderr = None  # Then the file descriptor of the stderr the filter writes to.


def _verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "0") not in ("", "0")


def _nvidia_driver_present() -> bool:
    """Whether the NVIDIA kernel driver is loaded (it creates both paths)."""
    return os.path.exists("/proc/driver/nvidia") or any(
        name.startswith("nvidia") for name in os.listdir("/dev"))


def _is_noise(line: str, min_level: int, hide_cuinit: bool) -> bool:
    if any(pattern.search(line) for pattern in _NOISE):
        return True
    if hide_cuinit and _CUINIT.search(line):
        return True
    return bool(_CPP_LINE.match(line)) and _CPP_LEVELS.index(line[0]) < min_level


def _filter_stderr(source, sink, min_level: int, hide_cuinit: bool) -> None:
    """Copies the lines of `source` to `sink`, without the noise (`_is_noise`)."""
    for line in source:
        if not _is_noise(line.decode(errors="replace"), min_level, hide_cuinit):
            sink.write(line)
            sink.flush()


def quiet_startup() -> None:
    """Hides TensorFlow's C++ start-up noise; call it before TensorFlow is imported.

    Sets TF_CPP_MIN_LOG_LEVEL to 1 (no C++ INFO) unless the user set it, then routes this
    process's file descriptor 2 through a filter process that drops the lines TensorFlow
    writes regardless of that level (see `_is_noise`). A separate process, so that a
    fatal error that aborts this one (a C++ check failure) still reaches the terminal;
    it ignores stop signals, and ends when this process and its children have closed
    the pipe.
    With DCGAN_VERBOSE=1 nothing is changed; a second call changes nothing either.
    """
    global _filtering, _original_stderr
    if _filtering or _verbose():
        return
    _filtering = True
    min_level = int(os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1"))
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    _original_stderr = original = os.dup(2)
    arguments = [str(min_level), str(int(not _nvidia_driver_present()))]
    # -I -S: only the standard library, neither dcgan/ nor site-packages on the path.
    filter_process = subprocess.Popen(
        [sys.executable, "-I", "-S", os.path.abspath(__file__), *arguments],
        stdin=read_end, stdout=original, stderr=original)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)

    def drain():
        # Our end of the pipe closes, the filter writes what is left and ends, so the
        # shell prompt comes after the last line; unless a child process of ours still
        # holds the pipe, which must not keep us from exiting.
        sys.stderr.flush()
        os.dup2(original, 2)
        try:
            filter_process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    atexit.register(drain)


def resume_command(argv) -> str:
    """The command line `argv` as a shell command that resumes its run (no --new_run)."""
    kept = [arg for arg in argv[1:] if not re.fullmatch(r"--?(no)?new_run(=.*)?", arg)]
    return shlex.join(["python", argv[0], *kept])


def _fail(binary: str, message: str, status: int) -> int:
    # Where stdout and stderr reach one file or terminal, the progress bar's line (which
    # has no newline until its epoch ends) is ended first, so our line starts a line.
    stderr_fd = _original_stderr if _original_stderr is not None else 2
    if os.path.samestat(os.fstat(1), os.fstat(stderr_fd)):
        print(file=sys.stdout)
    sys.stdout.flush()  # Our line is the last one, after any progress output.
    print(f"{binary}: {message}", file=sys.stderr)
    return status


def _guarded(main, binary: str):
    """main(argv), its failures turned into one line and an exit status."""
    import tensorflow as tf
    from absl import flags, logging

    from dcgan.core.errors import DcganError, TrainingInterrupted
    from dcgan.runtime.files import disk_full_message, no_space_path

    def guarded_main(argv):
        # absl raises an unset --verbosity to INFO after parsing the flags; without it,
        # TensorFlow's and TFDS's INFO logs (which strategy, which files) fill the console.
        if not _verbose() and not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        try:
            return main(argv)
        except TrainingInterrupted as stop:
            return _fail(binary, f"{stop} Resume with: {resume_command(sys.argv)}",
                         stop.exit_status)
        except DcganError as error:
            return _fail(binary, f"error: {error}", 1)
        except (OSError, tf.errors.ResourceExhaustedError) as error:
            # A full disk can meet any write (losses.csv, a picture, an export); the
            # checkpoint save raises DiskFullError itself. Other such errors are bugs
            # or not ours to explain: their traceback stays.
            path = no_space_path(error)
            if path is None:
                raise
            return _fail(binary, f"error: {disk_full_message(path)}", 1)

    return guarded_main


def run(main) -> None:
    """`absl.app.run(main)`, with the library's errors as one `<binary>: error: <message>`
    line on stderr and exit status 1, and TrainingInterrupted as one line naming the
    command that resumes, with exit status 128 + the signal number. absl INFO logs are
    off unless --verbosity or DCGAN_VERBOSE=1 is given."""
    from absl import app

    app.run(_guarded(main, os.path.basename(sys.argv[0])))


if __name__ == "__main__":
    # The filter process of quiet_startup. A Ctrl-C, SIGTERM or SIGHUP sent to the whole
    # process group must not end it: the binary it stops still has its last line to
    # print through here. It ends when the binary has closed the pipe.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, signal.SIG_IGN)
    _filter_stderr(sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[1]), sys.argv[2] == "1")
