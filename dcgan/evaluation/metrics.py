"""Sample-based GAN metrics computed from classifier outputs, in numpy float64.

The functions take features or class probabilities (see `dcgan.evaluation.classifier.embed`), never
images: which network produced them is the caller's choice, and a score is comparable only
with scores computed by the same network on the same number of samples (every estimator
here depends on N). Report N with every score.

  * `fid` / `frechet_distance`: Frechet distance between Gaussians fitted to features.
  * `kernel_inception_distance`: unbiased MMD^2 with a cubic polynomial kernel.
  * `inception_score`: exp of the mean KL divergence between p(y|x) and p(y).
  * `per_class_fid`, `per_class_accuracy`: for conditional generators, FID within each
    class and how often the classifier names the class that was asked for.

Elsewhere: FID's bootstrap interval in `dcgan.evaluation.bootstrap`; the measures built on nearest
neighbours (precision/recall, the memorisation check) in `dcgan.evaluation.neighbours`. The input
checks below (`finite_array`, `features_pair`, `fid_features`) are shared with them.
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "FrechetDistance",
    "MeanAndStd",
    "features_pair",
    "fid",
    "fid_features",
    "finite_array",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "per_class_accuracy",
    "per_class_fid",
    "symmetric_sqrt",
]

# Rounding can leave the distance of (near-)identical distributions slightly below zero;
# within this fraction of tr(sigma1) + tr(sigma2) that is reported as 0 (pytorch-fid#105).
_NEGATIVE_TOLERANCE = 1e-8


class FrechetDistance(NamedTuple):
    """A Frechet distance: `value` is `raw` with rounding noise below zero clamped to 0."""

    value: float
    raw: float


class MeanAndStd(NamedTuple):
    """Mean and (population) standard deviation of an estimate over subsets or splits."""

    mean: float
    std: float


def finite_array(values, name, ndim) -> np.ndarray:
    """`values` as a float64 array of `ndim` dimensions; ValueError (naming `name`) if it has
    another number of dimensions or a non-finite entry."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains non-finite values")
    return values


def features_pair(real, fake) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of features [N, D] of one D as float64 (see `finite_array`)."""
    real = finite_array(real, "real features", 2)
    fake = finite_array(fake, "fake features", 2)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: "
                         f"{real.shape[1]} vs {fake.shape[1]}")
    return real, fake


def symmetric_sqrt(matrix) -> np.ndarray:
    """The PSD square root of a symmetric PSD matrix; rounding's negative eigenvalues -> 0."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> FrechetDistance:
    """Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

        d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))

    (Dowson & Landau 1982; as FID in Heusel et al. 2017, https://arxiv.org/abs/1706.08500).

    sigma1 sigma2 is not symmetric, and `scipy.linalg.sqrtm` of it can return complex or
    NaN entries (TTUR#4). With A = sigma1^(1/2), sigma1 sigma2 = A (A sigma2), and A B has
    the eigenvalues of B A = A sigma2 A, which is symmetric PSD. So
    tr((sigma1 sigma2)^(1/2)) is the sum of the square roots of the eigenvalues of
    A sigma2 A, computed with `eigh` in real arithmetic.

    Args:
      mu1, mu2: means, [D], any float dtype (computed in float64).
      sigma1, sigma2: covariances, [D, D], symmetric positive semi-definite.

    Returns:
      FrechetDistance(value, raw) in float64: `raw` as computed, `value` clamped to 0 when
      `raw` is negative by rounding noise only.

    Raises:
      ValueError: mismatched shapes, non-finite input, or a distance negative beyond
        rounding (e.g. a covariance that is not PSD).
    """
    mu1, mu2 = finite_array(mu1, "mu1", 1), finite_array(mu2, "mu2", 1)
    sigma1, sigma2 = finite_array(sigma1, "sigma1", 2), finite_array(sigma2, "sigma2", 2)
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    sqrt_sigma1 = symmetric_sqrt(sigma1)
    product = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt_product = np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None)))
    trace_sum = np.trace(sigma1) + np.trace(sigma2)
    raw = float(np.sum((mu1 - mu2) ** 2) + trace_sum - 2 * trace_sqrt_product)
    if raw < -_NEGATIVE_TOLERANCE * max(trace_sum, 1.0):
        raise ValueError(f"Frechet distance {raw} is negative beyond rounding: are sigma1 and "
                         "sigma2 symmetric positive semi-definite?")
    return FrechetDistance(value=max(raw, 0.0), raw=raw)


