"""Stopping a run cleanly on SIGTERM (schedulers, `kill`, shutdown) and SIGINT (Ctrl-C)."""

import signal
import threading

__all__ = ["StopSignals"]


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
