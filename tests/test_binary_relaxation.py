"""DenseAM's polynomial energies without self-coupling (skam._binary_relaxation)."""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam import DenseAM
from skam._binary_relaxation import SelfCouplingFreeOracle
from skam._energy import EnergySpec, prepare_memories
from skam.capacity import capacity_curve, polynomial_capacity
from skam.datasets import flip_bits


def _oracle(patterns, separation, degree, beta=0.3, weights=None):
    spec = EnergySpec(separation=separation, similarity="dot", beta=beta, degree=degree)
    box = (patterns.min(axis=0), patterns.max(axis=0))
    return SelfCouplingFreeOracle(
        prepare_memories(patterns, xp, weights=weights), spec, box, xp
    )


@pytest.mark.parametrize("separation", ["poly", "rectified_poly"])
@pytest.mark.parametrize("degree", [2, 3, 4])
@pytest.mark.parametrize("binary", ["pm1", "zero_one"])
def test_gradient_matches_finite_differences(separation, degree, binary):
    rng = np.random.RandomState(degree)
    P = np.sign(rng.randn(30, 12))
    if binary == "zero_one":
        P = (P + 1) / 2 * 3.0  # two values per feature, not +-1: the general path
    lo, hi = P.min(axis=0), P.max(axis=0)
    V = lo + (hi - lo) * rng.uniform(0.05, 0.95, (6, 12))
    oracle = _oracle(P, separation, degree, weights=rng.uniform(0.5, 2, 30))
    _, grad = oracle.gradient(V)
    h = 1e-6
    fd = np.empty_like(V)
    for i in range(12):
        e = np.zeros(12)
        e[i] = h
        fd[:, i] = (oracle.energy(V + e) - oracle.energy(V - e)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("separation", ["poly", "rectified_poly"])
def test_binary_states_keep_their_energy(separation):
    rng = np.random.RandomState(1)
    P = np.sign(rng.randn(40, 20))
    S = np.sign(rng.randn(10, 20))
    plain = DenseAM(separation=separation, beta=0.2, self_coupling=True).fit(P)
    free = DenseAM(separation=separation, beta=0.2, self_coupling=False).fit(P)
    np.testing.assert_allclose(free.energy(S), plain.energy(S), rtol=1e-12)
    # inside the box they differ: the variance term
    V = 0.5 * S
    assert np.all(free.energy(V) < plain.energy(V))


def test_degree_two_is_the_zero_diagonal_hopfield_energy():
    rng = np.random.RandomState(2)
    P = np.sign(rng.randn(15, 10))
    V = rng.uniform(-1, 1, (5, 10))
    beta = 0.25
    am = DenseAM(separation="poly", degree=2, beta=beta, epsilon=0.0).fit(P)
    # (1 + beta v.xi)^2 with the diagonal of v v^T replaced by its binary value 1
    z = beta * V @ P.T
    kernel = (1 + z) ** 2 + beta**2 * (10 - np.sum(V * V, axis=1))[:, None]
    np.testing.assert_allclose(am.energy(V), -np.log(kernel.sum(1)) / beta, rtol=1e-12)


def test_auto_removes_self_coupling_only_for_binary_polynomial_overlaps():
    rng = np.random.RandomState(3)
    binary, continuous = np.sign(rng.randn(20, 8)), rng.randn(20, 8)
    assert not DenseAM(separation="poly").fit(binary).self_coupling_
    assert not DenseAM(separation="rectified_poly").fit(binary).self_coupling_
    assert DenseAM(separation="poly").fit(continuous).self_coupling_
    assert (
        DenseAM(separation="poly", similarity="sqeuclidean").fit(binary).self_coupling_
    )
    assert DenseAM().fit(binary).self_coupling_
    am = DenseAM(separation="rectified_poly").fit(binary)
    assert am.similarity_ == "dot" and am.beta_ == pytest.approx(1.0)
    assert DenseAM(separation="lsr").fit(binary).similarity_ == "sqeuclidean"
    with pytest.raises(ValueError, match="self_coupling=False applies"):
        DenseAM(self_coupling=False).fit(binary)


@pytest.mark.parametrize("self_coupling", [True, False])
@pytest.mark.parametrize("separation", ["poly", "rectified_poly"])
def test_polynomial_descent_never_raises_the_energy(self_coupling, separation):
    rng = np.random.RandomState(4)
    P = np.sign(rng.randn(300, 50))
    Q = np.concatenate(
        [flip_bits(P[:40], 0.3, random_state=0), rng.uniform(-1, 1, (40, 50))]
    )
    for degree in (3, 4):
        am = DenseAM(separation=separation, degree=degree, self_coupling=self_coupling)
        trace = am.fit(P).descend(Q, return_energy_trace=True).energy_trace
        rise = np.diff(trace, axis=0)
        assert np.all(rise <= 1e-12 * np.abs(trace[:-1]).max())


def test_plain_polynomial_steps_do_raise_the_energy():
    """The safeguard is needed: the unguarded step overshoots (the test can fail)."""
    from skam._backend import resolve_backend
    from skam._descent import descend
    from skam.datasets import load_binary_digits

    X, _ = load_binary_digits()
    rng = np.random.RandomState(5)
    P = X[rng.choice(len(X), 100, replace=False)]
    Q = P + 0.5 * rng.randn(*P.shape)
    am = DenseAM(separation="poly", degree=3, self_coupling=True).fit(P)
    memories = am._memories(resolve_backend(P), np.float64)
    box = am._box(memories, resolve_backend(P))
    args = (Q, memories, am._spec(), xp)
    plain = descend(*args, box=box, return_trace=True)
    guarded = descend(*args, box=box, return_trace=True, monotone=True)
    rises = np.diff(plain.energy_trace, axis=0) > 1e-6
    assert rises.any(axis=0).mean() > 0.1  # many queries go uphill
    assert np.all(np.diff(guarded.energy_trace, axis=0) <= 1e-9)
    np.testing.assert_array_equal(  # and DenseAM uses the guarded descent
        am.transform(Q), guarded.states
    )


def test_continuous_degree_four_no_longer_freezes():
    D, K = 100, 3600  # twice the load at which the self-coupling freezes
    rng = np.random.RandomState(0)
    P = np.where(rng.rand(K, D) > 0.5, 1.0, -1.0)
    Q = flip_bits(P[:30], 0.1, random_state=0)
    frozen = DenseAM(separation="poly", degree=4, self_coupling=True).fit(P)
    free = DenseAM(separation="poly", degree=4).fit(P)
    # with the self-coupling (almost) every corrupted bit stays where it is
    stuck = np.sign(frozen.transform(Q))
    assert np.mean(stuck == Q) > 0.99
    assert not np.any(np.all(stuck == P[:30], axis=1))
    recalled = np.all(np.sign(free.transform(Q)) == P[:30], axis=1)
    assert recalled.mean() >= 0.9


def test_continuous_degree_three_capacity_at_d100():
    theory = polynomial_capacity(100, 3)
    curve = capacity_curve(
        DenseAM(separation="poly", degree=3),
        [int(theory / 2), int(theory), int(2 * theory)],
        n_features=100,
        n_queries=60,
        random_state=0,
    )
    assert theory / 2 <= curve.k50 <= 2 * theory, curve


@pytest.mark.slow
def test_continuous_degree_four_capacity_at_d100():
    theory = polynomial_capacity(100, 4)
    curve = capacity_curve(
        DenseAM(separation="poly", degree=4, max_iter=30),
        [int(theory / 2), int(2 * theory)],
        n_features=100,
        n_queries=30,
        random_state=0,
    )
    assert curve.recalled[0] >= 0.5 > curve.recalled[1], curve


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_array_api_strict_offload_matches_numpy(dtype):
    pytest.importorskip("array_api_strict")
    rng = np.random.RandomState(6)
    P = np.sign(rng.randn(60, 24)).astype(dtype)
    Q = flip_bits(P, 0.2, random_state=0).astype(dtype)
    ref = DenseAM(separation="rectified_poly", degree=4).fit(P)
    off = DenseAM(
        separation="rectified_poly", degree=4, backend="array_api_strict"
    ).fit(P)
    assert not ref.self_coupling_
    for method in ("transform", "energy"):
        a, b = getattr(ref, method)(Q), getattr(off, method)(Q)
        assert a.dtype == dtype and b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=1e-4 if dtype == np.float32 else 1e-10)
