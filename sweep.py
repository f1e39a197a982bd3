r"""Trains configurations for the same training time each and scores FID against minutes.

  python sweep.py --configs=tutorial,fast --seeds=0,1,2 --minutes=5,10,20
  python sweep.py --configs=fast,fast:d_learning_rate=4e-4,fast:batch_size=256 --minutes=5
  python sweep.py --configs=fast,fast:loss=hinge --seeds=0,1,2 --budgets=2,5,10
  python sweep.py --configs=fast,fast:lr_schedule=cosine --seeds=0,1,2 --epochs=6,18
  python sweep.py --configs=fast_deep_gd,hinge --seeds=0,1,2 --budgets=17.2 \
      --results_dir=docs/board      # the README's board, rows committed
  python sweep.py --configs=fast_deep_gd --cost   # what its 9 epochs cost in default-epochs

A configuration is a preset, optionally with overrides `preset:flag=value:flag=value` of
train.py's flags listed in `dcgan.recipes.overrides.OVERRIDES` (a list value joined by "+", e.g.
`fast:augment=translation+cutout`). Each (configuration, seed) trains in
<out_dir>/<configuration>/seed_<seed>, one segment per entry of --minutes (training time,
start-up and pictures excluded), and its latest checkpoint is scored after each segment.
Rows go to <results_dir>/sweep.csv (--results_dir, default --out_dir), each scored
run's final sample grid to <results_dir>/grids/, and the curves to
<results_dir>/fid_vs_minutes.png.

Stopped and re-run with the same flags, a sweep continues where it was: scored rows are
kept and every run resumes from its latest checkpoint. A budget that a run has already
trained past (a shorter one asked for after a longer; by the clock, a call or more past it)
is skipped in a line: its row needs another --out_dir. Rows are data: in a committed
--results_dir, a later session (on another machine too, with budgets in default-epochs)
trains only the rows still missing, from scratch where its runs are gone. A configuration
that fails validation is reported in one line and the others go on.

The table printed at the end (and by `--leaderboard`, which trains nothing) gives per
budget the mean FID over seeds with its 95% t-interval, and which configurations beat
which by Welch's t-test at 5%, with a grid per row, and then the rows still missing; it is
also written to <results_dir>/leaderboard.md, whose links point into grids/.

--epochs gives budgets as epochs of each configuration's own batch instead of a clock:
the same steps on any machine, however loaded. Equal epochs are equal wall-clock only
between configurations of equal step cost (bench.py measures the ratio); sweep.csv's
`minutes` are what each run took. A configuration with a learning-rate schedule plans
it over its budget, so it trains each budget from scratch in seed_<seed>/epochs_<budget>;
the others continue one run from budget to budget.

--steps gives budgets as steps (G updates), e.g. to compare global batches per update. A
configuration's `cpu_devices=N` trains it on N logical CPU devices, one replica each (as
train.py's --cpu_devices), so that one sweep holds 1 and 4 replicas side by side:

  python sweep.py --configs=fast_deep_gd,fast_deep_gd:cpu_devices=4:per_replica_batch_size=32 \
      --steps=4219 --seeds=0,1

--reference_run adds a run trained and scored before (train.py, then eval.py) to the plot
and the table, e.g. the tutorial's 50 epochs; --reference_images_per_second places its
checkpoints at the minutes they take at that rate (bench.py's), for a run whose logged
time was on a shared machine.
"""

import dataclasses
import pathlib
import shutil

from absl import app, flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

from dcgan import training  # noqa: E402
from dcgan.core.config import DEFAULT_DATA_DIR  # noqa: E402
from dcgan.core.errors import ConfigError  # noqa: E402
from dcgan.evaluation import evaluator  # noqa: E402
from dcgan.experiments import leaderboard, sweeps  # noqa: E402
from dcgan.recipes import scaling, validation  # noqa: E402
from dcgan.rundir import checkpoints, loss_log  # noqa: E402
from dcgan.rundir.layout import RunDirectory  # noqa: E402
from dcgan.runtime import distribute, hardware  # noqa: E402
from dcgan.runtime.files import atomic_path, write_text  # noqa: E402
from dcgan.training import progress  # noqa: E402

