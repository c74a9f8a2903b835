"""skam on Dask: a real two-process LocalCluster, exactness against memory.

The cluster (two worker processes with one thread each, on 127.0.0.1 only)
is started once for this module. Every sharded result is compared with the
same estimator fitted in memory: states to 1e-10, energies to rtol 1e-12.
"""

import inspect
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone

from skam import (
    AMClustering,
    BochnerFeatures,
    DenseAM,
    DenseAMClassifier,
    DenseAMRegressor,
    DiffusionAM,
    EnergyTransformer,
    HierarchicalAM,
    HierarchicalAMClassifier,
    HopfieldNetwork,
    RandomFeatureAM,
    RandomFeatureAMClassifier,
)


def test_import_skam_does_not_import_dask():
    code = (
        "import sys, skam; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def da(client):
    import dask.array

    return dask.array


# uneven shards; shard 3 (one row) and shard 4 get zero weights below
CHUNKS = (37, 90, 1, 11, 61)


def _data(seed=0, n=200, d=5):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, d))
    M[150] = M[3]  # a duplicate, in another shard than its first copy
    w = rng.uniform(0.5, 2.0, size=n)
    w[127 : 128 + 11] = 0.0  # a zero-weight shard (rows 127..138)
    Q = M[:30] + 0.15 * rng.normal(size=(30, d))
    return M, w, Q


SHARDED_CASES = [
    dict(separation="lse", beta="scale"),
    dict(separation="lse", similarity="dot", beta=0.3),
    dict(separation="poly", similarity="dot", degree=3, beta=0.8),  # odd: clips
    dict(separation="poly", similarity="dot", degree=2, beta="scale"),
    dict(separation="poly", similarity="sqeuclidean", degree=3, beta=0.5),
    dict(separation="rectified_poly", degree=2, beta="scale"),
    dict(separation="lsr", beta="scale"),
]


def _assert_states(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-10)


def _assert_energy(a, b):
    # rtol 1e-12; an energy that is a difference of O(1) terms and lands near
    # 0 (a state on a memory) keeps their absolute rounding, hence the atol
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "params", SHARDED_CASES, ids=lambda p: "-".join(map(str, p.values()))
)
def test_sharded_dense_am_matches_in_memory(da, params):
    M, w, Q = _data()
    est = DenseAM(max_iter=15, **params)
    ref = clone(est).fit(M, sample_weight=w)
    sharded = clone(est).fit(
        da.from_array(M, chunks=(CHUNKS, -1)),
        sample_weight=da.from_array(w, chunks=(CHUNKS,)),
    )
    assert sharded._shards is not None and len(sharded._shards.futures) == len(CHUNKS)
    assert not hasattr(sharded, "memories_")
    np.testing.assert_allclose(sharded.beta_, ref.beta_, rtol=1e-12)
    Qd = da.from_array(Q, chunks=(12, -1))
    # NumPy queries on the sharded model, then dask queries (lazy)
    _assert_states(sharded.transform(Q), ref.transform(Q))
    _assert_energy(sharded.energy(Q), ref.energy(Q))
    lazy = sharded.transform(Qd)
    assert isinstance(lazy, da.Array)
    _assert_states(lazy.compute(), ref.transform(Q))
    _assert_energy(sharded.score_samples(Qd).compute(), ref.score_samples(Q))
    np.testing.assert_array_equal(sharded.predict(Qd).compute(), ref.predict(Q))
    got, want = sharded.descend(Qd), ref.descend(Q)
    np.testing.assert_array_equal(got.n_iter.compute(), want.n_iter)
    _assert_energy(got.energy.compute(), want.energy)


