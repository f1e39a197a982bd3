"""Several training workers on this machine, for trying multi-worker training without a
cluster: one process per worker, each with its own TF_CONFIG, on loopback ports only."""

import os
import socket
import subprocess
import time

from dcgan.runtime import distribute

__all__ = ["free_loopback_ports", "start_workers", "stop_workers"]


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that are free on 127.0.0.1 when this returns.

    The system picks them; another process could still take one before a worker binds
    it, which a worker reports as an error at start-up.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_workers(command, outputs, env=None, cwd=None) -> list[subprocess.Popen]:
    """Starts `command` once per entry of `outputs`: the workers of one cluster.

    Worker i gets the TF_CONFIG of task i of a cluster of loopback addresses (worker 0 is
    the chief), and its stdout and stderr go to `outputs[i]` (a file or
    `subprocess.PIPE`). Each runs in its own session, so a Ctrl-C in the terminal reaches
    only the caller, which decides what the workers receive.

    Args:
      command: the argv of one worker, e.g. ["python", "train.py", "--strategy=multi_worker"].
      outputs: one output per worker.
      env: the workers' environment without TF_CONFIG (default this process's).
      cwd: their working directory.

    Returns:
      The processes, worker 0 first. If one cannot be started, those already started
      are stopped before the error propagates.
    """
    env = dict(os.environ if env is None else env)
    addresses = [f"127.0.0.1:{port}" for port in free_loopback_ports(len(outputs))]
    workers = []
    try:
        for index, output in enumerate(outputs):
            workers.append(subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd,
                env={**env, "TF_CONFIG": distribute.tf_config(addresses, index)},
                start_new_session=True))
    except BaseException:
        stop_workers(workers, timeout=0)
        raise
    return workers


def stop_workers(workers, timeout: float) -> list[int]:
    """Waits up to `timeout` seconds in all for the workers to end, kills those still
    running, and returns every worker's exit status."""
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return [worker.returncode for worker in workers]
