import functools

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats

from dcgan.evaluation import bootstrap, metrics, neighbours


def _random_orthogonal(rng, dim):
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q


def _correlated_features(rng, n, dim, shift=0.0):
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mixing + shift


def test_frechet_distance_of_commuting_gaussians_has_the_closed_form():
    # With sigma_i = Q diag(v_i) Q^T the matrices commute and
    # d^2 = |mu1 - mu2|^2 + sum_j (sqrt(v1_j) - sqrt(v2_j))^2.
    rng = np.random.default_rng(0)
    dim = 12
    q = _random_orthogonal(rng, dim)
    v1, v2 = rng.uniform(0.1, 4.0, dim), rng.uniform(0.1, 4.0, dim)
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    distance = metrics.frechet_distance(mu1, q @ np.diag(v1) @ q.T, mu2, q @ np.diag(v2) @ q.T)
    assert distance.value == pytest.approx(expected, rel=1e-10)
    assert distance.raw == distance.value


def test_frechet_distance_of_diagonal_gaussians():
    distance = metrics.frechet_distance([0.0, 0.0], np.diag([1.0, 4.0]),
                                        [3.0, 4.0], np.diag([9.0, 0.0]))
    # 3^2 + 4^2 + (1 - 3)^2 + (2 - 0)^2
    assert distance.value == pytest.approx(33.0, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    features = _correlated_features(np.random.default_rng(1), 2000, 64, shift=5.0)
    distance = metrics.fid(features, features)
    assert distance.value == pytest.approx(0.0, abs=1e-6)
    assert abs(distance.raw) < 1e-6
    assert distance.value >= 0.0


def test_fid_matches_scipy_sqrtm():
    rng = np.random.default_rng(2)
    real = _correlated_features(rng, 600, 32)
    fake = _correlated_features(rng, 500, 32, shift=0.3)
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    assert np.abs(covmean.imag).max() < 1e-8
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
                - 2 * np.trace(covmean.real))
    distance = metrics.fid(real, fake)
    assert distance.value == pytest.approx(expected, rel=1e-6)
    assert isinstance(distance.value, float)


def test_fid_accepts_float32_features():
    rng = np.random.default_rng(3)
    real, fake = _correlated_features(rng, 300, 8), _correlated_features(rng, 300, 8)
    assert metrics.fid(real.astype(np.float32), fake).value == pytest.approx(
        metrics.fid(real.astype(np.float32).astype(np.float64), fake).value, rel=1e-12)


@pytest.mark.parametrize("n_real, n_fake", [(16, 100), (100, 10)])
def test_fid_refuses_too_few_samples(n_real, n_fake):
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="need at least 17"):
        metrics.fid(rng.normal(size=(n_real, 16)), rng.normal(size=(n_fake, 16)))


