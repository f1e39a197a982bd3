"""A disk cache for arrays that are costly to compute and a function of a known key: the
classifier features of the real images, which `dcgan.evaluation.evaluator.Evaluator` would otherwise
embed again at every start.

An entry is one file, `<data_dir>/dcgan_features/<name>-<hash>.npz`, whose hash is of its
key (a JSON-able dict of everything its arrays depend on) and which also stores that key:
a file whose key differs, or that cannot be read, is recomputed and rewritten after one
warning line. Deleting the directory clears the cache.
"""

import hashlib
import json
import os
import pathlib
import re
import tempfile
import zipfile

import numpy as np
from absl import logging

__all__ = ["CACHE_DIRECTORY", "cache_path", "cached_arrays"]

CACHE_DIRECTORY = "dcgan_features"
# Part of every key: bump it when what an entry holds for a given key changes.
FORMAT = 1
# The array of an entry's file that holds its key, as JSON.
_KEY_ARRAY = "key"


def _key_json(key: dict) -> str:
    return json.dumps({"format": FORMAT, **key}, sort_keys=True)


def cache_path(data_dir, name: str, key: dict) -> pathlib.Path:
    """Where the entry of `key` lives: "<data_dir>/dcgan_features/<name>-<12 hex>.npz",
    `name` (e.g. a split, "train[:6000]") made filename-safe ("train_6000")."""
    readable = re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")
    digest = hashlib.sha256(_key_json(key).encode()).hexdigest()[:12]
    return pathlib.Path(data_dir).expanduser() / CACHE_DIRECTORY / f"{readable}-{digest}.npz"


def _load(path: pathlib.Path, key: dict) -> dict[str, np.ndarray] | None:
    """The arrays of the entry at `path` if it holds `key`'s; None (after a warning if a
    file is there) if not."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        stored_key = str(arrays.pop(_KEY_ARRAY))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        logging.warning("Feature cache %s could not be read (%s); recomputing it.", path, error)
        return None
    if stored_key != _key_json(key):
        logging.warning("Feature cache %s holds the features of another key; recomputing it.",
                        path)
        return None
    return arrays


def _save(path: pathlib.Path, key: dict, arrays: dict[str, np.ndarray]) -> None:
    """Writes the entry atomically under a temporary name of its own (not
    `files.atomic_path`'s fixed one): two processes that miss at once, e.g. two test
    workers, each write theirs and the last rename wins. A failed write (a read-only or
    full disk) only warns: the caller has its arrays."""
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.partial-",
                                               suffix=".npz")
        # mkstemp's file is private; the cache is as shared as the data directory it is in.
        os.fchmod(descriptor, 0o644)
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **{_KEY_ARRAY: np.array(_key_json(key))}, **arrays)
        os.replace(partial, path)
    except OSError as error:
        logging.warning("Feature cache %s could not be written (%s); it is computed again at "
                        "the next start.", path, error)
    finally:
        if partial is not None:
            pathlib.Path(partial).unlink(missing_ok=True)


def cached_arrays(data_dir, name: str, key: dict, compute) -> dict[str, np.ndarray]:
    """The arrays `compute()` returns for `key`, read from its entry under `data_dir` when
    one holds them (bit for bit what `compute()` returned when it was written), else
    computed and written there.

    Args:
      data_dir: the TFDS data directory (e.g. "~/tensorflow_datasets") the cache lives in.
      name: the readable part of the file name.
      key: JSON-able dict of everything the arrays depend on.
      compute: () -> {array name: np.ndarray}; no name may be "key".
    """
    path = cache_path(data_dir, name, key)
    arrays = _load(path, key)
    if arrays is None:
        arrays = compute()
        _save(path, key, arrays)
    return arrays