flags.DEFINE_list("configs", ["tutorial", "fast"], "Configurations: preset[:flag=value...].")
flags.DEFINE_list("seeds", ["0"], "Seeds; each configuration runs once per seed.")
flags.DEFINE_list("minutes", ["5", "10", "20"], "Training minutes at which FID is scored.")
flags.DEFINE_list("budgets", None, "Instead of --minutes: budgets in default-epochs, the "
                  "wall-clock of one epoch of preset fast on this machine, measured at the "
                  "sweep's start into <out_dir>/default_epoch.json (with the CPU model) and "
                  "recorded in each row.")
flags.DEFINE_list("epochs", None, "Instead of --minutes: budgets in epochs of each "
                  "configuration, stopped by its step count rather than the clock (with a "
                  "per_replica_batch_size, the recipe's epochs: k times them unless "
                  "scaling_keeps=epochs).")
flags.DEFINE_list("steps", None, "Instead of --minutes: budgets in steps (G updates) of each "
                  "configuration, e.g. to compare global batches per update.")
flags.DEFINE_string("out_dir", "runs/sweep", "Where the runs go, and the results unless "
                    "--results_dir is given.")
flags.DEFINE_string("results_dir", None, "Where sweep.csv, the grids, the plot and "
                    "leaderboard.md go (default --out_dir): a committed directory, e.g. "
                    "docs/board, keeps the rows for later sessions to add to.")
flags.DEFINE_integer("num_samples", 10_000, "Generated images per FID.", lower_bound=129)
flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "TFDS data directory.")
flags.DEFINE_string("reference_run", None, "A run directory scored by eval.py to draw too.")
flags.DEFINE_float("reference_images_per_second", None, "Place the reference run's "
                   "checkpoints at this training rate instead of its logged minutes.")
flags.DEFINE_bool("leaderboard", False, "Train nothing: print (and write to leaderboard.md) "
                  "the markdown table of the results' sweep.csv (mean FID, 95% t-interval, "
                  "Welch's t-tests, grids) and, given --configs, the rows of --configs x "
                  "--seeds x the budgets still missing.")
flags.DEFINE_bool("cost", False, "Score nothing: time a short run of preset fast and of each "
                  "of --configs back to back, and print what one epoch, and each preset's own "
                  "epochs, cost in default-epochs here: the --budgets of equal wall-clock.")

FLAGS = flags.FLAGS

def run_config(spec: str, seed: int, run_dir: pathlib.Path, budget, unit: str):
    """The configuration `spec` trained with `seed` in `run_dir` for `budget` in all, in
    `unit`: "epochs", "steps" or "min" (minutes). By minutes, epochs=None, so only the
    clock stops it (and a learning-rate schedule, whose horizon that leaves unknown, is
    refused by `dcgan.recipes.validation.validate`)."""
    config = sweeps.parse_config(spec)
    return dataclasses.replace(
        config, run_dir=str(run_dir), seed=seed, epochs=budget if unit == "epochs" else None,
        max_steps=budget if unit == "steps" else config.max_steps,
        max_train_minutes=budget if unit == "min" else None,
        data=dataclasses.replace(config.data, data_dir=FLAGS.data_dir))


def valid_configs(budget, unit) -> list[str]:
    """The --configs that pass validation at `budget` on the replicas they will train on
    (`sweeps.placement`), each other one reported in a line, in the order of --configs: a
    bad configuration is refused before hours of training, and the others go on."""
    errors, devices = {}, {}
    for spec in FLAGS.configs:
        try:
            devices[spec] = sweeps.cpu_devices(spec)
        except ConfigError as error:
            errors[spec] = error
    for spec, (replicas, on_gpus) in sweeps.placement(devices, distribute.num_gpus()).items():
        try:
            config = run_config(spec, 0, pathlib.Path(FLAGS.out_dir), budget, unit)
            validation.validate(scaling.scale_for_replicas(config, replicas)[0], replicas,
                                replicas_on_gpus=on_gpus)
        except ConfigError as error:
            errors[spec] = error
    for spec, error in sorted(errors.items(), key=lambda item: FLAGS.configs.index(item[0])):
        print(f"Skipping {spec}: {error}", flush=True)
    return [spec for spec in FLAGS.configs if spec not in errors]