def test_fid_refuses_non_finite_and_mismatched_features():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(50, 4))
    broken = real.copy()
    broken[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        metrics.fid(real, broken)
    with pytest.raises(ValueError, match="dimension"):
        metrics.fid(real, rng.normal(size=(50, 5)))


def test_frechet_distance_refuses_a_covariance_that_is_not_psd():
    with pytest.raises(ValueError, match="positive semi-definite"):
        metrics.frechet_distance([0.0], [[-1.0]], [0.0], [[0.0]])


def _direct_polynomial_mmd2(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written as plain loops."""
    m, d = x.shape

    def k(a, b):
        return (np.dot(a, b) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_implementation():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(25, 5)), rng.normal(0.4, 1.2, size=(25, 5))
    # One subset of all 25 points: a permutation, to which MMD^2 is invariant.
    kid = metrics.kernel_inception_distance(x, y, num_subsets=1, subset_size=25)
    assert kid.mean == pytest.approx(_direct_polynomial_mmd2(x, y), rel=1e-10)
    assert kid.std == 0.0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(7)
    features = _correlated_features(rng, 3000, 16)
    real, same = features[:1500], features[1500:]
    shifted = same + 0.5
    kid_same = metrics.kernel_inception_distance(real, same, num_subsets=20, subset_size=500)
    kid_shifted = metrics.kernel_inception_distance(real, shifted, num_subsets=20,
                                                    subset_size=500)
    assert abs(kid_same.mean) < 2 * kid_same.std
    assert kid_shifted.mean > 10 * kid_shifted.std
    assert kid_shifted.mean > 20 * abs(kid_same.mean)


def test_kid_refuses_a_subset_larger_than_a_set():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kernel_inception_distance(rng.normal(size=(100, 3)), rng.normal(size=(50, 3)),
                                          subset_size=60)


def _one_hot(labels, num_classes):
    return np.eye(num_classes)[labels]


def test_inception_score_of_balanced_one_hot_predictions_is_the_class_count():
    probabilities = _one_hot(np.repeat(np.arange(10), 100), 10)
    score = metrics.inception_score(probabilities, num_splits=1)
    assert score.mean == pytest.approx(10.0, rel=1e-12)
    assert score.std == 0.0


@pytest.mark.parametrize("row", [[0.0, 1.0, 0.0], [0.2, 0.5, 0.3]])
def test_inception_score_of_constant_predictions_is_one(row):
    score = metrics.inception_score(np.tile(row, (200, 1)), num_splits=10)
    assert score.mean == pytest.approx(1.0, abs=1e-12)
    assert score.std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_scipy_entropy():
    rng = np.random.default_rng(9)
    probabilities = rng.dirichlet(np.full(10, 0.3), size=500)
    probabilities[:50, :3] = 0.0  # Exact zeros: 0 log 0 must count as 0.
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    marginal = probabilities.mean(axis=0)
    expected = np.exp(np.mean([scipy.stats.entropy(p, marginal) for p in probabilities]))
    score = metrics.inception_score(probabilities, num_splits=1)
    assert score.mean == pytest.approx(expected, rel=1e-12)


def test_inception_score_shuffles_class_sorted_samples_before_splitting():
    # Unshuffled, each of the 10 splits would hold one class and score 1.
    probabilities = _one_hot(np.repeat(np.arange(10), 500), 10)
    score = metrics.inception_score(probabilities, num_splits=10)
    assert score.mean > 9.5


def test_inception_score_refuses_rows_that_are_not_distributions():
    with pytest.raises(ValueError, match="sum to 1"):
        metrics.inception_score(np.full((20, 4), 0.5), num_splits=2)


def test_precision_recall_on_a_hand_checked_line():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[4.0], [5.0], [50.0], [52.0]])
    # k=1: real balls radius 1 cover [-1, 4], which holds fake 4 only. Fake radii are
    # 1, 1, 2, 2: balls [3, 5], [4, 6], [48, 52], [50, 54] hold real 3 only.
    assert neighbours.precision_recall(real, fake, k=1) == (0.25, 0.25)
    # k=2: real radii 2, 1, 1, 2 cover [-2, 5] (fakes 4 and 5); fake radii 46, 45, 45, 47.
    assert neighbours.precision_recall(real, fake, k=2) == (0.5, 1.0)


def test_precision_recall_of_identical_sets_is_one():
    features = np.random.default_rng(10).normal(size=(200, 8))
    assert neighbours.precision_recall(features, features, k=3) == (1.0, 1.0)


def _brute_force_precision_recall(real, fake, k):
    def radii(points):
        return np.sort(scipy.spatial.distance.cdist(points, points), axis=1)[:, k]

    def covered(points, centers, center_radii):
        return np.mean(np.any(scipy.spatial.distance.cdist(points, centers)
                              <= center_radii[None, :], axis=1))

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_in_small_blocks_matches_brute_force(monkeypatch):
    rng = np.random.default_rng(11)
    real = rng.normal(size=(700, 6))
    fake = rng.normal(0.5, 0.8, size=(600, 6))
    expected = _brute_force_precision_recall(real, fake, k=3)
    assert 0.05 < expected[0] < 0.95 and 0.05 < expected[1] < 0.95
    assert neighbours.precision_recall(real, fake, k=3) == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(neighbours, "_DISTANCE_BLOCK_ELEMENTS", 5000)  # 7-8 rows per block.
    assert neighbours.precision_recall(real, fake, k=3) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_refuses_k_not_below_the_set_size():
    with pytest.raises(ValueError, match="k < N"):
        neighbours.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


def _scipy_fid(real, fake):
    """FID the textbook way: scipy's sqrtm of sigma1 sigma2."""
    sigma1, sigma2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return (np.sum((real.mean(axis=0) - fake.mean(axis=0)) ** 2) + np.trace(sigma1)
            + np.trace(sigma2) - 2 * np.trace(covmean))


def test_per_class_fid_is_scipy_fid_within_each_class():
    rng = np.random.default_rng(3)
    dim, num_classes = 8, 3
    # Classes interleaved and of unequal sizes; class c of the fakes shifted by c.
    real_labels = rng.permutation(np.repeat(np.arange(num_classes), [50, 70, 90]))
    fake_labels = rng.permutation(np.repeat(np.arange(num_classes), [40, 60, 80]))
    real = _correlated_features(rng, len(real_labels), dim) + real_labels[:, None]
    fake = _correlated_features(rng, len(fake_labels), dim) + 2 * fake_labels[:, None]
    distances = metrics.per_class_fid(real, real_labels, fake, fake_labels, num_classes)
    expected = [_scipy_fid(np.array([x for x, y in zip(real, real_labels) if y == c]),
                           np.array([x for x, y in zip(fake, fake_labels) if y == c]))
                for c in range(num_classes)]
    np.testing.assert_allclose([d.value for d in distances], expected, rtol=1e-6)
    assert expected[0] < expected[2]  # The shift grows with the class.


def test_per_class_fid_needs_more_samples_than_dimensions_in_every_class():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(60, 8))
    labels = np.array([0] * 55 + [1] * 5)
    with pytest.raises(ValueError, match="got 5, need at least 9"):
        metrics.per_class_fid(features, labels, features, labels, 2)
    with pytest.raises(ValueError, match=r"fake_labels must lie in \[0, 2\)"):
        metrics.per_class_fid(features, labels, features, labels + 1, 2)


def test_per_class_accuracy_against_a_count_by_hand():
    probabilities = np.array([
        [0.7, 0.2, 0.1],  # asked 0, top 0: hit
        [0.1, 0.8, 0.1],  # asked 0, top 1: miss
        [0.2, 0.3, 0.5],  # asked 0, top 2: miss
        [0.1, 0.6, 0.3],  # asked 1, top 1: hit
        [0.3, 0.3, 0.4],  # asked 2, top 2: hit
        [0.5, 0.1, 0.4],  # asked 2, top 0: miss
    ])
    labels = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(metrics.per_class_accuracy(probabilities, labels, 3),
                               [1 / 3, 1.0, 0.5])
    # A class nobody asked for has no share.
    assert np.isnan(metrics.per_class_accuracy(probabilities[:4], labels[:4], 3)[2])


def test_per_class_accuracy_agrees_with_a_confusion_matrix():
    rng = np.random.default_rng(5)
    num_classes = 10
    logits = rng.normal(size=(1000, num_classes))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, num_classes, 1000)
    confusion = np.zeros((num_classes, num_classes))
    for asked, predicted in zip(labels, probabilities.argmax(axis=1)):
        confusion[asked, predicted] += 1
    np.testing.assert_allclose(metrics.per_class_accuracy(probabilities, labels, num_classes),
                               np.diag(confusion) / confusion.sum(axis=1))


