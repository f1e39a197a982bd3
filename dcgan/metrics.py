"""Sample-based GAN metrics computed from classifier outputs, in numpy float64.

The functions take features or class probabilities (see `dcgan.classifier.embed`), never
images: which network produced them is the caller's choice, and a score is comparable only
with scores computed by the same network on the same number of samples (every estimator
here depends on N). Report N with every score.

  * `fid` / `frechet_distance`: Frechet distance between Gaussians fitted to features.
  * `fid_interval`: a bootstrap confidence interval for `fid` over the generated samples.
  * `kernel_inception_distance`: unbiased MMD^2 with a cubic polynomial kernel.
  * `inception_score`: exp of the mean KL divergence between p(y|x) and p(y).
  * `precision_recall`: improved precision and recall from k-NN balls.
  * `per_class_fid`, `per_class_accuracy`: for conditional generators, FID within each
    class and how often the classifier names the class that was asked for.
  * `nearest_neighbours`, `memorisation`: how close generated samples are to training
    images, against how close held-out test images are (a generator that copies).
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "FrechetDistance",
    "Interval",
    "MeanAndStd",
    "Memorisation",
    "PrecisionRecall",
    "fid",
    "fid_interval",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "memorisation",
    "nearest_neighbours",
    "per_class_accuracy",
    "per_class_fid",
    "precision_recall",
]

# Rounding can leave the distance of (near-)identical distributions slightly below zero;
# within this fraction of tr(sigma1) + tr(sigma2) that is reported as 0 (pytorch-fid#105).
_NEGATIVE_TOLERANCE = 1e-8
# Elements of one float64 block of pairwise distances in `precision_recall` (64 MB).
_DISTANCE_BLOCK_ELEMENTS = 2**23


class FrechetDistance(NamedTuple):
    """A Frechet distance: `value` is `raw` with rounding noise below zero clamped to 0."""

    value: float
    raw: float


class Interval(NamedTuple):
    """A confidence interval [low, high] of an estimate."""

    low: float
    high: float


class MeanAndStd(NamedTuple):
    """Mean and (population) standard deviation of an estimate over subsets or splits."""

    mean: float
    std: float


class Memorisation(NamedTuple):
    """How much closer generated samples are to the training set than test images are."""

    ratio: float
    share: float


class PrecisionRecall(NamedTuple):
    """Improved precision (fidelity) and recall (coverage), each in [0, 1]."""

    precision: float
    recall: float


def _finite_array(values, name, ndim) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains non-finite values")
    return values


def _features_pair(real, fake) -> tuple[np.ndarray, np.ndarray]:
    real = _finite_array(real, "real features", 2)
    fake = _finite_array(fake, "fake features", 2)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: "
                         f"{real.shape[1]} vs {fake.shape[1]}")
    return real, fake


def _symmetric_sqrt(matrix) -> np.ndarray:
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
    mu1, mu2 = _finite_array(mu1, "mu1", 1), _finite_array(mu2, "mu2", 1)
    sigma1, sigma2 = _finite_array(sigma1, "sigma1", 2), _finite_array(sigma2, "sigma2", 2)
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    sqrt_sigma1 = _symmetric_sqrt(sigma1)
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
    (in dcgan those of `dcgan.classifier`, so not comparable with published Inception-v3
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
    real, fake = _fid_features(real_features, fake_features)
    return frechet_distance(real.mean(axis=0), np.cov(real, rowvar=False),
                            fake.mean(axis=0), np.cov(fake, rowvar=False))


def _fid_features(real_features, fake_features) -> tuple[np.ndarray, np.ndarray]:
    """`_features_pair`, refusing a set too small for a non-singular covariance."""
    real, fake = _features_pair(real_features, fake_features)
    dim = real.shape[1]
    for name, features in (("real", real), ("fake", fake)):
        if len(features) <= dim:
            raise ValueError(
                f"FID needs more {name} samples than feature dimensions ({dim}) for a "
                f"non-singular covariance: got {len(features)}, need at least {dim + 1} "
                "(use >= 10,000 for reported numbers).")
    return real, fake


def fid_interval(real_features, fake_features, confidence=0.95, num_resamples=200,
                 seed=0) -> Interval:
    """A bootstrap confidence interval for `fid(real_features, fake_features)`.

    What is resampled: the generated (fake) features only, N_fake draws with replacement;
    the reference mean and covariance stay those of `real_features`. The interval is
    therefore about the generator: it covers the Frechet distance between the generator's
    true feature distribution and the fixed reference statistics, and says nothing about
    how those statistics would vary with another reference sample (with the whole test
    split as reference, there is no other).

    Flavour: the basic (pivotal) bootstrap,

        [2 F - q_hi, 2 F - q_lo],  F = fid(real, fake).raw,

    with q_lo, q_hi the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the
    resampled FIDs, each end clamped at 0. FID is biased upwards in N (see `fid`), and a
    resample, which repeats some samples, is biased upwards about as much again: the
    percentile interval [q_lo, q_hi] sits above the truth by about that bias, while the
    basic interval subtracts it. On Gaussian features (D = 8, 200 trials per N, as in
    tests/test_metrics.py) the percentile interval covered the true distance in 17%, 73%
    and 89% of trials at N = 100, 400 and 2,000, the basic interval in 95%, 95% and 93%.

    Cost: one [D, N] x [N, D] product per resample on features pre-multiplied by
    sigma_real^(1/2), so tr((sigma_real sigma_b)^(1/2)) needs only the eigenvalues of a
    [D, D] matrix (as in `frechet_distance`), no matrix square root per resample.

    Args:
      real_features: [N_real, D], any float dtype (statistics in float64).
      fake_features: [N_fake, D].
      confidence: the interval's nominal coverage, in (0, 1).
      num_resamples: bootstrap resamples; 200 gives quantiles at 2.5% and 97.5% from
        about 5 resamples each side, enough for an interval whose width matters to +-10%.
      seed: seeds the resampling (numpy `default_rng`).

    Returns:
      Interval(low, high), float64, 0 <= low <= high.

    Raises:
      ValueError: what `fid` raises, confidence outside (0, 1), or num_resamples < 1.
    """
    real, fake = _fid_features(real_features, fake_features)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be positive, got {num_resamples}")
    real_mean, real_sigma = real.mean(axis=0), np.cov(real, rowvar=False)
    count = len(fake)
    fake_mean = fake.mean(axis=0)
    # A resample with counts w has mean fake_mean + w.c / N and covariance
    # (sum_i w_i c_i c_i^T - N m m^T) / (N - 1) in the centred features c; the FID needs
    # its trace and the eigenvalues of sigma_real^(1/2) sigma_b sigma_real^(1/2), i.e. of
    # the same covariance of the rotated features c sigma_real^(1/2).
    centred = fake - fake_mean
    rotated = centred @ _symmetric_sqrt(real_sigma)
    squared_norms = np.sum(centred**2, axis=1)
    offset = fake_mean - real_mean
    rng = np.random.default_rng(seed)
    resampled = np.empty(num_resamples)
    for index in range(num_resamples):
        weights = np.bincount(rng.integers(0, count, count), minlength=count).astype(np.float64)
        shift, rotated_shift = weights @ centred / count, weights @ rotated / count
        trace = (weights @ squared_norms - count * shift @ shift) / (count - 1)
        # Only the ~63% drawn rows, as X^T X of one array, which numpy hands to BLAS syrk
        # (half the work of a general product).
        drawn = np.flatnonzero(weights)
        scaled = rotated[drawn] * np.sqrt(weights[drawn])[:, None]
        product = (scaled.T @ scaled
                   - count * np.outer(rotated_shift, rotated_shift)) / (count - 1)
        eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
        resampled[index] = (np.sum((offset + shift) ** 2) + np.trace(real_sigma) + trace
                            - 2 * np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    estimate = frechet_distance(real_mean, real_sigma, fake_mean, np.cov(fake, rowvar=False)).raw
    low_quantile, high_quantile = np.quantile(
        resampled, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(low=max(2 * estimate - high_quantile, 0.0),
                    high=max(2 * estimate - low_quantile, 0.0))


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
    real, fake = _features_pair(real_features, fake_features)
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
    the probabilities (in dcgan `dcgan.classifier`, not Inception-v3). The samples are
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
    probabilities = _finite_array(probabilities, "probabilities", 2)
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


def _squared_distances(a, b) -> np.ndarray:
    """[len(a), len(b)] squared Euclidean distances, rounding's negatives -> 0."""
    squared = a @ b.T
    squared *= -2.0
    squared += np.sum(a**2, axis=1)[:, None]
    squared += np.sum(b**2, axis=1)[None, :]
    return np.maximum(squared, 0.0, out=squared)


