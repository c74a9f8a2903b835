"""The LSE read-out of memories that serve many calls gives the plain one's numbers.

Prepared memories (``prepare_memories(..., reuse=True)``) fold the bias into
the GEMM, take the row sums from the pulled product, skip the ``exp`` floor
where a bound rules it out, sum one-hot pulled coordinates run by run, split
the memory axis for the cache and step on the free coordinates only: each is
checked against the plain path (memories without derived arrays, one block,
``descend``) or against a brute-force NumPy computation.
"""

from dataclasses import replace

import numpy as np
import pytest
from array_api_compat import numpy as np_compat

import skam._partial as partial
from skam import DenseAM, DenseAMClassifier
from skam._descent import KernelSumOracle, descend, step_from
from skam._energy import EnergySpec, prepare_memories
from skam._partial import (
    _above_floor,
    _upper_shift,
    exp_floor,
    lse_block,
    lse_logits,
    pulled_sums,
    reduce_blocks,
)

xp = np_compat


def _memories(rng, K=200, D=6, weights="positive", coord_weights=False):
    M = rng.standard_normal((K, D))
    w = None
    if weights == "positive":
        w = rng.uniform(0.5, 2.0, K)
    elif weights == "zeros":
        w = rng.uniform(0.5, 2.0, K)
        w[::7] = 0.0
    cw = rng.uniform(0.3, 1.5, D) if coord_weights else None
    reused = prepare_memories(M, xp, weights=w, coord_weights=cw, reuse=True)
    return reused, replace(reused, derived=None)


