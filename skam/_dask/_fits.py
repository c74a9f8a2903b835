"""Fits on dask arrays whose fitted model is small and held in memory.

The data stay in the dask array; every pass over them is one task per chunk
(the estimator's own functions on that chunk) and a tree of merges, run by
the current scheduler. What comes back is the size of the model.

* :func:`fit_random_features`: :class:`~skam.RandomFeatureAM`. ``beta="scale"``
  from :mod:`skam._beta`'s per-block statistics, the positive map's centre as
  a weighted mean, ``T = sum_mu w_mu phi(x_mu)`` and the pattern moments as a
  tree sum over chunks, and the self-recall diagnostic's nearest-other
  distances as a tree minimum: equal to the in-memory fit up to the order of
  the sums.
"""

import functools

import numpy as np

from skam._beta import resolve_beta_blocks
from skam._dask._blocks import DaskBlocks


def _add_tuples(a, b):
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _memory_stat(X, w, index, frequencies, feature_map, gamma, unit):
    """``(T, moments)`` of one chunk: the in-memory ``_store`` on it."""
    from skam._random_feature_base import accumulate
    from skam._sampling import add_moments

    W, b, center = frequencies
    if w is not None:
        w = w / unit
    Xc = X if center is None else X - center[None, :]
    T = accumulate(
        Xc,
        w,
        None,
        1,
        W,
        b,
        feature_map=feature_map,
        gamma=gamma,
        xp=np,
    )[0, :]
    return (T,) + tuple(add_moments(None, X, w, 1.0))


def _nearest_other_stat(X, w, index, states, probes):
    from skam._random_feature_memory import _nearest_other_sq_distance

    return _nearest_other_sq_distance(states, probes, X, np)


def fit_random_features(estimator, X, y=None, sample_weight=None):
    """RandomFeatureAM.fit on a dask array (the model comes back in memory)."""
    from skam._backend import resolve_backend
    from skam._dask._sharded import _as_rows, _as_weights, _check_finite, _reset
    from skam._random_feature_memory import probe_rows

    if estimator.backend != "numpy":
        raise ValueError(
            f"fit on a dask array runs the NumPy engine on the workers; got "
            f"backend={estimator.backend!r}."
        )
    X = _as_rows(X, estimator)
    w = _as_weights(sample_weight, X)
    _check_finite(X, w)
    _reset(estimator, X)
    n, d = X.shape
    dtype = X.dtype
    blocks = DaskBlocks(X, w)
    backend = resolve_backend(np.zeros((1, d), dtype))
    estimator.beta_ = resolve_beta_blocks(estimator.beta, blocks, rule="variance")
    # the frequencies depend on the shape only; the positive map's centre is
    # the weighted mean of the rows
    estimator._draw(np.zeros((1, d), dtype), backend, estimator.beta_ / 2.0)
    if estimator.feature_map == "positive":
        if w is None:
            center = X.mean(axis=0)
        else:
            center = (w @ X) / w.sum()
        estimator.center_ = np.asarray(center.compute(), dtype=dtype)
    unit = 1.0
    total = float(n)
    if w is not None:
        wsum = float(w.astype(np.float64).sum().compute())
        unit, total = wsum / n, wsum
    estimator._weight_unit = unit
    estimator._stored_weight = total / unit
    frequencies = estimator._frequencies(backend, dtype)
    T, *moments = blocks.reduce(
        _memory_stat,
        _add_tuples,
        frequencies,
        estimator.feature_map,
        estimator.beta_ / 2.0,
        unit,
    )
    estimator.distributed_memory_ = np.asarray(T, dtype=dtype)
    estimator.n_stored_ = int(n)
    estimator._pattern_moments = tuple(moments)
    probes = np.asarray(X[probe_rows(n)].compute())

    def nearest_other(states, probes):
        return DaskBlocks(X).reduce(_nearest_other_stat, np.minimum, states, probes)

    estimator._self_recall(backend, None, probes=probes, nearest_other=nearest_other)
    return estimator


# ------------------------------------------------------------- AMClustering
def _assign_block(X, model):
    """Labels of one chunk: the estimator's own assignment (contract, nearest)."""
    from skam._backend import resolve_backend

    estimator, centres = model
    if not X.flags.aligned:
        X = np.array(X)
    return estimator._assign(resolve_backend(X), X, centres)


def _lazy_labels(X, estimator, centres):
    """Labels of every row under ``centres``, a lazy dask array (one task per chunk)."""
    import dask
    import dask.array as da

    model = dask.delayed((estimator, centres), pure=False, traverse=False)
    run = dask.delayed(_assign_block, pure=True)
    parts = [
        da.from_delayed(run(block, model), shape=(n,), dtype=np.int64)
        for block, n in zip(X.to_delayed()[:, 0], X.chunks[0], strict=True)
    ]
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def _basin_stat(X, w, index, labels, centres):
    from skam.cluster import _basin_sums

    return _basin_sums(X, labels, w, centres, np)


def _count_stat(X, w, index, labels, K):
    return (np.bincount(labels, minlength=K).astype(np.int64),)


def _inertia_stat(X, w, index, labels, centres):
    from skam.cluster import _inertia

    return (float(_inertia(X, centres, labels, w, np)),)