@pytest.mark.parametrize(
    "params",
    [
        dict(separation="poly", degree=4, beta="scale"),  # "auto" on binary data
        dict(separation="rectified_poly", degree=3, beta=0.05),
        dict(separation="poly", degree=3, beta=0.02, self_coupling=False, real=True),
    ],
    ids=["poly4-auto", "rectified3-auto", "poly3-false-real"],
)
def test_sharded_fit_removes_the_self_coupling_as_in_memory(da, params):
    """Binary patterns: the self-coupling-free kernel, merged shard by shard."""
    params = dict(params)
    M, w, _ = _data(seed=17, d=24)
    if not params.pop("real", False):
        M = np.where(M > 0, 1.0, -1.0)
    rng = np.random.default_rng(18)
    Q = M[:20] * np.where(rng.random((20, M.shape[1])) < 0.15, -1.0, 1.0)
    est = DenseAM(max_iter=10, **params)
    ref = clone(est).fit(M, sample_weight=w)
    sharded = clone(est).fit(
        da.from_array(M, chunks=(CHUNKS, -1)),
        sample_weight=da.from_array(w, chunks=(CHUNKS,)),
    )
    assert ref.self_coupling_ is False and sharded.self_coupling_ is False
    np.testing.assert_allclose(sharded.beta_, ref.beta_, rtol=1e-12)
    Qd = da.from_array(Q, chunks=(7, -1))
    want = ref.descend(Q)
    assert want.n_iter.max() > 1
    got = sharded.descend(Qd)
    _assert_states(got.states.compute(), want.states)
    _assert_energy(got.energy.compute(), want.energy)
    _assert_states(sharded.transform(Q), want.states)
    _assert_energy(sharded.energy(Qd).compute(), ref.energy(Q))
    _assert_energy(sharded.score_samples(Q), ref.score_samples(Q))
    np.testing.assert_array_equal(sharded.predict(Q), ref.predict(Q))


def test_sharded_clamp_masks_and_multi_step_descent(da):
    M, w, Q = _data(seed=1)
    est = DenseAM(beta=3.0, max_iter=12, tol=1e-9)
    ref = clone(est).fit(M, sample_weight=w)
    sharded = clone(est).fit(
        da.from_array(M, chunks=(CHUNKS, -1)),
        sample_weight=da.from_array(w, chunks=(CHUNKS,)),
    )
    mask_1d = np.array([True, False, False, True, False])
    mask_2d = np.random.default_rng(2).random(Q.shape) < 0.4
    Qd = da.from_array(Q, chunks=(17, -1))
    for mask in (mask_1d, mask_2d):
        want = ref.descend(Q, clamp_mask=mask, return_energy_trace=True)
        assert want.n_iter.max() > 3  # really several steps
        got = sharded.descend(Qd, clamp_mask=mask, return_energy_trace=True)
        _assert_states(got.states.compute(), want.states)
        np.testing.assert_array_equal(got.n_iter.compute(), want.n_iter)
        trace = got.energy_trace.compute()
        _assert_energy(trace[: want.energy_trace.shape[0]], want.energy_trace)
        assert trace.shape == (est.max_iter + 1, Q.shape[0])
        _assert_states(
            sharded.transform(Q, clamp_mask=mask), ref.transform(Q, clamp_mask=mask)
        )
    mask_dask = da.from_array(mask_2d, chunks=(10, -1))  # chunked unlike Qd
    _assert_states(
        sharded.transform(Qd, clamp_mask=mask_dask).compute(),
        ref.transform(Q, clamp_mask=mask_2d),
    )


def test_sharded_results_do_not_depend_on_the_split(da):
    """Merge associativity on the cluster: 1, 3 and 8 shards, same energy."""
    M, w, Q = _data(seed=3)
    energies = []
    for chunks in ((200,), (50, 120, 30), (25,) * 8):
        am = DenseAM(beta=1.5, max_iter=5).fit(
            da.from_array(M, chunks=(chunks, -1)),
            sample_weight=da.from_array(w, chunks=(chunks,)),
        )
        energies.append(am.energy(Q))
    for e in energies[1:]:
        np.testing.assert_allclose(e, energies[0], rtol=1e-12)


def test_float32_stays_float32(da):
    M, _, Q = _data(seed=4)
    M32, Q32 = M.astype(np.float32), Q.astype(np.float32)
    am = DenseAM(beta=2.0, max_iter=3).fit(da.from_array(M32, chunks=(CHUNKS, -1)))
    out = am.transform(da.from_array(Q32, chunks=(10, -1)))
    assert out.dtype == np.float32 and out.compute().dtype == np.float32
    ref = DenseAM(beta=2.0, max_iter=3).fit(M32)
    np.testing.assert_allclose(out.compute(), ref.transform(Q32), atol=1e-5)


def test_to_local_and_pickling(da):
    M, w, Q = _data(seed=5)
    sharded = DenseAM(beta=2.0, max_iter=5).fit(
        da.from_array(M, chunks=(CHUNKS, -1)),
        sample_weight=da.from_array(w, chunks=(CHUNKS,)),
    )
    with pytest.raises(TypeError, match="to_local"):
        pickle.dumps(sharded)
    want = sharded.transform(Q)
    assert sharded.to_local() is sharded
    np.testing.assert_array_equal(sharded.memories_, M)
    np.testing.assert_array_equal(sharded.memory_weights_, w)
    loaded = pickle.loads(pickle.dumps(sharded))
    _assert_states(loaded.transform(Q), want)
    ref = DenseAM(beta=2.0, max_iter=5).fit(M, sample_weight=w)
    np.testing.assert_array_equal(loaded.predict(Q), ref.predict(Q))


