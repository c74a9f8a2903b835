"""Mergeable partial states (skam._partial) against a naive oracle.

The oracle computes the kernel sum, ``log_z`` and the descent direction in
plain float64 sums over every memory, without shifts, on data where nothing
overflows; the engine's states are built over uneven blocks of memories
(including an empty and a zero-weight block), merged in several orders and
finished once.
"""

import math
import warnings

import numpy as np
import pytest
from array_api_compat import numpy as np_xp
from sklearn import config_context

from skam import DenseAM, DenseAMClassifier
from skam._energy import (
    EnergySpec,
    log_kernel_sum,
    log_z_and_direction,
    prepare_memories,
)
from skam._partial import (
    block_state,
    finish,
    finish_log_z,
    merge,
    merge_all,
    reduce_blocks,
)

SPECS = [
    ("lse", "sqeuclidean", 3),
    ("lse", "dot", 3),
    ("poly", "dot", 2),
    ("poly", "dot", 3),  # odd degree: negative kernel sums, clipped after the merge
    ("poly", "sqeuclidean", 3),
    ("rectified_poly", "sqeuclidean", 2),
    ("lsr", "sqeuclidean", 1),
]


def _naive(V, Xi, w, cw, spec, pull_from=0):
    """Plain sums over memories: log_z and the direction (engine convention)."""
    cw = np.ones(V.shape[1]) if cw is None else cw
    if spec.similarity == "dot":
        S = (V * cw) @ Xi.T
    else:
        S = -0.5 * (((V[:, None, :] - Xi[None, :, :]) ** 2) * cw).sum(axis=2)
    z = spec.beta * S
    n = spec.power
    if spec.separation == "lse":
        F, dF = np.exp(z), np.exp(z)
    elif spec.separation == "poly":
        F, dF = (1 + z) ** n, n * (1 + z) ** (n - 1)
    else:
        base = np.maximum(1 + z, 0)
        F, dF = base**n, np.where(1 + z > 0, n * base ** (n - 1), 0.0)
    total = (w * F).sum(axis=1)
    eps = 0.0 if spec.is_lse else spec.epsilon
    Z = eps + np.maximum(total, 0.0)
    log_z = np.log(Z)
    P = np.where((total > 0)[:, None], w * dF / Z[:, None], 0.0)
    Vp, Xp, cp = V[:, pull_from:], Xi[:, pull_from:], cw[pull_from:]
    if spec.similarity == "dot":
        grad = -(P @ Xp)
    else:
        grad = P.sum(axis=1, keepdims=True) * Vp - P @ Xp
    grad = grad * cp
    if not spec.is_lse:
        s = P.sum(axis=1, keepdims=True)
        grad = grad / np.where(s > 0, s, 1.0)
    return log_z, grad


def _problem(separation, similarity, degree, seed=0, n=7, K=23, D=5):
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(n, D)) * 0.6
    Xi = rng.normal(size=(K, D)) * 0.6
    w = rng.uniform(0.5, 2.0, size=K)
    w[5:9] = 0.0  # a zero-weight block (rows 5..8) in the splits below
    cw = rng.uniform(0.5, 1.5, size=D)
    beta = {"lse": 0.7, "poly": 0.4, "rectified_poly": 0.5, "lsr": 0.6}[separation]
    spec = EnergySpec(separation, similarity, beta, degree, 1e-10)
    mem = prepare_memories(Xi, np_xp, weights=w, coord_weights=cw)
    return V, Xi, w, cw, spec, mem


# uneven splits: an empty block, the zero-weight rows 5..8 alone, a single row
SPLITS = [(0, 0), (0, 5), (5, 9), (9, 10), (10, 23)]


def _states(V, mem, spec, pull_from=0, need_direction=True):
    return [
        block_state(
            V,
            mem.block(slice(a, b)),
            spec,
            np_xp,
            pull_from=pull_from,
            need_direction=need_direction,
        )
        for a, b in SPLITS
    ]


