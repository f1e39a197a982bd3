"""Fashion-MNIST prepared for TFDS offline, from the Debian package's files.

The Debian package `dataset-fashion-mnist` ships the four original archives, but
re-gzipped with a 10-byte header that drops the file name, so TFDS's checksums reject
them. `stage_upstream_archives` rebuilds the upstream gzip header in front of Debian's
compressed bytes, which reproduces the upstream files byte for byte; TFDS then prepares
`fashion_mnist` from its manual directory without touching the network.

Run `python -m dcgan.data` once (`./setup.sh` does) to prepare the dataset.
"""

import dataclasses
import hashlib
import os
import pathlib
import re
import struct

# TFDS otherwise probes the GCE metadata server even for local loads (tfds#3962).
os.environ.setdefault("NO_GCE_CHECK", "true")

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from dcgan.core.config import DEFAULT_DATA_DIR, DataConfig  # noqa: E402
from dcgan.core.errors import DatasetUnavailableError  # noqa: E402
from dcgan.runtime.files import sha256  # noqa: E402

__all__ = ["DATASET_NAME", "DEBIAN_DIR", "dataset_version", "main", "num_examples",
           "prepare", "prepared_builder", "stage_upstream_archives", "verify_records"]

DATASET_NAME = "fashion_mnist"
INSTALL_COMMAND = "./setup.sh"
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


@dataclasses.dataclass(frozen=True)
class _Archive:
    name: str
    mtime: int  # Seconds since the epoch in the upstream gzip header.
    sha256: str  # Of the upstream file, as registered in TFDS's url_checksums.


_UPSTREAM_ARCHIVES = (
    _Archive("train-images-idx3-ubyte.gz", 1504176606,
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    _Archive("train-labels-idx1-ubyte.gz", 1504176606,
             "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    _Archive("t10k-images-idx3-ubyte.gz", 1504176627,
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    _Archive("t10k-labels-idx1-ubyte.gz", 1504176627,
             "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)


def _upstream_bytes(debian_bytes: bytes, archive: _Archive) -> bytes:
    """Debian's archive with the upstream gzip header (FNAME flag and file name) restored."""
    if debian_bytes[:3] != b"\x1f\x8b\x08":
        raise DatasetUnavailableError(f"{archive.name} from Debian is not a gzip file.")
    original_name = archive.name.removesuffix(".gz").encode() + b"\x00"
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", archive.mtime) + b"\x00\x03"
    return header + original_name + debian_bytes[10:]


def stage_upstream_archives(manual_dir, source_dir=DEBIAN_DIR) -> list[pathlib.Path]:
    """Writes the four upstream Fashion-MNIST archives into `manual_dir`.

    Idempotent: an archive already there with the right sha256 is left alone.

    Args:
      manual_dir: destination, TFDS's `<data_dir>/downloads/manual`.
      source_dir: where Debian's `dataset-fashion-mnist` put its `.gz` files.

    Returns:
      The paths of the four staged archives.

    Raises:
      DatasetUnavailableError: a source file is missing or does not rebuild to the
        upstream bytes.
    """
    manual_dir = pathlib.Path(manual_dir).expanduser()
    source_dir = pathlib.Path(source_dir)
    manual_dir.mkdir(parents=True, exist_ok=True)
    staged = []
    for archive in _UPSTREAM_ARCHIVES:
        target = manual_dir / archive.name
        staged.append(target)
        if target.exists() and sha256(target) == archive.sha256:
            continue
        source = source_dir / archive.name
        if not source.exists():
            raise DatasetUnavailableError(
                f"{source} is missing: install the Debian package with {INSTALL_COMMAND}.")
        upstream = _upstream_bytes(source.read_bytes(), archive)
        if hashlib.sha256(upstream).hexdigest() != archive.sha256:
            raise DatasetUnavailableError(
                f"{source} does not rebuild to the upstream {archive.name} (sha256 differs).")
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(upstream)
        partial.replace(target)
    return staged


def _builder(data_dir):
    return tfds.builder(DATASET_NAME, data_dir=os.path.expanduser(data_dir), try_gcs=False)


def prepare(data_dir=DEFAULT_DATA_DIR, source_dir=DEBIAN_DIR) -> None:
    """Prepares TFDS `fashion_mnist` in `data_dir` from the Debian files, offline.

    Does nothing when the dataset is already prepared there.
    """
    builder = _builder(data_dir)
    if builder.is_prepared():
        return
    manual_dir = pathlib.Path(data_dir).expanduser() / "downloads" / "manual"
    stage_upstream_archives(manual_dir, source_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir), try_download_gcs=False))


def prepared_builder(data_dir):
    """The TFDS builder of a prepared dataset, or one clear error naming the fix."""
    fix = (f"Run {INSTALL_COMMAND} (or `python -m dcgan.data --data_dir={data_dir}`) "
           "to prepare it offline from the Debian files.")
    try:
        builder = _builder(data_dir)
    except Exception as error:  # TFDS raises several types for a broken data_dir.
        raise DatasetUnavailableError(
            f"Fashion-MNIST in {data_dir} is damaged ({error}). {fix}") from error
    if not builder.is_prepared():
        raise DatasetUnavailableError(f"Fashion-MNIST is not prepared in {data_dir}. {fix}")
    return builder


def dataset_version(data_dir=DEFAULT_DATA_DIR) -> str:
    """The TFDS version of the Fashion-MNIST prepared in `data_dir`, e.g. "3.0.1".

    Raises:
      DatasetUnavailableError: it is not prepared there.
    """
    return str(prepared_builder(data_dir).version)


def num_examples(config: DataConfig) -> int:
    """Number of examples in `config.split` (slices such as "train[:512]" included)."""
    return prepared_builder(config.data_dir).info.splits[config.split].num_examples


def verify_records(config: DataConfig) -> None:
    """Reads every record of the files behind `config.split` once, checking their CRCs.

    TFDS reads lazily, so a truncated or damaged record file would otherwise fail in the
    middle of training. This reads the raw records without decoding them: about 0.1-0.3 s
    for the 33 MB of the train split.

    Raises:
      DatasetUnavailableError: a record file is missing, damaged, or holds another number
        of records than TFDS recorded when it prepared the dataset.
    """
    builder = prepared_builder(config.data_dir)
    fix = (f"Delete {builder.data_dir} and run `python -m dcgan.data "
           f"--data_dir={config.data_dir}` to prepare it again.")
    for instruction in builder.info.splits[config.split].file_instructions:
        records = tf.data.TFRecordDataset(instruction.filename, buffer_size=8 << 20)
        try:
            count = int(records.batch(8192).reduce(
                tf.constant(0, tf.int64), lambda total, batch: total + tf.size(batch, tf.int64)))
        except tf.errors.OpError as error:
            # The message's first line without TensorFlow's "{{function_node ...}}" and
            # "[Op:...]" decorations.
            reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", error.message.splitlines()[0]).strip()
            raise DatasetUnavailableError(
                f"{instruction.filename} is damaged ({reason}). {fix}") from error
        if count != instruction.examples_in_shard:
            raise DatasetUnavailableError(
                f"{instruction.filename} holds {count} records, not "
                f"{instruction.examples_in_shard}. {fix}")


def main(argv=None):
    import argparse  # Only this entry point parses arguments.

    parser = argparse.ArgumentParser(description="Prepare TFDS fashion_mnist offline.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--source_dir", default=str(DEBIAN_DIR))
    args = parser.parse_args(argv)
    prepare(args.data_dir, args.source_dir)
    builder = prepared_builder(args.data_dir)
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    print(f"fashion_mnist ready in {builder.data_dir}: {splits}")
