"""Atomic file writing (a crash never leaves a half-written artifact in place), and the
sha256 that vouches for a file's bytes."""

import contextlib
import errno
import hashlib
import json
import os
import pathlib
import re
import tempfile

from dcgan.core.errors import DiskFullError, OutputPathError

__all__ = ["DiskFullError", "atomic_path", "check_writable", "disk_full_message",
           "no_space_path", "remove_partials", "sha256", "write_json", "write_text"]

# How TensorFlow's file writes report ENOSPC (as RESOURCE_EXHAUSTED, like an out-of-memory):
# "... /run/checkpoints/ckpt-4_temp/part-00000-of-00001.data-00000-of-00001.tempstate123;
# No space left on device [Op:SaveV2]".
_TF_NO_SPACE = re.compile(r"(\S+); No space left on device")


def _mount_point(path: pathlib.Path) -> pathlib.Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def no_space_path(error: Exception) -> str | None:
    """For an error of a write that found its disk full (an OSError with errno ENOSPC, or
    TensorFlow's error for one), the file it names ("" if none); else None."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return error.filename or ""
    written = _TF_NO_SPACE.search(getattr(error, "message", None) or str(error))
    return written[1] if written else None


def disk_full_message(path) -> str:
    """"No space left on the disk mounted at /mnt (4,096 bytes free) to write <path>."

    Args:
      path: the file whose write failed; None when unknown (then the disk of the
        current directory is named).
    """
    mount = _mount_point(pathlib.Path(path or "."))
    stats = os.statvfs(mount)
    free = stats.f_bavail * stats.f_frsize
    return (f"No space left on the disk mounted at {mount} ({free:,} bytes free) to write "
            f"{path or 'a file'}.")


def _partial_path(path: pathlib.Path) -> pathlib.Path:
    """"generator.keras" -> "generator.partial.keras": every suffix kept, as Keras insists
    on ".keras" and ".weights.h5"."""
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f"{stem}.partial{dot}{suffixes}")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it over `path` on success.

    The temporary name keeps every suffix (see `_partial_path`). On an exception the
    temporary file is removed and `path` keeps its previous content.
    """
    path = pathlib.Path(path)
    partial = _partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def remove_partials(directory, names=None) -> list[pathlib.Path]:
    """Deletes the temporary files `atomic_path` leaves beside `directory/<name>` for each
    of `names` (None: every name) when a kill, which skips its clean-up, interrupted a
    write. Only call it when no other process writes those files.

    Returns:
      The deleted paths.
    """
    directory = pathlib.Path(directory)
    partials = (directory.glob("*.partial.*") if names is None
                else (_partial_path(directory / name) for name in names))
    removed = []
    for partial in partials:
        if partial.is_file():
            partial.unlink()
            removed.append(partial)
    return removed


def write_text(path, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text)


def write_json(path, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def sha256(path) -> str:
    """The hex sha256 of the file at `path`."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def check_writable(path) -> None:
    """Checks, before any long work, that a file can be written at `path`: creates its
    directory if missing, then a temporary file beside it, which it deletes.

    Raises:
      OutputPathError: `path` is a directory, or its directory cannot be created or
        written; the message names the path and the reason.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise OutputPathError(f"Cannot write {path}: it is a directory.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except FileExistsError as error:  # mkdir met a file where a directory should be.
        raise OutputPathError(f"Cannot write {path}: {error.filename} is a file, not a "
                              "directory.") from error
    except OSError as error:
        raise OutputPathError(f"Cannot write {path}: {error.strerror} "
                              f"({error.filename or path.parent}).") from error