def fid(real_features, fake_features) -> FrechetDistance:
    """Frechet distance between Gaussians fitted to two sets of features (FID).

    Heusel et al. 2017, https://arxiv.org/abs/1706.08500, on whatever features it is given
    (in dcgan those of `dcgan.evaluation.classifier`, so not comparable with published Inception-v3
    FIDs). Mean and unbiased covariance (ddof=1) in float64, then `frechet_distance`.

    Bias: the estimate is biased upwards, more so for small N (two samples of one
    distribution give FID > 0; the bias falls roughly like 1/N, Chong & Forsyth 2020,
    https://arxiv.org/abs/1911.07023), so compare FIDs only at equal N. Each covariance
    needs N > D to be non-singular; use N >= 10,000 (the full test split) for reported
    numbers.

    Args:
      real_features: [N_real, D], any float dtype.
      fake_features: [N_fake, D].

    Returns:
      FrechetDistance(value, raw), float64.

    Raises:
      ValueError: a set with N <= D, mismatched D, or non-finite features.
    """
    real, fake = fid_features(real_features, fake_features)
    return frechet_distance(real.mean(axis=0), np.cov(real, rowvar=False),
                            fake.mean(axis=0), np.cov(fake, rowvar=False))


def fid_features(real_features, fake_features) -> tuple[np.ndarray, np.ndarray]:
    """`features_pair`, refusing a set too small for a non-singular covariance."""
    real, fake = features_pair(real_features, fake_features)
    dim = real.shape[1]
    for name, features in (("real", real), ("fake", fake)):
        if len(features) <= dim:
            raise ValueError(
                f"FID needs more {name} samples than feature dimensions ({dim}) for a "
                f"non-singular covariance: got {len(features)}, need at least {dim + 1} "
                "(use >= 10,000 for reported numbers).")
    return real, fake