@pytest.mark.parametrize("similarity", ["sqeuclidean", "dot"])
@pytest.mark.parametrize("weights", [None, "positive", "zeros"])
@pytest.mark.parametrize("coord_weights", [False, True])
def test_folded_read_out_equals_the_plain_one(similarity, weights, coord_weights):
    rng = np.random.RandomState(0)
    reused, plain = _memories(rng, weights=weights, coord_weights=coord_weights)
    assert reused.derived is not None and plain.derived is None
    V = rng.standard_normal((400, 6))  # 400 x 200: the bound is used
    spec = EnergySpec(similarity=similarity, beta=0.9)
    np.testing.assert_allclose(
        lse_logits(V, reused, spec, xp),
        lse_logits(V, plain, spec, xp),
        rtol=1e-13,
        atol=1e-13,
    )
    for pull_from in (0, 4):
        fast, T_fast, r_fast = lse_block(V, reused, spec, xp, pull_from=pull_from)
        slow, T_slow, r_slow = lse_block(V, plain, spec, xp, pull_from=pull_from)
        np.testing.assert_allclose(fast.log_sum, slow.log_sum, rtol=1e-13)
        np.testing.assert_allclose(fast.mean, slow.mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(  # the softmax (T and r may share a factor)
            T_fast / r_fast[:, None], T_slow / r_slow[:, None], rtol=1e-12, atol=1e-15
        )
        assert fast.mean.shape == (400, 6 - pull_from)


def test_read_out_against_brute_force_softmax():
    """Independent oracle: the weighted softmax mean written out in NumPy."""
    rng = np.random.RandomState(1)
    reused, _ = _memories(rng, weights="positive", coord_weights=True)
    V = rng.standard_normal((300, 6))
    beta = 1.7
    M, c = reused.patterns, reused.coord_weights
    sq = (((V[:, None, :] - M[None, :, :]) ** 2) * c).sum(-1)
    logits = -0.5 * beta * sq + reused.log_weights
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    state, _, _ = lse_block(V, reused, EnergySpec(beta=beta), xp)
    np.testing.assert_allclose(state.mean, p @ M, rtol=1e-11, atol=1e-13)


def test_floor_bound_holds_and_fails_where_it_must():
    rng = np.random.RandomState(2)
    reused, _ = _memories(rng, K=300, D=5, weights="positive", coord_weights=True)
    V = rng.standard_normal((300, 5))
    for beta, expected in ((0.5, True), (500.0, False)):
        spec = EnergySpec(beta=beta)
        above = _above_floor(V, reused, spec, xp)
        assert above is expected
        logits = lse_logits(V, reused, spec, xp)
        shifted = logits - logits.max(1, keepdims=True)
        if above:  # the bound's claim, checked on every logit
            assert shifted.min() > exp_floor(V.dtype, xp)
            # ... and the shift that replaces the row maxima there
            s = _upper_shift(V, reused, spec, xp)
            assert (logits.max(axis=1) <= s + 1e-12).all()
            assert (logits - s[:, None]).min() > exp_floor(V.dtype, xp)
        else:  # this sharp softmax really needs the floor
            assert shifted.min() < exp_floor(V.dtype, xp)
    # zero weights (log w = -inf) never pass the bound
    zeros, _ = _memories(rng, K=300, D=5, weights="zeros")
    assert _above_floor(V, zeros, EnergySpec(beta=0.5), xp) is False
    # small chunks check the block itself
    assert _above_floor(V[:3], reused, EnergySpec(beta=0.5), xp) is None


@pytest.mark.parametrize("rows", [slice(0, 500), slice(37, 301), slice(120, 121)])
def test_pulled_sums_run_by_run_equal_the_product(rows, monkeypatch):
    monkeypatch.setattr(partial, "RUN_COST", 0)  # the run sums at any length
    rng = np.random.RandomState(3)
    labels = np.repeat(np.arange(5), 100)  # runs of equal label parts
    pulled = 2.0 * np.eye(5)[labels]
    M = np.concatenate([rng.standard_normal((500, 4)), pulled], axis=1)
    memories = prepare_memories(M, xp, reuse=True)
    block = memories.block(rows)
    T = rng.uniform(0, 1, (30, block.n_memories))
    assert ("pulled_runs", 4) not in memories.derived._entries  # built below
    sums, r = pulled_sums(T, block, EnergySpec(), 4, xp)
    run_rows, run_of, starts = memories.derived.get(("pulled_runs", 4), None)
    assert run_rows.shape == (5, 6)  # the runs were found and used
    np.testing.assert_allclose(sums, T @ M[rows, 4:], rtol=1e-13)
    np.testing.assert_allclose(r, T.sum(axis=1), rtol=1e-13)
    # continuous pulled coordinates have no runs: the product is used, with
    # the row sums as a column of ones
    for width in (4, 8):
        dense = prepare_memories(rng.standard_normal((500, width + 2)), xp, reuse=True)
        sums, r = pulled_sums(T, dense.block(rows), EnergySpec(), 2, xp)
        np.testing.assert_allclose(sums, T @ dense.patterns[rows, 2:], rtol=1e-13)
        np.testing.assert_allclose(r, T.sum(axis=1), rtol=1e-13)
        assert dense.derived.get(("pulled_runs", 2), None) == (None, None, None)
        assert ("lse_operand", 1.0, "sqeuclidean") in dense.derived._entries


@pytest.mark.parametrize("rows", [slice(0, 100), slice(17, 63), slice(40, 41)])
def test_short_runs_take_the_product(rows, monkeypatch):
    """Runs shorter than RUN_COST allows use the product; same sums either way."""
    rng = np.random.RandomState(6)
    labels = np.repeat(np.arange(5), 20)  # 20 memories a run, P + 1 = 6
    M = np.concatenate([rng.standard_normal((100, 4)), 2.0 * np.eye(5)[labels]], 1)
    T = rng.uniform(0, 1, (30, rows.stop - rows.start))
    short = prepare_memories(M, xp, reuse=True)
    sums, r = pulled_sums(T, short.block(rows), EnergySpec(), 4, xp)
    assert ("pulled_ones", 4) in short.derived._entries
    np.testing.assert_allclose(sums, T @ M[rows, 4:], rtol=1e-13)
    np.testing.assert_allclose(r, T.sum(axis=1), rtol=1e-13)
    monkeypatch.setattr(partial, "RUN_COST", 0)
    runs = prepare_memories(M, xp, reuse=True)
    sums_runs, r_runs = pulled_sums(T, runs.block(rows), EnergySpec(), 4, xp)
    assert ("pulled_ones", 4) not in runs.derived._entries
    np.testing.assert_allclose(sums, sums_runs, rtol=1e-13)
    np.testing.assert_allclose(r, r_runs, rtol=1e-13)


def test_blocks_of_a_block_see_their_rows():
    rng = np.random.RandomState(4)
    memories = prepare_memories(rng.standard_normal((50, 3)), xp, reuse=True)
    inner = memories.block(slice(10, 40)).block(slice(5, 12))
    np.testing.assert_array_equal(inner.patterns, memories.patterns[15:22])
    assert inner.derived.rows == slice(15, 22)
    built = inner.derived.get(("copy",), lambda m: m.patterns * 1.0)
    np.testing.assert_array_equal(built, memories.patterns[15:22])


def test_cache_blocks_give_the_single_block_state(monkeypatch):
    rng = np.random.RandomState(5)
    reused, plain = _memories(rng, K=2000, D=4, weights="positive")
    V = rng.standard_normal((100, 4))
    spec = EnergySpec(beta=2.0)
    whole = reduce_blocks(V, plain, spec, xp, block_rows=2000)
    monkeypatch.setattr(partial, "CPU_TILE_BYTES", 100 * 8 * 300)  # 300 memories
    assert partial.cache_block_rows(100, 4, 8) == 300
    assert partial.cache_block_rows(100, 64, 8) == 32 * 64  # wide: fewer blocks
    tiled = reduce_blocks(V, reused, spec, xp)
    np.testing.assert_allclose(tiled.log_sum, whole.log_sum, rtol=1e-13)
    np.testing.assert_allclose(tiled.mean, whole.mean, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("start", [0, 3])
def test_step_from_is_the_descent_step_on_the_free_coordinates(start):
    rng = np.random.RandomState(6)
    memories, _ = _memories(rng, K=300, D=5, weights="positive", coord_weights=True)
    spec = EnergySpec(beta=1.3)
    V = rng.standard_normal((70, 5))
    clamp = np.arange(5) < start
    full = descend(
        V,
        memories,
        spec,
        xp,
        clamp_mask=clamp if start else None,
        step_size=0.7,
        max_iter=1,
        compute_energy=False,
    ).states
    oracle = KernelSumOracle(memories, spec, xp)
    free = step_from(V, oracle, xp, start=start, step_size=0.7, chunk_size=16)
    np.testing.assert_allclose(free, full[:, start:], rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(full[:, :start], V[:, :start])


def test_estimators_fast_paths_equal_their_general_ones(digits_data):
    X, y = digits_data
    clf = DenseAMClassifier(beta=5.0).fit(X[::2], y[::2])
    fast = clf.predict_proba(X[1::2])
    general = clf.set_params(max_iter=2, tol=1e9)  # stops after one step
    np.testing.assert_allclose(general.predict_proba(X[1::2]), fast, rtol=1e-12)
    am = DenseAM(beta=0.5, max_iter=1).fit(X[:300])
    fast = am.transform(X[300:400])
    general = am.descend(X[300:400]).states  # the descent loop, energy asked
    np.testing.assert_allclose(fast, general, rtol=1e-12, atol=1e-14)


@pytest.fixture(scope="module")
def digits_data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.mark.parametrize("coord_weights", [False, True])
def test_uniform_tail_is_folded_into_the_bias(coord_weights):
    """Label neurons at their start: their part of the logits is per memory."""
    rng = np.random.RandomState(7)
    reused, plain = _memories(rng, K=300, D=7, coord_weights=coord_weights)
    spec = EnergySpec(beta=1.1)
    V = rng.standard_normal((80, 7))
    V[:, 4:] = [0.3, -0.2, 0.5]  # the same tail in every query
    folded = lse_logits(V, reused, spec, xp, pull_from=4)
    np.testing.assert_allclose(
        folded, lse_logits(V, plain, spec, xp), rtol=1e-12, atol=1e-12
    )
    slot = reused.derived._entries[("lse_operand_tail", 1.1, "sqeuclidean", 4)]
    assert slot[0] == (0.3, -0.2, 0.5)
    assert slot[1].shape == (300, 6)  # [bias | features | 1]
    assert slot[1].flags.f_contiguous  # the GEMM reads its columns transposed
    fast, _, _ = lse_block(V, reused, spec, xp, pull_from=4)
    slow, _, _ = lse_block(V, plain, spec, xp, pull_from=4)
    np.testing.assert_allclose(fast.mean, slow.mean, rtol=1e-12, atol=1e-14)
    V[:, 4:] = [1.0, 0.0, -1.0]  # another tail: the one slot is rebuilt
    np.testing.assert_allclose(
        lse_logits(V, reused, spec, xp, pull_from=4),
        lse_logits(V, plain, spec, xp),
        rtol=1e-12,
        atol=1e-12,
    )
    key = ("lse_operand_tail", 1.1, "sqeuclidean", 4)
    assert reused.derived._entries[key][0] == (1.0, 0.0, -1.0)
    V[0, 5] += 1.0  # tails differ: the full GEMM
    np.testing.assert_allclose(
        lse_logits(V, reused, spec, xp, pull_from=4),
        lse_logits(V, plain, spec, xp),
        rtol=1e-12,
        atol=1e-12,
    )
    assert ("lse_operand", 1.1, "sqeuclidean") in reused.derived._entries


def test_an_order_arranges_the_derived_arrays_only(digits_data):
    """A classifier's memories are read class by class; results do not move."""
    from skam._energy import log_kernel_sum

    X, y = digits_data
    clf = DenseAMClassifier(beta=5.0).fit(X[:600], y[:600])  # classes mixed
    clf.predict(X[600:700])
    prep = clf._prepared_cache[2]
    memories = prep.memories
    assert memories.patterns is not None and memories.derived.arranged
    np.testing.assert_array_equal(memories.patterns, clf.memories_)  # no copy
    run_rows, _, starts = memories.derived.get(("pulled_runs", 64), None)
    assert run_rows.shape == (10, 11) and len(starts) == 10  # one run per class
    plain = replace(memories, derived=None)
    V = prep.code.start_states(X[600:700], xp)
    for block_rows in (600, 250):  # blocks of the arranged order
        fast = reduce_blocks(
            V, memories, prep.spec, xp, pull_from=64, block_rows=block_rows
        )
        slow = reduce_blocks(V, plain, prep.spec, xp, pull_from=64, block_rows=600)
        np.testing.assert_allclose(fast.log_sum, slow.log_sum, rtol=1e-13)
        np.testing.assert_allclose(fast.mean, slow.mean, rtol=1e-12, atol=1e-15)
    # per-memory weights come out in the memories' own order
    log_z, P = log_kernel_sum(V, memories, prep.spec, xp)
    log_z0, P0 = log_kernel_sum(V, plain, prep.spec, xp)
    np.testing.assert_allclose(P, P0, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(log_z, log_z0, rtol=1e-13)


def test_a_block_of_zero_weight_memories_is_the_identity():
    rng = np.random.RandomState(8)
    M = rng.standard_normal((300, 4))
    w = rng.uniform(0.5, 2.0, 300)
    w[100:200] = 0.0  # the second block holds no weight at all
    reused = prepare_memories(M, xp, weights=w, reuse=True)
    plain = replace(reused, derived=None)
    V = rng.standard_normal((20, 4))
    spec = EnergySpec(beta=1.5)
    state, _, _ = lse_block(V, reused.block(slice(100, 200)), spec, xp)
    assert np.all(state.log_sum == -np.inf) and np.all(state.mean == 0)
    tiled = reduce_blocks(V, reused, spec, xp, block_rows=100)
    whole = reduce_blocks(V, plain, spec, xp, block_rows=300)
    np.testing.assert_allclose(tiled.log_sum, whole.log_sum, rtol=1e-13)
    np.testing.assert_allclose(tiled.mean, whole.mean, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "shape", [(1, 150), (64, 3), (150, 150), (70, 1024), (70, 1025)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_is_the_row_maximum(shape, dtype):
    """The argmax-and-gather row maximum (short rows) gives NumPy's values."""
    rng = np.random.RandomState(7)
    L = rng.standard_normal(shape).astype(dtype)
    L[0] = -np.inf  # a row of zero-weight memories
    if shape[0] > 2:
        L[1, shape[1] // 2] = np.nan  # NaN propagates as in max
        L[2, -1] = np.inf
    np.testing.assert_array_equal(partial._row_max(L), L.max(axis=1))
    np.testing.assert_array_equal(partial._row_max(L[:, ::-1]), L[:, ::-1].max(axis=1))
