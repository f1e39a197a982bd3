"""How spread out a generator's samples are against real images: the check that warns of
a collapse, every z drawing one and the same image (of a class), at each epoch end
(`dcgan.training`, in pixels) and under eval.py's table (`dcgan.evaluation`, in the
metric classifier's features).

It lives on this floor, below both users, because `training` and `evaluation` stand side
by side and import nothing of each other (`dcgan.LAYERS`). Plain numpy float64; knows
nothing of models or files.
"""

import numpy as np

__all__ = ["COLLAPSE_RATIO", "diversity_ratios", "mean_pairwise_distances"]

# Below this ratio (the samples' mean pairwise distance over the real images', within a
# class or over a run) the samples are near-copies of each other. Measured in 2026-12, in
# pixels as the epoch line does (64 samples a class, 256 unconditional, against 1,000
# training images) and in classifier features as eval.py does (2,000-10,000 samples
# against the test split); for a conditional G, per class:
#   real images (other training images, test images)   pixels 0.93-1.01, features 0.93-1.01
#   the model zoo's fast_deep_gd (9 epochs)             pixels 0.95,      features 0.91
#   fast_deep_gd unconditional, 500-1,500 steps         pixels 0.90-1.08, features 0.54-0.70
#   preset conditional, 3 epochs at learning rates 8e-4, 4e-4 and 2e-4 (FID 139, 149, 25):
#     classes whose grid rows are varied                pixels 0.75-0.97, features 0.57-0.96
#     Sandal, Sneaker, Bag, Ankle boot at 8e-4 and
#     4e-4, whose grid rows are one image repeated      pixels 0.09-0.30, features 0.19-0.28
#   a generator that ignores z (one image per class)    0.000 in both
#   untrained Gs, or 8-200 steps in (grey blobs alike)  pixels 0.014-0.12, features 0.014-0.17
# 0.4 lies between the collapsed classes' highest (0.30) and the varied samples' lowest
# (0.54). What it cannot tell from a collapse is a generator that has not learnt yet: the
# epoch line skips the first steps (`training.loop.DIVERSITY_WARMUP_STEPS`), eval.py asks
# for realistic samples too (its precision).
COLLAPSE_RATIO = 0.4

# Elements of one float64 block of pairwise distances (8 MB), whatever the group's size.
_BLOCK_ELEMENTS = 2**20


