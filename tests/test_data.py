import gzip
import hashlib
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dcgan import data
from dcgan.core.config import SIGMOID_RANGE, TANH_RANGE, DataConfig
from dcgan.core.errors import DatasetUnavailableError

SMALL = DataConfig(split="test[:300]", global_batch_size=64)


def _registered_checksums():
    """sha256 of the upstream archives as TFDS itself registers them."""
    path = pathlib.Path(tfds.__file__).parent / "url_checksums" / "fashion_mnist.txt"
    rows = (line.split("\t") for line in path.read_text().splitlines() if line.strip())
    return {row[3]: row[2] for row in rows}


def test_staged_archives_are_the_upstream_files(tmp_path):
    staged = data.stage_upstream_archives(tmp_path)
    registered = _registered_checksums()
    assert sorted(p.name for p in staged) == sorted(registered)
    for path in staged:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == registered[path.name]
        debian = data.DEBIAN_DIR / path.name
        assert gzip.decompress(path.read_bytes()) == gzip.decompress(debian.read_bytes())


def test_staging_twice_leaves_files_untouched(tmp_path):
    first = {p: p.stat().st_mtime_ns for p in data.stage_upstream_archives(tmp_path)}
    second = {p: p.stat().st_mtime_ns for p in data.stage_upstream_archives(tmp_path)}
    assert first == second


def test_staging_rejects_a_damaged_source(tmp_path):
    source = tmp_path / "debian"
    shutil.copytree(data.DEBIAN_DIR, source)
    damaged = source / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-3] + b"xyz")
    with pytest.raises(DatasetUnavailableError, match="does not rebuild"):
        data.stage_upstream_archives(tmp_path / "manual", source)


@pytest.mark.parametrize("pixel_range", [TANH_RANGE, SIGMOID_RANGE])
def test_batches_have_shape_dtype_and_range(no_network, pixel_range):
    config = DataConfig(split="test[:300]", global_batch_size=64)
    batches = list(data.load_split(config, pixel_range, shuffle_seed=0).as_numpy_iterator())
    assert len(batches) == 300 // 64
    for images in batches:
        assert images.shape == (64, 28, 28, 1)
        assert images.dtype == np.float32
        assert images.min() >= pixel_range[0] and images.max() <= pixel_range[1]
    everything = np.concatenate(batches)
    assert everything.min() == pixel_range[0] and everything.max() == pixel_range[1]


def _idx(name, offset):
    """The bytes of Debian's idx file `name` past its `offset`-byte header, as uint8."""
    raw = gzip.decompress((data.DEBIAN_DIR / name).read_bytes())
    return np.frombuffer(raw, np.uint8, offset=offset)


def _test_split_as_uint8(with_labels=False):
    """The whole test split, unshuffled, as the idx files store it: [10000, 784] uint8."""
    config = DataConfig(split="test", global_batch_size=10_000)
    batch = next(data.load_split(config, SIGMOID_RANGE,
                                 with_labels=with_labels).as_numpy_iterator())
    images, labels = batch if with_labels else (batch, None)
    return np.round(images.reshape(10_000, 28 * 28) * 255).astype(np.uint8), labels


def test_pixels_match_the_raw_idx_file():
    """The whole test split against the bytes of Debian's idx file."""
    raw_pixels = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(10_000, 28 * 28)
    ours, _ = _test_split_as_uint8()
    # TFDS stores examples in its own order: compare the sorted sets of images.
    assert np.array_equal(np.unique(ours, axis=0), np.unique(raw_pixels, axis=0))


def test_each_label_is_its_images_label_in_the_idx_files():
    raw_pixels = _idx("t10k-images-idx3-ubyte.gz", 16).reshape(10_000, 28 * 28)
    raw_labels = _idx("t10k-labels-idx1-ubyte.gz", 8)
    label_of = {}  # A few images occur twice; a pair is right if either label matches.
    for pixels, label in zip(raw_pixels, raw_labels):
        label_of.setdefault(pixels.tobytes(), set()).add(int(label))
    images, labels = _test_split_as_uint8(with_labels=True)
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    assert all(int(label) in label_of[pixels.tobytes()] for pixels, label in zip(images, labels))
    # The check can fail: most images have one label, and the labels are not all alike.
    assert sum(len(seen) == 1 for seen in label_of.values()) > 9_900
    assert np.array_equal(np.bincount(labels), [1000] * 10)


def _first_batch(seed, epoch=0):
    config = DataConfig(split="test[:1000]", global_batch_size=100)
    return next(data.load_split(config, TANH_RANGE, shuffle_seed=seed,
                                first_epoch=epoch).as_numpy_iterator())


def test_same_seed_same_order_and_epochs_differ():
    np.testing.assert_array_equal(_first_batch(7), _first_batch(7))
    assert not np.array_equal(_first_batch(7), _first_batch(7, epoch=1))
    assert not np.array_equal(_first_batch(7), _first_batch(8))


def test_several_epochs_resume_where_they_stopped():
    config = DataConfig(split="test[:1000]", global_batch_size=100)
    three_epochs = list(data.load_split(config, TANH_RANGE, shuffle_seed=3,
                                        epochs=3).as_numpy_iterator())
    assert len(three_epochs) == 30
    resumed = list(data.load_split(config, TANH_RANGE, shuffle_seed=3, epochs=2,
                                   first_epoch=1).skip(4).as_numpy_iterator())
    np.testing.assert_array_equal(np.stack(resumed), np.stack(three_epochs[14:]))


@pytest.mark.parametrize("drop_remainder, expected", [(True, 3), (False, 4)])
def test_drop_remainder(drop_remainder, expected):
    config = DataConfig(split="test[:100]", global_batch_size=32, drop_remainder=drop_remainder)
    assert len(list(data.load_split(config, TANH_RANGE).as_numpy_iterator())) == expected


def test_empty_data_dir_names_the_install_command(no_network, tmp_path):
    config = DataConfig(data_dir=str(tmp_path), split="test")
    with pytest.raises(DatasetUnavailableError, match=r"not prepared.*\./setup\.sh"):
        data.load_split(config, TANH_RANGE)


def test_bad_pixel_range_is_refused():
    with pytest.raises(ValueError, match="pixel_range"):
        data.load_split(DataConfig(split="test[:10]"), (0.0, 255.0))


def test_loads_in_a_process_without_network():
    """No network at all (fresh network namespace): loading must not even try."""
    if shutil.which("unshare") is None:
        pytest.fail("This test needs unshare(1) (util-linux) to start a process in a new "
                    "network namespace; install it rather than skip the check.")
    code = ("from dcgan import data; from dcgan.core.config import DataConfig;"
            "b = next(iter(data.load_split(DataConfig(split='test[:64]', global_batch_size=64),"
            " (-1.0, 1.0))));"
            "print(b.shape)")
    result = subprocess.run(["unshare", "-rn", sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(64, 28, 28, 1)" in result.stdout
