"""DiffusionAM (memories learned by denoising score matching) and the
copy / spurious / novel diagnostics."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from skam import DenseAM, DiffusionAM
from skam._score_matching import dsm_loss_and_grad
from skam.diagnostics import label_fractions, label_samples, spurious_minima


def _circle(K, seed=9):
    a = np.random.RandomState(seed).uniform(0, 2 * np.pi, K)
    return np.c_[np.cos(a), np.sin(a)]


def test_dsm_gradient_matches_finite_differences():
    rng = np.random.RandomState(0)
    X0, z, Xi = rng.randn(20, 3), rng.randn(20, 3), rng.randn(5, 3)
    _, G = dsm_loss_and_grad(X0, z, Xi, np, beta_t=2.0, beta=4.0)
    h, fd = 1e-6, np.zeros_like(Xi)
    for idx in np.ndindex(*Xi.shape):
        E = np.zeros_like(Xi)
        E[idx] = h
        up = dsm_loss_and_grad(X0, z, Xi + E, np, beta_t=2.0, beta=4.0, with_grad=False)
        down = dsm_loss_and_grad(
            X0, z, Xi - E, np, beta_t=2.0, beta=4.0, with_grad=False
        )
        fd[idx] = (up[0] - down[0]) / (2 * h)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-8)


def test_dsm_is_the_tutorial_loss():
    # lambda(t) |score * std + z|^2 with the model's score -beta_t grad E
    rng = np.random.RandomState(1)
    X0, z, Xi = rng.randn(30, 2), rng.randn(30, 2), rng.randn(4, 2)
    beta_t, beta = 5.0, 5.0
    x = X0 + z / np.sqrt(beta_t)
    am = DenseAM(beta=beta_t, step_size=1.0, max_iter=1, tol=0).fit(Xi)
    score = -beta_t * (x - am.transform(x))  # grad E = x - softmax @ Xi
    tutorial = np.sum((score / np.sqrt(beta_t) + z) ** 2)
    ours, _ = dsm_loss_and_grad(
        X0, z, Xi, np, beta_t=beta_t, beta=beta, with_grad=False
    )
    np.testing.assert_allclose(ours * beta, tutorial, rtol=1e-10)


def test_few_points_are_memorised():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    am = DiffusionAM(n_memories=6, beta=100.0, max_epochs=200, random_state=0).fit(X)
    d = np.sqrt(((am.memories_[:, None] - X[None]) ** 2).sum(-1))
    assert d.min(axis=1).max() < 0.05  # every memory sits on a training point
    samples = am.transform(am.sample(300, method="anneal", random_state=0))
    labels = label_samples(samples, X, copy_threshold=0.05)
    assert label_fractions(labels)["copy"] == 1.0


def test_many_points_generalise_on_the_circle():
    X = _circle(1000)
    am = DiffusionAM(n_memories=32, beta=40.0, max_epochs=30, random_state=0).fit(X)
    radius = np.linalg.norm(am.memories_, axis=1)
    assert np.all(np.abs(radius - 1) < 0.05)
    samples = am.transform(am.sample(500, method="anneal", random_state=0))
    found = spurious_minima(am, X, copy_threshold=0.05, starts=samples, random_state=0)
    labels = label_samples(
        samples, X, copy_threshold=0.05, spurious_minima=found.minima
    )
    assert label_fractions(labels)["novel"] > 0.9
    # stored at a tiny noise level, the same points are copied instead
    exact = (
        DenseAM(beta=1e10)
        .fit(X)
        .sample(500, method="anneal", n_steps=400, random_state=0)
    )
    copy = label_fractions(label_samples(exact, X, copy_threshold=0.05))["copy"]
    assert copy > 0.95


def test_no_partial_fit():
    assert not hasattr(DiffusionAM(), "partial_fit")
    assert hasattr(DenseAM(), "partial_fit")


# ------------------------------------------------------------ diagnostics
def test_label_samples_three_ways():
    train = np.array([[0.0, 0.0], [1.0, 0.0]])
    samples = np.array([[0.01, 0.0], [0.5, 0.02], [3.0, 3.0], [0.99, 0.0]])
    labels = label_samples(
        samples, train, copy_threshold=0.05, spurious_minima=[[0.5, 0.0]]
    )
    assert labels.tolist() == ["copy", "spurious", "novel", "copy"]
    fr = label_fractions(labels)
    assert fr == {"copy": 0.5, "spurious": 0.25, "novel": 0.25}


def test_copy_ratio_on_dense_data():
    # within copy_threshold of a training point but half-way to the next one
    train = np.array([[0.0], [0.02], [1.0]])
    samples = np.array([[0.01], [0.001], [1.01]])
    labels = label_samples(samples, train, copy_threshold=0.05)
    assert labels.tolist() == ["novel", "copy", "copy"]
    loose = label_samples(samples, train, copy_threshold=0.05, copy_ratio=None)
    assert loose.tolist() == ["copy", "copy", "copy"]


def test_label_errors():
    train = np.zeros((2, 2))
    with pytest.raises(ValueError, match="features"):
        label_samples(np.zeros((1, 3)), train, copy_threshold=0.1)
    with pytest.raises(ValueError, match="copy_threshold"):
        label_samples(np.zeros((1, 2)), train, copy_threshold=-1)
    with pytest.raises(ValueError, match="unknown labels"):
        label_fractions(["copy", "memorised"])


@pytest.mark.parametrize("beta, n_spurious", [(1.0, 1), (30.0, 0)])
def test_spurious_minimum_of_two_merged_memories(beta, n_spurious):
    train = np.array([[0.0], [1.0]])
    am = DenseAM(beta=beta).fit(train)
    found = spurious_minima(am, train, copy_threshold=0.05, random_state=0)
    assert found.minima.shape[0] == n_spurious
    if n_spurious:  # brute-force minimum of the 1-D energy
        oracle = minimize_scalar(lambda v: am.energy([[v]])[0], bounds=(-1, 2)).x
        np.testing.assert_allclose(found.minima[0, 0], oracle, atol=1e-4)
    else:
        assert found.n_point_minima == 2  # the two memories themselves


def test_spurious_minimum_between_close_memories_in_2d():
    # two memories 0.2 apart merge at beta = 40 (width 0.16), a third stays
    train = np.array([[0.0, 0.0], [0.2, 0.0], [2.0, 2.0]])
    am = DenseAM(beta=40.0).fit(train)
    found = spurious_minima(am, train, copy_threshold=0.05, random_state=0)
    np.testing.assert_allclose(found.minima, [[0.1, 0.0]], atol=1e-3)
    assert found.n_point_minima == 2 and found.n_reached.sum() > 0


def test_dense_circle_is_a_valley_not_spurious_minima():
    X = _circle(1000)
    am = DenseAM(beta=40.0).fit(X)
    found = spurious_minima(am, X, copy_threshold=0.05, n_starts=400, random_state=0)
    assert found.minima.shape[0] == 0
    assert found.n_valley_states == 400