def _polynomial_mmd2(x, y) -> float:
    """Unbiased MMD^2 of two equal-size samples under k(a, b) = (a.b / d + 1)^3."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(off_diagonal - 2 * k_xy.mean())


def kernel_inception_distance(real_features, fake_features, num_subsets=100, subset_size=1000,
                              seed=0) -> MeanAndStd:
    """Kernel Inception Distance: unbiased MMD^2 between features (KID).

    Binkowski et al. 2018, "Demystifying MMD GANs", https://arxiv.org/abs/1801.01401.
    Kernel k(x, y) = (x.y / D + 1)^3. For each of `num_subsets` subsets, `subset_size`
    real and `subset_size` fake features are drawn without replacement and

        MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
                - 2 sum_{i, j} k(x_i, y_j) / m^2.

    Unbiased: its expectation is the population MMD^2 at any m, 0 for equal distributions,
    so it can come out negative. Unlike FID it is comparable across sample sizes, though its
    variance grows as m shrinks; m = 1000 and 100 subsets follow the paper. Needs
    N >= subset_size >= 2 in each set.

    Args:
      real_features: [N_real, D], any float dtype.
      fake_features: [N_fake, D].
      num_subsets: number of subsets averaged.
      subset_size: m, features drawn from each set per subset.
      seed: seeds the subset draws (numpy `default_rng`).

    Returns:
      MeanAndStd of MMD^2 over the subsets, float64 (the std is the spread of one subset's
      estimate, not the standard error of the mean).

    Raises:
      ValueError: subset_size < 2 or larger than a set, mismatched D, or non-finite input.
    """
    real, fake = features_pair(real_features, fake_features)
    if not 2 <= subset_size <= min(len(real), len(fake)):
        raise ValueError(f"subset_size must be in [2, min(N_real, N_fake)] = "
                         f"[2, {min(len(real), len(fake))}], got {subset_size}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be positive, got {num_subsets}")
    rng = np.random.default_rng(seed)
    estimates = [
        _polynomial_mmd2(real[rng.choice(len(real), subset_size, replace=False)],
                         fake[rng.choice(len(fake), subset_size, replace=False)])
        for _ in range(num_subsets)]
    return MeanAndStd(float(np.mean(estimates)), float(np.std(estimates)))


def _xlogy(x, y) -> np.ndarray:
    """x * log(y), with 0 where x == 0 (so 0 log 0 = 0), without evaluating log(0)."""
    positive = x > 0
    return np.where(positive, x * np.log(np.where(positive, y, 1.0)), 0.0)


def inception_score(probabilities, num_splits=10, seed=0) -> MeanAndStd:
    """Inception Score of class probabilities p(y|x) (IS).

    Salimans et al. 2016, https://arxiv.org/abs/1606.03498, on whatever classifier produced
    the probabilities (in dcgan `dcgan.evaluation.classifier`, not Inception-v3). The samples are
    shuffled (class-sorted splits, e.g. from a conditional GAN, would deflate the score),
    cut into `num_splits` splits, and per split

        IS = exp(mean_x KL(p(y|x) || p(y))),  p(y) = mean_x p(y|x),

    with 0 log 0 = 0, so one-hot predictions need no epsilon. IS lies in [1, C]: 1 when
    every prediction is the same, C when predictions are one-hot and classes balanced.

    Bias: p(y) is estimated from the split, so IS depends on the split size; the paper
    uses 50,000 samples in 10 splits. Compare scores only at equal N and num_splits, and
    keep each split well above C samples (here >= 1,000 per split for reported numbers).

    Args:
      probabilities: [N, C], rows non-negative summing to 1 (within 1e-6); any float dtype.
      num_splits: splits to average over, at most N.
      seed: seeds the shuffle (numpy `default_rng`).

    Returns:
      MeanAndStd of the per-split scores, float64.

    Raises:
      ValueError: rows that are not distributions, non-finite input, or N < num_splits.
    """
    probabilities = finite_array(probabilities, "probabilities", 2)
    if np.any(probabilities < 0) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("probabilities must be non-negative rows that sum to 1")
    if not 1 <= num_splits <= len(probabilities):
        raise ValueError(f"num_splits must be in [1, N = {len(probabilities)}], got {num_splits}")
    shuffled = probabilities[np.random.default_rng(seed).permutation(len(probabilities))]
    scores = []
    for split in np.array_split(shuffled, num_splits):
        marginal = split.mean(axis=0, keepdims=True)
        kl = np.sum(_xlogy(split, split) - _xlogy(split, marginal), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return MeanAndStd(float(np.mean(scores)), float(np.std(scores)))


def _labels_array(labels, count, num_classes, name) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integers of shape ({count},), got {labels.dtype} "
                         f"{labels.shape}")
    if count and not 0 <= labels.min() <= labels.max() < num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def per_class_fid(real_features, real_labels, fake_features, fake_labels,
                  num_classes) -> list[FrechetDistance]:
    """FID between the real and the fake features of each class (`fid` within a class).

    Their mean over classes is the intra-FID of Miyato & Koyama 2018
    (https://arxiv.org/abs/1802.05637), which a conditional generator cannot lower by
    drawing the right images for the wrong class. Each class has far fewer samples than
    the whole set, so these FIDs are biased further upwards than an FID of all samples
    (see `fid`): compare them only at equal samples per class.

    Args:
      real_features: [N_real, D]; real_labels: ints [N_real] in [0, num_classes).
      fake_features: [N_fake, D]; fake_labels: ints [N_fake], the classes asked for.
      num_classes: C.

    Returns:
      C FrechetDistances, class 0 first.

    Raises:
      ValueError: a class with at most D real or fake samples, labels of the wrong shape
        or outside [0, C), or what `fid` raises.
    """
    real, fake = features_pair(real_features, fake_features)
    real_labels = _labels_array(real_labels, len(real), num_classes, "real_labels")
    fake_labels = _labels_array(fake_labels, len(fake), num_classes, "fake_labels")
    return [fid(real[real_labels == label], fake[fake_labels == label])
            for label in range(num_classes)]


def per_class_accuracy(probabilities, labels, num_classes) -> np.ndarray:
    """For each class c, the share of the samples asked to be of class c that the
    classifier assigns to c (its most probable class).

    Args:
      probabilities: [N, num_classes] class probabilities (or logits) of the samples.
      labels: ints [N] in [0, num_classes), the class each sample was asked to be.
      num_classes: C.

    Returns:
      float64 [C] in [0, 1]; NaN for a class with no sample.

    Raises:
      ValueError: mismatched shapes, non-finite input, or labels outside [0, C).
    """
    probabilities = finite_array(probabilities, "probabilities", 2)
    if probabilities.shape[1] != num_classes:
        raise ValueError(f"probabilities must have {num_classes} columns, got "
                         f"{probabilities.shape[1]}")
    labels = _labels_array(labels, len(probabilities), num_classes, "labels")
    hits = probabilities.argmax(axis=1) == labels
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.bincount(labels, weights=hits, minlength=num_classes)
                / np.bincount(labels, minlength=num_classes))