def _graph_bytes(collection):
    return len(pickle.dumps(dict(collection.__dask_graph__())))


def test_no_large_array_in_the_graph(da):
    rng = np.random.default_rng(6)
    M = rng.normal(size=(4000, 16))  # 512 KB of memories
    Q = da.from_array(M[:64] + 0.1, chunks=(16, -1))
    local = DenseAM(beta=1.0, max_iter=2).fit(M)
    sharded = DenseAM(beta=1.0, max_iter=2).fit(da.from_array(M, chunks=(1000, -1)))
    query_bytes = 64 * 16 * 8
    for est in (local, sharded):
        for out in (est.transform(Q), est.energy(Q)):
            assert _graph_bytes(out) < query_bytes + 40_000
    clf = DenseAMClassifier(max_iter=2).fit(M, (M[:, 0] > 0).astype(int))
    assert _graph_bytes(clf.predict_proba(Q)) < query_bytes + 40_000


def _fitted_estimators():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    t = X[:, 0] - 2 * X[:, 2]
    signs = np.sign(rng.normal(size=(5, 16)))
    return [
        (DenseAM(max_iter=5).fit(X), X),
        (HopfieldNetwork(random_state=0).fit(signs), signs),
        (DenseAMClassifier(max_iter=5).fit(X, y), X),
        (DenseAMRegressor(max_iter=5).fit(X, t), X),
        (AMClustering(n_clusters=3, random_state=0).fit(X), X),
        (BochnerFeatures(n_components=32, random_state=0).fit(X), X),
        (RandomFeatureAM(n_components=64, random_state=0, max_iter=5).fit(X), X),
        (RandomFeatureAMClassifier(n_components=64, random_state=0).fit(X, y), X),
        (HierarchicalAM(max_epochs=2, random_state=0).fit(X), X),
        (DiffusionAM(n_memories=8, max_epochs=2, random_state=0).fit(X), X),
        (
            EnergyTransformer(
                image_shape=(2, 2),
                patch_shape=(1, 1),
                token_dim=4,
                n_memories=8,
                max_epochs=1,
                random_state=0,
            ).fit(X),
            X,
        ),
        (HierarchicalAMClassifier(max_epochs=2, random_state=0).fit(X, y), X),
    ]


POST_FIT = (
    "transform",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "energy",
    "score_samples",
    "descend",
    "contract",
    "hidden_activations",
    "energy_terms",
    "token_embeddings",
)


def _leaves(got, want):
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want)
        for key in want:
            yield from _leaves(got[key], want[key])
    else:
        yield got, want


def test_every_post_fit_method_dask_in_lazy_dask_out(da):
    checked = 0
    for est, X in _fitted_estimators():
        Xd = da.from_array(X, chunks=(45, -1))
        for name in POST_FIT:
            if not hasattr(est, name):
                continue
            trace = "return_energy_trace"
            kwargs = {}
            if name == "descend" and trace in inspect.signature(est.descend).parameters:
                kwargs = {trace: True}
            want = getattr(est, name)(X, **kwargs)
            got = getattr(est, name)(Xd, **kwargs)
            pairs = list(_leaves(got, want))
            for g, w in pairs:
                assert isinstance(g, da.Array), (type(est).__name__, name)
                assert not isinstance(w, da.Array)
                g = g.compute()
                if g.shape != w.shape and g.ndim == 2 and g.shape[1] == w.shape[1]:
                    # an energy trace: padded to max_iter + 1 rows on dask
                    np.testing.assert_array_equal(
                        g[w.shape[0] :], g[-1:].repeat(g.shape[0] - w.shape[0], 0)
                    )
                    g = g[: w.shape[0]]
                assert g.shape == w.shape and g.dtype == w.dtype, (
                    type(est).__name__,
                    name,
                )
                if w.dtype.kind == "f":
                    np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
                else:
                    np.testing.assert_array_equal(g, w)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("feature_map", ["sincos", "positive"])
