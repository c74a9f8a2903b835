"""DiffusionAM (memories learned by denoising score matching) and the
copy / spurious / novel diagnostics."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from skam import DenseAM, DiffusionAM
from skam._score_matching import dsm_loss_and_grad
from skam.diagnostics import (
    label_fractions,
    label_samples,
    sample_quality,
    spurious_minima,
)


def _circle(K, seed=9):
    a = np.random.RandomState(seed).uniform(0, 2 * np.pi, K)
    return np.c_[np.cos(a), np.sin(a)]


def _dsm(X0, z, Xi, h, with_grad=True):
    return dsm_loss_and_grad(
        X0, z, Xi, np, beta_t=2.0, beta=4.0, bandwidth=h, with_grad=with_grad
    )


@pytest.mark.parametrize("h", [0.0, 0.3, 1.2])
def test_dsm_gradient_matches_finite_differences(h, numerical_gradient):
    rng = np.random.RandomState(0)
    X0, z, Xi = rng.randn(20, 3), rng.randn(20, 3), rng.randn(5, 3)
    _, G, G_h = _dsm(X0, z, Xi, h)
    fd = numerical_gradient(lambda M: _dsm(X0, z, M, h, False)[0], Xi)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-8)
    e = 1e-6
    up, down = _dsm(X0, z, Xi, h + e, False)[0], _dsm(X0, z, Xi, abs(h - e), False)[0]
    fd_h = (up - down) / (2 * e) if h > 0 else 0.0  # h = 0 is a minimum of h^2
    np.testing.assert_allclose(G_h, fd_h, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("h", [0.0, 0.4])
def test_dsm_is_the_tutorial_loss(h):
    # lambda(t) |score * std + z|^2 with the model's score: the mixture of
    # variance h^2 + 1/beta_t is a DenseAM at b = 1 / (h^2 + 1/beta_t)
    rng = np.random.RandomState(1)
    X0, z, Xi = rng.randn(30, 2), rng.randn(30, 2), rng.randn(4, 2)
    beta_t, beta = 5.0, 5.0
    b = 1 / (h**2 + 1 / beta_t)
    x = X0 + z / np.sqrt(beta_t)
    am = DenseAM(beta=b, step_size=1.0, max_iter=1, tol=0).fit(Xi)
    score = -b * (x - am.transform(x))  # grad E_b = x - softmax_b @ Xi
    tutorial = np.sum((score / np.sqrt(beta_t) + z) ** 2)
    ours, _, _ = dsm_loss_and_grad(
        X0, z, Xi, np, beta_t=beta_t, beta=beta, bandwidth=h, with_grad=False
    )
    np.testing.assert_allclose(ours * beta, tutorial, rtol=1e-10)


def test_one_memory_learns_a_gaussian():
    # data from N(c, s^2 I): the model family holds it exactly (one memory at
    # c, bandwidth s); DSM must find both
    rng = np.random.RandomState(0)
    c, s = np.array([1.0, -2.0, 0.5]), 0.3
    X = c + s * rng.randn(4000, 3)
    am = DiffusionAM(n_memories=1, max_epochs=40, random_state=0).fit(X)
    np.testing.assert_allclose(am.memories_[0], X.mean(axis=0), atol=0.02)
    np.testing.assert_allclose(am.bandwidth_, s, rtol=0.05)
    np.testing.assert_allclose(am.beta_, 1 / (s**2 + 1 / am.beta_max_), rtol=0.1)
    # its density is that Gaussian: the held-out log-likelihood of the truth
    X_test = c + s * rng.randn(2000, 3)
    truth = np.mean(-0.5 * np.sum((X_test - c) ** 2, 1) / s**2) - 1.5 * np.log(
        2 * np.pi * s**2
    )
    np.testing.assert_allclose(am.score(X_test), truth, atol=0.05)


def test_fixed_bandwidth_is_kept():
    X = _circle(50)
    am = DiffusionAM(n_memories=8, bandwidth=0.1, max_epochs=5, random_state=0).fit(X)
    assert am.bandwidth_ == 0.1
    np.testing.assert_allclose(am.beta_, 1 / (0.01 + 1 / am.beta_max_))
    np.testing.assert_allclose(am.beta_max_, 1e5 / np.var(X, axis=0).sum())


def test_few_points_are_memorised():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    am = DiffusionAM(n_memories=6, random_state=0).fit(X)
    d = np.sqrt(((am.memories_[:, None] - X[None]) ** 2).sum(-1))
    assert d.min(axis=1).max() < 0.01  # every memory sits on a training point
    assert am.bandwidth_ < 0.005  # and the kernels shrink to the finest noise
    samples = am.sample(300, method="anneal", random_state=0)
    labels = label_samples(samples, X, copy_threshold=0.05)
    assert label_fractions(labels)["copy"] == 1.0


def _radial_error(samples):
    return float(np.median(np.abs(np.linalg.norm(samples, axis=1) - 1)))


def test_circle_transition_from_copies_to_the_manifold():
    # K = 2: the learned model copies the two points
    X2 = _circle(2)
    few = DiffusionAM(n_memories=64, bandwidth="overlap", random_state=0).fit(X2)
    s2 = few.sample(300, method="anneal", random_state=0)
    assert label_fractions(label_samples(s2, X2, copy_threshold=0.05))["copy"] == 1
    # K = 1000: novel samples, on the circle
    X = _circle(1000)
    am = DiffusionAM(n_memories=64, bandwidth="overlap", random_state=0).fit(X)
    samples = am.sample(1000, method="anneal", random_state=0)
    found = spurious_minima(
        am,
        X,
        copy_threshold=0.05,
        merge_threshold=0.01,
        starts=samples,
        random_state=0,
    )
    labels = label_samples(
        samples, X, copy_threshold=0.05, spurious_minima=found.minima
    )
    assert label_fractions(labels)["novel"] > 0.75
    assert _radial_error(samples) < 0.04
    # stored memories: the same reverse diffusion to t -> 0 copies ...
    exact = (
        DenseAM(beta=1e10)
        .fit(X)
        .sample(1000, method="anneal", n_steps=400, random_state=0)
    )
    copy = label_fractions(label_samples(exact, X, copy_threshold=0.05))["copy"]
    assert copy > 0.95
    # ... and at beta = 40 they are novel only because they are off the circle
    blur = DenseAM(beta=40.0).fit(X).sample(1000, method="anneal", random_state=0)
    novel = label_fractions(label_samples(blur, X, copy_threshold=0.05))["novel"]
    assert novel > 0.95 and _radial_error(blur) > 0.08
    # held-out data: the learned density beats the blurred and the copying one
    test = _circle(1000, seed=123)
    assert am.score(test) > DenseAM(beta=40.0).fit(X).score(test) + 1
    assert am.score(test) > DenseAM(beta=1e10).fit(X).score(test) + 1


def test_bandwidth_by_dsm_alone_learns_prototypes_on_the_circle():
    # without the overlap floor, DSM narrows the kernels to about a fifth of
    # the memories' spacing: each memory is its own isolated minimum
    X = _circle(1000)
    am = DiffusionAM(n_memories=32, max_epochs=100, random_state=0).fit(X)
    spacing = 2 * np.pi / 32
    assert 0.1 * spacing < am.bandwidth_ < 0.4 * spacing
    found = spurious_minima(
        am,
        X,
        copy_threshold=0.05,
        merge_threshold=0.01,
        n_starts=300,
        random_state=0,
    )
    assert found.minima.shape[0] >= 24
    ovl = DiffusionAM(
        n_memories=32, bandwidth="overlap", max_epochs=100, random_state=0
    ).fit(X)
    # with it, each kernel reaches half-way to the nearest memory (merged wells)
    M = ovl.memories_
    nearest = [
        min(np.linalg.norm(M[i] - M[j]) for j in range(len(M)) if j != i)
        for i in range(len(M))
    ]
    assert ovl.bandwidth_ >= 0.5 * np.median(nearest) * 0.99


@pytest.mark.parametrize("bandwidth", ["learn", "overlap"])
def test_float32_and_array_api_strict_agree_with_numpy(bandwidth):
    X = _circle(200).astype(np.float32)
    kw = dict(n_memories=8, bandwidth=bandwidth, max_epochs=20, random_state=0)
    ref = DiffusionAM(**kw).fit(X)
    assert ref.memories_.dtype == np.float32
    assert ref.sample(5, method="anneal", random_state=0).dtype == np.float32
    strict = DiffusionAM(backend="array_api_strict", **kw).fit(X)
    np.testing.assert_allclose(
        np.asarray(strict.memories_), ref.memories_, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(strict.bandwidth_, ref.bandwidth_, rtol=1e-4)


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


# ----------------------------------------------------------- sample quality
def _naive_median_nn(A, B):
    return np.median([min(np.linalg.norm(a - b) for b in B) for a in A])


def test_sample_quality_against_a_naive_loop():
    rng = np.random.RandomState(0)
    samples, train, test = rng.randn(30, 3), rng.randn(40, 3), rng.randn(25, 3)
    q = sample_quality(samples, train, test)
    np.testing.assert_allclose(q.train_distance, _naive_median_nn(samples, train))
    np.testing.assert_allclose(q.test_distance, _naive_median_nn(samples, test))
    np.testing.assert_allclose(q.coverage, _naive_median_nn(test, samples))
    np.testing.assert_allclose(
        q.train_distance_ratio,
        _naive_median_nn(samples, train) / _naive_median_nn(test, train),
    )
    np.testing.assert_allclose(
        q.test_distance_ratio,
        _naive_median_nn(samples, test) / _naive_median_nn(train, test),
    )
    np.testing.assert_allclose(
        q.coverage_ratio,
        _naive_median_nn(test, samples) / _naive_median_nn(test, train),
    )


def test_sample_quality_separates_copies_fresh_data_and_blur():
    rng = np.random.RandomState(1)
    train, test = rng.randn(300, 2), rng.randn(300, 2)
    copies = sample_quality(train + 1e-4 * rng.randn(300, 2), train, test)
    fresh = sample_quality(rng.randn(300, 2), train, test)
    blur = sample_quality(3.0 * rng.randn(300, 2), train, test)
    assert copies.train_distance_ratio < 0.01 < 0.7 < fresh.train_distance_ratio
    assert fresh.train_distance_ratio < 1.4 < blur.train_distance_ratio
    np.testing.assert_allclose(copies.test_distance_ratio, 1, atol=0.01)
    np.testing.assert_allclose(copies.coverage_ratio, 1, atol=0.01)
    assert blur.test_distance_ratio > 1.5 and fresh.test_distance_ratio < 1.4


def test_sample_quality_errors():
    train, test = np.random.RandomState(0).randn(2, 5, 2)
    with pytest.raises(ValueError, match="X_test has 3"):
        sample_quality(train, train, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="held-out"):
        sample_quality(test, train, train)
