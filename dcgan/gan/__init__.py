"""The maths of one training step: the step itself (`step.GanStep`), the losses, the
gradient penalties, the differentiable augmentations, the optimizers, the learning-rate
schedules and the EMA of G. Knows nothing of files, flags or epochs.

A new loss is one function and one `LOSSES` entry in `losses.py`.
"""