def test_random_feature_memory_fit_on_dask_is_the_in_memory_fit(da, feature_map):
    """T as a tree sum over uneven chunks (a zero-weight chunk), beta='scale'."""
    M, w, Q = _data(seed=12)
    est = RandomFeatureAM(
        n_components=256, beta="scale", feature_map=feature_map, random_state=0
    )
    ref = clone(est).fit(M, sample_weight=w)
    got = clone(est).fit(
        da.from_array(M, chunks=(CHUNKS, -1)),
        sample_weight=da.from_array(w, chunks=(CHUNKS,)),
    )
    assert not isinstance(got.distributed_memory_, da.Array)
    np.testing.assert_allclose(got.beta_, ref.beta_, rtol=1e-12)
    np.testing.assert_array_equal(got.random_weights_, ref.random_weights_)
    np.testing.assert_allclose(
        got.distributed_memory_, ref.distributed_memory_, rtol=1e-12, atol=1e-12
    )
    if feature_map == "positive":
        np.testing.assert_allclose(got.center_, ref.center_, rtol=1e-12)
    for name in ("n_stored_", "n_iter_", "self_recall_"):
        assert getattr(got, name) == getattr(ref, name), name
    _assert_states(got.transform(Q), ref.transform(Q))
    _assert_energy(got.energy(Q), ref.energy(Q))
    # the pattern moments (the starts of sample) and the weight bookkeeping
    _assert_states(got.sample(5, random_state=1), ref.sample(5, random_state=1))
    got.partial_fit(Q, sample_weight=np.full(len(Q), 2.0))
    ref.partial_fit(Q, sample_weight=np.full(len(Q), 2.0))
    _assert_states(got.transform(Q), ref.transform(Q))
    pickle.loads(pickle.dumps(got))  # held in memory: pickles as it is


def test_worker_warnings_reach_the_client(da):
    """A warning raised on a worker is re-emitted on the client."""
    import time
    import warnings

    from skam import KernelSumClippedWarning

    rng = np.random.default_rng(13)
    am = RandomFeatureAM(n_components=16, beta=50.0, random_state=0).fit(
        rng.normal(size=(20, 3))
    )
    far = da.from_array(rng.normal(size=(40, 3)) + 30.0, chunks=(20, -1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        am.energy(far).compute()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            issubclass(c.category, KernelSumClippedWarning) for c in caught
        ):
            time.sleep(0.05)  # forwarded warnings arrive with the events
    assert any(issubclass(c.category, KernelSumClippedWarning) for c in caught)


CLUSTERING = dict(n_clusters=3, n_init=1, max_epochs=4, n_polish=3, random_state=0)


def _blobs(seed=14, n=240):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    X = centres[rng.integers(0, 3, n)] + rng.normal(scale=0.8, size=(n, 2))
    w = rng.uniform(0.5, 2.0, n)
    w[60:71] = 0.0
    return X, w


def test_clustering_fit_on_dask_is_the_in_memory_fit(da):
    """n <= max_samples_per_epoch: the same fit; labels_ a lazy dask array."""
    X, w = _blobs()
    ref = AMClustering(**CLUSTERING).fit(X, sample_weight=w)
    got = AMClustering(**CLUSTERING).fit(
        da.from_array(X, chunks=((50, 10, 1, 79, 100), -1)),
        sample_weight=da.from_array(w, chunks=((50, 10, 1, 79, 100),)),
    )
    _assert_states(got.cluster_centers_, ref.cluster_centers_)
    assert got.cluster_centers_.dtype == ref.cluster_centers_.dtype
    assert isinstance(got.labels_, da.Array)
    np.testing.assert_array_equal(got.labels_.compute(), ref.labels_)
    np.testing.assert_allclose(got.inertia_, ref.inertia_, rtol=1e-12)
    assert got.n_iter_ == ref.n_iter_ and got.beta_ == ref.beta_
    np.testing.assert_allclose(got.loss_curve_, ref.loss_curve_, rtol=1e-12)


def test_clustering_fit_on_dask_trains_on_a_sample_then_polishes_on_all(da):
    """n > max_samples_per_epoch: the in-memory fit of the documented sample,
    then the polish, assignment and inertia over all rows (a NumPy oracle)."""
    X, w = _blobs(seed=15, n=300)
    params = dict(CLUSTERING, max_samples_per_epoch=80)
    got = AMClustering(**params).fit(
        da.from_array(X, chunks=(70, -1)), sample_weight=da.from_array(w, chunks=70)
    )
    rng = np.random.RandomState(0)
    rows = np.sort(rng.choice(300, size=80, replace=False))
    sub = AMClustering(
        **dict(params, max_samples_per_epoch=None, random_state=rng)
    ).fit(X[rows], sample_weight=w[rows])
    # the polish written out: basin means of the assignment under predict
    centres, labels = sub.cluster_centers_, sub.predict(X)
    trained = centres.copy()
    for _ in range(3):
        new = centres.copy()
        for k in range(3):
            inside = (labels == k) & (w > 0)
            if inside.any():
                new[k] = np.average(X[inside], axis=0, weights=w[inside])
        sub.cluster_centers_ = new
        new_labels = sub.predict(X)
        centres, changed = new, (new_labels != labels).any()
        labels = new_labels
        if not changed:
            break
    assert np.abs(centres - trained).max() > 1e-3  # the polish moved them
    _assert_states(got.cluster_centers_, centres)
    np.testing.assert_array_equal(got.labels_.compute(), labels)
    inertia = np.sum(w * np.sum((X - centres[labels]) ** 2, axis=1))
    np.testing.assert_allclose(got.inertia_, inertia, rtol=1e-12)


def test_clustering_relocation_of_empty_clusters_over_chunks(da):
    """The distributed donor search equals AMClustering._relocate_empty."""
    from skam._backend import resolve_backend
    from skam._dask._fits import _lazy_labels, relocate_empty

    X, w = _blobs(seed=16)
    est = AMClustering(**CLUSTERING).fit(X)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [50.0, 50.0], [60.0, 0.0]])
    wn = w / w.mean()
    Xd = da.from_array(X, chunks=(45, -1))
    labels = _lazy_labels(Xd, est, centres)
    assert set(np.unique(labels.compute())) == {0, 1}  # two empty clusters
    got, got_labels = relocate_empty(
        Xd, da.from_array(wn, chunks=45), est, centres, labels
    )
    want, want_labels = est._relocate_empty(
        resolve_backend(X), X, wn, centres, est._assign(resolve_backend(X), X, centres)
    )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_labels.compute(), want_labels)


