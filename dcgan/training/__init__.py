"""A training run: the loop, the run state it checkpoints, the saver, the artifacts it
writes, the stop signals it honours and the progress it prints.

`train(config)` is the entry point.
"""

from dcgan.core.errors import TrainingInterrupted
from dcgan.training.loop import train

__all__ = ["TrainingInterrupted", "train"]
