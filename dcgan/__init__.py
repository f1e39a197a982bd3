"""dcgan: a low-level TensorFlow 2 research library for GANs on Fashion-MNIST.

The subpackages stand on seven floors. A module imports only from its own subpackage and
from subpackages on lower floors, never from one beside it or above it
(tests/test_layers.py holds this). From the top:

  7  experiments  sweeps at equal budgets, the model zoo, FLOP counts and profiles
  6  training     the loop, the run state, saving, artifacts, stop signals, progress
     evaluation   the metric classifier, FID/IS/KID and the evaluator of a run
  5  rundir       the run directory's layout, config.json records, checkpoints, losses.csv
  4  recipes      presets, flag overrides, cross-field validation, the run plan
  3  gan          the step's maths: step, losses, penalties, augment, optimizers, schedules, EMA
     data         Fashion-MNIST offline through TFDS, as tf.data batches
  2  models       the architecture registry, the builders, sampling
     runtime      devices and strategies, atomic files, images, the console
  1  core         the config dataclasses and the error classes
"""

# The floors above, bottom first.
LAYERS = (
    ("core",),
    ("models", "runtime"),
    ("gan", "data"),
    ("recipes",),
    ("rundir",),
    ("training", "evaluation"),
    ("experiments",),
)
