r"""Scores generators with the project's Fashion-MNIST classifier: FID (with two 95% bootstrap
intervals), KID, IS, precision and recall against the real test split; for a conditional
generator also FID within each class, their mean (intra-FID), and the share of samples
classified as the class asked for. Memorisation: "NN ratio" is the median distance of a
sample to its nearest training image over the same for test images (about 1 unless G
copies, near 0 if it does), "copies" the share of samples closer to a training image than
any test image is; memorisation.png shows the closest pairs. A "Warning: ... mode
collapse" line under a row says that its samples are near-copies of each other (their
spread in classifier features far below the test images') or, realistic, cover almost
none of the test images (recall near 0): a collapse, or a generator too early in its
training.

FID's intervals: "FID 95% (G only)" resamples the generated images only, the test split's
statistics fixed: this run's FID against this reference. "FID 95% (G+test)" resamples the
test split too: the distance to the real data's distribution, the interval to compare
runs by.

  python eval.py                                    # every new checkpoint of runs/fast_deep_gd
                                                    # (none: the model zoo's generator)
  python eval.py --run_dir=runs/fashion128 --watch  # keep up with a run while it trains
  python eval.py --generator=runs/fast_deep_gd/generator.keras
"""

import math
import time

from absl import app, flags

from dcgan.runtime import console

console.quiet_startup()  # Before TensorFlow loads.

from dcgan import data  # noqa: E402
from dcgan.core.config import DEFAULT_DATA_DIR  # noqa: E402
from dcgan.evaluation import classifier, evaluator  # noqa: E402
from dcgan.experiments import zoo  # noqa: E402
from dcgan.gan import diversity  # noqa: E402
from dcgan.recipes.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from dcgan.rundir import checkpoints  # noqa: E402
from dcgan.runtime.files import check_writable, write_json  # noqa: E402
from dcgan.training import progress  # noqa: E402

flags.DEFINE_string("run_dir", PRESETS[DEFAULT_PRESET].run_dir,
                    "Run directory whose checkpoints to score. Left at its default while it "
                    "has no checkpoint (and without --generator or --watch): the model "
                    f"zoo's generator of preset {DEFAULT_PRESET}, dcgan/assets/zoo/.")
flags.DEFINE_string("generator", None, "Score this exported .keras generator instead "
                    "(writes nothing unless --output_json is given).")
flags.DEFINE_string("output_json", None, "Where to write the metrics of the generator "
                    "scored (--generator, or the model zoo's).")
flags.DEFINE_integer("num_samples", evaluator.EvalConfig.num_samples,
                     "Generated images per evaluation.", lower_bound=1)
flags.DEFINE_integer("seed", evaluator.EvalConfig.seed, "Seeds the noise of the generated "
                     "images.")
flags.DEFINE_bool("watch", False, "Keep evaluating new checkpoints as training writes them.")
flags.DEFINE_integer("poll_seconds", 30, "With --watch: how often to look.", lower_bound=1)
flags.DEFINE_integer("idle_minutes", 30, "With --watch: stop after this long without a new "
                     "checkpoint.", lower_bound=1)
flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR, "TFDS data directory.")
flags.DEFINE_string("memorisation_split", "train", "The training images (a TFDS split) "
                    "whose nearest neighbours the memorisation check measures.")

FLAGS = flags.FLAGS


def _format(row) -> str:
    """A row as a line of the HEADER table, and for a conditional G one line per class."""
    # Rows scored before these columns existed lack them.
    one_sample, two_sample = (
        f"{row[low]:.2f}-{row[high]:.2f}" if low in row else "-"
        for low, high in (("fid_low", "fid_high"), ("fid_pair_low", "fid_pair_high")))
    copying = (f"{row['memorisation_ratio']:>7.3f} {row['memorisation_share']:>7.4f}"
               if "memorisation_ratio" in row else f"{'-':>7} {'-':>7}")
    line = (f"{row.get('step', '-'):>8} {row['fid']:>10.4f} {one_sample:>17} {two_sample:>17} "
            f"{row['kid_mean']:>10.6f} "
            f"{row['kid_std']:>9.6f} {row['is_mean']:>7.4f} {row['is_std']:>7.4f} "
            f"{row['precision']:>9.4f} {row['recall']:>7.4f} {copying}")
    if "intra_fid" not in row:
        return line
    indent = " " * 9
    per_class = [f"{indent}{name:<12} FID {row[evaluator.class_column('fid', name)]:>10.4f}   "
                 f"classified as asked {row[evaluator.class_column('accuracy', name)]:.4f}"
                 for name in data.CLASS_NAMES]
    return "\n".join([line, f"{indent}intra-FID {row['intra_fid']:.4f}, classified as the "
                      f"class asked for {row['class_accuracy']:.4f}", *per_class])


HEADER = (f"{'step':>8} {'FID':>10} {'FID 95% (G only)':>17} {'FID 95% (G+test)':>17} "
          f"{'KID':>10} {'KID std':>9} "
          f"{'IS':>7} {'IS std':>7} {'precision':>9} {'recall':>7} {'NN ratio':>7} "
          f"{'copies':>7}")


