"""Atomic file writing: a crash never leaves a half-written artifact in place."""

import contextlib
import json
import os
import pathlib

__all__ = ["atomic_path", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it over `path` on success.

    The temporary name keeps every suffix (Keras insists on ".keras" and ".weights.h5"):
    "generator.keras" -> "generator.partial.keras". On an exception the temporary file is
    removed and `path` keeps its previous content.
    """
    path = pathlib.Path(path)
    stem, dot, suffixes = path.name.partition(".")
    partial = path.with_name(f"{stem}.partial{dot}{suffixes}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text)


def write_json(path, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
