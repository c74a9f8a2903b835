"""A new separation is one new object that every estimator gains.

The toy separation ``F(z) = exp(2 z)`` is registered here and nowhere else.
It is not flagged exponential, so it runs through the engine's generic
(signed, mean-shift) paths, and it has an exact oracle: its energy at
``beta`` is twice the LSE energy at ``2 beta`` and its descent is LSE's
descent at ``2 beta`` (the mean-shift weights ``F'(z) / sum F'`` are the
softmax of ``2 beta S``).
"""

import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skam import DenseAM, DenseAMClassifier
from skam._separations import register_separation, unregister_separation
from skam._separations.base import Separation


class DoubledExp(Separation):
    """``F(z) = exp(2 z)``: ``log|F^(k)| = k log 2 + 2 z``."""

    name = "toy_doubled_exp"
    kernel = "Gaussian, bandwidth 1/sqrt(2 beta)"
    kernel_family = None

    def beta_rule(self, similarity="sqeuclidean"):
        return "separation"

    def log_abs(self, z, order, xp):
        return 2.0 * z + order * math.log(2.0), None


@pytest.fixture
def toy():
    register_separation(DoubledExp)
    yield DoubledExp.name
    unregister_separation(DoubledExp.name)


def _data():
    rng = np.random.RandomState(0)
    M = rng.randn(30, 5)
    Q = M[:12] + 0.3 * rng.randn(12, 5)
    return M, Q


def test_dense_am_gains_a_registered_separation(toy):
    M, Q = _data()
    beta = 0.4
    am = DenseAM(separation=toy, beta=beta, epsilon=0.0, max_iter=8).fit(M)
    ref = DenseAM(separation="lse", beta=2 * beta, max_iter=8).fit(M)
    assert am.similarity_ == "sqeuclidean"
    np.testing.assert_allclose(am.energy(Q), 2 * ref.energy(Q), rtol=1e-12)
    np.testing.assert_allclose(am.transform(Q), ref.transform(Q), atol=1e-12)
    one = DenseAM(separation=toy, beta=beta, epsilon=0.0, max_iter=1, step_size=0.5)
    ref_one = DenseAM(separation="lse", beta=2 * beta, max_iter=1, step_size=0.5)
    np.testing.assert_allclose(
        one.fit(M).transform(Q), ref_one.fit(M).transform(Q), atol=1e-12
    )


def test_unregistered_names_are_rejected(toy):
    M, _ = _data()
    unregister_separation(toy)
    with pytest.raises(ValueError, match="separation"):
        DenseAM(separation=toy).fit(M)


def test_classifiers_gain_a_registered_separation(toy):
    rng = np.random.RandomState(1)
    X = np.concatenate([rng.randn(40, 3) - 1.5, rng.randn(40, 3) + 1.5])
    y = np.repeat([0, 1], 40)
    beta = 0.3
    clf = DenseAMClassifier(separation=toy, beta=beta, epsilon=0.0).fit(X, y)
    ref = DenseAMClassifier(separation="lse", beta=2 * beta).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-10)
    # trained through the graph engine (mean-shift steps), it learns what the
    # fused LSE loop learns at 2 beta
    params = dict(mode="parametric", n_memories=4, max_epochs=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        trained = DenseAMClassifier(
            separation=toy, beta=beta, epsilon=0.0, **params
        ).fit(X, y)
        trained_ref = DenseAMClassifier(separation="lse", beta=2 * beta, **params).fit(
            X, y
        )
    np.testing.assert_allclose(trained.loss_curve_, trained_ref.loss_curve_, rtol=1e-8)
    np.testing.assert_allclose(trained.memories_, trained_ref.memories_, atol=1e-8)
    assert trained.loss_curve_[-1] < trained.loss_curve_[0]
    np.testing.assert_allclose(
        trained.predict_proba(X), trained_ref.predict_proba(X), atol=1e-8
    )