def _donor_stat(X, w, index, labels, estimator, centres, k, offsets):
    """The ``k`` best donors of one chunk: (scores, global rows), best first."""
    from skam._backend import resolve_backend

    far = estimator._far_scores(resolve_backend(X), X, w, centres, labels)
    order = np.argsort(-far, kind="stable")[:k]
    return far[order], order.astype(np.int64) + offsets[index]


def _merge_donors(a, b, k):
    """The ``k`` best of two donor lists (score descending, then the earlier row)."""
    far = np.concatenate([a[0], b[0]])
    rows = np.concatenate([a[1], b[1]])
    order = np.lexsort((rows, -far))[:k]
    return far[order], rows[order]


def relocate_empty(X, wn, model, centres, labels):
    """AMClustering._relocate_empty over the chunks: donors as a tree merge."""
    n, K = int(X.shape[0]), centres.shape[0]
    (counts,) = DaskBlocks(X, None, extra=[labels]).reduce(_count_stat, _add_tuples, K)
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0 or n < K:
        return centres, labels
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(np.int64)
    _, donors = DaskBlocks(X, wn, extra=[labels]).reduce(
        _donor_stat,
        functools.partial(_merge_donors, k=int(empty.size)),
        model,
        centres,
        int(empty.size),
        offsets,
    )
    source = np.arange(K)
    source[empty] = K + np.arange(empty.size)
    donor_rows = np.asarray(X[np.sort(donors)].compute())
    donor_rows = donor_rows[np.argsort(np.argsort(donors))]  # in donor order
    centres = np.concatenate([centres, donor_rows])[source]
    return centres, _lazy_labels(X, model, centres).persist()


def _light(estimator):
    """The fitted estimator without its data-sized attributes (for the tasks)."""
    light = object.__new__(type(estimator))
    light.__dict__.update(
        {k: v for k, v in estimator.__dict__.items() if k != "labels_"}
    )
    return light


def fit_clustering(estimator, X, y=None, sample_weight=None):
    """AMClustering.fit on a dask array.

    The training (seeding, minibatch Adam, restarts, their polish) runs in
    memory on a uniform random sample of ``min(n, max_samples_per_epoch)``
    rows gathered from the dask array (all rows when it is None): that is
    the in-memory fit of the sample, so with ``n <= max_samples_per_epoch``
    it is the in-memory fit of ``X``. The passes over all rows then run on
    the workers as in the in-memory fit: the polish rounds (assignment and
    basin means as a tree sum per round), the relocation of empty clusters,
    ``inertia_`` (a tree sum) and ``labels_`` (a lazy dask array).
    """
    from sklearn.base import clone
    from sklearn.utils import check_random_state

    from skam._dask._sharded import _as_rows, _as_weights, _check_finite
    from skam.cluster import _FULL_DATA_POLISH_ROUNDS, _finish_basin_means

    if estimator.backend != "numpy":
        raise ValueError(
            f"fit on a dask array runs the NumPy engine on the workers; got "
            f"backend={estimator.backend!r}."
        )
    X = _as_rows(X, estimator).rechunk({1: -1})
    w = _as_weights(sample_weight, X)
    _check_finite(X, w)
    n = int(X.shape[0])
    m = (
        n
        if estimator.max_samples_per_epoch is None
        else estimator.max_samples_per_epoch
    )
    sub = clone(estimator)
    if m < n:
        rng = check_random_state(estimator.random_state)
        rows = np.sort(rng.choice(n, size=m, replace=False))
        sub.set_params(random_state=rng, max_samples_per_epoch=None)
    else:
        rows = slice(None)
    X_train = np.asarray(X[rows].compute())
    w_train = None if w is None else np.asarray(w[rows].compute())
    sub.fit(X_train, sample_weight=w_train)
    params = estimator.get_params(deep=False)
    for name in [k for k in vars(estimator) if k not in params]:
        delattr(estimator, name)
    estimator.__dict__.update({k: v for k, v in vars(sub).items() if k not in params})
    model = _light(estimator)
    centres = np.asarray(estimator.cluster_centers_)
    # the fit's weights for the basin means and the donors: mean one
    wn = None if w is None else w / w.mean()
    labels = _lazy_labels(X, model, centres).persist()
    if estimator.n_polish and m < n:
        for _ in range(min(estimator.n_polish, _FULL_DATA_POLISH_ROUNDS)):
            sums, counts = DaskBlocks(X, wn, extra=[labels]).reduce(
                _basin_stat, _add_tuples, centres
            )
            centres = _finish_basin_means(sums, counts, centres, np)
            new_labels = _lazy_labels(X, model, centres).persist()
            changed = bool((new_labels != labels).any().compute())
            labels = new_labels
            if not changed:
                break
    centres, labels = relocate_empty(X, wn, model, centres, labels)
    (inertia,) = DaskBlocks(X, w, extra=[labels]).reduce(
        _inertia_stat, _add_tuples, centres
    )
    estimator.cluster_centers_ = np.asarray(centres, dtype=X.dtype)
    estimator.inertia_ = float(inertia)
    estimator.labels_ = _lazy_labels(X, _light(estimator), estimator.cluster_centers_)
    return estimator