def _blocks(num_rows, num_columns):
    """Row slices whose [rows, num_columns] float64 block stays within the memory budget."""
    step = max(1, _DISTANCE_BLOCK_ELEMENTS // max(num_columns, 1))
    return (slice(start, start + step) for start in range(0, num_rows, step))


def _knn_squared_radii(features, k) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point of the set."""
    radii = np.empty(len(features))
    for rows in _blocks(len(features), len(features)):
        distances = _squared_distances(features[rows], features)
        # Column k of the partition: index 0 is the point itself (distance 0).
        radii[rows] = np.partition(distances, k, axis=1)[:, k]
    return radii


def _fraction_covered(points, centers, squared_radii) -> float:
    """Fraction of `points` inside at least one ball (center, radius)."""
    covered = np.empty(len(points), dtype=bool)
    for rows in _blocks(len(points), len(centers)):
        distances = _squared_distances(points[rows], centers)
        covered[rows] = np.any(distances <= squared_radii[None, :], axis=1)
    return float(np.mean(covered))


def precision_recall(real_features, fake_features, k=3) -> PrecisionRecall:
    """Improved precision and recall of generated features (Kynkaanniemi et al. 2019).

    https://arxiv.org/abs/1904.06991. Each set's manifold is the union of balls around its
    points with radius the distance to the point's k-th nearest neighbour in the set:

        precision = fraction of fake points inside the real manifold (fidelity),
        recall    = fraction of real points inside the fake manifold (coverage).

    Both lie in [0, 1]. Euclidean distances, computed in blocks of rows so memory stays
    near 64 MB whatever N (10,000 x 10,000 takes a few seconds).

    Bias: the radii shrink as N grows, so the values depend on N and k; the paper uses
    k = 3 and 50,000 samples per set. Compare only at equal N and k, and use N >= 10,000
    for reported numbers.

    Args:
      real_features: [N_real, D], N_real > k; any float dtype.
      fake_features: [N_fake, D], N_fake > k.
      k: the neighbour that sets each radius.

    Returns:
      PrecisionRecall(precision, recall), floats in [0, 1].

    Raises:
      ValueError: k < 1, a set with at most k points, mismatched D, or non-finite input.
    """
    real, fake = _features_pair(real_features, fake_features)
    if k < 1 or min(len(real), len(fake)) <= k:
        raise ValueError(f"need 1 <= k < N in each set, got k={k}, N_real={len(real)}, "
                         f"N_fake={len(fake)}")
    return PrecisionRecall(
        precision=_fraction_covered(fake, real, _knn_squared_radii(real, k)),
        recall=_fraction_covered(real, fake, _knn_squared_radii(fake, k)))


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
    real, fake = _features_pair(real_features, fake_features)
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
    probabilities = _finite_array(probabilities, "probabilities", 2)
    if probabilities.shape[1] != num_classes:
        raise ValueError(f"probabilities must have {num_classes} columns, got "
                         f"{probabilities.shape[1]}")
    labels = _labels_array(labels, len(probabilities), num_classes, "labels")
    hits = probabilities.argmax(axis=1) == labels
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.bincount(labels, weights=hits, minlength=num_classes)
                / np.bincount(labels, minlength=num_classes))


def nearest_neighbours(queries, references) -> tuple[np.ndarray, np.ndarray]:
    """For each query, its nearest reference (Euclidean) and the distance to it.

    The search runs in float32 in blocks of query rows (as `precision_recall`'s, 32 MB in
    float32, so 10,000 x 60,000 needs no 2.4 GB matrix): float32 rounds
    |a|^2 + |b|^2 - 2 a.b by about 1e-7 |a|^2, which can only swap two neighbours whose
    squared distances are that close, and it halves the memory and the time of the
    product. The distance returned is recomputed in float64 from the pair's features, so
    an exact copy reports 0.

    Args:
      queries: [N_q, D], any float dtype.
      references: [N_ref, D], N_ref >= 1.

    Returns:
      (distances float64 [N_q] >= 0, indices int64 [N_q] into `references`).

    Raises:
      ValueError: mismatched D, an empty reference set, or non-finite input.
    """
    queries, references = _features_pair(queries, references)
    if not len(references):
        raise ValueError("references must hold at least one point")
    queries32, references32 = queries.astype(np.float32), references.astype(np.float32)
    indices = np.empty(len(queries), dtype=np.int64)
    for rows in _blocks(len(queries), len(references)):
        indices[rows] = np.argmin(_squared_distances(queries32[rows], references32), axis=1)
    return np.linalg.norm(queries - references[indices], axis=1), indices


def memorisation(fake_distances, test_distances) -> Memorisation:
    """Whether generated samples sit closer to the training set than unseen images do.

    Inputs are distances to the nearest training image (`nearest_neighbours` against the
    training features): `fake_distances` of generated samples, `test_distances` of
    held-out test images, which the generator never saw and which show how close a new
    image of the distribution falls to the training set by chance.

      ratio = median(fake_distances) / median(test_distances): about 1 for a generator
        that draws new images of the distribution, near 0 for one that copies training
        images (and above 1 for one far from the data, which is no sign of copying).
      share = the fraction of generated samples strictly closer to their nearest training
        image than the closest test image is to its own, min(test_distances): samples
        nearer a training image than any unseen image comes, i.e. near-exact copies.
        0 for a generator that draws test images, 1 for one that returns training
        images. The minimum falls as N_test grows, so compare shares at equal N_test (on
        Fashion-MNIST's 10,000 test images in the shipped classifier's features it is
        0.29 against a median of 6.6).

    Args:
      fake_distances: [N_fake] >= 0, any float dtype.
      test_distances: [N_test] >= 0, with a positive median.

    Returns:
      Memorisation(ratio, share), float64; share in [0, 1].

    Raises:
      ValueError: an empty set, negative or non-finite distances, or a zero test median.
    """
    fake = _finite_array(fake_distances, "fake_distances", 1)
    test = _finite_array(test_distances, "test_distances", 1)
    if not len(fake) or not len(test) or fake.min() < 0 or test.min() < 0:
        raise ValueError("distances must be non-empty and non-negative")
    if np.median(test) == 0:
        raise ValueError("the median test distance is 0: the test images are training images")
    return Memorisation(ratio=float(np.median(fake) / np.median(test)),
                        share=float(np.mean(fake < test.min())))
