"""Sampling from Dense AMs: exact kernel draws, Langevin and annealed diffusion.

Oracles: scikit-learn's KernelDensity.sample (Gaussian kernel), SciPy's
Gaussian log-densities and finite differences (score identity), an
independent rejection sampler (Epanechnikov kernel), analytic CDFs.
"""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity

from skam import DenseAM
from skam._energy import EnergySpec, prepare_memories
from skam._sampling import GradientOracle, score

# two-sample tests reject at this level (fixed seeds: deterministic outcomes)
ALPHA = 1e-3


def _projections(D, n_proj=4, seed=0):
    rng = np.random.RandomState(seed)
    P = rng.randn(D, n_proj)
    return np.hstack([np.eye(D), P / np.linalg.norm(P, axis=0)])


def _nearest(A, memories):
    return np.sqrt(((A[:, None, :] - memories[None]) ** 2).sum(-1)).min(axis=1)


def _two_sample_p(A, B, memories=None):
    """Smallest KS p-value (Bonferroni) over coordinates, random projections
    and, given the memories, the distance to the nearest memory."""
    P = _projections(A.shape[1])
    pvals = [stats.ks_2samp(A @ p, B @ p).pvalue for p in P.T]
    if memories is not None:
        pvals.append(
            stats.ks_2samp(_nearest(A, memories), _nearest(B, memories)).pvalue
        )
    return min(1.0, min(pvals) * len(pvals))


@pytest.fixture
def cloud():
    rng = np.random.RandomState(0)
    return rng.randn(30, 3)


# ----------------------------------------------------------------- exact
def test_exact_matches_kernel_density(cloud):
    beta = 4.0
    am = DenseAM(beta=beta).fit(cloud)
    ours = am.sample(3000, random_state=0)
    kde = KernelDensity(bandwidth=1 / np.sqrt(beta)).fit(cloud)
    theirs = kde.sample(3000, random_state=1)
    assert _two_sample_p(ours, theirs, cloud) > ALPHA
    # the test has power: a 1.2x wider kernel is rejected
    wider = KernelDensity(bandwidth=1.2 / np.sqrt(beta)).fit(cloud)
    assert _two_sample_p(ours, wider.sample(3000, random_state=1), cloud) < ALPHA


