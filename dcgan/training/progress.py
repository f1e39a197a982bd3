"""What the training loop prints: one header line, a progress bar on a terminal, one line
per epoch.

  fast: G 1,732,353 and D 138,945 parameters, global batch 128, float32, 1 replica
  (CPU:0), run directory runs/fast
  Epoch 1/18: d_loss 1.21 g_loss 0.83 d_real 0.62 d_fake 0.41 d_penalty 0, 523 img/s,
  elapsed 1:56, ETA 33:02

(each one line). The bar (Keras's Progbar) redraws one line in place, so it is shown
only when stdout is a terminal; in a log file each epoch is one line. When the epoch's
samples are near-copies of each other (`dcgan.gan.diversity`), a warning follows its line:

  Warning: mode collapse: the samples of Sandal, Bag are near-copies of each other (their
  mean pixel distance is 0.092, 0.14 of the real images'; below 0.4)

(one line; checked from `loop.DIVERSITY_WARMUP_STEPS` on, by when a learning generator's
samples have spread out).

The other binaries start the same way, with `binary_header`: what they are about to do,
the devices and the CPU, on one line (`Countdown` times their long work, e.g. eval.py's
checkpoints):

  eval.py: run runs/fast, 2 checkpoints; classifier v1 (sha256 d17de18921c4); 300 samples
  against the test split; memorisation against train[:6000]; devices CPU:0; CPU Intel(R)
  Xeon(R) Processor @ 2.80GHz
"""

import sys
import time

import keras
import numpy as np
import tensorflow as tf

from dcgan import data
from dcgan.gan.diversity import COLLAPSE_RATIO
from dcgan.runtime import hardware

__all__ = ["Countdown", "EpochProgress", "binary_header", "collapse_warning", "device_names",
           "header"]


def _duration(seconds: float) -> str:
    """3725.2 -> "1:02:05", 65 -> "1:05"."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def device_names(devices=None) -> str:
    """Device names without their job and task, "CPU:0, CPU:1": of `devices` (names such
    as "/job:localhost/replica:0/task:0/device:CPU:0"), by default every logical device of
    this process."""
    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices()]
    return ", ".join(device.rpartition("device:")[2] for device in devices)


def binary_header(binary: str, details, devices=None) -> str:
    """A binary's first line: "<binary>: <detail>; <detail>; devices <device_names>; CPU
    <model>", `details` being the strings that say what it is about to do."""
    return "; ".join([f"{binary}: {details[0]}", *details[1:],
                      f"devices {device_names(devices)}", f"CPU {hardware.cpu_model()}"])


class Countdown:
    """The elapsed time and the ETA of `total` units of work of similar cost (steps,
    checkpoints; None: unknown), counted from the object's creation."""

    def __init__(self, total: int | None):
        self.total = total
        self.done = 0
        self.started = time.perf_counter()

    def advance(self, units: int = 1) -> None:
        self.done += units

    def timing(self, most_seconds_left: float | None = None) -> str:
        """E.g. "elapsed 0:41, ETA 1:02"; the ETA assumes the remaining units cost what the
        done ones did on average, and is at most `most_seconds_left` (a time budget).
        Without a total or a budget, only "elapsed 0:41"."""
        elapsed = time.perf_counter() - self.started
        etas = [] if self.total is None else [
            elapsed / max(self.done, 1) * (self.total - self.done)]
        if most_seconds_left is not None:
            etas.append(max(0.0, most_seconds_left))
        if not etas:
            return f"elapsed {_duration(elapsed)}"
        return f"elapsed {_duration(elapsed)}, ETA {_duration(min(etas))}"


def header(name: str, state, global_batch: int, policy_name: str, strategy, run_dir,
           scaling: str | None = None) -> str:
    """The run's one-line description: `name` (its preset), the parameter counts of G and
    D, the global batch (or `scaling`, what scaling the recipe to the replicas made of it:
    `dcgan.recipes.scaling`), the dtype policy (mixed_bfloat16 with a warning where it is
    slower than float32: `hardware.fast_bf16`), the replicas and their devices, the run
    directory."""
    devices = device_names(strategy.extended.worker_devices)
    replicas = strategy.num_replicas_in_sync
    if policy_name == "mixed_bfloat16" and not hardware.fast_bf16():
        policy_name += (" (slower than float32 here: this machine has no fast bf16; "
                        "--dtype_policy=auto picks float32)")
    batch = scaling or f"global batch {global_batch}"
    return (f"{name}: G {state.generator.count_params():,} and D "
            f"{state.discriminator.count_params():,} parameters, {batch}, {policy_name}, "
            f"{replicas} replica{'s' * (replicas > 1)} ({devices}), run directory {run_dir}")


