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
