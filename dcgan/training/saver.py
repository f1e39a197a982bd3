"""Checkpointing a run, and the guard that keeps a non-finite state out of every
checkpoint and export."""

import pathlib

import keras
import numpy as np
import tensorflow as tf

from dcgan.core.errors import NonFiniteError
from dcgan.rundir import checkpoints
from dcgan.training.run_state import RunState

__all__ = ["NonFiniteError", "Saver", "raise_if_non_finite"]


def _finite_weights(state: RunState) -> bool:
    weights = [weight for model in (state.generator, state.discriminator)
               for weight in model.weights if keras.backend.is_float_dtype(weight.dtype)]
    return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in weights]))


class Saver:
    """Checkpoints the run state, never with a non-finite weight, and knows the last
    step saved.

    Args:
      state: the run state; its manager saves the checkpoints.
      outputs: the `artifacts.ChiefOutputs` or `artifacts.WorkerOutputs` of this process.
      checkpoint_dir: the run directory's checkpoints, where the chief's manager saves.
    """

    def __init__(self, state: RunState, outputs, checkpoint_dir: pathlib.Path):
        self.state = state
        self.outputs = outputs
        self.checkpoint_dir = checkpoint_dir
        self.saved_step = state.steps_taken

    @property
    def latest(self) -> str | None:
        """The prefix of the run's checkpoint of the last step saved or restored (None
        before the first): on every worker, the chief's copy."""
        return str(self.checkpoint_dir / f"ckpt-{self.saved_step}") if self.saved_step else None

    def resume_advice(self) -> str:
        if self.latest is None:
            return "Nothing was saved: no checkpoint had been written yet."
        return (f"Nothing after the latest checkpoint, {self.latest}, was saved: lower the "
                "learning rates (or fix the loss) and run the same command to resume from it.")

    def save(self, step: int):
        """Checkpoints `step`, unless G or D holds a non-finite weight (NonFiniteError).

        The weights can turn non-finite in the last step of a call whose losses were still
        finite; checking them here (once per checkpoint) keeps such a state out of every
        checkpoint, and so out of the exports, which are made from checkpointed states.
        """
        if not _finite_weights(self.state):
            raise NonFiniteError(
                f"Non-finite weights in G or D after step {step}, though every loss so far "
                f"was finite. {self.resume_advice()}", step)
        self.outputs.before_checkpoint()
        checkpoints.save_checkpoint(self.state.manager, step)
        self.outputs.after_checkpoint()
        self.saved_step = step

    def save_for_stop(self) -> tuple[int, str | None]:
        """Checkpoints the step reached unless it is saved; returns it and its checkpoint."""
        step = self.state.steps_taken
        if step > self.saved_step:
            self.save(step)
        return step, self.latest


def raise_if_non_finite(metrics: dict, first_step: int, saver: Saver):
    """Raises NonFiniteError naming the first step of `metrics` ({name: [steps]}, the
    numpy values of `GanStep.train`'s) with a NaN/inf.

    Runs on the array each call returns anyway, so it costs no extra host sync. Under
    mixed_float16 the LossScaleOptimizer skips steps whose scaled gradients overflow:
    those steps have finite losses and are not errors.
    """
    finite = np.all([np.isfinite(values) for values in metrics.values()], axis=0)
    if finite.all():
        return
    index = int(np.argmin(finite))
    values = ", ".join(f"{name}={values[index]:.4g}" for name, values in metrics.items())
    raise NonFiniteError(f"Non-finite loss at step {first_step + index} ({values}). "
                         f"{saver.resume_advice()}", first_step + index)
