"""DenseAM and HopfieldNetwork: behaviour, bad input, partial_fit, pickling."""

import pickle

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skam import DenseAM, HopfieldNetwork
from skam.capacity import recall_fraction
from skam.datasets import flip_bits


def test_predict_reports_mixtures_as_minus_one():
    Xi = np.array([[0.0, 0.0], [4.0, 0.0]])
    am = DenseAM(beta=0.05).fit(Xi)  # tiny beta: one minimum at the mean
    assert list(am.predict(Xi)) == [-1, -1]
    am = DenseAM(beta=5.0).fit(Xi)
    assert list(am.predict(Xi + 0.3)) == [0, 1]
    assert recall_fraction(am).fixed_points == 1.0


def test_partial_fit_equals_fit(binary_patterns):
    full = DenseAM(beta=0.5).fit(binary_patterns)
    part = (
        DenseAM(beta=0.5)
        .partial_fit(binary_patterns[:7])
        .partial_fit(binary_patterns[7:])
    )
    np.testing.assert_array_equal(part.memories_, full.memories_)
    Q = flip_bits(binary_patterns, 0.1, random_state=0)
    np.testing.assert_allclose(part.transform(Q), full.transform(Q))
    with pytest.raises(ValueError, match="features"):
        part.partial_fit(binary_patterns[:, :10])


def test_partial_fit_weights():
    rng = np.random.RandomState(0)
    A, B = rng.randn(5, 3), rng.randn(4, 3)
    w = rng.uniform(1, 2, 4)
    am = DenseAM(beta=1.0).partial_fit(A).partial_fit(B, sample_weight=w)
    np.testing.assert_array_equal(am.memory_weights_, np.r_[np.ones(5), w])
    ref = DenseAM(beta=1.0).fit(np.vstack([A, B]), sample_weight=np.r_[np.ones(5), w])
    Q = rng.randn(3, 3)
    np.testing.assert_allclose(am.energy(Q), ref.energy(Q))


def test_integer_weight_equals_repetition():
    rng = np.random.RandomState(1)
    Xi, Q = rng.randn(6, 4), rng.randn(5, 4)
    w = np.array([1, 2, 0, 3, 1, 1])
    weighted = DenseAM(beta=0.8).fit(Xi, sample_weight=w)
    repeated = DenseAM(beta=0.8).fit(np.repeat(Xi, w, axis=0))
    np.testing.assert_allclose(weighted.energy(Q), repeated.energy(Q), rtol=1e-12)
    np.testing.assert_allclose(weighted.transform(Q), repeated.transform(Q), rtol=1e-10)


