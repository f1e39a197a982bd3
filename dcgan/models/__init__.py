"""The networks: an architecture registry, the builders registered in it, and sampling.

A new architecture is one pair of builders in `builders.py` (see its docstring).
"""

from dcgan.models import builders  # noqa: F401  (registers the architectures)
from dcgan.models.conditioning import IMAGE_SHAPE
from dcgan.models.registry import (
    ARCHITECTURES,
    Architecture,
    Networks,
    build_discriminator,
    build_generator,
    build_networks,
    generator_noise_dim,
    generator_num_classes,
    generator_output_range,
    global_policy,
    mixes_examples,
    model_input,
    output_range,
    register_architecture,
)
from dcgan.models.sampling import class_cycle, class_rows, seeded_samples

__all__ = [
    "ARCHITECTURES", "Architecture", "IMAGE_SHAPE", "Networks", "build_discriminator",
    "build_generator", "build_networks", "class_cycle", "class_rows", "generator_noise_dim",
    "generator_num_classes", "generator_output_range", "global_policy", "mixes_examples",
    "model_input", "output_range", "register_architecture", "seeded_samples",
]
