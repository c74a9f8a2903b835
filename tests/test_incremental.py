"""partial_fit of the nonparametric classifier/regressor and predict_log_proba.

Oracle: ``fit`` on all the data at once (the nonparametric memories are the
samples, so adding them in batches must give the same model), with the
``beta_`` that ``beta="scale"`` resolved on the first batch (one policy with
DenseAM and RandomFeatureAM: resolved by the first call, kept afterwards).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, make_regression
from sklearn.preprocessing import StandardScaler

from skam import DenseAMClassifier, DenseAMRegressor
from skam._backend import to_numpy


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(y))
    return StandardScaler().fit_transform(X[perm]), np.array(["a", "b", "c"])[y[perm]]


@pytest.mark.parametrize("weighted", [False, True])
def test_classifier_batches_equal_one_fit(iris, weighted):
    X, y = iris
    w = np.random.RandomState(1).uniform(0.5, 2, len(y)) if weighted else None
    inc = DenseAMClassifier()
    batches = np.array_split(np.arange(len(y)), 4)
    first = batches[0]
    beta_first = (
        DenseAMClassifier()
        .fit(X[first], y[first], sample_weight=None if w is None else w[first])
        .beta_
    )
    for batch in batches:
        inc.partial_fit(
            X[batch],
            y[batch],
            classes=["a", "b", "c"] if batch[0] == 0 else None,
            sample_weight=None if w is None else w[batch],
        )
    assert inc.beta_ == beta_first  # resolved by the first call, kept
    full = DenseAMClassifier(beta=inc.beta_).fit(X, y, sample_weight=w)
    assert_array_equal(inc.classes_, full.classes_)
    assert_allclose(inc.memories_, full.memories_)
    assert_allclose(inc.predict_proba(X), full.predict_proba(X), atol=1e-12)


def test_classifier_first_batch_may_miss_classes(iris):
    X, y = iris
    order = np.argsort(y, kind="stable")  # first batch holds only class "a"
    inc = DenseAMClassifier().partial_fit(
        X[order[:40]], y[order[:40]], classes=["c", "a", "b"]
    )
    assert_array_equal(inc.classes_, ["a", "b", "c"])
    assert inc.predict_proba(X[:3]).shape == (3, 3)
    inc.partial_fit(X[order[40:]], y[order[40:]])
    full = DenseAMClassifier(beta=inc.beta_).fit(X[order], y[order])
    assert_allclose(inc.predict_proba(X), full.predict_proba(X), atol=1e-12)


def test_classifier_partial_fit_argument_errors(iris):
    X, y = iris
    with pytest.raises(ValueError, match="classes must be passed"):
        DenseAMClassifier().partial_fit(X, y)
    clf = DenseAMClassifier().partial_fit(X[:10], y[:10], classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"labels \['z'\]"):
        clf.partial_fit(X[:2], ["a", "z"])
    with pytest.raises(ValueError, match="differs from the classes"):
        clf.partial_fit(X[:2], y[:2], classes=["a", "b"])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:2, :3], y[:2])


def test_parametric_mode_has_no_partial_fit():
    assert hasattr(DenseAMClassifier(), "partial_fit")
    assert not hasattr(DenseAMClassifier(mode="parametric"), "partial_fit")
    assert not hasattr(DenseAMRegressor(mode="parametric"), "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        DenseAMRegressor(mode="parametric").partial_fit  # noqa: B018


@pytest.mark.parametrize("n_targets", [1, 2])
def test_regressor_batches_equal_one_fit(n_targets):
    X, y = make_regression(240, 4, n_targets=n_targets, noise=5, random_state=0)
    X = StandardScaler().fit_transform(X)
    w = np.random.RandomState(2).uniform(0.2, 3, len(X))
    inc = DenseAMRegressor()
    for batch in np.array_split(np.arange(len(X)), 3):
        inc.partial_fit(X[batch], y[batch], sample_weight=w[batch])
        if batch[0] == 0:
            beta_first = inc.beta_
    assert inc.beta_ == beta_first
    full = DenseAMRegressor(beta=inc.beta_).fit(X, y, sample_weight=w)
    assert_allclose(inc.target_mean_, full.target_mean_, rtol=1e-12)
    assert_allclose(inc.target_scale_, full.target_scale_, rtol=1e-12)
    assert_allclose(inc.memories_, full.memories_, atol=1e-10)
    assert_allclose(inc.predict(X), full.predict(X), rtol=1e-9, atol=1e-9)
    assert inc.predict(X).shape == y.shape
    with pytest.raises(ValueError, match="output"):
        inc.partial_fit(X[:3], np.ones((3, n_targets + 1)))


def test_partial_fit_after_fit_extends_the_memories(iris):
    X, y = iris
    clf = DenseAMClassifier().fit(X[:100], y[:100])
    beta_first = clf.beta_
    clf.partial_fit(X[100:], y[100:])
    assert clf.memories_.shape[0] == len(y)
    assert clf.beta_ == beta_first
    full = DenseAMClassifier(beta=clf.beta_).fit(X, y)
    assert_allclose(clf.predict_proba(X), full.predict_proba(X), atol=1e-12)


def test_partial_fit_on_array_api_strict(iris, strict_input):
    X, y = iris
    y_idx = np.unique(y, return_inverse=True)[1]
    inc = DenseAMClassifier().partial_fit(
        strict_input(X[:60]), y_idx[:60], classes=[0, 1, 2]
    )
    inc.partial_fit(strict_input(X[60:]), y_idx[60:])
    full = DenseAMClassifier(beta=inc.beta_).fit(X, y_idx)
    assert_allclose(
        to_numpy(inc.predict_proba(strict_input(X))),
        full.predict_proba(X),
        atol=1e-12,
    )


@pytest.mark.parametrize("mode", ["nonparametric", "parametric"])
def test_predict_log_proba_is_log_of_predict_proba(iris, mode):
    X, y = iris
    clf = DenseAMClassifier(mode=mode, max_epochs=5, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    with np.errstate(divide="ignore"):
        expected = np.log(proba)
    log_proba = clf.predict_log_proba(X)
    assert_allclose(log_proba, expected, rtol=1e-12)
    assert_allclose(np.exp(log_proba).sum(axis=1), 1.0)


def test_predict_log_proba_is_minus_inf_where_a_neuron_is_zero():
    X = np.array([[0.0], [0.1], [10.0], [10.1]])
    clf = DenseAMClassifier(separation="lsr", beta=1.0).fit(X, [0, 0, 1, 1])
    with np.errstate(all="raise"):  # no log(0) warning is produced
        log_proba = clf.predict_log_proba([[0.05]])
    assert log_proba[0, 1] == -np.inf and log_proba[0, 0] == pytest.approx(0.0)


@pytest.mark.parametrize("namespace", ["numpy", "array_api_strict"])
def test_append_sample_weight_is_the_one_rule(namespace):
    """None on a side means ones; None when neither side is weighted."""
    from array_api_compat import array_namespace

    from skam._validation import append_sample_weight

    xp = array_namespace(np.zeros(1))
    if namespace == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")
    stored, new = xp.zeros((3, 2)), xp.zeros((2, 2))
    assert append_sample_weight(stored, None, new, None, xp) is None
    w_new = xp.asarray([2.0, 5.0], dtype=xp.float32)
    both = append_sample_weight(stored, None, new, w_new, xp)
    assert both.dtype == stored.dtype
    np.testing.assert_array_equal(to_numpy(both), [1, 1, 1, 2, 5])
    w_old = xp.asarray([3.0, 0.5, 1.0])
    np.testing.assert_array_equal(
        to_numpy(append_sample_weight(stored, w_old, new, None, xp)),
        [3, 0.5, 1, 1, 1],
    )
