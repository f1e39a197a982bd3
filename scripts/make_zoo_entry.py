r"""Makes the model zoo's entry of a finished run: copies its generator.keras to
dcgan/assets/zoo/<preset>.keras, scores the copy as `python eval.py --generator=<copy>`
does (the same `Evaluator.report`, eval.py's defaults), and writes <preset>.json beside it.

  python scripts/make_zoo_entry.py --run_dir=runs/fast_deep_gd --command="python train.py"
  python scripts/make_zoo_entry.py --run_dir=runs/sweep/fast/seed_2 --preset=fast \
      --command="python sweep.py --seeds=0,1,2 --configs=fast ..."

What the sidecar records comes from the run itself where the run records it: the seed,
the dtype policy, the steps (the latest checkpoint's, whose weights generator.keras must
hold, so the run has finished since it last started) and the git commit of the code
that trained it (the trainer's last start, from config.json), the training minutes
(losses.csv). Two facts config.json does not hold are flags: --command, the command that
trained the run (train.py records its flags' values, not which were given; sweep.py
records none), and --preset where config.json names none (sweep.py's runs).
"""

from absl import app, flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

from dcgan.evaluation import evaluator  # noqa: E402
from dcgan.experiments import zoo  # noqa: E402
from dcgan.recipes.presets import PRESETS  # noqa: E402
from dcgan.training import progress  # noqa: E402

flags.DEFINE_string("run_dir", None, "The finished run directory.", required=True)
flags.DEFINE_string("command", None, "The command that trained the run, as typed.",
                    required=True)
flags.DEFINE_enum("preset", None, sorted(PRESETS), "The run's preset, where its config.json "
                  "records none (sweep.py's runs); the entry is named after it.")
flags.DEFINE_string("zoo_dir", str(zoo.ZOO_DIR), "Where the entry goes.")
flags.DEFINE_integer("num_samples", evaluator.EvalConfig.num_samples,
                     "Generated images to score: keep eval.py's default for an entry that "
                     "ships, which tests/test_zoo.py holds to it.", lower_bound=1)

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(progress.binary_header("make_zoo_entry.py", [
        f"run {FLAGS.run_dir} into {FLAGS.zoo_dir}",
        f"{FLAGS.num_samples:,} samples against the test split"]), flush=True)
    record = zoo.make_entry(FLAGS.run_dir, FLAGS.command,
                            evaluator.EvalConfig(num_samples=FLAGS.num_samples),
                            FLAGS.preset, FLAGS.zoo_dir)
    metrics = record["metrics"]
    print(f"Wrote {zoo.generator_path(record['preset'], FLAGS.zoo_dir)} "
          f"({record['file']['bytes']:,} bytes) and its sidecar: seed {record['seed']}, "
          f"step {record['step']:,}, FID {metrics['fid']:.4f} "
          f"({metrics['num_samples']:,} samples, seed {metrics['seed']})")


if __name__ == "__main__":
    console.run(main)
