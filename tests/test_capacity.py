"""The capacity toolkit, and the capacities it measures against the theory."""

import math

import numpy as np
import pytest

from skam import DenseAM, DiscreteDenseAM, HopfieldNetwork
from skam.capacity import (
    capacity_at,
    capacity_curve,
    exponential_capacity,
    hopfield_capacity,
    polynomial_capacity,
    recall_fraction,
)

D = 100


# ------------------------------------------------------------------ theory
def test_polynomial_capacity_formula():
    # D^(n-1) / (2 (2n-3)!! log D), the double factorials written out
    for n, double_factorial in [(2, 1), (3, 3), (4, 15), (5, 105)]:
        for d in (50, 100, 400):
            expected = d ** (n - 1) / (2 * double_factorial * math.log(d))
            assert polynomial_capacity(d, n) == pytest.approx(expected, rel=1e-12)
    assert polynomial_capacity(100, 3) == pytest.approx(361.9, abs=0.1)


def test_hopfield_and_exponential_capacity():
    assert hopfield_capacity(1000) == pytest.approx(138.0)
    assert exponential_capacity(40) == pytest.approx(2.0**20)
    x = 0.8  # 10 % flips: alpha = I(0.8) / 2
    info = 0.5 * ((1 + x) * math.log(1 + x) + (1 - x) * math.log(1 - x))
    assert exponential_capacity(100, 0.1, log=True) == pytest.approx(50 * info)
    assert exponential_capacity(100, 0.1) < exponential_capacity(100)
    with pytest.raises(OverflowError, match="log=True"):
        exponential_capacity(5000)
    assert exponential_capacity(5000, log=True) == pytest.approx(2500 * math.log(2))
    with pytest.raises(ValueError, match="flip_fraction"):
        exponential_capacity(100, 0.6)


def test_capacity_at_interpolates_in_log_k():
    assert capacity_at([10, 100], [1.0, 0.0]) == pytest.approx(math.sqrt(10 * 100))
    assert capacity_at([1, 10, 100], [1.0, 0.5, 0.4]) == pytest.approx(10.0)
    assert math.isnan(capacity_at([1, 10], [0.4, 0.1]))  # starts below
    assert math.isnan(capacity_at([1, 10], [1.0, 0.9]))  # never crosses


# ------------------------------------------------------------ measurements
def test_recall_fraction_counts_fixed_points_and_recalls():
    rng = np.random.RandomState(0)
    patterns = np.sign(rng.randn(40, 60))  # 40 > 0.138 * 60: some are lost
    net = HopfieldNetwork(update="sync").fit(patterns)
    r = recall_fraction(net, corruption="flip", level=0.1, random_state=0)
    out = net.transform(patterns)
    assert r.fixed_points == pytest.approx(np.mean(np.all(out == patterns, axis=1)))
    assert r.n_queries == 40 and 0 <= r.recalled <= r.fixed_points + 0.2
    # a sample of the stored patterns, reproducible
    a = recall_fraction(net, n_queries=10, random_state=1)
    b = recall_fraction(net, n_queries=10, random_state=1)
    assert a == b and a.n_queries == 10


def test_recall_fraction_corruptions():
    rng = np.random.RandomState(1)
    patterns = np.sign(rng.randn(5, 64))
    am = DenseAM(beta=1.0).fit(patterns)
    # occlusion: DenseAM clamps the visible half and completes the rest
    assert recall_fraction(am, corruption="occlude", level=0.5).recalled == 1.0
    # Gaussian noise on a few stored patterns
    assert (
        recall_fraction(am, corruption="noise", level=0.5, random_state=0).recalled
        == 1.0
    )
    # noise of 20 standard deviations buries them
    assert (
        recall_fraction(am, corruption="noise", level=20.0, random_state=0).recalled
        < 1.0
    )
    with pytest.raises(ValueError, match="level"):
        recall_fraction(am, corruption="flip", level=1.5)
    with pytest.raises(ValueError, match="corruption"):
        recall_fraction(am, corruption="erase")


def test_recall_fraction_of_continuous_memories():
    Xi = np.array([[0.0, 0.0], [4.0, 0.0]])
    assert recall_fraction(DenseAM(beta=5.0).fit(Xi)).fixed_points == 1.0
    assert recall_fraction(DenseAM(beta=0.05).fit(Xi)).fixed_points == 0.0  # merged


def test_capacity_curve_is_reproducible_and_accepts_factories():
    grid = [2, 8, 32]
    a = capacity_curve(
        HopfieldNetwork(random_state=0), grid, n_features=64, random_state=0
    )
    b = capacity_curve(
        lambda K: HopfieldNetwork(random_state=0), grid, n_features=64, random_state=0
    )
    np.testing.assert_array_equal(a.recalled, b.recalled)
    np.testing.assert_array_equal(a.n_memories, grid)
    assert a.recalled[0] == 1.0 and a.recalled[-1] < 0.5
    patterns = np.sign(np.random.RandomState(3).randn(32, 64))
    c = capacity_curve(HopfieldNetwork(random_state=0), grid, patterns=patterns)
    assert c.fixed_points.shape == (3,)
    for bad, match in [([8, 2], "increasing"), ([], "non-empty"), ([0, 2], "positive")]:
        with pytest.raises(ValueError, match=match):
            capacity_curve(HopfieldNetwork(), bad, n_features=8)
    with pytest.raises(ValueError, match="n_features"):
        capacity_curve(HopfieldNetwork(), [2], random_state=0)
    with pytest.raises(ValueError, match="rows"):
        capacity_curve(HopfieldNetwork(), [64], patterns=patterns)


# ------------------------------------------------------ capacity vs theory
def _k50_within_factor_two(estimator, theory, *, n_queries=100):
    # recall is judged after at most ``max_iter`` sweeps of the estimator
    """K50 from 10 % flips lies in [theory / 2, 2 theory]."""
    grid = [max(2, int(theory / 2)), int(round(theory)), int(2 * theory)]
    curve = capacity_curve(
        estimator, grid, n_features=D, n_queries=n_queries, random_state=0
    )
    assert curve.recalled[0] >= 0.5, curve.recalled
    assert curve.recalled[-1] < 0.5, curve.recalled
    assert theory / 2 <= curve.k50 <= 2 * theory
    return curve


@pytest.mark.parametrize("update", ["async", "sync"])
def test_hopfield_capacity_at_d100(update):
    _k50_within_factor_two(
        HopfieldNetwork(update=update, random_state=0), hopfield_capacity(D)
    )


@pytest.mark.parametrize("degree", [2, 3])
def test_polynomial_capacity_at_d100(degree):
    _k50_within_factor_two(
        DiscreteDenseAM(degree=degree, random_state=0), polynomial_capacity(D, degree)
    )


@pytest.mark.slow
def test_polynomial_degree_four_capacity_at_d100():
    _k50_within_factor_two(
        # 20 sweeps: recalled queries converge in about 5; the rest are not
        # recalled either way (2-cycles would run to max_iter)
        DiscreteDenseAM(degree=4, update="sync", max_iter=20),
        polynomial_capacity(D, 4),
        n_queries=50,
    )


@pytest.mark.slow
def test_exponential_capacity_at_d100_exceeds_ten_thousand():
    curve = capacity_curve(
        DiscreteDenseAM(separation="exp", update="sync"),
        [10_000],
        n_features=D,
        n_queries=50,
        random_state=0,
    )
    assert curve.recalled[0] >= 0.5 and curve.fixed_points[0] >= 0.5
