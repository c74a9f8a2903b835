"""Recall of corrupted stored patterns against independent oracles.

* DenseAM (LSE, large beta) against the exact nearest-pattern lookup, on the
  same corrupted draws: binarised digits and (when the shared data are present)
  binarised MNIST test images.
* The classical HopfieldNetwork against its textbook capacity of about 0.14 D
  random patterns.
"""

import numpy as np
import pytest

from skam.capacity import recall_fraction
from skam.datasets import flip_bits, load_binary_digits, load_mnist_t10k
from skam.memory import DenseAM, HopfieldNetwork


def _exact(recalled, patterns):
    """Per query: the sign of the retrieved state equals the pattern everywhere."""
    return np.all(np.sign(recalled) == patterns, axis=1)


def _nearest_pattern_oracle(queries, patterns):
    """Per query: the unique nearest stored pattern (by overlap) is the right one.

    A tie between two stored patterns counts as a failure: a lookup that cannot
    decide does not recall.
    """
    overlap = queries @ patterns.T
    best = overlap.max(axis=1, keepdims=True)
    unique = np.sum(overlap == best, axis=1) == 1
    return unique & (np.argmax(overlap, axis=1) == np.arange(len(patterns)))


def _stored(X, K, seed=0):
    rng = np.random.RandomState(seed)
    return X[rng.choice(X.shape[0], K, replace=False)]


def _check_lse_matches_oracle(patterns, fraction, seed):
    queries = flip_bits(patterns, fraction, random_state=seed)
    oracle = _nearest_pattern_oracle(queries, patterns)
    D = patterns.shape[1]
    am = DenseAM(beta=1000.0 / D).fit(patterns)  # large beta
    lse = _exact(am.transform(queries), patterns)
    # the oracle must be imperfect somewhere for the comparison to mean much
    assert oracle.mean() > 0.3
    # at least as often, and on (almost) the same queries
    assert lse.mean() >= oracle.mean()
    assert np.mean(oracle & ~lse) <= 0.02
    return lse.mean(), oracle.mean()


@pytest.mark.parametrize("fraction", [0.1, 0.2])
def test_lse_large_beta_recalls_digits_as_often_as_nearest_pattern(fraction):
    X, _ = load_binary_digits()
    _check_lse_matches_oracle(_stored(X, 300), fraction, seed=1)


@pytest.mark.parametrize("fraction", [0.1, 0.2])
def test_lse_large_beta_recalls_mnist_as_often_as_nearest_pattern(fraction):
    try:
        X, _ = load_mnist_t10k(binarize=True)
    except FileNotFoundError:
        pytest.skip("MNIST t10k is not in the shared data folder")
    X = np.unique(X, axis=0)
    lse, oracle = _check_lse_matches_oracle(_stored(X, 300), fraction, seed=2)
    assert lse > 0.9  # MNIST digits are far apart in 784 pixels


def test_lse_small_beta_falls_into_mixtures():
    # the other side of the beta dial: a tiny beta merges the memories
    X, _ = load_binary_digits()
    patterns = _stored(X, 100)
    queries = flip_bits(patterns, 0.1, random_state=1)
    am = DenseAM(beta=0.01).fit(patterns)
    assert _exact(am.transform(queries), patterns).mean() < 0.2
    assert np.mean(am.predict(queries) == -1) > 0.8


@pytest.fixture(scope="module")
def random_patterns():
    rng = np.random.RandomState(0)
    return np.where(rng.rand(60, 200) > 0.5, 1.0, -1.0)


@pytest.mark.parametrize("update", ["sync", "async"])
def test_hopfield_recalls_random_patterns_below_capacity(random_patterns, update):
    patterns = random_patterns[:10]  # K = 10 = 0.05 D
    net = HopfieldNetwork(update=update, random_state=0).fit(patterns)
    assert recall_fraction(net).fixed_points >= 0.9
    queries = flip_bits(patterns, 0.05, random_state=3)
    assert np.mean(net.predict(queries) == np.arange(10)) >= 0.9
    assert _exact(net.transform(queries), patterns).mean() >= 0.9


@pytest.mark.parametrize("update", ["sync", "async"])
def test_hopfield_fails_well_above_capacity(random_patterns, update):
    patterns = random_patterns  # K = 60 = 0.3 D, twice 0.14 D
    net = HopfieldNetwork(update=update, random_state=0).fit(patterns)
    assert recall_fraction(net).fixed_points <= 0.5
    queries = flip_bits(patterns, 0.05, random_state=3)
    assert _exact(net.transform(queries), patterns).mean() <= 0.5


def test_hopfield_retrieves_the_inverted_pattern_from_very_noisy_queries(
    random_patterns,
):
    patterns = random_patterns[:3]
    net = HopfieldNetwork(random_state=0).fit(patterns)
    queries = flip_bits(patterns, 0.8, random_state=4)  # closer to -pattern
    np.testing.assert_array_equal(net.transform(queries), -patterns)
    assert list(net.predict(queries)) == [-1, -1, -1]
