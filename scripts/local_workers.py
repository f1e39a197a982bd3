r"""Runs train.py as several workers on this machine: multi-worker training over loopback.

  python scripts/local_workers.py --num_workers=2 -- --run_dir=runs/two_workers \
      --train_examples=2048 --batch_size=64 --max_steps=40

Every worker runs `python train.py --strategy=multi_worker <the flags after -->` with the
TF_CONFIG of its place in the cluster (worker 0 is the chief, which writes the run
directory); each line of their output is printed with its worker's index in front.
Ctrl-C or SIGTERM to this launcher is passed on to every worker: they save a checkpoint
at the same step and stop, and running the same command again resumes from it. To see a
preemption, `kill -TERM` one worker's pid (printed at the start). When a worker ends,
the others have --stop_timeout seconds to end too before they are killed.

Exit status: the chief's (0 done, 1 error, 143 or 130 stopped by a signal).
"""

import pathlib
import signal
import subprocess
import sys
import threading
import time

from absl import flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

from dcgan.runtime import local_cluster  # noqa: E402

flags.DEFINE_integer("num_workers", 2, "Worker processes to start.", lower_bound=1)
flags.DEFINE_float("stop_timeout", 120.0, "Seconds the other workers get to end once one "
                   "has ended, before they are killed.", lower_bound=0.0)

FLAGS = flags.FLAGS
TRAIN_PY = pathlib.Path(__file__).resolve().parent.parent / "train.py"


def _print_lines(index, stream):
    for line in stream:
        sys.stdout.write(f"[worker {index}] {line.decode(errors='replace')}")
        sys.stdout.flush()


def main(argv):
    command = [sys.executable, str(TRAIN_PY), "--strategy=multi_worker", *argv[1:]]
    workers = local_cluster.start_workers(command, [subprocess.PIPE] * FLAGS.num_workers)
    printers = [threading.Thread(target=_print_lines, args=(index, worker.stdout))
                for index, worker in enumerate(workers)]
    for printer in printers:
        printer.start()
    print(f"Started {FLAGS.num_workers} workers, pids "
          f"{[worker.pid for worker in workers]} (worker 0, the chief, first).", flush=True)

    def forward(signal_number, frame):
        del frame
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal_number)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while all(worker.poll() is None for worker in workers):
        time.sleep(0.5)
    statuses = local_cluster.stop_workers(workers, FLAGS.stop_timeout)
    for printer in printers:
        printer.join()
    print(f"Exit statuses: {statuses}.")
    status = statuses[0] if statuses[0] >= 0 else 128 - statuses[0]
    if status == 1:
        print("local_workers.py: error: the chief (worker 0) failed; its error line is "
              "above.", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":
    console.run(main)