def test_scale_beta_makes_memories_fixed_points(binary_patterns):
    am = DenseAM().fit(binary_patterns)
    assert am.beta_ > 0 and recall_fraction(am).fixed_points == 1.0
    # the rule: 4 log K / median nearest squared distance
    d2 = ((binary_patterns[:, None] - binary_patterns[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    expected = 4 * np.log(len(binary_patterns)) / np.median(d2.min(1))
    assert am.beta_ == pytest.approx(expected)


def test_score_samples_is_minus_energy(binary_patterns):
    am = DenseAM(beta=0.3).fit(binary_patterns)
    np.testing.assert_array_equal(
        am.score_samples(binary_patterns), -am.energy(binary_patterns)
    )


BAD_X = [
    (np.array([[np.nan, 1.0]]), ValueError, "NaN"),
    (np.array([[np.inf, 1.0]]), ValueError, "infinity"),
    (np.zeros((0, 2)), ValueError, "0 sample"),
    (np.zeros((3, 5)), ValueError, "5 features"),
    (np.zeros(2), ValueError, "2D array"),
]


@pytest.mark.parametrize("Estimator", [DenseAM, HopfieldNetwork])
@pytest.mark.parametrize("X, error, match", BAD_X)
@pytest.mark.parametrize("method", ["transform", "predict", "energy"])
def test_bad_input_is_rejected_clearly(Estimator, X, error, match, method):
    est = Estimator().fit(np.random.RandomState(0).randn(10, 2))
    with pytest.raises(error, match=match):
        getattr(est, method)(X)


def test_bad_clamp_mask():
    X = np.random.RandomState(0).randn(10, 3)
    am = DenseAM(beta=1.0).fit(X)
    with pytest.raises(
        ValueError, match=r"clamp_mask must have shape \(3,\) or \(10, 3\)"
    ):
        am.transform(X, clamp_mask=np.ones(4, dtype=bool))
    with pytest.raises(TypeError, match="clamp_mask must be a boolean array"):
        am.transform(X, clamp_mask=np.ones(3))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"beta": "auto"}, "beta"),
        ({"separation": "gaussian"}, "separation"),
        ({"similarity": "cosine"}, "similarity"),
        ({"step_size": 0}, "step_size"),
    ],
)
def test_bad_parameters_name_the_parameter(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        DenseAM(**params).fit(np.eye(3))


def test_pickle_roundtrip(binary_patterns):
    am = DenseAM(separation="lsr", beta=0.1).fit(binary_patterns)
    again = pickle.loads(pickle.dumps(am))
    Q = flip_bits(binary_patterns, 0.1, random_state=1)
    np.testing.assert_array_equal(again.transform(Q), am.transform(Q))


# ----------------------------------------------------------------- Hopfield
def test_hopfield_hebbian_weights_and_energy(binary_patterns):
    net = HopfieldNetwork().fit(binary_patterns)
    D = binary_patterns.shape[1]
    W = binary_patterns.T @ binary_patterns / D
    np.fill_diagonal(W, 0)
    np.testing.assert_allclose(net.coupling_, W)
    s = np.sign(np.random.RandomState(0).randn(4, D))
    np.testing.assert_allclose(net.energy(s), -0.5 * np.einsum("ni,ij,nj->n", s, W, s))


@pytest.mark.parametrize("update", ["async", "sync"])
def test_hopfield_recall_and_inverted_states(update):
    rng = np.random.RandomState(0)
    P = np.sign(rng.randn(3, 200))
    net = HopfieldNetwork(update=update, random_state=0).fit(P)
    np.testing.assert_array_equal(net.transform(flip_bits(P, 0.1, random_state=0)), P)
    # E(-s) = E(s): a query closer to the inverted pattern retrieves it
    inverted = net.transform(flip_bits(-P, 0.1, random_state=1))
    np.testing.assert_array_equal(inverted, -P)
    assert np.all(net.predict(-P) == -1)


def test_hopfield_async_energy_never_increases():
    rng = np.random.RandomState(2)
    P = np.sign(rng.randn(30, 60))  # above capacity: many spurious minima
    net = HopfieldNetwork(random_state=0).fit(P)
    Q = np.sign(rng.randn(20, 60))
    assert np.all(net.energy(net.transform(Q)) <= net.energy(Q) + 1e-12)


def test_hopfield_accepts_zero_one_data():
    P01 = (np.random.RandomState(3).rand(2, 50) > 0.5).astype(float)
    net = HopfieldNetwork(random_state=0).fit(P01)
    np.testing.assert_array_equal(net.memories_, 2 * P01 - 1)


def test_hopfield_async_needs_several_sweeps_above_capacity():
    """Regression: async recall must keep sweeping until a sweep changes nothing."""
    rng = np.random.RandomState(5)
    P = np.sign(rng.randn(25, 60))
    net = HopfieldNetwork(random_state=0, max_iter=200).fit(P)
    out = net.transform(np.sign(rng.randn(30, 60)))
    # a fixed point: one more synchronous field evaluation flips nothing
    np.testing.assert_array_equal(np.where(out @ net.coupling_ >= 0, 1.0, -1.0), out)


def test_repeated_memories_count_once_in_predict():
    rng = np.random.RandomState(6)
    Xi = rng.randn(5, 4)
    repeated = np.vstack([Xi, Xi[[0, 2]]])
    Q = Xi + 0.05 * rng.randn(5, 4)
    expected = DenseAM(beta=20.0).fit(Xi).predict(Q)
    assert list(expected) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(DenseAM(beta=20.0).fit(repeated).predict(Q), expected)
    # a zero-weight memory is not a memory
    w = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    assert DenseAM(beta=20.0).fit(Xi, sample_weight=w).predict(Q)[2] != 2


def test_sample_weight_equivalence_with_float_beta():
    from sklearn.utils.estimator_checks import (
        check_sample_weight_equivalence_on_dense_data,
    )

    check_sample_weight_equivalence_on_dense_data("DenseAM", DenseAM(beta=1.0))


@pytest.mark.parametrize(
    "separation, similarity, expected",
    [
        ("lsr", "sqeuclidean", lambda r2, X: 2 / r2),
        ("rectified_poly", "sqeuclidean", lambda r2, X: 2 / r2),
        ("poly", "dot", lambda r2, X: X.shape[1] / (X**2).sum(1).max()),
        ("rectified_poly", "dot", lambda r2, X: X.shape[1] / (X**2).sum(1).max()),
    ],
)
def test_scale_rules_of_other_separations(
    binary_patterns, separation, similarity, expected
):
    d2 = ((binary_patterns[:, None] - binary_patterns[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    r2 = np.median(d2.min(1))
    am = DenseAM(separation=separation, similarity=similarity).fit(binary_patterns)
    assert am.beta_ == pytest.approx(expected(r2, binary_patterns))
