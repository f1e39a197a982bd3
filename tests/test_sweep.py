"""sweep.py end to end on a tiny budget: rows, plot, and a stopped sweep that continues."""

import json
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from conftest import (
    REPO,
    after_prelude,
    assert_no_noise,
    assert_one_error_line,
    checkpoint_steps,
    csv_rows,
    loss_rows,
)

from dcgan.core.errors import ConfigError, SweepError
from dcgan.experiments import leaderboard, sweeps
from dcgan.runtime import hardware


def _sweep(out_dir, minutes, prelude="", configs="fast:batch_size=32"):
    """Runs sweep.py, after the Python code `prelude` in the same process."""
    return subprocess.run(
        [*after_prelude(prelude, REPO / "sweep.py"), f"--configs={configs}",
         "--seeds=3", f"--minutes={minutes}", "--num_samples=200", f"--out_dir={out_dir}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)


# A sweep's runs have epochs=None, so a decaying schedule would have no horizon.
SCHEDULE_BY_MINUTES = "fast:lr_schedule=cosine"
SCHEDULE_REFUSED = (f"Skipping {SCHEDULE_BY_MINUTES}: lr_schedule='cosine' with "
                    "lr_warmup_steps=0 needs the run's length")


# kill -9 when the run is about to save its first checkpoint in this process: in a sweep
# that continues, after the steps of the segment's calls are in losses.csv and before
# they are in a checkpoint or scored.
KILL_BEFORE_FIRST_SAVE = """
import os, signal
import tensorflow as tf
def save(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
tf.train.CheckpointManager.save = save
"""


@pytest.mark.slow
def test_sweep_scores_each_budget_and_continues_after_a_kill_mid_segment(tmp_path):
    # A configuration that fails validation is skipped in one line, the other trained.
    first = _sweep(tmp_path, "0.01", configs=f"fast:batch_size=32,{SCHEDULE_BY_MINUTES}")
    assert first.returncode == 0, first.stderr[-2000:]
    [row] = csv_rows(tmp_path / "sweep.csv")
    assert (row["config"], row["seed"], row["budget_minutes"]) == ("fast:batch_size=32", "3",
                                                                   "0.01")
    assert float(row["minutes"]) >= 0.01 and float(row["fid"]) > 0
    run_dir = tmp_path / "fast_batch_size=32" / "seed_3"
    # The console: sweep.py's header, then per segment its line, the trainer's header and
    # epoch line (the budget ends the first epoch) and the score, then the table.
    # (A generator 10 steps old draws near-copies: the collapse warning, tested in
    # test_diversity, may follow the epoch line.)
    skipped, header, segment, train_header, epoch, score, *table = [
        line for line in first.stdout.splitlines() if not line.startswith("Warning: ")]
    assert skipped.startswith(SCHEDULE_REFUSED), skipped
    assert header == ("sweep.py: configurations fast:batch_size=32; seeds 3; budgets 0.01 "
                      f"minutes; 200 samples per FID; out_dir {tmp_path}; results in "
                      f"{tmp_path}; devices CPU:0; CPU {hardware.cpu_model()}")
    assert segment == "== fast:batch_size=32, seed 3: training to 0.01 minutes"
    assert train_header.startswith("fast: G ") and "global batch 32, " in train_header
    assert train_header.endswith(f"1 replica (CPU:0), run directory {run_dir}")
    # epochs=None: no last epoch; the ETA is the budget's training time left.
    assert re.fullmatch(r"Epoch 1: d_loss .* img/s, elapsed \d+:\d\d, ETA [\d:]+", epoch)
    assert re.fullmatch(rf"   step {row['step']}, [\d.]+ min: FID [\d.]+", score), score
    assert len(table) == 3 and all(line.startswith("|") for line in table), table
    assert row["cpu"] == hardware.cpu_label() and row["default_epoch_minutes"] == ""
    # The code that trained the row, as the run recorded it.
    assert row["commit"] == json.loads((run_dir / "config.json").read_text())["git_commit"]
    assert_no_noise(first.stderr)
    first_segment = int(row["step"])
    assert checkpoint_steps(run_dir) == [first_segment]
    grid = tf.io.decode_png(tf.io.read_file(
        str(tmp_path / "grids" / sweeps.grid_name("fast:batch_size=32", 3, 0.01))))
    assert grid.shape == tf.io.decode_png(tf.io.read_file(str(run_dir / "final_grid.png"))).shape

    # A longer budget list, killed in the new segment: its steps are logged, not saved.
    # (The first call's tracing counts as training time: budget past it.)
    budgets = f"0.01,{float(row['minutes']) + 0.01:.4f}"
    killed = _sweep(tmp_path, budgets, prelude=KILL_BEFORE_FIRST_SAVE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert checkpoint_steps(run_dir) == [first_segment]
    before = loss_rows(run_dir)
    assert len(before) > first_segment
    assert [int(r["step"]) for r in before] == list(range(1, len(before) + 1))

    # The same again: the scored row is kept, the segment restarts from the first
    # segment's checkpoint, and losses.csv goes on from its step.
    second = _sweep(tmp_path, budgets)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "training to 0.01" not in second.stdout
    rows = csv_rows(tmp_path / "sweep.csv")
    assert rows[0] == row
    assert float(rows[1]["budget_minutes"]) == float(budgets.split(",")[1])
    assert float(rows[1]["minutes"]) >= float(rows[1]["budget_minutes"])
    assert int(rows[1]["step"]) > first_segment
    after = loss_rows(run_dir)
    assert [int(r["step"]) for r in after] == list(range(1, int(rows[1]["step"]) + 1))
    # Not retrained from scratch: the first segment's rows, their clock included, are
    # the ones written before the kill, and the clock goes on from there.
    assert after[:first_segment] == before[:first_segment]
    assert (float(after[first_segment]["train_seconds"])
            > float(before[first_segment - 1]["train_seconds"]))
    plot = tf.io.decode_png(tf.io.read_file(str(tmp_path / "fid_vs_minutes.png")))
    assert plot.shape[0] > 100

    # The second row lost (as by a kill between training and scoring), and a budget that
    # the first segment's call reached asked for: that budget's run went a call or more
    # beyond it, so it is skipped in a line; the second is scored again where it stopped
    # (its call's overshoot is its own).
    inside = np.floor(float(row["minutes"]) * 1e4) / 1e4
    assert 0.01 < inside <= float(row["minutes"])
    header, first_row, _ = (tmp_path / "sweep.csv").read_text().splitlines()
    (tmp_path / "sweep.csv").write_text(f"{header}\n{first_row}\n")
    third = _sweep(tmp_path, f"{inside:g},{budgets.split(',')[1]}")
    assert third.returncode == 0, third.stderr[-2000:]
    assert re.search(
        rf"^Skipping fast:batch_size=32, seed 3 at {inside:g} minutes: its run in {run_dir} "
        rf"reached {inside:.4g} min of training at step \d+ and is at step {rows[1]['step']}, "
        r"a call \(10 steps\) or more past it; score it from another --out_dir\.$",
        third.stdout, re.MULTILINE), third.stdout
    assert csv_rows(tmp_path / "sweep.csv") == rows


def test_overrides_are_applied_and_bad_ones_refused():
    config = sweeps.parse_config(
        "fast:d_learning_rate=4e-4:batch_size=64:update=alternating:architecture=fast_sn")
    assert config.discriminator_optimizer.learning_rate == 4e-4
    assert config.model.architecture == "fast_sn"
    assert config.generator_optimizer.learning_rate == 2e-4
    assert config.data.global_batch_size == 64 and config.update == "alternating"
    with pytest.raises(ConfigError, match="Unknown preset"):
        sweeps.parse_config("nope")
    with pytest.raises(ConfigError, match="overridable"):
        sweeps.parse_config("fast:lr=1")
    with pytest.raises(ConfigError, match="Unknown architecture"):
        sweeps.parse_config("fast:architecture=nope")


def test_placement_on_gpus_unless_a_spec_splits_the_cpu():
    # As strategies_for builds them: every GPU for all, or each spec's own logical CPUs.
    assert sweeps.placement({"a": 1, "b": 1}, num_gpus=4) == {"a": (4, True), "b": (4, True)}
    assert sweeps.placement({"a": 1, "b": 2}, num_gpus=4) == {"a": (1, False), "b": (2, False)}
    assert sweeps.placement({"a": 1, "b": 3}, num_gpus=0) == {"a": (1, False), "b": (3, False)}


@pytest.mark.slow
def test_sweep_with_no_valid_configuration_trains_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "sweep.py"), f"--configs={SCHEDULE_BY_MINUTES},nope",
         f"--out_dir={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=REPO)
    # Also sweep.py's one-line error (raised mid-sweep, e.g. an unwritable run directory:
    # the same line, its message checked in test_reliability).
    assert_one_error_line(result, "sweep.py", "None of --configs can train")
    schedule, unknown = result.stdout.splitlines()
    assert schedule.startswith(SCHEDULE_REFUSED), schedule
    assert unknown.startswith("Skipping nope: Unknown preset 'nope'"), unknown
    assert not any(tmp_path.iterdir())


def test_summary_gives_mean_and_range_over_seeds():
    rows = [{"config": "a", "budget_minutes": "5.0", "fid": fid, "minutes": minutes}
            for fid, minutes in (("10", "5.1"), ("20", "5.3"))]
    budgets, mean, low, high, minutes = leaderboard.summarize(rows)["a"]
    assert list(budgets) == [5.0] and list(mean) == [15.0]
    assert (low[0], high[0]) == (10.0, 20.0) and minutes[0] == pytest.approx(5.2)


def _reference_run(run_dir, n_critic=None):
    run_dir.mkdir()
    # n_critic=None: a config.json written before n_critic existed.
    extra = "" if n_critic is None else f', "n_critic": {n_critic}'
    (run_dir / "config.json").write_text(
        f'{{"config": {{"data": {{"global_batch_size": 256}}{extra}}}}}')
    (run_dir / "metrics.csv").write_text("step,checkpoint,fid\n234,ckpt-234,900.5\n"
                                         "468,ckpt-468,700.25\n")
    (run_dir / "losses.csv").write_text("step,train_seconds\n234,120.0\n235,121.0\n"
                                        "468,300.0\n")
    return run_dir


def test_reference_run_at_logged_minutes_or_at_a_given_rate(tmp_path):
    run_dir = _reference_run(tmp_path / "tutorial")
    logged = sweeps.reference_rows(run_dir)
    assert [(row["step"], row["minutes"], row["fid"]) for row in logged] == [
        ("234", 2.0, "900.5"), ("468", 5.0, "700.25")]
    at_rate = sweeps.reference_rows(run_dir, images_per_second=468 * 256 / 60)
    assert [row["minutes"] for row in at_rate] == [0.5, 1.0]
    assert leaderboard.summarize(at_rate)["tutorial (reference run)"][1].tolist() == [900.5, 700.25]


def test_reference_run_at_a_given_rate_counts_every_critic_batch(tmp_path):
    # A wgan_gp step reads 5 batches of 256, and bench.py's rate counts all of them: at
    # 468 * 256 images a minute, step 468 took 5 minutes, not 1.
    run_dir = _reference_run(tmp_path / "wgan_gp", n_critic=5)
    at_rate = sweeps.reference_rows(run_dir, images_per_second=468 * 256 / 60)
    assert [row["minutes"] for row in at_rate] == [2.5, 5.0]


def test_reference_run_must_be_scored(tmp_path):
    (tmp_path / "unscored").mkdir()
    with pytest.raises(SweepError, match="eval.py --run_dir="):
        sweeps.reference_rows(tmp_path / "unscored")


# FIDs over seeds at two budgets. At 5 minutes: a vs b, Welch t = 10 / sqrt(2/3) = 12.2
# on 4 degrees of freedom, beyond t_{0.975, 4} = 2.776 of the tables; c's spread is too
# wide to beat or lose to either (t = 1.0 against a, 0.6 against b).
LEADERBOARD_CSV = """budget_minutes,config,seed,minutes,step,fid
5.0,a,0,5.1,100,10
5.0,a,1,5.2,100,11
5.0,a,2,5.3,100,12
5.0,b,0,5.0,90,20
5.0,b,1,5.0,90,21
5.0,b,2,5.0,90,22
5.0,c,0,5.0,95,10.5
5.0,c,1,5.0,95,30
5.0,c,2,5.0,95,12
10.0,a,0,10.0,200,8
"""


def _leaderboard_rows(tmp_path):
    (tmp_path / "sweep.csv").write_text(LEADERBOARD_CSV)
    return sweeps.SweepLog(tmp_path / "sweep.csv").rows


def test_t_interval_against_the_t_table():
    mean, low, high = leaderboard.t_interval([10.0, 11.0, 12.0])
    # s = 1, t_{0.975, 2} = 4.303 (tables): half-width 4.303 / sqrt(3).
    assert mean == 11.0 and high - mean == pytest.approx(4.303 / 3**0.5, rel=1e-3)
    assert mean - low == pytest.approx(high - mean)
    assert leaderboard.t_interval([7.0])[0] == 7.0 and all(
        value != value for value in leaderboard.t_interval([7.0])[1:])  # NaN: one seed.


def test_differing_pairs_by_welch_test(tmp_path):
    fids = leaderboard.fids_by_budget(_leaderboard_rows(tmp_path))
    assert leaderboard.differing_pairs(fids[5.0]) == [("a", "b")]
    assert leaderboard.differing_pairs(fids[10.0]) == []  # One seed: no claim.


def test_leaderboard_markdown_from_a_sweep_csv(tmp_path):
    table = leaderboard.leaderboard(_leaderboard_rows(tmp_path)).splitlines()
    assert table[0].startswith("| budget (min) | configuration | FID mean |")
    half = 4.303 / 3**0.5
    assert table[2:] == [
        f"| 5 | a | 11.0 | [{11 - half:.1f}, {11 + half:.1f}] | 3 | 5.2 | b |",
        "| 5 | c | 17.5 | [{:.1f}, {:.1f}]".format(*leaderboard.t_interval([10.5, 30, 12])[1:])
        + " | 3 | 5.0 | - |",
        f"| 5 | b | 21.0 | [{21 - half:.1f}, {21 + half:.1f}] | 3 | 5.0 | - |",
        "| 10 | a | 8.0 | - | 1 | 10.0 | - |"]


@pytest.mark.slow
def test_sweep_leaderboard_flag_prints_the_table_and_trains_nothing(tmp_path):
    _leaderboard_rows(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "sweep.py"), "--leaderboard", f"--out_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == leaderboard.leaderboard(_leaderboard_rows(tmp_path))
    assert (tmp_path / "leaderboard.md").read_text() == result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["leaderboard.md", "sweep.csv"]


def test_default_epoch_from_the_timed_steps_then_read_back(tmp_path, monkeypatch):
    # A stand-in for training.train that logs what it would: training seconds per step
    # (1 s a step for the 10 warm-up steps of tracing, then 0.5 s) and steps per epoch.
    trained = []

    def fake_train(config, strategy):
        trained.append(config.max_steps)
        run_dir = pathlib.Path(config.run_dir)
        seconds = [min(step, 10) * 1.0 + max(step - 10, 0) * 0.5
                   for step in range(1, config.max_steps + 1)]
        (run_dir / "losses.csv").write_text("step,train_seconds\n" + "".join(
            f"{step},{value}\n" for step, value in enumerate(seconds, 1)))
        (run_dir / "config.json").write_text('{"steps_per_epoch": 468}')

    monkeypatch.setattr(sweeps.training, "train", fake_train)
    path = tmp_path / "default_epoch.json"
    epoch = sweeps.default_epoch(path, None, "~/tensorflow_datasets", warmup_steps=5,
                                 timed_steps=25)
    # Both rounded up to whole calls of fast's 10 steps: 10 warm-up, 30 timed.
    assert trained == [40] and epoch["timed_steps"] == 30
    assert epoch["seconds_per_step"] == pytest.approx(0.5)
    assert epoch["minutes"] == pytest.approx(0.5 * 468 / 60) and epoch["cpu"]
    # A resumed sweep reads the unit it started with instead of measuring again.
    assert sweeps.default_epoch(path, None, "~/tensorflow_datasets") == epoch
    assert trained == [40]


# A stand-in for sweeps.epoch_cost: an epoch of preset fast (architecture "fast") takes
# 1.5 min, any other configuration's 0.5 min per 32 images of its batch.
FAKE_EPOCH_COST = """
from dcgan.experiments import sweeps
def epoch_cost(config, strategy, timed_steps):
    per_batch = 1.5 if config.model.architecture == "fast" else config.data.global_batch_size / 64
    return {"minutes": per_batch, "cpu": "Some CPU"}
sweeps.epoch_cost = epoch_cost
"""


def test_cost_gives_each_configuration_in_default_epochs(tmp_path):
    result = subprocess.run(
        [*after_prelude(FAKE_EPOCH_COST, REPO / "sweep.py"), "--cost",
         "--configs=fast_deep_gd,fast_deep_gd:batch_size=96:epochs=4", f"--out_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        "One default-epoch (an epoch of preset fast): 1.500 min on Some CPU",
        "fast_deep_gd: one epoch 0.500 min = 0.333 default-epochs; its 9 epochs = 3.00 "
        "default-epochs",
        "fast_deep_gd:batch_size=96:epochs=4: one epoch 1.500 min = 1.000 default-epochs; "
        "its 4 epochs = 4.00 default-epochs"]
    assert not any(tmp_path.iterdir())


def test_leaderboard_in_default_epochs_with_the_lowest_seed_grid(tmp_path):
    rows = _leaderboard_rows(tmp_path)
    grid_dir = tmp_path / "grids"
    grid_dir.mkdir()
    # Seed 0 of "b" has no grid: the row shows seed 1's; "c" has none at all.
    for spec, seed in (("a", 0), ("a", 1), ("b", 1)):
        (grid_dir / sweeps.grid_name(spec, seed, 5.0)).write_bytes(b"png")
    epoch = {"minutes": 2.5, "cpu": "Some CPU @ 1.00GHz"}
    table = leaderboard.leaderboard(rows, epoch, grid_dir).splitlines()
    assert table[0] == ("One default-epoch (an epoch of preset fast): 2.50 min on "
                        "Some CPU @ 1.00GHz.")
    assert table[2].startswith("| budget (default-epochs) |") and table[2].endswith(" samples |")
    assert table[3] == "|---" * 8 + "|"
    without_grids = leaderboard.leaderboard(rows).splitlines()
    # 5 minutes are 2 default-epochs of 2.5 minutes, 10 are 4; the rest of a row is kept.
    grids = ["![a, seed 0](grids/a_seed0_5min.png)", "-", "![b, seed 1](grids/b_seed1_5min.png)",
             "-"]
    assert table[4:] == [
        f"| {budget} | {line.split(' | ', 1)[1]} {grid} |"
        for budget, line, grid in zip(("2", "2", "2", "4"), without_grids[2:], grids)]


def test_grid_name_keeps_a_step_budget_whole():
    assert sweeps.grid_name("fast", 2, 16875, "steps") == "fast_seed2_16875steps.png"
    assert sweeps.grid_name("fast", 0, 15.35, "default_epochs") == (
        "fast_seed0_15.35default_epochs.png")


def test_the_shipped_leaderboard_is_the_table_of_its_sweep_csv():
    """docs/leaderboard and the fast-era board in docs/history are what sweep.py makes of
    the shipped sweep.csv, with a grid that exists for every row: no number typed by hand."""
    docs = REPO / "docs" / "leaderboard"
    table = leaderboard.out_dir_leaderboard(docs, sweeps.SweepLog(docs / "sweep.csv").rows)
    assert (docs / "leaderboard.md").read_text() == table + "\n"
    assert table.replace("](grids/", "](../leaderboard/grids/") in (
        REPO / "docs" / "history" / "leaderboard-fast-era.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # Less the header.
    grids = re.findall(r"\]\((grids/[^)]+)\)", table)
    assert len(grids) == len(rows) > 0
    assert all((docs / grid).is_file() for grid in grids)


def test_the_shipped_board_is_the_table_of_its_rows():
    """docs/board/leaderboard.md is what sweep.py makes of docs/board/sweep.csv (budgets in
    default-epochs, shown as committed), with the rows still missing listed."""
    board = REPO / "docs" / "board"
    log = sweeps.SweepLog(board / "sweep.csv", "default_epochs")
    assert log.rows and all(row["budget_default_epochs"] == "15.35" for row in log.rows)
    table = (board / "leaderboard.md").read_text()
    assert table.startswith(leaderboard.out_dir_leaderboard(board, log.rows) + "\n")
    assert all(f"| 15.35 | {row['config']} |" in table for row in log.rows)


def test_leaderboard_gives_conditional_rows_their_class_scores(tmp_path):
    (tmp_path / "sweep.csv").write_text(
        "budget_minutes,config,seed,minutes,step,fid,intra_fid,class_accuracy\n"
        "5.0,u,0,5.0,90,20,,\n"
        "5.0,k,0,5.0,90,15,30,0.9\n"
        "5.0,k,1,5.0,90,17,34,0.95\n")
    table = leaderboard.leaderboard(sweeps.SweepLog(tmp_path / "sweep.csv").rows).splitlines()
    assert table[0].endswith("| intra-FID mean | class accuracy mean |")
    assert table[2].startswith("| 5 | k | 16.0 |") and table[2].endswith("| 32.0 | 0.925 |")
    assert table[3].startswith("| 5 | u | 20.0 |") and table[3].endswith("| - | - |")



def test_a_schedule_by_epochs_trains_each_budget_in_a_run_of_its_own(tmp_path):
    # A constant rate goes on from budget to budget; a schedule is planned over its budget.
    seed_dir = tmp_path / "fast_lr_schedule=cosine" / "seed_1"
    assert sweeps.run_dir(tmp_path, "fast:lr_schedule=cosine", 1, 18, "epochs") == (
        seed_dir / "epochs_18")
    assert sweeps.run_dir(tmp_path, "fast", 1, 18, "epochs") == tmp_path / "fast" / "seed_1"
    assert sweeps.run_dir(tmp_path, "fast", 1, 5.0, "min") == tmp_path / "fast" / "seed_1"


# fast on the first 320 training images: an epoch is 10 steps at batch 32.
SMALL_FAST = """
import dataclasses
from dcgan.recipes.presets import PRESETS
fast = PRESETS["fast"]
PRESETS["fast"] = dataclasses.replace(
    fast, data=dataclasses.replace(fast.data, split="train[:320]"))
"""


@pytest.mark.slow
def test_sweep_by_epochs_stops_each_run_at_its_step_count(tmp_path):
    spec = "fast:batch_size=32:lr_schedule=cosine"
    result = subprocess.run(
        [*after_prelude(SMALL_FAST, REPO / "sweep.py"), f"--configs={spec}", "--seeds=0",
         "--epochs=2,1", "--num_samples=200", f"--out_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "; budgets 1, 2 epochs; " in result.stdout.splitlines()[0]
    rows = csv_rows(tmp_path / "sweep.csv")
    assert [(row["budget_epochs"], row["step"]) for row in rows] == [("1", "10"), ("2", "20")]
    assert "budget_minutes" not in rows[0]
    for epochs in (1, 2):
        run_dir = sweeps.run_dir(tmp_path, spec, 0, epochs, "epochs")
        assert [int(row["step"]) for row in loss_rows(run_dir)] == list(range(1, 10 * epochs + 1))
        assert (tmp_path / "grids" / sweeps.grid_name(spec, 0, epochs, "epochs")).is_file()
    table = (tmp_path / "leaderboard.md").read_text().splitlines()
    assert table[0].startswith("| budget (epochs) | configuration |")
    # A sweep by minutes may not add its rows to this file.
    with pytest.raises(SweepError, match="holds budgets in epochs, not in min"):
        sweeps.SweepLog(tmp_path / "sweep.csv", "min")
    assert sweeps.SweepLog(tmp_path / "sweep.csv").rows == rows


@pytest.mark.slow
def test_sweep_by_steps_trains_one_and_two_replicas_side_by_side(tmp_path):
    one, two = "fast:batch_size=32", "fast:batch_size=32:cpu_devices=2:per_replica_batch_size=8"
    # One of 3 replicas cannot split the batch of 32: skipped in a line, the others train.
    three = "fast:batch_size=32:cpu_devices=3"
    result = subprocess.run(
        [*after_prelude(SMALL_FAST, REPO / "sweep.py"), f"--configs={one},{two},{three}",
         "--seeds=0", "--steps=20", "--num_samples=200", f"--out_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(f"Skipping {three}: ")
    assert "nearest" in result.stdout.splitlines()[0]
    rows = csv_rows(tmp_path / "sweep.csv")
    assert [(row["config"], row["budget_steps"], row["step"]) for row in rows] == [
        (one, "20", "20"), (two, "20", "20")]
    records = [json.loads((sweeps.run_dir(tmp_path, spec, 0, 20, "steps") / "config.json")
                          .read_text()) for spec in (one, two)]
    assert [record["replicas"] for record in records] == [1, 2]
    # Two replicas of 8: the global batch 16, the rates at sqrt(1/2) of the recipe's.
    assert records[1]["config"]["data"]["global_batch_size"] == 16
    assert records[1]["config"]["generator_optimizer"]["learning_rate"] == pytest.approx(
        records[0]["config"]["generator_optimizer"]["learning_rate"] * 0.5**0.5)
    table = (tmp_path / "leaderboard.md").read_text().splitlines()
    assert table[0].startswith("| budget (steps) | configuration |")

    # A shorter budget asked for later: its run is past it, so no row scores step 20 as 10.
    shorter = subprocess.run(
        [*after_prelude(SMALL_FAST, REPO / "sweep.py"), f"--configs={one}", "--seeds=0",
         "--steps=10", "--num_samples=200", f"--out_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert shorter.returncode == 0, shorter.stderr[-2000:]
    run_dir = sweeps.run_dir(tmp_path, one, 0, 10, "steps")
    assert (f"Skipping {one}, seed 0 at 10 steps: its run in {run_dir} is at step 20, past "
            "this budget's 10; score it from another --out_dir.") in shorter.stdout.splitlines()
    assert csv_rows(tmp_path / "sweep.csv") == rows


def test_cpu_devices_setting_is_read_by_the_sweep_not_the_config():
    spec = "fast:cpu_devices=4:per_replica_batch_size=8"
    assert sweeps.cpu_devices(spec) == 4 and sweeps.cpu_devices("fast") == 1
    assert sweeps.parse_config(spec) == sweeps.parse_config("fast:per_replica_batch_size=8")
    for bad in ("fast:cpu_devices=0", "fast:cpu_devices=two"):
        with pytest.raises(ConfigError, match="cpu_devices must be a positive integer"):
            sweeps.cpu_devices(bad)


BOARD_CSV = """budget_default_epochs,config,seed,minutes,step,fid,default_epoch_minutes,cpu,commit
15.35,fast_deep_gd,0,20.0,100,14,1.2,CPU A,abc
15.35,fast_deep_gd,1,30.0,100,15,1.8,CPU B,abc
15.35,fast_deep_gd,2,20.0,100,13,1.2,CPU A,abc
15.35,hinge,0,20.0,100,20,1.2,CPU A,abc
15.35,hinge,1,20.0,100,22,1.2,CPU A,abc
"""


def _welch_p(a, b):
    """Welch's two-sided p by its formula: t over the unpooled standard error, with the
    Welch-Satterthwaite degrees of freedom."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * scipy.stats.t.sf(abs(t), dof)


def test_rows_in_default_epochs_from_two_machines_and_the_rows_still_missing(tmp_path):
    (tmp_path / "sweep.csv").write_text(BOARD_CSV)
    log = sweeps.SweepLog(tmp_path / "sweep.csv", "default_epochs")
    assert log.has("hinge", 1, 15.35) and not log.has("hinge", 2, 15.35)
    assert log.missing(["fast_deep_gd", "hinge"], [0, 1, 2], [15.35]) == [("hinge", 2, 15.35)]
    with pytest.raises(SweepError, match="holds budgets in default_epochs, not in min"):
        sweeps.SweepLog(tmp_path / "sweep.csv", "min")
    table = leaderboard.leaderboard(log.rows).splitlines()
    assert table[0] == ("Rows trained on: CPU A (4 rows, a default-epoch 1.20 min); "
                        "CPU B (1 row, a default-epoch 1.80 min).")
    assert table[2] == ("| budget (default-epochs) | configuration | FID mean | "
                        "FID 95% t-interval | seeds | trained (min) | "
                        "vs fast_deep_gd (ratio, Welch p) | better than (Welch, 5%) |")
    assert table[4].startswith("| 15.35 | fast_deep_gd | 14.0 | ")
    assert table[4].endswith(" | 3 | 23.3 | - | hinge |")
    assert table[5].endswith(
        f" | 2 | 20.0 | {21 / 14:.2f}, p {_welch_p([20, 22], [14, 15, 13]):.2g} | - |")


# sweep.py with a default-epoch of one minute, not measured (which trains preset fast).
ONE_MINUTE_DEFAULT_EPOCH = """
from dcgan.experiments import sweeps
sweeps.default_epoch = lambda *args: {"minutes": 1.0, "cpu": "Test CPU"}
"""


@pytest.mark.slow
def test_committed_rows_in_default_epochs_are_kept_and_only_missing_ones_trained(tmp_path):
    results = tmp_path / "board"

    def sweep(out_dir, seeds):
        return subprocess.run(
            [*after_prelude(ONE_MINUTE_DEFAULT_EPOCH, REPO / "sweep.py"),
             "--configs=fast:batch_size=32", f"--seeds={seeds}", "--budgets=0.01",
             "--num_samples=200", f"--out_dir={out_dir}", f"--results_dir={results}"],
            capture_output=True, text=True, timeout=600, cwd=REPO)

    first = sweep(tmp_path / "runs_a", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    [row] = csv_rows(results / "sweep.csv")
    assert (row["budget_default_epochs"], row["default_epoch_minutes"]) == ("0.01", "1.0")
    assert (results / "grids" / sweeps.grid_name("fast:batch_size=32", 0, 0.01,
                                                 "default_epochs")).is_file()
    assert "Rows still missing" not in (results / "leaderboard.md").read_text()
    # Another session: its runs are gone (another out_dir), the committed row stays and
    # only the new seed trains.
    second = sweep(tmp_path / "runs_b", "0,1")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "seed 0: training" not in second.stdout and "seed 1: training" in second.stdout
    rows = csv_rows(results / "sweep.csv")
    assert rows[0] == row and [r["seed"] for r in rows] == ["0", "1"]
    assert not (tmp_path / "runs_b" / "fast_batch_size=32" / "seed_0").exists()
    listed = subprocess.run(
        [sys.executable, str(REPO / "sweep.py"), "--leaderboard", f"--results_dir={results}",
         "--configs=fast:batch_size=32", "--seeds=0,1,2", "--budgets=0.01"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.rstrip().endswith(
        "Rows still missing (configuration, seed, budget): fast:batch_size=32, 2, 0.01.")
