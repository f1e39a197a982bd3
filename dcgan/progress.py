"""What the training loop prints: one header line, a progress bar on a terminal, one line
per epoch.

  fast: G 1,732,353 and D 138,945 parameters, global batch 128, float32, 1 replica
  (CPU:0), run directory runs/fast
  Epoch 1/18: d_loss 1.21 g_loss 0.83 d_real 0.62 d_fake 0.41 d_penalty 0, 523 img/s,
  elapsed 1:56, ETA 33:02

(each one line). The bar (Keras's Progbar) redraws one line in place, so it is shown
only when stdout is a terminal; in a log file each epoch is one line.
"""

import sys
import time

import keras

__all__ = ["EpochProgress", "header"]


def _duration(seconds: float) -> str:
    """3725.2 -> "1:02:05", 65 -> "1:05"."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def header(name: str, state, global_batch: int, policy_name: str, strategy, run_dir) -> str:
    """The run's one-line description: `name` (its preset), the parameter counts of G and
    D, the global batch, the dtype policy, the replicas and their devices, the run
    directory."""
    devices = ", ".join(device.rpartition("device:")[2]
                        for device in strategy.extended.worker_devices)
    replicas = strategy.num_replicas_in_sync
    return (f"{name}: G {state.generator.count_params():,} and D "
            f"{state.discriminator.count_params():,} parameters, global batch {global_batch}, "
            f"{policy_name}, {replicas} replica{'s' * (replicas > 1)} ({devices}), "
            f"run directory {run_dir}")


class EpochProgress:
    """The bar of the epoch being trained (on a terminal) and each epoch's closing line.

    Args:
      steps_per_epoch: the bar's length.
      last_epoch: the 1-based number of the run's last epoch (None: unknown, as for a
        run that trains until `max_train_minutes`).
      remaining_steps: steps this process has still to train, for the ETA (None:
        unknown; no ETA is printed).
    """

    def __init__(self, steps_per_epoch: int, last_epoch: int | None,
                 remaining_steps: int | None):
        self.steps_per_epoch = steps_per_epoch
        self.last_epoch = last_epoch
        self.remaining_steps = remaining_steps
        self.steps_done = 0
        self.started = time.perf_counter()
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
        self.steps_done += num_steps
        self.epoch_images += images
        self.epoch_seconds += seconds
        if self.bar is not None:
            # Never finalized: the epoch's line overwrites the bar.
            self.bar.update(step_in_epoch, finalize=False, values=[
                *((name, values[-1]) for name, values in metrics.items()),
                ("img/s", images / seconds)])

    def end_epoch(self, epoch: int, metrics: dict):
        """Prints epoch `epoch`'s (1-based) line: its last step's losses, its training
        throughput, the wall time since the start and the estimated time to the end."""
        elapsed = time.perf_counter() - self.started
        losses = " ".join(f"{name} {values[-1]:.3g}" for name, values in metrics.items())
        throughput = self.epoch_images / max(self.epoch_seconds, 1e-9)
        start = "\r\x1b[K" if self.bar is not None else ""  # Erase the bar.
        of_last = "" if self.last_epoch is None else f"/{self.last_epoch}"
        eta = ""
        if self.remaining_steps is not None:
            remaining = self.remaining_steps - self.steps_done
            eta = f", ETA {_duration(elapsed / max(self.steps_done, 1) * remaining)}"
        print(f"{start}Epoch {epoch}{of_last}: {losses}, {throughput:,.0f} img/s, "
              f"elapsed {_duration(elapsed)}{eta}", flush=True)
        self.bar = None