# Samples that are near-copies of each other (diversity below `diversity.COLLAPSE_RATIO`),
# or realistic ones (precision at least COLLAPSE_PRECISION) that cover almost none of the
# test images (recall below COLLAPSE_RECALL): a few images drawn again and again, as in
# the collapsed conditional run of issue 39 (precision 0.9999, recall 0.000). A generator
# that has not learnt yet draws near-copies too (8 steps in: diversity 0.03, precision
# 1.0, the grey blobs falling inside the test images' k-NN balls), which no score here
# tells from a collapse: the warning names both. Low recall at low precision is a
# generator far from the data, which FID already says.
COLLAPSE_PRECISION = 0.5
COLLAPSE_RECALL = 0.05


def _collapse_warning(row) -> str | None:
    """The line printed under a row whose samples look collapsed, or None (see
    COLLAPSE_PRECISION; rows scored before the "diversity" column lack it)."""
    reasons = []
    if row.get("diversity", math.inf) < diversity.COLLAPSE_RATIO:
        samples = "the samples of a class" if "intra_fid" in row else "the samples"
        reasons.append(f"{samples} are near-copies of each other (their mean distance in "
                       f"classifier features is {row['diversity']:.2g} of the test images'; "
                       f"below {diversity.COLLAPSE_RATIO})")
    if row["recall"] < COLLAPSE_RECALL and row["precision"] >= COLLAPSE_PRECISION:
        reasons.append(f"recall {row['recall']:.3f} at precision {row['precision']:.3f}: "
                       "realistic samples that cover almost none of the test images")
    if not reasons:
        return None
    step = f"step {row['step']}: " if "step" in row else ""
    return (f"Warning: {step}mode collapse, or a generator that has not learnt yet: "
            f"{'; '.join(reasons)}")


def _print_row(line: str, row) -> None:
    """`line` (the row as `_format` made it), then its collapse warning if any."""
    warning = _collapse_warning(row)
    print(line if warning is None else f"{line}\n{warning}", flush=True)


def _header(scored: str, config) -> str:
    """eval.py's first line: what it scores, with which classifier, on how many images."""
    memorisation = (f"memorisation against {config.train_split}" if config.train_split
                    else "no memorisation check")
    return progress.binary_header("eval.py", [
        scored, f"classifier v{classifier.CLASSIFIER_VERSION} "
                f"(sha256 {classifier.CLASSIFIER_SHA256[:12]})",
        f"{config.num_samples:,} samples against the test split", memorisation])


def _evaluate_run(scorer):
    """Scores the run's checkpoints, each row followed by how many are done, the time
    since the first and the ETA."""
    countdown = None

    def start(num_new):
        nonlocal countdown
        countdown = progress.Countdown(num_new)

    def report(row):
        if countdown is None:  # Scored before: no time to report.
            _print_row(_format(row), row)
            return
        countdown.advance()
        first, *rest = _format(row).split("\n")
        _print_row("\n".join([f"{first}   {countdown.done}/{countdown.total}, "
                              f"{countdown.timing()}", *rest]), row)

    print(HEADER)
    evaluator.evaluate_run(FLAGS.run_dir, scorer, on_row=report, include_cached=True,
                           on_start=start)
    if not FLAGS.watch:
        return
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < FLAGS.idle_minutes * 60:
        time.sleep(FLAGS.poll_seconds)
        _, evaluated = evaluator.evaluate_run(FLAGS.run_dir, scorer, on_row=report,
                                              on_start=start)
        if evaluated:
            idle_since = time.monotonic()
    print(f"No new checkpoint for {FLAGS.idle_minutes} minutes; stopping.")


def _generator_path() -> str | None:
    """The .keras file to score, or None to score the run's checkpoints: --generator, or
    the model zoo's entry of the default preset (saying so) when no flag names what to
    score and the default run directory has no checkpoint."""
    if (FLAGS.generator or FLAGS.watch or not FLAGS["run_dir"].using_default_value
            or checkpoints.list_checkpoints(FLAGS.run_dir)):
        return FLAGS.generator
    print(zoo.fallback_line(f"{FLAGS.run_dir} has no checkpoint", DEFAULT_PRESET))
    return str(zoo.generator_path(DEFAULT_PRESET))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = evaluator.EvalConfig(num_samples=FLAGS.num_samples, seed=FLAGS.seed,
                                  data_dir=FLAGS.data_dir, train_split=FLAGS.memorisation_split)
    if FLAGS.output_json:
        check_writable(FLAGS.output_json)  # Not after the whole evaluation.
    path = _generator_path()
    generator = checkpoints.load_generator(path) if path else None
    if generator is None:
        # Before the evaluator embeds the real images (a minute unless they are cached).
        num_checkpoints = len(evaluator.checkpoints_to_score(FLAGS.run_dir))
        print(_header(f"run {FLAGS.run_dir}, {num_checkpoints} checkpoint"
                      f"{'s' * (num_checkpoints != 1)}", config), flush=True)
        _evaluate_run(evaluator.Evaluator(config))
        return
    print(_header(f"generator {path}", config), flush=True)
    report = evaluator.Evaluator(config).report(generator)
    print(HEADER)
    _print_row(_format(report), report)
    if path != FLAGS.generator:  # The zoo's entry, in place of the run.
        print(zoo.recorded_fid_line(report, DEFAULT_PRESET))
    if FLAGS.output_json:
        write_json(FLAGS.output_json, report)


if __name__ == "__main__":
    console.run(main)
