"""Fashion-MNIST: prepared offline for TFDS (`offline`), read as batches (`pipeline`)."""

from dcgan.data.offline import (
                                DATASET_NAME,
                                DEBIAN_DIR,
                                dataset_version,
                                num_examples,
                                prepare,
                                stage_upstream_archives,
                                verify_records,
)
from dcgan.data.pipeline import (
                                CLASS_NAMES,
                                class_index,
                                load_arrays,
                                load_split,
                                train_split,
)

__all__ = ["CLASS_NAMES", "DATASET_NAME", "DEBIAN_DIR", "class_index", "dataset_version",
           "load_arrays", "load_split", "num_examples", "prepare", "stage_upstream_archives",
           "train_split", "verify_records"]
