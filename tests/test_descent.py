"""Energy descent: monotone energy, clamping, chunk independence, exact LSR retrieval."""

import numpy as np
import pytest
import sklearn
from array_api_compat import numpy as xp

from skam import DenseAM
from skam._descent import descend
from skam._energy import EnergySpec, prepare_memories


@pytest.mark.parametrize("step_size", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("beta", [0.2, 3.0, 50.0])
def test_lse_energy_never_increases(step_size, beta):
    rng = np.random.RandomState(0)
    Xi, Q = rng.randn(40, 5), 2 * rng.randn(30, 5)
    clamp = rng.rand(30, 5) < 0.3
    r = (
        DenseAM(beta=beta, step_size=step_size, max_iter=50, tol=0)
        .fit(Xi)
        .descend(Q, clamp_mask=clamp, return_energy_trace=True)
    )
    steps = np.diff(r.energy_trace, axis=0)
    assert np.all(steps <= 1e-10 * np.maximum(1, np.abs(r.energy_trace[1:])))
    assert r.energy_trace.shape[1] == 30


@pytest.mark.parametrize("separation", ["lsr", "rectified_poly"])
def test_mean_shift_energy_never_increases(separation):
    rng = np.random.RandomState(1)
    Xi, Q = rng.rand(60, 2), rng.rand(40, 2)
    r = (
        DenseAM(separation=separation, beta=40.0, max_iter=30, tol=0)
        .fit(Xi)
        .descend(Q, return_energy_trace=True)
    )
    assert np.all(np.diff(r.energy_trace, axis=0) <= 1e-9)


@pytest.mark.parametrize(
    "separation, similarity",
    [("lse", "sqeuclidean"), ("lse", "dot"), ("lsr", "sqeuclidean")],
    ids=["lse-sqeuclidean", "lse-dot", "lsr-sqeuclidean"],
)
@pytest.mark.parametrize("shape", ["feature", "sample"])
def test_clamped_coordinates_never_move(shape, separation, similarity):
    rng = np.random.RandomState(2)
    Xi, Q = rng.randn(25, 6), rng.randn(12, 6)
    if shape == "feature":
        clamp = np.array([True, False, True, False, False, True])
        frozen = np.broadcast_to(clamp, Q.shape)
    else:
        clamp = rng.rand(12, 6) < 0.5
        frozen = clamp
    am = DenseAM(separation=separation, similarity=similarity, beta=0.7, max_iter=20)
    out = am.fit(Xi).transform(Q, clamp_mask=clamp)
    assert np.array_equal(out[frozen], Q[frozen])
    assert not np.allclose(out[~frozen], Q[~frozen])


@pytest.mark.parametrize("chunk", [1, 4, 16], ids=lambda c: f"chunk{c}")
def test_results_do_not_depend_on_chunk_size(chunk):
    rng = np.random.RandomState(3)
    Xi, Q = rng.randn(30, 4), rng.randn(17, 4)
    mem = prepare_memories(Xi, xp)
    spec = EnergySpec(beta=1.5)
    ref = descend(
        Q, mem, spec, xp, step_size=0.3, max_iter=40, tol=1e-5, return_trace=True
    )
    r = descend(
        Q,
        mem,
        spec,
        xp,
        step_size=0.3,
        max_iter=40,
        tol=1e-5,
        return_trace=True,
        chunk_size=chunk,
    )
    np.testing.assert_array_equal(r.n_iter, ref.n_iter)
    np.testing.assert_allclose(r.states, ref.states, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(r.energy_trace, ref.energy_trace, rtol=1e-13)


def test_working_memory_does_not_change_results():
    rng = np.random.RandomState(4)
    Xi, Q = rng.randn(2000, 3), rng.randn(300, 3)
    ref = DenseAM(beta=2.0).fit(Xi).transform(Q)
    with sklearn.config_context(working_memory=1):
        out = DenseAM(beta=2.0).fit(Xi).transform(Q)
    np.testing.assert_allclose(out, ref, rtol=1e-13)


def test_per_query_convergence():
    rng = np.random.RandomState(5)
    Xi = rng.randn(10, 4)
    Q = np.vstack([Xi[:3], Xi[3:6] + 0.5 * rng.randn(3, 4)])
    r = DenseAM(beta=50.0, step_size=0.5, max_iter=200, tol=1e-8).fit(Xi).descend(Q)
    assert r.converged.all()
    assert r.n_iter[:3].max() < r.n_iter[3:].min()
    r0 = DenseAM(beta=5.0, max_iter=0).fit(Xi).descend(Q)
    np.testing.assert_array_equal(r0.states, Q)
    assert np.all(r0.n_iter == 0)


def test_lsr_retrieval_is_exact():
    """Hoover et al. 2025, Theorem 1: beta = 2/(r - delta)^2 retrieves exactly."""
    rng = np.random.RandomState(6)
    Xi = rng.rand(30, 5)
    d = np.sqrt(((Xi[:, None] - Xi[None]) ** 2).sum(-1))
    r = d[~np.eye(30, dtype=bool)].min()
    delta = 0.4 * r
    beta = 2 / (r - delta) ** 2
    direction = rng.randn(30, 5)
    Q = Xi + 0.9 * delta * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    am = DenseAM(separation="lsr", beta=beta, max_iter=1).fit(Xi)
    np.testing.assert_array_equal(am.transform(Q), Xi)
    np.testing.assert_array_equal(am.predict(Q), np.arange(30))


def test_dot_similarity_stays_in_the_box(binary_patterns):
    am = DenseAM(similarity="dot", beta=0.2).fit(binary_patterns)
    noisy = binary_patterns.copy()
    noisy[:, :5] *= -1
    out = am.transform(noisy)
    assert out.min() >= -1 and out.max() <= 1
    np.testing.assert_array_equal(np.sign(out), binary_patterns)


@pytest.mark.parametrize("per_sample_clamp", [False, True])
def test_setting_converged_rows_aside_changes_nothing(per_sample_clamp):
    """Rows that stop early are set aside; results match a trace run (no setting aside)."""
    rng = np.random.RandomState(7)
    Xi = rng.randn(20, 5)
    Q = np.vstack(
        [Xi[:10] + 1e-9, Xi[10:] + 0.8 * rng.randn(10, 5), 3 * rng.randn(12, 5)]
    )
    clamp = (
        rng.rand(len(Q), 5) < 0.3
        if per_sample_clamp
        else np.array([1, 0, 0, 0, 0], bool)
    )
    mem, spec = prepare_memories(Xi, xp), EnergySpec(beta=4.0)
    kw = dict(clamp_mask=clamp, step_size=0.5, max_iter=60, tol=1e-7)
    fast = descend(Q, mem, spec, xp, **kw)
    ref = descend(Q, mem, spec, xp, return_trace=True, **kw)  # keeps every row
    assert len(set(fast.n_iter.tolist())) > 2  # rows really stop at different steps
    np.testing.assert_array_equal(fast.n_iter, ref.n_iter)
    np.testing.assert_array_equal(fast.converged, ref.converged)
    np.testing.assert_allclose(fast.states, ref.states, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.energy, ref.energy, rtol=1e-12)