def _gaussian_fid_trials(num_fake, trials, seed, interval=bootstrap.fid_interval,
                         num_real=2000, dim=8, fresh_reference=False):
    """(true FID, intervals) of `trials` draws of `num_fake` generated features.

    The generated features come from a known Gaussian, the reference from the standard
    normal. Without `fresh_reference` the reference is one sample of `num_real`, drawn
    once, and the FID the interval is about is frechet_distance(that sample's mean and
    covariance, the true mean and covariance): what `bootstrap.fid_interval` covers. With
    it, each trial draws a new reference too, and the FID is that between the two true
    Gaussians: what `bootstrap.fid_two_sample_interval` covers. Both closed forms. The
    features do not depend on `interval`: two calls that differ only there see the same.
    """
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(num_real, dim))
    mixing = np.eye(dim) * 1.2 + rng.normal(scale=0.2, size=(dim, dim))
    true_mean = np.full(dim, 0.3)
    reference = ((np.zeros(dim), np.eye(dim)) if fresh_reference
                 else (real.mean(axis=0), np.cov(real, rowvar=False)))
    truth = metrics.frechet_distance(*reference, true_mean, mixing @ mixing.T).value
    results = []
    for trial in range(trials):
        if fresh_reference:
            real = rng.normal(size=(num_real, dim))
        fake = rng.normal(size=(num_fake, dim)) @ mixing.T + true_mean
        results.append(interval(real, fake, num_resamples=200, seed=trial))
    return truth, results