def collapse_warning(ratios) -> str | None:
    """The warning under an epoch's line when its samples are near-copies, or None.

    Args:
      ratios: float [num_classes] (a conditional G, Fashion-MNIST's classes in order) or
        [1] (an unconditional one): `gan.diversity.diversity_ratios` of the samples in
        pixels. A ratio below COLLAPSE_RATIO warns; NaN (no measure) never does.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    low = np.flatnonzero(ratios < COLLAPSE_RATIO)
    if not len(low):
        return None
    values = ", ".join(f"{ratios[i]:.2g}" for i in low)
    samples = ("the samples" if len(ratios) == 1 else
               f"the samples of {', '.join(data.CLASS_NAMES[i] for i in low)}")
    return (f"Warning: mode collapse: {samples} are near-copies of each other (their mean "
            f"pixel distance is {values} of the real images'; below {COLLAPSE_RATIO})")


class EpochProgress:
    """The bar of the epoch being trained (on a terminal) and each epoch's closing line.

    Args:
      steps_per_epoch: the bar's length.
      last_epoch: the 1-based number of the run's last epoch (None: unknown, as for a
        run that trains until `max_train_minutes`).
      remaining_steps: steps this process has still to train, for the ETA (None:
        unknown).
      train_seconds_left: the training time left in a budget (max_train_minutes), which
        caps the ETA; None: no budget. With neither, no ETA is printed.
    """

    def __init__(self, steps_per_epoch: int, last_epoch: int | None,
                 remaining_steps: int | None, train_seconds_left: float | None = None):
        self.steps_per_epoch = steps_per_epoch
        self.last_epoch = last_epoch
        self.countdown = Countdown(remaining_steps)
        self.train_seconds_left = train_seconds_left
        self.bar = None
        self.epoch_images = 0
        self.epoch_seconds = 0.0

    def start_epoch(self):
        self.epoch_images, self.epoch_seconds = 0, 0.0
        if sys.stdout.isatty():
            self.bar = keras.utils.Progbar(self.steps_per_epoch)

    def update(self, step_in_epoch: int, num_steps: int, images: int, seconds: float,
               metrics: dict):
        """After a call of `num_steps` steps that trained `images` images in `seconds`;
        `metrics` holds {name: numpy [num_steps]}."""
        self.countdown.advance(num_steps)
        if self.train_seconds_left is not None:
            self.train_seconds_left -= seconds
        self.epoch_images += images
        self.epoch_seconds += seconds
        if self.bar is not None:
            # Never finalized: the epoch's line overwrites the bar.
            self.bar.update(step_in_epoch, finalize=False, values=[
                *((name, values[-1]) for name, values in metrics.items()),
                ("img/s", images / seconds)])

    def end_epoch(self, epoch: int, metrics: dict, diversity=None):
        """Prints epoch `epoch`'s (1-based) line: its last step's losses, its training
        throughput, the wall time since the start and the estimated time to the end;
        under it `collapse_warning(diversity)` if any (`diversity`: the samples' ratios,
        None: not measured)."""
        losses = " ".join(f"{name} {values[-1]:.3g}" for name, values in metrics.items())
        throughput = self.epoch_images / max(self.epoch_seconds, 1e-9)
        start = "\r\x1b[K" if self.bar is not None else ""  # Erase the bar.
        of_last = "" if self.last_epoch is None else f"/{self.last_epoch}"
        print(f"{start}Epoch {epoch}{of_last}: {losses}, {throughput:,.0f} img/s, "
              f"{self.countdown.timing(self.train_seconds_left)}", flush=True)
        # On stdout, not stderr: stderr passes through the console's filter process, and
        # the warning must land right under the line it is about.
        warning = None if diversity is None else collapse_warning(diversity)
        if warning:
            print(warning, flush=True)
        self.bar = None
