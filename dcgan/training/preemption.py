"""Stopping a run cleanly on SIGTERM (schedulers, `kill`, shutdown) and SIGINT (Ctrl-C),
in one process (`LocalStop`) and on every worker of a multi-worker run (`ClusterStop`)."""

import signal
import threading

import tensorflow as tf

from dcgan.core.errors import TrainingInterrupted

__all__ = ["ClusterStop", "LocalStop", "StopSignals"]


class StopSignals:
    """While active, SIGTERM and SIGINT are recorded instead of stopping the process.

    The handler does no work: it records the signal in `received`, which the training
    loop reads between `tf.function` calls to save a checkpoint and stop. The first signal
    also puts the previous handlers back, so a second one acts as it would without this
    class (Ctrl-C raises KeyboardInterrupt, SIGTERM terminates by default): a run that
    will not wait for its checkpoint still leaves a valid run directory, minus the steps
    since the last checkpoint. Leaving the context restores the previous handlers. Outside
    the main thread, where Python cannot install handlers, it records nothing.

    Attributes:
      received: the first signal's number, or None.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signal_number in self.SIGNALS:
                self._previous[signal_number] = signal.signal(signal_number, self._record)
        return self

    def _record(self, signal_number, frame):
        del frame
        self.received = signal_number
        self._restore()

    def _restore(self):
        previous, self._previous = self._previous, {}
        for signal_number, handler in previous.items():
            # None: a handler installed outside Python, which Python cannot reinstall.
            signal.signal(signal_number, signal.SIG_DFL if handler is None else handler)

    def __exit__(self, *exc_info):
        self._restore()


class LocalStop:
    """A single-process run stops at the first call boundary after a signal.

    Args:
      signals: the active `StopSignals`.
      save: `() -> (step, checkpoint prefix or None)`: checkpoints the step reached unless
        it is saved already.
    """

    def __init__(self, signals: StopSignals, save):
        self._signals = signals
        self._save = save

    def run(self, train_call):
        """Returns `train_call()`, or saves and raises TrainingInterrupted if a signal came."""
        if self._signals.received:
            raise TrainingInterrupted(self._signals.received, *self._save())
        return train_call()

    def close(self):
        pass


class ClusterStop:
    """Every worker of a MultiWorkerMirroredStrategy stops at the same call boundary after
    a signal on any of them: TensorFlow's `PreemptionCheckpointHandler`.

    The handler polls this worker's `StopSignals` once a second. The first worker to see a
    signal picks the call after which all of them save, through the cluster's
    coordination service, and waits until each has acknowledged it; at that call every
    worker saves and raises TrainingInterrupted. A worker alone cannot stop: the others
    would wait for it in their next all-reduce. An op error on one worker during a call
    is reported to all of them, so none waits forever.

    The handler counts calls (not steps) and keeps the count in the checkpoint, under
    "checkpointed_runs"; every worker restores the same checkpoint, so the counts agree.
    On a Google Cloud CPU VM the handler does not act (TensorFlow does not support it
    there): a signal is then ignored until the scheduler kills the workers.

    Args:
      signals: the active `StopSignals`.
      strategy: the MultiWorkerMirroredStrategy.
      manager: this worker's CheckpointManager; the handler restores its latest
        checkpoint, if any, when it is created.
      save: as for `LocalStop`.
    """

    def __init__(self, signals: StopSignals, strategy, manager, save):
        self._signals = signals
        self._save = save
        self._saved = None
        termination = tf.distribute.experimental.TerminationConfig(
            termination_watcher_fn=lambda: signals.received is not None,
            exit_fn=self._exit, save_fn=self._save_now)
        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver, manager, termination_config=termination)

    def _save_now(self):
        self._saved = self._save()

    def _exit(self):
        raise TrainingInterrupted(self._signals.received, *self._saved)

    def run(self, train_call):
        """Returns `train_call()`, or saves and raises TrainingInterrupted at the call the
        workers agreed on after a signal."""
        return self._handler.run(train_call)

    def close(self):
        """Stops the handler's watcher threads; every worker calls it when its training
        ends. The first call releases every worker's thread that waits on the
        coordination service (on the chief), so the chief must not exit before making
        it. Idempotent; a stop has already closed the handler."""
        # The handler's only clean-up is its __del__, which its own threads keep from
        # running while they wait.
        self._handler.__del__()
