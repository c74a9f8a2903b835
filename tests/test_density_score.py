"""DenseAM.score: the mean log-likelihood of the normalised kernel density.

Oracles: scikit-learn's KernelDensity (Gaussian and Epanechnikov kernels) and
numerical integration (the density integrates to one).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity

from skam import DenseAM


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    return rng.randn(60, 3), 0.7 * rng.randn(25, 3)


@pytest.mark.parametrize("beta", [0.2, 1.0, 5.0])
def test_lse_score_is_gaussian_kde_mean_log_likelihood(data, beta):
    X, Q = data
    w = np.random.RandomState(1).uniform(0.1, 3.0, size=X.shape[0])
    am = DenseAM(beta=beta).fit(X, sample_weight=w)
    kde = KernelDensity(bandwidth=1 / np.sqrt(beta)).fit(X, sample_weight=w)
    assert_allclose(am.score(Q), kde.score(Q) / Q.shape[0], rtol=1e-10)


@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_lsr_score_is_epanechnikov_kde_mean_log_likelihood(data, beta):
    X, Q = data
    am = DenseAM(separation="lsr", beta=beta).fit(X)
    kde = KernelDensity(kernel="epanechnikov", bandwidth=np.sqrt(2 / beta)).fit(X)
    assert_allclose(am.score(Q), kde.score(Q) / Q.shape[0], rtol=1e-10)


def test_outside_every_support_is_minus_inf():
    am = DenseAM(separation="lsr", beta=2.0).fit(np.zeros((1, 2)))
    assert am.score(np.array([[5.0, 5.0]])) == -np.inf


@pytest.mark.parametrize(
    "separation, degree", [("rectified_poly", 2), ("rectified_poly", 5), ("lsr", 1)]
)
def test_compact_kernels_integrate_to_one(separation, degree):
    memories_1d = np.array([[0.0], [0.3], [2.0]])
    am = DenseAM(
        separation=separation, similarity="sqeuclidean", degree=degree, beta=1.7
    ).fit(memories_1d)

    def density(x):
        return np.exp(am.score(np.array([[x]])))

    mass, _ = integrate.quad(density, -4, 6, points=[0.0, 0.3, 2.0], limit=200)
    assert_allclose(mass, 1.0, rtol=1e-6)

    memories_2d = np.array([[0.0, 0.0], [0.5, -0.2]])
    am2 = DenseAM(
        separation=separation, similarity="sqeuclidean", degree=degree, beta=2.0
    ).fit(memories_2d)
    x = np.linspace(-2.0, 2.5, 901)
    y = np.linspace(-2.2, 2.2, 881)
    grid = np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1).reshape(-1, 2)
    p = np.exp(am2._log_density(grid)).reshape(x.size, y.size)
    mass2 = integrate.trapezoid(integrate.trapezoid(p, y, axis=1), x)
    assert_allclose(mass2, 1.0, rtol=1e-4)


def test_grid_search_over_beta_agrees_with_kernel_density(data):
    X, _ = data
    betas = [0.1, 0.5, 2.0, 8.0, 32.0]
    cv = KFold(5, shuffle=True, random_state=0)
    am = GridSearchCV(DenseAM(), {"beta": betas}, cv=cv).fit(X)
    kde = GridSearchCV(
        KernelDensity(), {"bandwidth": [1 / np.sqrt(b) for b in betas]}, cv=cv
    ).fit(X)
    assert am.best_params_["beta"] == pytest.approx(
        1 / kde.best_params_["bandwidth"] ** 2
    )
    # folds of equal size: mean = sum / 12 for every candidate
    assert_allclose(
        am.cv_results_["mean_test_score"] * 12, kde.cv_results_["mean_test_score"]
    )


def test_float32_and_scale_beta(data):
    X, Q = data
    am = DenseAM().fit(X.astype(np.float32))
    kde = KernelDensity(bandwidth=1 / np.sqrt(am.beta_)).fit(X)
    assert_allclose(am.score(Q.astype(np.float32)), kde.score(Q) / len(Q), rtol=1e-4)


@pytest.mark.parametrize(
    "params", [{"similarity": "dot"}, {"separation": "poly"}], ids=["dot", "poly"]
)
def test_non_integrable_kernels_raise(data, params):
    X, Q = data
    am = DenseAM(beta=0.5, **params).fit(X)
    with pytest.raises(ValueError, match="normalised log-density"):
        am.score(Q)
    am.score_samples(Q)  # the unnormalised -E stays available