def test_fit_on_dask_without_a_sharded_version_says_what_to_do(da):
    X = da.from_array(np.random.default_rng(8).normal(size=(40, 3)), chunks=(20, -1))
    with pytest.raises(TypeError, match=r"X\.compute\(\)"):
        DiffusionAM(n_memories=4).fit(X)
    y = da.from_array(np.arange(40) % 2, chunks=20)
    with pytest.raises(TypeError, match=r"X\.compute\(\)"):
        DenseAMClassifier(mode="parametric").fit(X, y)


@pytest.mark.parametrize("separation", ["lse", "rectified_poly"])
def test_sharded_classifier_and_regressor_match_in_memory(da, separation):
    M, w, Q = _data(seed=9)
    y = np.where(M[:, 0] + M[:, 1] > 0, "yes", "no")
    t = np.column_stack([M[:, 0] - M[:, 2], M[:, 1]])
    Md = da.from_array(M, chunks=(CHUNKS, -1))
    wd = da.from_array(w, chunks=(CHUNKS,))
    Qd = da.from_array(Q, chunks=(12, -1))
    for est, target in [
        (DenseAMClassifier(separation=separation, max_iter=8), y),
        (DenseAMRegressor(separation=separation, max_iter=8), t),
    ]:
        ref = clone(est).fit(M, target, sample_weight=w)
        sharded = clone(est).fit(
            Md,
            da.from_array(target, chunks=(CHUNKS,) + target.shape[1:]),
            sample_weight=wd,
        )
        np.testing.assert_allclose(sharded.beta_, ref.beta_, rtol=1e-12)
        if hasattr(ref, "predict_proba"):
            _assert_states(sharded.predict_proba(Q), ref.predict_proba(Q))
            _assert_states(sharded.predict_proba(Qd).compute(), ref.predict_proba(Q))
            np.testing.assert_array_equal(sharded.predict(Qd).compute(), ref.predict(Q))
        else:
            _assert_states(sharded.predict(Qd).compute(), ref.predict(Q))
        sharded.to_local()
        # the same standardisation summed in another order: rounding only
        np.testing.assert_allclose(sharded.memories_, ref.memories_, rtol=1e-12)