def _mean_distance(points: np.ndarray) -> float:
    """The mean Euclidean distance over the distinct pairs of `points` [n >= 2, D]."""
    count = len(points)
    squared_norms = np.sum(points**2, axis=1)
    rows = max(1, _BLOCK_ELEMENTS // count)
    total = 0.0
    for start in range(0, count, rows):
        block = points[start:start + rows]
        squared = block @ points.T
        squared *= -2.0
        squared += squared_norms[start:start + rows, None]
        squared += squared_norms[None, :]
        # A point's distance to itself is 0, where rounding of |a|^2 + |a|^2 - 2 a.a would
        # leave a few 1e-16 |a|^2; the mean is over pairs of two points.
        squared[np.arange(len(block)), np.arange(start, start + len(block))] = 0.0
        total += np.sum(np.sqrt(np.maximum(squared, 0.0)))
    return total / (count * (count - 1))


def mean_pairwise_distances(points, labels=None, num_classes=0,
                            max_per_group=None) -> np.ndarray:
    """The mean Euclidean distance between two distinct points of each class (or of all).

        d(group) = 1 / (n (n - 1)) * sum over i != j of || x_i - x_j ||_2

    over the group's n points. It is the U-statistic of E||X - X'|| for two independent
    draws of the group's distribution: unbiased whatever n, so unlike FID, KID or
    precision/recall it may be compared between sample sizes (its variance falls as 1/n).
    Near-copies make it near 0; it does not count modes (two distinct images drawn half
    the time each score their distance), which recall does.

    Computed from |a|^2 + |b|^2 - 2 a.b in float64 blocks of ~8 MB: rounding adds about
    1e-16 |x|^2 to a squared distance, ~3e-7 to a distance between 28x28 images. Cost
    O(n^2 D) per group: 1,000 points of 128 features take ~0.05 s.

    Args:
      points: [N, ...] any float dtype, e.g. images [N, 28, 28, 1] (flattened to D = 784
        pixels) or classifier features [N, 128]. Distances are in its units: compare
        only groups in one space and one pixel range.
      labels: int [N] in [0, num_classes), the group of each point; None: one group of
        all the points.
      num_classes: the number of groups when `labels` is given.
      max_per_group: use only each group's first `max_per_group` points (samples drawn
        independently, so a random subset; the estimate stays unbiased); None: all.

    Returns:
      float64 [num_classes] (labels given) or [1] (labels None), >= 0; NaN for a group of
      fewer than two points, whose distance is undefined.

    Raises:
      ValueError: labels that do not match the points or lie outside [0, num_classes),
        num_classes < 1 with labels, max_per_group < 2, or non-finite points.
    """
    points = np.asarray(points, dtype=np.float64)
    points = points.reshape(len(points), -1)
    if not np.all(np.isfinite(points)):
        raise ValueError("points contains non-finite values")
    if max_per_group is not None and max_per_group < 2:
        raise ValueError(f"max_per_group must be at least 2 (a pair), got {max_per_group}")
    if labels is None:
        groups = [points]
    else:
        labels = np.asarray(labels)
        if labels.shape != (len(points),):
            raise ValueError(f"labels must have shape [{len(points)}], got {labels.shape}")
        if num_classes < 1 or (len(labels) and not 0 <= labels.min() <= labels.max()
                               < num_classes):
            raise ValueError(f"labels must lie in [0, num_classes) with num_classes >= 1, "
                             f"got num_classes={num_classes}")
        groups = [points[labels == label] for label in range(num_classes)]
    return np.array([_mean_distance(group[:max_per_group]) if len(group) >= 2 else np.nan
                     for group in groups])


def diversity_ratios(fake, real_distances, fake_labels=None, max_per_group=None) -> np.ndarray:
    """Each class's (or the run's) generated samples' mean pairwise distance over the real
    images': `mean_pairwise_distances(fake, fake_labels, len(real_distances)) /
    real_distances`.

    About 1 for samples as spread out as the real images, 0 for copies of one image;
    below COLLAPSE_RATIO the samples (of that class) are near-copies of each other. The
    real distances come from `mean_pairwise_distances` of real images in the same space
    and range as `fake` (grouped by their labels when `fake_labels` is given), computed
    once: they do not change while a generator trains.

    Args:
      fake: [N, ...] generated samples or their features, any float dtype.
      real_distances: float [C] > 0 (C = 1 when `fake_labels` is None); NaN for a class
        of fewer than two real images.
      fake_labels: int [N] in [0, C), the class each sample was drawn for; None: one group.
      max_per_group: as in `mean_pairwise_distances`.

    Returns:
      float64 [C] >= 0; NaN for a class with fewer than two samples or a NaN real
      distance (NaN is never below COLLAPSE_RATIO: no warning without a measure).

    Raises:
      ValueError: a non-positive or infinite real distance, C != 1 without labels, or
        what `mean_pairwise_distances` raises.
    """
    real_distances = np.asarray(real_distances, dtype=np.float64)
    if (real_distances.ndim != 1 or not len(real_distances)
            or np.any(np.isinf(real_distances)) or np.any(real_distances <= 0)):
        raise ValueError(f"real_distances must be a non-empty vector of positive distances "
                         f"(or NaN), got {real_distances}")
    if fake_labels is None and len(real_distances) != 1:
        raise ValueError(f"{len(real_distances)} real distances (classes) but no fake_labels")
    fake_distances = mean_pairwise_distances(
        fake, fake_labels, num_classes=len(real_distances), max_per_group=max_per_group)
    return fake_distances / real_distances
