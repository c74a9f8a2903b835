"""The energies against independent oracles: KernelDensity, brute force, finite differences."""

import math
import warnings

import numpy as np
import pytest
from array_api_compat import numpy as xp
from sklearn.neighbors import KernelDensity

from skam import DenseAM
from skam._energy import EnergySpec, energy_and_gradient, prepare_memories


@pytest.fixture
def digits():
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    return X[:300], X[300:340]


@pytest.mark.parametrize("beta", [0.5, 5.0])
def test_lse_energy_is_gaussian_kde(digits, beta):
    Xi, Q = digits
    kde = KernelDensity(kernel="gaussian", bandwidth=1 / np.sqrt(beta)).fit(Xi)
    am = DenseAM(beta=beta).fit(Xi)
    d = Xi.shape[1]
    const = -np.log(len(Xi)) - d / 2 * np.log(2 * np.pi / beta)
    np.testing.assert_allclose(
        kde.score_samples(Q), -beta * am.energy(Q) + const, rtol=0, atol=1e-8
    )


def test_weighted_lse_energy_is_weighted_kde(digits):
    Xi, Q = digits
    beta = 2.0
    w = np.random.RandomState(0).uniform(0.1, 3.0, len(Xi))
    kde = KernelDensity(bandwidth=1 / np.sqrt(beta)).fit(Xi, sample_weight=w)
    am = DenseAM(beta=beta).fit(Xi, sample_weight=w)
    const = -np.log(w.sum()) - Xi.shape[1] / 2 * np.log(2 * np.pi / beta)
    np.testing.assert_allclose(
        kde.score_samples(Q), -beta * am.energy(Q) + const, atol=1e-8
    )


def test_lsr_energy_is_epanechnikov_kde():
    rng = np.random.RandomState(0)
    # 50 queries among the memories, 10 beyond the support radius sqrt(2/beta)
    Xi, Q = rng.rand(200, 3), np.vstack([rng.rand(50, 3), 2.0 + rng.rand(10, 3)])
    beta = 20.0
    kde = KernelDensity(kernel="epanechnikov", bandwidth=np.sqrt(2 / beta)).fit(Xi)
    am = DenseAM(separation="lsr", beta=beta, epsilon=0.0).fit(Xi)
    kde_logp, energy = kde.score_samples(Q), am.energy(Q)
    inside = np.isfinite(kde_logp)
    assert inside.sum() > 30 and (~inside).sum() == 10
    offset = kde_logp[inside] + beta * energy[inside]
    np.testing.assert_allclose(offset, offset[0], atol=1e-9)  # a constant
    assert np.all(energy[~inside] == np.inf)  # +inf outside the support


def test_poly_dot_energy_matches_brute_force():
    rng = np.random.RandomState(1)
    Xi, Q = rng.randn(7, 5), rng.randn(4, 5)
    beta, n = 0.3, 2
    am = DenseAM(separation="poly", similarity="dot", degree=n, beta=beta).fit(Xi)
    kernel = (1 + beta * Q @ Xi.T) ** n
    expected = -np.log(1e-10 + np.maximum(kernel.sum(1), 0)) / beta
    np.testing.assert_allclose(am.energy(Q), expected, rtol=1e-12)


def test_rectified_poly_energy_matches_brute_force():
    rng = np.random.RandomState(2)
    Xi, Q = rng.randn(9, 3), rng.randn(6, 3)
    beta, n, eps = 0.4, 3, 1e-6
    am = DenseAM(
        separation="rectified_poly",
        similarity="sqeuclidean",
        degree=n,
        beta=beta,
        epsilon=eps,
    ).fit(Xi)
    d2 = ((Q[:, None, :] - Xi[None]) ** 2).sum(-1)
    kernel = np.maximum(1 - beta / 2 * d2, 0) ** n
    np.testing.assert_allclose(am.energy(Q), -np.log(eps + kernel.sum(1)) / beta)


SPECS = [
    EnergySpec("lse", "sqeuclidean", 1.3),
    EnergySpec("lse", "dot", 0.7),
    EnergySpec("poly", "dot", 0.2, degree=3),
    EnergySpec("poly", "sqeuclidean", 0.05, degree=2),
    EnergySpec("rectified_poly", "sqeuclidean", 0.1, degree=3),
    EnergySpec("lsr", "sqeuclidean", 0.1),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.separation}-{s.similarity}")
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_finite_differences(spec, weighted):
    rng = np.random.RandomState(0)
    Xi, V = rng.randn(8, 4), 0.5 * rng.randn(5, 4)
    c = rng.uniform(0.5, 1.5, 4) if weighted else None
    w = rng.uniform(0.5, 2.0, 8) if weighted else None
    mem = prepare_memories(Xi, xp, weights=w, coord_weights=c)
    E, G = energy_and_gradient(V, mem, spec, xp)
    h = 1e-6
    for j in range(V.shape[1]):
        step = np.zeros_like(V)
        step[:, j] = h
        num = (
            energy_and_gradient(V + step, mem, spec, xp)[0]
            - energy_and_gradient(V - step, mem, spec, xp)[0]
        ) / (2 * h)
        np.testing.assert_allclose(G[:, j], num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("beta", [1e-8, 1e6])
@pytest.mark.parametrize("separation", ["lse", "lsr", "rectified_poly", "poly"])
def test_extreme_beta_is_finite_without_warnings(beta, separation):
    rng = np.random.RandomState(0)
    Xi, Q = rng.randn(30, 10), 3 * rng.randn(5, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        am = DenseAM(separation=separation, beta=beta).fit(Xi)
        E = am.energy(Q)
        states = am.transform(Q)
    assert np.all(np.isfinite(E)) and np.all(np.isfinite(states))


def test_lse_one_step_is_attention_update():
    rng = np.random.RandomState(3)
    Xi, Q = rng.randn(10, 6), rng.randn(4, 6)
    beta = 0.8
    out = DenseAM(beta=beta, step_size=1.0, max_iter=1).fit(Xi).transform(Q)
    logits = -beta / 2 * ((Q[:, None, :] - Xi[None]) ** 2).sum(-1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(out, p @ Xi, rtol=1e-12)


def test_float32_stays_float32_and_agrees():
    rng = np.random.RandomState(4)
    Xi, Q = rng.randn(50, 8), rng.randn(10, 8)
    am64 = DenseAM(beta=0.5).fit(Xi)
    am32 = DenseAM(beta=0.5).fit(Xi.astype(np.float32))
    out = am32.transform(Q.astype(np.float32))
    assert (
        out.dtype == np.float32
        and am32.energy(Q.astype(np.float32)).dtype == np.float32
    )
    np.testing.assert_allclose(out, am64.transform(Q), rtol=1e-4, atol=1e-4)


def test_log_epsilon():
    assert EnergySpec("lse").log_epsilon == -math.inf
    assert EnergySpec("lsr", epsilon=0.0).log_epsilon == -math.inf


def test_log_softmax_matches_scipy():
    from scipy.special import log_softmax as scipy_log_softmax

    from skam._energy import log_softmax

    scores = np.array([[1.0, 2.0, 3.0], [-1e300, 0.0, 5e2], [-np.inf, 0.0, 1.0]])
    np.testing.assert_allclose(
        log_softmax(scores, xp), scipy_log_softmax(scores, axis=1)
    )