def test_sharded_hopfield_couplings_are_the_sum_over_shards(da):
    rng = np.random.default_rng(10)
    S = np.sign(rng.normal(size=(12, 40)))
    S[9] = S[2]  # a duplicate in another shard: predict gives the first row
    w = rng.uniform(0.5, 2.0, size=12)
    ref = HopfieldNetwork(random_state=0).fit(S, sample_weight=w)
    sharded = HopfieldNetwork(random_state=0).fit(
        da.from_array(S, chunks=((5, 3, 4), -1)),
        sample_weight=da.from_array(w, chunks=((5, 3, 4),)),
    )
    np.testing.assert_allclose(sharded.coupling_, ref.coupling_, rtol=1e-13, atol=1e-15)
    noisy = S * np.where(rng.random(S.shape) < 0.05, -1, 1)
    np.testing.assert_array_equal(sharded.predict(noisy), ref.predict(noisy))
    got = sharded.predict(da.from_array(noisy, chunks=(5, -1)))
    np.testing.assert_array_equal(got.compute(), ref.predict(noisy))
    np.testing.assert_array_equal(sharded.transform(noisy), ref.transform(noisy))
    with pytest.raises(TypeError, match="to_local"):
        pickle.dumps(sharded)


def test_sample_of_sharded_memories_is_exact_and_lazy(da):
    """method='exact' shard by shard: a lazy dask array, the kernel mixture."""
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    M = np.repeat(centres, [30, 10, 40, 20], axis=0)
    w = np.ones(len(M))
    w[40:80] = 0.0  # every copy of the third centre (a shard of its own)
    am = DenseAM(beta=25.0).fit(
        da.from_array(M, chunks=((30, 10, 40, 20), -1)),
        sample_weight=da.from_array(w, chunks=((30, 10, 40, 20),)),
    )
    S = am.sample(6000, random_state=0, chunks=2500)
    assert isinstance(S, da.Array) and S.chunks[0] == (2500, 2500, 1000)
    S = S.compute()
    assert S.dtype == M.dtype
    np.testing.assert_array_equal(S, am.sample(6000, random_state=0, chunks=2500))
    nearest = np.argmin(((S[:, None, :] - centres) ** 2).sum(axis=2), axis=1)
    share = np.bincount(nearest, minlength=4) / len(S)
    want = np.array([30, 10, 0, 20]) / 60
    assert np.all(
        np.abs(share - want) < 4 * np.sqrt(want * (1 - want) / len(S)) + 1e-12
    )
    noise = S - centres[nearest]
    np.testing.assert_allclose(noise.std(axis=0), 1 / np.sqrt(25.0), rtol=0.05)
    # draws are shuffled within a block: no run of one memory
    assert len(np.unique(nearest[:50])) > 1
    with pytest.raises(TypeError, match="to_local"):
        am.sample(3, method="langevin")


def test_sample_with_chunks_or_dask_starts_is_lazy_and_seeded_per_block(da):
    M, _, Q = _data(seed=11)
    am = DenseAM(beta=2.0).fit(M)
    lazy = am.sample(25, chunks=10, random_state=3)
    assert isinstance(lazy, da.Array) and lazy.chunks[0] == (10, 10, 5)
    seeds = np.random.RandomState(3).randint(0, 2**31 - 1, size=3)
    want = np.concatenate(
        [
            am.sample(n, random_state=int(s))
            for n, s in zip((10, 10, 5), seeds, strict=True)
        ]
    )
    _assert_states(lazy.compute(), want)  # the same draws (rounding of the worker)
    assert isinstance(am.sample(5, random_state=0), np.ndarray)  # NumPy stays NumPy
    rf = RandomFeatureAM(n_components=64, random_state=0).fit(M)
    Qd = da.from_array(Q, chunks=(12, -1))
    mask = np.array([True, False, False, False, True])
    lazy = rf.sample(None, X=Qd, clamp_mask=mask, n_steps=5, random_state=4)
    assert isinstance(lazy, da.Array)
    seeds = np.random.RandomState(4).randint(0, 2**31 - 1, size=3)
    want = np.concatenate(
        [
            rf.sample(None, X=Q[a:b], clamp_mask=mask, n_steps=5, random_state=int(s))
            for (a, b), s in zip(((0, 12), (12, 24), (24, 30)), seeds, strict=True)
        ]
    )
    _assert_states(lazy.compute(), want)  # the same draws (rounding of the worker)
    np.testing.assert_array_equal(want[:, mask], Q[:, mask])


def test_dask_extra_has_floors_and_no_upper_pin():
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for extra in ("dask", "test"):
        reqs = [r for r in extras[extra] if r.startswith(("dask", "distributed"))]
        assert len(reqs) == 2, extra
        assert all(">=" in r and "<" not in r and "==" not in r for r in reqs), reqs