def _coverage(truth, intervals) -> float:
    return float(np.mean([interval.low <= truth <= interval.high for interval in intervals]))


@pytest.mark.slow
def test_fid_interval_covers_the_true_distance_at_the_stated_rate():
    # At N = 100 FID's upward bias (0.37 on a true 2.26) is about the interval's
    # half-width: the percentile bootstrap, which ignores it, covered 59% of these trials.
    covered = _coverage(*_gaussian_fid_trials(num_fake=100, trials=200, seed=0))
    assert 0.90 <= covered <= 0.99, covered


@pytest.mark.slow
def test_fid_two_sample_interval_covers_the_distance_between_the_distributions():
    # A new reference each trial, as large as the generated set, so that it holds about
    # half of the estimate's variance and adds its own upward bias, neither of which
    # fid_interval, holding the reference fixed, accounts for: it covered 87% of these
    # trials (85% and 87% with seeds 2 and 1), the two-sample interval 96% (94.5%, 96%).
    trials = functools.partial(_gaussian_fid_trials, num_fake=100, trials=200, seed=0,
                               num_real=100, fresh_reference=True)
    truth, two_sample = trials(interval=bootstrap.fid_two_sample_interval)
    _, one_sample = trials(interval=bootstrap.fid_interval)
    assert 0.90 <= _coverage(truth, two_sample) <= 0.99, _coverage(truth, two_sample)
    assert _coverage(truth, one_sample) < 0.90, _coverage(truth, one_sample)


def test_fid_interval_shrinks_as_the_sample_count_grows():
    widths = []
    for num_fake in (100, 400, 1600):
        _, intervals = _gaussian_fid_trials(num_fake, trials=5, seed=1)
        widths.append(np.mean([interval.high - interval.low for interval in intervals]))
    # The width falls like 1/sqrt(N): about halves per 4x samples.
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2], widths


@pytest.mark.parametrize("interval", [bootstrap.fid_interval, bootstrap.fid_two_sample_interval])
def test_fid_interval_brackets_the_estimate_of_an_unbiased_case_and_is_seeded(interval):
    rng = np.random.default_rng(2)
    real, fake = _correlated_features(rng, 3000, 6), _correlated_features(rng, 3000, 6, 1.0)
    estimate = metrics.fid(real, fake).value
    wide = interval(real, fake, seed=3)
    # Far from 0 the bias (~D / N) is small beside the spread: the estimate lies inside.
    assert wide.low < estimate < wide.high
    assert interval(real, fake, seed=3) == wide
    narrower = interval(real, fake, confidence=0.5, seed=3)
    assert wide.low < narrower.low < narrower.high < wide.high


def test_the_two_sample_interval_is_the_wider_by_the_reference_s_variance():
    rng = np.random.default_rng(4)
    real, fake = _correlated_features(rng, 2000, 6), _correlated_features(rng, 2000, 6, 0.5)
    one_sample = bootstrap.fid_interval(real, fake, num_resamples=400)
    two_sample = bootstrap.fid_two_sample_interval(real, fake, num_resamples=400)
    # Two sets of equal size add about equal variances: about sqrt(2) times the width.
    ratio = (two_sample.high - two_sample.low) / (one_sample.high - one_sample.low)
    assert 1.2 < ratio < 1.7, ratio


def _explicit_basic_interval(real, fake, num_resamples, seed, resample_real, score=None):
    """The basic bootstrap interval (confidence 0.95) from explicitly indexed resamples,
    scored by `score` (`_scipy_fid` if None): per resample, the rows of the reference, then
    those of the generated features, drawn as `rng.integers(0, N, N)` from one
    `default_rng(seed)`."""
    score = score or _scipy_fid
    rng = np.random.default_rng(seed)
    resampled = []
    for _ in range(num_resamples):
        real_rows = rng.integers(0, len(real), len(real)) if resample_real else slice(None)
        resampled.append(score(real[real_rows], fake[rng.integers(0, len(fake), len(fake))]))
    low, high = np.quantile(resampled, [0.025, 0.975])
    estimate = score(real, fake)
    return max(2 * estimate - high, 0.0), max(2 * estimate - low, 0.0)


@pytest.mark.parametrize("interval, resample_real", [
    (bootstrap.fid_interval, False), (bootstrap.fid_two_sample_interval, True)])