def test_exact_respects_sample_weight():
    memories = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    w = np.array([1.0, 2.0, 5.0])
    am = DenseAM(beta=50.0).fit(memories, sample_weight=w)
    s = am.sample(4000, random_state=0)
    nearest = np.argmin(((s[:, None, :] - memories[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=3)
    assert stats.chisquare(counts, 4000 * w / w.sum()).pvalue > ALPHA
    # zero weight: never drawn
    am0 = DenseAM(beta=50.0).fit(memories, sample_weight=[1.0, 0.0, 1.0])
    s0 = am0.sample(500, random_state=0)
    assert np.all(np.linalg.norm(s0 - memories[1], axis=1) > 5)


def _epanechnikov_rejection(n, D, radius, rng):
    """Independent oracle: uniform in the ball, accepted w.p. 1 - r^2/R^2."""
    out = []
    while sum(len(o) for o in out) < n:
        x = rng.uniform(-radius, radius, size=(4 * n, D))
        r2 = np.sum(x * x, axis=1) / radius**2
        keep = (r2 < 1) & (rng.uniform(size=4 * n) < 1 - r2)
        out.append(x[keep])
    return np.vstack(out)[:n]


@pytest.mark.parametrize("D", [1, 2, 5])
def test_epanechnikov_samples_follow_the_kernel(D):
    beta = 8.0
    radius = np.sqrt(2 / beta)
    am = DenseAM(separation="lsr", beta=beta).fit(np.zeros((1, D)))
    s = am.sample(4000, random_state=0)
    assert np.all(np.linalg.norm(s, axis=1) <= radius)
    oracle = _epanechnikov_rejection(4000, D, radius, np.random.RandomState(1))
    assert _two_sample_p(s, oracle) > ALPHA
    if D == 1:  # analytic CDF of the 1-D Epanechnikov kernel
        u = s[:, 0] / radius
        cdf = lambda x: 0.5 + 0.75 * (x - x**3 / 3)  # noqa: E731
        assert stats.kstest(u, cdf).pvalue > ALPHA
        assert stats.kstest(u, stats.uniform(-1, 2).cdf).pvalue < ALPHA


def test_epanechnikov_samples_stay_inside_the_support(cloud):
    am = DenseAM(separation="lsr", beta="scale").fit(cloud)
    radius = np.sqrt(2 / am.beta_)
    for method in ("exact", "langevin"):
        s = am.sample(500, method=method, n_steps=50, random_state=0)
        d = np.sqrt(((s[:, None, :] - cloud[None]) ** 2).sum(-1)).min(axis=1)
        assert d.max() <= radius * (1 + 1e-12), method


def test_rectified_poly_radius_distribution():
    # kernel (1 - r^2/R^2)^n in D dims: r^2/R^2 ~ Beta(D/2, n + 1)
    beta, n, D = 2.0, 3, 4
    am = DenseAM(
        separation="rectified_poly", similarity="sqeuclidean", degree=n, beta=beta
    ).fit(np.zeros((1, D)))
    s = am.sample(3000, random_state=0)
    u = np.sum(s * s, axis=1) * beta / 2
    assert stats.kstest(u, stats.beta(D / 2, n + 1).cdf).pvalue > ALPHA
    assert stats.kstest(u, stats.beta(D / 2, 2).cdf).pvalue < ALPHA  # lsr's law


def test_exact_conditional_gaussian():
    # two memories; clamping x0 near the first reweights it analytically
    memories = np.array([[0.0, 0.0], [1.0, 3.0]])
    beta = 2.0
    am = DenseAM(beta=beta).fit(memories)
    X = np.tile([[0.3, 99.0]], (4000, 1))
    s = am.sample(None, X=X, clamp_mask=np.array([True, False]), random_state=0)
    assert np.all(s[:, 0] == 0.3)
    logw = -beta / 2 * (0.3 - memories[:, 0]) ** 2
    p = np.exp(logw - logsumexp(logw))
    mix = stats.norm(memories[:, 1], 1 / np.sqrt(beta))
    cdf = lambda y: p[0] * mix.cdf(y[:, None])[:, 0] + p[1] * mix.cdf(y[:, None])[:, 1]  # noqa: E731
    assert stats.kstest(s[:, 1], cdf).pvalue > ALPHA


def test_exact_conditional_epanechnikov_against_rejection():
    # joint exact draws, kept where the clamped coordinate falls in a thin
    # slab, are an independent oracle for the conditional of the other two
    rng = np.random.RandomState(0)
    memories = rng.randn(4, 3) * 0.5
    beta = 3.0
    am = DenseAM(separation="lsr", beta=beta).fit(memories)
    joint = am.sample(400_000, random_state=1)
    c = 0.1
    oracle = joint[np.abs(joint[:, 0] - c) < 0.005][:, 1:]
    X = np.zeros((3000, 3))
    X[:, 0] = c
    s = am.sample(None, X=X, clamp_mask=np.array([True, False, False]), random_state=2)
    assert np.all(s[:, 0] == c)
    assert _two_sample_p(s[:, 1:], oracle) > ALPHA
    with pytest.raises(ValueError, match="outside the support"):
        am.sample(
            None, X=np.full((2, 3), 50.0), clamp_mask=np.array([True, False, False])
        )


# ------------------------------------------------------- score identity
@pytest.mark.parametrize("t", [1.0, 0.05, 1e-3])
def test_diffusion_score_identity(t):
    """The VE-diffusion score at noise sigma^2 t is -beta grad E, beta = 1/(sigma^2 t)."""
    rng = np.random.RandomState(0)
    xi = rng.randn(7, 3)
    sigma = 1.3
    beta = 1 / (sigma**2 * t)
    X = xi[rng.randint(7, size=20)] + np.sqrt(t) * sigma * rng.randn(20, 3)

    def log_p(V):  # SciPy's Gaussian mixture, equal weights
        comps = [stats.multivariate_normal(m, sigma**2 * t).logpdf(V) for m in xi]
        return logsumexp(np.stack(comps), axis=0) - np.log(len(xi))

    comps = np.stack([stats.multivariate_normal(m, sigma**2 * t).logpdf(X) for m in xi])
    resp = np.exp(comps - logsumexp(comps, axis=0))  # (K, n)
    oracle_score = (resp.T @ xi - X) / (sigma**2 * t)

    spec = EnergySpec(separation="lse", beta=beta)
    ours = score(GradientOracle(prepare_memories(xi, np), spec, np), X, beta, np)
    np.testing.assert_allclose(ours, oracle_score, rtol=1e-10, atol=1e-10 * beta)
    # the energy is the log-density up to the Gaussian constant
    am = DenseAM(beta=beta).fit(xi)
    const = -1.5 * np.log(2 * np.pi / beta) - np.log(len(xi))
    np.testing.assert_allclose(beta * am.score_samples(X) + const, log_p(X), rtol=1e-10)
    # and an oracle sharing no formula: central finite differences of log p
    h = 1e-5 * np.sqrt(t)
    fd = np.stack(
        [(log_p(X + h * e) - log_p(X - h * e)) / (2 * h) for e in np.eye(3)], axis=1
    )
    np.testing.assert_allclose(ours, fd, rtol=1e-5, atol=1e-5 * beta)


# ---------------------------------------------------------------- anneal
def test_anneal_with_tiny_noise_converges_to_stored_memories():
    rng = np.random.RandomState(0)
    K, D = 10, 16
    memories = np.sign(rng.randn(K, D))  # far below capacity
    am = DenseAM(beta=1e5).fit(memories)
    s = am.sample(600, method="anneal", n_steps=300, random_state=0)
    d = np.sqrt(((s[:, None, :] - memories[None]) ** 2).sum(-1))
    assert d.min(axis=1).max() < 6 * np.sqrt(D / 1e5)
    counts = np.bincount(d.argmin(axis=1), minlength=K)
    assert stats.chisquare(counts).pvalue > ALPHA  # every memory, equally often


def test_anneal_matches_exact_in_distribution(cloud):
    am = DenseAM(beta=16.0).fit(cloud)
    annealed = am.sample(2000, method="anneal", n_steps=400, random_state=0)
    exact = am.sample(2000, random_state=1)
    assert _two_sample_p(annealed, exact) > ALPHA


def test_anneal_trajectory(cloud):
    am = DenseAM(beta=16.0).fit(cloud)
    s, traj = am.sample(
        50, method="anneal", n_steps=30, return_trajectory=True, random_state=0
    )
    assert traj.shape == (31, 50, 3)
    np.testing.assert_array_equal(traj[-1], s)
    # it starts broad (beta_start = 1 / total variance) and ends on the data
    assert traj[0].std(axis=0).sum() > 1.3 * cloud.std(axis=0).sum()


# -------------------------------------------------------------- langevin
def test_langevin_matches_exact_and_ula_bias_is_detected():
    memories = np.array([[0.0], [1.0], [3.0]])
    am = DenseAM(beta=4.0).fit(memories)
    exact = am.sample(3000, random_state=1)
    mala = am.sample(
        3000, method="langevin", n_steps=300, step_size=0.3, random_state=0
    )
    assert _two_sample_p(mala, exact, memories) > ALPHA
    # without the Metropolis step a large step inflates the variance
    ula = am.sample(
        3000,
        method="langevin",
        n_steps=300,
        step_size=0.9,
        metropolis=False,
        random_state=0,
    )
    assert _two_sample_p(ula, exact, memories) < ALPHA


# -------------------------------------------------------------- clamping
@pytest.mark.parametrize("method", ["exact", "langevin", "anneal"])
def test_clamped_coordinates_never_move(cloud, method):
    am = DenseAM(beta=9.0).fit(cloud)
    rng = np.random.RandomState(3)
    X = rng.randn(40, 3)
    mask = rng.rand(40, 3) < 0.5
    out = am.sample(
        None,
        method=method,
        X=X,
        clamp_mask=mask,
        n_steps=20,
        return_trajectory=method != "exact",
        random_state=0,
    )
    s = out if method == "exact" else out[0]
    np.testing.assert_array_equal(s[mask], X[mask])
    if method != "exact":
        assert np.all(out[1][:, mask] == X[mask])  # at every step
    assert np.all(s[~mask] != X[~mask])


# ------------------------------------------------------- api and errors
def test_reproducible_dtype_and_backend(cloud, backend):
    X32 = cloud.astype(np.float32)
    am = DenseAM(beta=4.0, backend=backend).fit(X32)
    for method in ("exact", "langevin", "anneal"):
        a = am.sample(20, method=method, n_steps=10, random_state=0)
        b = am.sample(20, method=method, n_steps=10, random_state=0)
        assert a.dtype == np.float32 and isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)
        ref = (
            DenseAM(beta=4.0)
            .fit(cloud)
            .sample(20, method=method, n_steps=10, random_state=0)
        )
        np.testing.assert_allclose(a, ref, rtol=1e-3, atol=1e-3)


def test_strict_namespace_in_and_out(cloud, strict_input):
    am = DenseAM(beta=4.0).fit(strict_input(cloud))
    s = am.sample(5, method="anneal", n_steps=5, random_state=0)
    assert type(s).__module__.startswith("array_api_strict")


def test_sampling_errors(cloud):
    am = DenseAM(beta=1.0).fit(cloud)
    with pytest.raises(ValueError, match="method must be one of"):
        am.sample(3, method="gibbs")
    with pytest.raises(ValueError, match="clamp_mask needs X"):
        am.sample(3, clamp_mask=np.array([True, False, False]))
    with pytest.raises(ValueError, match="does not match"):
        am.sample(3, X=cloud)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        am.sample(0)
    with pytest.raises(TypeError, match="n_steps must be an int"):
        am.sample(3, method="anneal", n_steps=2.5)
    with pytest.raises(ValueError, match="beta_start"):
        am.sample(3, method="anneal", beta_start=5.0)
    with pytest.raises(ValueError, match="not a density"):
        DenseAM(separation="poly", similarity="sqeuclidean", beta=1.0).fit(
            cloud
        ).sample(3)
    with pytest.raises(ValueError, match="normalisable"):
        DenseAM(similarity="dot", beta=1.0).fit(cloud).sample(3, method="langevin")
    with pytest.raises(ValueError, match="reverse diffusion"):
        DenseAM(separation="lsr", beta=1.0).fit(cloud).sample(3, method="anneal")
    with pytest.raises(ValueError, match="features"):
        am.sample(None, X=np.zeros((2, 4)))


@pytest.mark.gpu
def test_cupy_backend_sampling_matches_numpy(cloud):
    ref = DenseAM(beta=4.0).fit(cloud)
    gpu = DenseAM(beta=4.0, backend="cupy").fit(cloud)
    for method in ("exact", "langevin", "anneal"):
        a = gpu.sample(50, method=method, n_steps=20, random_state=0)
        b = ref.sample(50, method=method, n_steps=20, random_state=0)
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------- random features
def test_random_feature_langevin_matches_exact_draws():
    # sincos features approximate the Gaussian kernel closely in 2-D; the
    # positive map's variance far from the centre is too large for this test
    from skam import RandomFeatureAM

    memories = np.array([[0.0, 0.0], [1.0, 0.5], [2.5, -0.5]])
    exact = DenseAM(beta=4.0).fit(memories).sample(1000, random_state=1)
    rf = RandomFeatureAM(
        beta=4.0, n_components=1024, feature_map="sincos", random_state=0
    ).fit(memories)
    s = rf.sample(1000, n_steps=150, step_size=0.3, random_state=0)
    assert _two_sample_p(s, exact, memories) > ALPHA
    # a memory too few: detected
    wrong = DenseAM(beta=4.0).fit(memories[:2]).sample(1000, random_state=1)
    assert _two_sample_p(s, wrong, memories) < ALPHA


def test_random_feature_sampling_clamps_and_errors():
    from skam import RandomFeatureAM

    rng = np.random.RandomState(0)
    memories = rng.randn(10, 3)
    rf = RandomFeatureAM(beta=2.0, feature_map="positive", random_state=0).fit(memories)
    X = rng.randn(30, 3)
    mask = np.array([True, False, True])
    s, traj = rf.sample(
        None, X=X, clamp_mask=mask, n_steps=20, return_trajectory=True, random_state=0
    )
    np.testing.assert_array_equal(s[:, mask], X[:, mask])
    assert np.all(traj[:, :, mask] == X[None, :, mask])
    assert np.all(s[:, 1] != X[:, 1])
    with pytest.raises(ValueError, match="keeps no patterns"):
        rf.sample(3, method="exact")
    with pytest.raises(ValueError, match="one beta"):
        rf.sample(3, method="anneal")
    rf.forget(memories)
    with pytest.raises(ValueError, match="No patterns"):
        rf.sample(3)