def print_leaderboard(results_dir: pathlib.Path, rows, missing):
    """The leaderboard of `rows`, with the grids of <results_dir>/grids and the `missing`
    (config, seed, budget) listed after it; also written to <results_dir>/leaderboard.md."""
    table = leaderboard.out_dir_leaderboard(results_dir, rows)
    if missing:
        table += "\n\nRows still missing (configuration, seed, budget): " + "; ".join(
            f"{spec}, {seed}, {budget:g}" for spec, seed, budget in missing) + "."
    write_text(results_dir / "leaderboard.md", table + "\n")
    print(table)


def print_costs(strategy, timed_steps=600):
    """What --configs cost on this machine in default-epochs (sweep.py --cost), measured
    back to back with preset fast's epoch, the unit: the budget to give --budgets for a
    configuration's own epochs, e.g. the default's cost for the board."""
    def cost(spec):
        config = sweeps.parse_config(spec)
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, data_dir=FLAGS.data_dir))
        return config, sweeps.epoch_cost(config, strategy, timed_steps=timed_steps)

    _, unit = cost("fast")
    print(f"One default-epoch (an epoch of preset fast): {unit['minutes']:.3f} min on "
          f"{unit['cpu']}", flush=True)
    for spec in FLAGS.configs:
        config, epoch = cost(spec)
        in_units = epoch["minutes"] / unit["minutes"]
        print(f"{spec}: one epoch {epoch['minutes']:.3f} min = {in_units:.3f} default-epochs; "
              f"its {config.epochs} epochs = {in_units * config.epochs:.2f} default-epochs",
              flush=True)