@pytest.mark.parametrize(("separation", "similarity", "degree"), SPECS)
def test_blocks_merged_match_naive_oracle(separation, similarity, degree):
    V, Xi, w, cw, spec, mem = _problem(separation, similarity, degree)
    want_z, want_dir = _naive(V, Xi, w, cw, spec)
    states = _states(V, mem, spec)
    orders = [
        merge_all(states, np_xp),
        merge_all(states[::-1], np_xp),
        merge(
            states[2],
            merge(
                merge(states[4], states[0], np_xp),
                merge(states[1], states[3], np_xp),
                np_xp,
            ),
            np_xp,
        ),
    ]
    for merged in orders:
        log_z, direction = finish(merged, V, mem, spec, np_xp)
        np.testing.assert_allclose(log_z, want_z, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(direction, want_dir, rtol=1e-10, atol=1e-12)
    whole_z, whole_dir = log_z_and_direction(V, mem, spec, np_xp)
    np.testing.assert_allclose(whole_z, want_z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(whole_dir, want_dir, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("separation", "similarity", "degree"), SPECS)
def test_merge_is_associative(separation, similarity, degree):
    V, _, _, _, spec, mem = _problem(separation, similarity, degree, seed=1)
    a, b, c = (
        block_state(V, mem.block(slice(s, e)), spec, np_xp)
        for s, e in [(0, 3), (3, 12), (12, 23)]
    )
    left = merge(merge(a, b, np_xp), c, np_xp)
    right = merge(a, merge(b, c, np_xp), np_xp)
    for x, y in zip(
        finish(left, V, mem, spec, np_xp),
        finish(right, V, mem, spec, np_xp),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)


def test_odd_poly_clip_happens_after_the_merge():
    """One block's kernel sum is negative, the other's positive: clip once."""
    spec = EnergySpec("poly", "dot", 1.0, 3, 1e-10)
    V = np.array([[1.0, 0.0]])
    Xi = np.array([[-3.0, 0.0], [-2.5, 0.0], [2.0, 0.0]])  # (1+z)^3: -8, -3.375, 27
    mem = prepare_memories(Xi, np_xp)
    neg = block_state(V, mem.block(slice(0, 2)), spec, np_xp)
    pos = block_state(V, mem.block(slice(2, 3)), spec, np_xp)
    assert neg.value_sum[0] < 0 < pos.value_sum[0]
    log_z = finish_log_z(merge(neg, pos, np_xp), V, mem, spec, np_xp)
    np.testing.assert_allclose(log_z, [math.log(1e-10 + 27 - 8 - 3.375)], rtol=1e-13)
    # clipping each block first would have given log(27): wrong by a lot
    assert abs(log_z[0] - math.log(27)) > 0.4
    # a negative total is clipped to epsilon, with a zero direction
    tot = merge(neg, block_state(V, mem.block(slice(2, 2)), spec, np_xp), np_xp)
    log_z, direction = finish(tot, V, mem, spec, np_xp)
    np.testing.assert_allclose(log_z, [math.log(1e-10)])
    np.testing.assert_array_equal(direction, 0.0)


def test_zero_weight_block_is_the_identity_even_far_away():
    """A block of zero weights must add nothing, even when the rest is tiny."""
    spec = EnergySpec("lse", "sqeuclidean", 1.0)
    V = np.full((2, 3), 40.0)  # far from every memory: log kernel sums ~ -2000
    Xi = np.random.default_rng(0).normal(size=(6, 3))
    w = np.array([1.0, 2.0, 1.0, 0.0, 0.0, 0.0])
    mem = prepare_memories(Xi, np_xp, weights=w)
    real = block_state(V, mem.block(slice(0, 3)), spec, np_xp)
    zero = block_state(V, mem.block(slice(3, 6)), spec, np_xp)
    assert np.all(zero.log_sum == -np.inf)
    merged = merge(real, zero, np_xp)
    np.testing.assert_array_equal(merged.log_sum, real.log_sum)
    np.testing.assert_array_equal(merged.mean, real.mean)


def test_pull_from_matches_the_label_columns_of_the_full_direction():
    V, Xi, w, cw, spec, mem = _problem("rectified_poly", "sqeuclidean", 2)
    want_z, want_dir = _naive(V, Xi, w, cw, spec, pull_from=3)
    merged = merge_all(_states(V, mem, spec, pull_from=3), np_xp)
    log_z, direction = finish(merged, V, mem, spec, np_xp, pull_from=3)
    assert direction.shape == (V.shape[0], 2)
    np.testing.assert_allclose(log_z, want_z, rtol=1e-12)
    np.testing.assert_allclose(direction, want_dir, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("separation", "similarity", "degree"), SPECS)
def test_energy_only_states_and_full_weights_agree(separation, similarity, degree):
    V, Xi, w, cw, spec, mem = _problem(separation, similarity, degree, seed=2)
    want_z, _ = _naive(V, Xi, w, cw, spec)
    merged = merge_all(_states(V, mem, spec, need_direction=False), np_xp)
    np.testing.assert_allclose(
        finish_log_z(merged, V, mem, spec, np_xp), want_z, rtol=1e-12
    )
    log_z, P = log_kernel_sum(V, mem, spec, np_xp)
    np.testing.assert_allclose(log_z, want_z, rtol=1e-12)
    assert P.shape == (V.shape[0], Xi.shape[0])


def test_reduce_blocks_splits_memories_to_fit_working_memory():
    V, Xi, w, cw, spec, mem = _problem("lse", "sqeuclidean", 3, K=400)
    whole = finish(
        reduce_blocks(V, mem, spec, np_xp, block_rows=400), V, mem, spec, np_xp
    )
    split = finish(
        reduce_blocks(V, mem, spec, np_xp, block_rows=37), V, mem, spec, np_xp
    )
    for x, y in zip(whole, split, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)


def test_huge_k_retrieval_keeps_query_chunks_and_results():
    """working_memory too small for one query x K: memories are split instead."""
    rng = np.random.default_rng(0)
    M = rng.normal(size=(3000, 8))
    Q = M[:50] + 0.1 * rng.normal(size=(50, 8))
    am = DenseAM(beta=2.0, max_iter=3).fit(M)
    want = am.transform(Q)
    want_e = am.energy(Q)
    # 3000 memories x 3 temporaries x 8 bytes = 72 KiB per query > 1/64 MiB
    with config_context(working_memory=1 / 64), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "one query at a time" warning
        got = am.transform(Q)
        got_e = am.energy(Q)
    np.testing.assert_allclose(got, want, atol=1e-10)
    # the energy is a difference of terms of size beta/2 ||v||^2 (about 8 here):
    # the two splits agree to the rounding of those, not relative to a near-0
    # energy (-0.005)
    np.testing.assert_allclose(got_e, want_e, rtol=1e-12, atol=1e-13)


def test_classifier_label_direction_unchanged_by_memory_blocks():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = DenseAMClassifier(max_iter=5).fit(X, y)
    want = clf.predict_proba(X[:40])
    with config_context(working_memory=1 / 256):
        got = clf.predict_proba(X[:40])
    np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "separation, similarity, degree",
    [s for s in SPECS if s[0] != "lse"] + [("poly", "dot", 1), ("poly", "dot", 4)],
)
def test_in_place_power_block_matches_the_generic_form(
    separation, similarity, degree, dtype
):
    """The lean power-separation state equals the generic log-space one."""
    from skam._partial import signed_block, signed_gradient_weights, signed_terms

    rng = np.random.RandomState(3)
    Xi, V = rng.randn(40, 5).astype(dtype), rng.randn(7, 5).astype(dtype)
    w = rng.rand(40).astype(dtype)
    w[:5] = 0
    spec = EnergySpec(separation, similarity, 0.3, degree)
    mem = prepare_memories(Xi, np_xp, weights=w)
    lean = signed_block(V, mem, spec, np_xp)
    generic = signed_block(V, mem, spec, np_xp, terms=signed_terms(V, mem, spec, np_xp))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for field in ("value_sum", "slope_sum", "pulled"):
        a, b = getattr(lean, field), getattr(generic, field)
        assert a.dtype == dtype
        a = (
            a
            * np.exp(lean.value_shift if field == "value_sum" else lean.slope_shift)[
                (...,) + (None,) * (a.ndim - 1)
            ]
        )
        b = (
            b
            * np.exp(
                generic.value_shift if field == "value_sum" else generic.slope_shift
            )[(...,) + (None,) * (b.ndim - 1)]
        )
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-30)
    log_z, P = signed_gradient_weights(V, mem, spec, np_xp)
    assert P.dtype == dtype
    expected_log_z = finish_log_z(generic, V, mem, spec, np_xp)
    np.testing.assert_allclose(log_z, expected_log_z, rtol=rtol, atol=rtol)
    _, _, log_df, sign_df = signed_terms(V, mem, spec, np_xp)
    expected_P = np.exp(log_df - expected_log_z[:, None])
    expected_P *= 1 if sign_df is None else sign_df
    expected_P[generic.value_sum <= 0] = 0
    np.testing.assert_allclose(P, expected_P, rtol=rtol, atol=1e-30)
