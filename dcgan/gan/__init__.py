"""The maths of one training step: the step itself (`step.GanStep`), the losses, the
gradient penalties, the differentiable augmentations, the optimizers, the learning-rate
schedules, the EMA of G, and the samples' diversity that warns of a collapse. Knows
nothing of files, flags or epochs.

A new loss is one function and one `LOSSES` entry in `losses.py`.
"""