def test_fid_intervals_match_scipy_on_explicit_resamples(interval, resample_real):
    rng = np.random.default_rng(6)
    real, fake = _correlated_features(rng, 80, 5), _correlated_features(rng, 50, 5, 0.4)
    expected = _explicit_basic_interval(real, fake, 40, seed=7, resample_real=resample_real)
    assert interval(real, fake, num_resamples=40, seed=7) == pytest.approx(expected, rel=1e-9)


def test_fid_two_sample_interval_of_a_singular_reference():
    # A dead unit: the reference's covariance has no Cholesky factor, so each resample's
    # takes the square root instead. Against metrics.fid (scipy's sqrtm of a singular
    # product is unreliable; metrics.fid is checked against it above).
    rng = np.random.default_rng(8)
    real, fake = _correlated_features(rng, 80, 5), _correlated_features(rng, 50, 5, 0.4)
    real[:, 2] = 0.0
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(np.cov(real, rowvar=False))
    expected = _explicit_basic_interval(real, fake, 40, seed=7, resample_real=True,
                                        score=lambda a, b: metrics.fid(a, b).raw)
    # The zero eigenvalue comes out of each route as rounding noise of ~1e-17, whose square
    # root moves the distance by ~1e-8.
    assert bootstrap.fid_two_sample_interval(real, fake, num_resamples=40, seed=7) == (
        pytest.approx(expected, abs=1e-7))


@pytest.mark.parametrize("interval", [bootstrap.fid_interval, bootstrap.fid_two_sample_interval])
def test_fid_interval_refuses_bad_arguments(interval):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    with pytest.raises(ValueError, match="confidence"):
        interval(real, fake, confidence=1.0)
    with pytest.raises(ValueError, match="num_resamples"):
        interval(real, fake, num_resamples=0)
    with pytest.raises(ValueError, match="more fake samples"):
        interval(real, fake[:3])
    with pytest.raises(ValueError, match="more real samples"):
        interval(real[:3], fake)


def test_nearest_neighbours_match_scipy_cdist_in_small_blocks(monkeypatch):
    monkeypatch.setattr(neighbours, "_DISTANCE_BLOCK_ELEMENTS", 7 * 40)  # 7 query rows a block.
    rng = np.random.default_rng(0)
    queries, references = rng.normal(size=(30, 5)), rng.normal(size=(40, 5))
    distances, indices = neighbours.nearest_neighbours(queries, references)
    expected = scipy.spatial.distance.cdist(queries, references)
    np.testing.assert_array_equal(indices, expected.argmin(axis=1))
    np.testing.assert_allclose(distances, expected.min(axis=1), rtol=1e-12)
    assert distances.dtype == np.float64 and indices.dtype == np.int64


def test_nearest_neighbours_of_copies_are_exactly_zero():
    # Large features, where float32 |a|^2 + |b|^2 - 2ab alone would leave ~1e-2.
    references = np.random.default_rng(1).normal(loc=40.0, size=(200, 16))
    distances, indices = neighbours.nearest_neighbours(references[::-1], references)
    assert np.all(distances == 0)
    np.testing.assert_array_equal(indices, np.arange(200)[::-1])


def _memorisation_of(generated, train, test):
    fake_distances, _ = neighbours.nearest_neighbours(generated, train)
    test_distances, _ = neighbours.nearest_neighbours(test, train)
    return neighbours.memorisation(fake_distances, test_distances)


def test_memorisation_flags_a_copier_and_passes_new_draws():
    rng = np.random.default_rng(2)
    train, test, new = (_correlated_features(rng, n, 8) for n in (2000, 500, 500))
    copier = _memorisation_of(train[:500], train, test)
    assert copier.ratio == 0 and copier.share == 1
    honest = _memorisation_of(new, train, test)
    assert 0.8 < honest.ratio < 1.25 and honest.share < 0.01
    # Returning the test images themselves: ratio 1 and no sample below their minimum.
    assert _memorisation_of(test, train, test) == (1.0, 0.0)


def test_memorisation_against_hand_computed_values():
    result = neighbours.memorisation([0.5, 1.0, 2.0, 4.0], [1.0, 2.0, 3.0])
    assert result.ratio == pytest.approx(1.5 / 2.0) and result.share == 0.25
    with pytest.raises(ValueError, match="median test distance is 0"):
        neighbours.memorisation([1.0], [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        neighbours.memorisation([-1.0], [1.0])