def strategies_for(specs) -> dict:
    """{spec: its strategy}: with no `cpu_devices` setting among `specs`, every one trains
    on `distribute.make_strategy()` (every GPU, else the CPU); otherwise the CPU is split
    into as many logical devices as the largest setting asks, and each spec trains on
    the first `cpu_devices` of them (1 without the setting)."""
    devices = {spec: sweeps.cpu_devices(spec) for spec in specs}
    if max(devices.values()) == 1:
        strategy = distribute.make_strategy()
        return dict.fromkeys(specs, strategy)
    distribute.split_cpu(max(devices.values()))
    by_count = {count: distribute.cpu_strategy(count) for count in set(devices.values())}
    return {spec: by_count[count] for spec, count in devices.items()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if sum(bool(budgets) for budgets in (FLAGS.budgets, FLAGS.epochs, FLAGS.steps)) > 1:
        raise app.UsageError("Give one of --budgets (default-epochs), --epochs, --steps.")
    if (FLAGS.epochs or FLAGS.steps) and FLAGS.reference_run:
        raise app.UsageError("--reference_run places a run by its minutes: not with --epochs "
                             "or --steps.")
    out_dir = pathlib.Path(FLAGS.out_dir)
    results_dir = pathlib.Path(FLAGS.results_dir or out_dir)
    unit = ("epochs" if FLAGS.epochs else "steps" if FLAGS.steps
            else "default_epochs" if FLAGS.budgets else "min")
    budgets = sorted((int if unit in sweeps.STEP_COUNT_UNITS else float)(budget)
                     for budget in FLAGS.epochs or FLAGS.steps or FLAGS.budgets or FLAGS.minutes)
    seeds = [int(seed) for seed in FLAGS.seeds]
    if FLAGS.leaderboard:
        log = sweeps.SweepLog(results_dir / "sweep.csv")
        missing = log.missing(FLAGS.configs, seeds, budgets) if FLAGS["configs"].present else []
        print_leaderboard(results_dir, log.rows, missing)
        return
    if FLAGS.cost:
        print_costs(distribute.make_strategy())
        return
    unit_name = {"default_epochs": "default-epochs", "min": "minutes"}.get(unit, unit)
    # Minutes reach the run as max_train_minutes, default-epochs as their minutes.
    run_unit = "min" if unit == "default_epochs" else unit
    specs = valid_configs(budgets[0], run_unit)
    if not specs:
        raise ConfigError("None of --configs can train: each was refused above.")
    # Before any other op, which would leave the CPU unsplit; "fast" times the default-epoch.
    strategies = strategies_for([*specs, "fast"])
    print(progress.binary_header("sweep.py", [
        f"configurations {', '.join(specs)}", f"seeds {', '.join(FLAGS.seeds)}",
        f"budgets {', '.join(f'{budget:g}' for budget in budgets)} {unit_name}",
        f"{FLAGS.num_samples:,} samples per FID", f"out_dir {out_dir}",
        f"results in {results_dir}"]), flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    log = sweeps.SweepLog(results_dir / "sweep.csv", unit)
    # sweep.csv keeps no memorisation columns: skip embedding the training split.
    scorer = evaluator.Evaluator(evaluator.EvalConfig(num_samples=FLAGS.num_samples,
                                                      data_dir=FLAGS.data_dir, train_split=None))
    epoch_minutes = None
    if FLAGS.budgets:
        epoch = sweeps.default_epoch(out_dir / "default_epoch.json", strategies["fast"],
                                     FLAGS.data_dir)
        epoch_minutes = epoch["minutes"]
        print(f"One default-epoch: {epoch_minutes:.2f} min on {epoch['cpu']}")
    reference = []
    if FLAGS.reference_run:
        reference = sweeps.reference_rows(pathlib.Path(FLAGS.reference_run),
                                          FLAGS.reference_images_per_second)
    for seed in seeds:
        for spec in specs:
            for budget in budgets:
                if log.has(spec, seed, budget):
                    continue
                run_dir = sweeps.run_dir(out_dir, spec, seed, budget, unit)
                training_budget = budget * epoch_minutes if epoch_minutes else budget
                config = run_config(spec, seed, run_dir, training_budget, run_unit)
                past = sweeps.past_budget(config, run_dir,
                                          strategies[spec].num_replicas_in_sync)
                if past:
                    print(f"Skipping {spec}, seed {seed} at {budget:g} {unit_name}: {past}",
                          flush=True)
                    continue
                print(f"== {spec}, seed {seed}: training to {budget:g} {unit_name}")
                result = training.train(config, strategies[spec])
                generator = checkpoints.restore_generator(run_dir)
                row = {log.budget_column: budget, "config": spec, "seed": seed,
                       "minutes": loss_log.trained_minutes(run_dir, result["step"]),
                       "step": result["step"], **scorer.evaluate(generator),
                       "default_epoch_minutes": epoch_minutes or "",
                       "cpu": hardware.cpu_label(),
                       "commit": RunDirectory(run_dir).read_record()["git_commit"]}
                (results_dir / sweeps.GRID_DIR).mkdir(exist_ok=True)
                # Atomic, as every file of a run: a kill leaves no half-written grid.
                grid = results_dir / sweeps.GRID_DIR / sweeps.grid_name(spec, seed, budget, unit)
                with atomic_path(grid) as partial:
                    shutil.copyfile(run_dir / "final_grid.png", partial)
                log.add({key: row.get(key, "")
                         for key in (log.budget_column,) + sweeps.SWEEP_COLUMNS})
                print(f"   step {row['step']}, {row['minutes']:.2f} min: "
                      f"FID {row['fid']:.2f}")
                leaderboard.plot(results_dir / "fid_vs_minutes.png", log.rows + reference)
    leaderboard.plot(results_dir / "fid_vs_minutes.png", log.rows + reference)
    print_leaderboard(results_dir, log.rows + reference, log.missing(specs, seeds, budgets))


if __name__ == "__main__":
    console.run(main)
