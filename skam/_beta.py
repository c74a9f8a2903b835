"""The ``beta="scale"`` rules of skam, all in one place.

Every rule is a function of the training data (and its sample weights) only,
computed on the compute arrays (any array-API namespace: no host copy) with
the engine's one-GEMM squared distances, in chunks of ``working_memory``.

Weights are *relative*: multiplying every weight by the same positive
constant changes no rule (and no estimator's output). Where a rule counts
samples it uses Kish's effective number of samples
``n_eff = (sum w)^2 / sum w^2`` (``n`` for equal weights); rows of weight 0
are left out of every rule.

To stay finite for data of any magnitude the distances are computed on the
data divided by its largest absolute value ``s`` (so they are O(1)), and
``beta`` is put back together in log space: ``log beta = log c - log r2_s -
2 log s``. When the result does not fit the compute dtype (data so tiny or
huge that no float ``beta`` can describe its scale), a ``ValueError`` says
so instead of returning 0 or inf.

Rules
-----
``"separation"``
    ``4 log(K) / r2`` (LSE retrieval, :class:`~skam.DenseAM` and the
    parametric classifier's prototypes): ``K`` memories, ``r2`` the median
    squared distance from a memory to its nearest *other* (distinct) memory,
    estimated from at most 1000 evenly spaced memories. A stored pattern's
    nearest rival then weighs about ``1/K**2`` of it in the softmax.
``"support"``
    ``2 / r2`` (compact kernels, ``"lsr"`` and ``"rectified_poly"``): the
    support of each memory, radius ``sqrt(2/beta)``, reaches its typical
    nearest neighbour.
``"overlap"``
    ``n_features / max ||xi||^2`` (``"poly"`` and ``"rectified_poly"`` with the
    dot product): the overlap counted in bits, ``beta = 1`` for +-1 patterns
    (the tutorial's raw overlaps), so the constant of ``(1 + z)^n`` does not
    swamp the signal.
``"spacing"``
    ``32 / r2`` on the initial centres of :class:`~skam.AMClustering`.
``"scott"``
    ``n_eff ** (2 / (d + 4)) / sigma**2`` (Scott's rule of thumb for a
    Gaussian kernel density, the nonparametric classifier and regressor),
    ``sigma**2`` the weighted mean per-feature variance.
``"variance"``
    ``2 / (d * X.var())`` (the random-feature estimators: the kernel of
    :class:`sklearn.svm.SVC`'s ``gamma="scale"``, ``gamma = beta / 2``;
    ``X.var()`` the weighted variance of all entries around their mean).

Degenerate data (fewer than two distinct memories, zero variance) gives
``beta = 1``.
"""

import math

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device

from skam._chunking import chunk_slices, itemsize

RULES = ("separation", "support", "overlap", "spacing", "scott", "variance")
_SEPARATION_GAIN = {"separation": None, "support": 2.0, "spacing": 32.0}
# Rescaled variances below this many epsilons are rounding: constant data.
_DEGENERATE = 64
# Memories used as queries for the nearest-neighbour median.
MAX_QUERIES = 1000


def rule_for(separation, similarity):
    """The ``beta="scale"`` rule of a DenseAM energy (the separation object names it)."""
    from skam._separations import get_separation

    return get_separation(separation).beta_rule(similarity)


def resolve_beta(beta, X, *, rule, sample_weight=None):
    """Turn ``beta`` (a float or ``"scale"``) into a positive float.

    Parameters
    ----------
    beta : float or "scale"
    X : array of shape (n_samples, n_features)
        Training data in its compute namespace (validated, finite).
    rule : str
        One of :data:`RULES` (see the module docstring).
    sample_weight : array of shape (n_samples,) or None
        Validated weights (same namespace as ``X``); only relative values
        matter.

    Returns
    -------
    beta : float

    Raises
    ------
    ValueError
        When the rule's value does not fit the dtype of ``X``.
    """
    if not isinstance(beta, str):
        return float(beta)
    xp = array_namespace(X)
    if sample_weight is not None:
        keep = xp.nonzero(sample_weight > 0)[0]
        if keep.shape[0] < X.shape[0]:
            X = xp.take(X, keep, axis=0)
            sample_weight = xp.take(sample_weight, keep, axis=0)
        sample_weight = sample_weight / xp.max(sample_weight)
    if X.shape[0] == 0:
        return 1.0
    if rule == "overlap":
        scale = float(xp.max(xp.abs(X)))
        if not scale > 0:
            return 1.0
        Xs = X / scale
        top = float(xp.max(xp.sum(Xs * Xs, axis=1)))
        # the overlap counted in bits: beta = n_features / max ||xi||^2 (1 for
        # +-1 patterns, the tutorial's raw overlaps), so the constant of
        # (1 + z)^n does not swamp the signal
        return _assemble(math.log(X.shape[1]), math.log(top), scale, X.dtype, xp, rule)
    # the other rules are shift-invariant: centre first (exact distances of
    # near-duplicates far from the origin), then rescale to O(1); "variance"
    # is SVC's X.var(), around the mean of all entries
    if rule == "variance":
        centred = X - _weighted_mean(X, sample_weight, xp)
    else:
        centred = X - xp.mean(X, axis=0)[None, :]
    scale = float(xp.max(xp.abs(centred)))
    if not scale > 0:
        return 1.0
    Xs = centred / scale
    if rule in ("scott", "variance"):
        var = _mean_variance(Xs, sample_weight, xp, per_feature=rule == "scott")
        if not var > _DEGENERATE * float(xp.finfo(X.dtype).eps):
            return 1.0  # constant at the dtype's resolution
        d = X.shape[1]
        if rule == "variance":
            log_gain = math.log(2.0 / d)
        else:
            log_gain = 2.0 / (d + 4) * math.log(_effective_n(sample_weight, X, xp))
        return _assemble(log_gain, math.log(var), scale, X.dtype, xp, rule)
    if rule not in _SEPARATION_GAIN:
        raise ValueError(f"Unknown beta rule {rule!r}; expected one of {RULES}.")
    r2 = median_nearest_sq_distance(Xs)
    if not r2 > 0:
        return 1.0
    gain = _SEPARATION_GAIN[rule]
    if gain is None:
        gain = 4.0 * math.log(X.shape[0])
    return _assemble(math.log(gain), math.log(r2), scale, X.dtype, xp, rule)


def _assemble(log_gain, log_r2, scale, dtype, xp, rule):
    """``exp(log_gain - log_r2 - 2 log scale)``, checked against ``dtype``."""
    log_beta = log_gain - log_r2 - 2.0 * math.log(scale)
    finfo = xp.finfo(dtype)
    # beta and beta * (squared distance) must both be representable
    limit = math.log(float(finfo.max)) - 8.0
    floor = math.log(float(finfo.smallest_normal)) + 8.0
    if not floor < log_beta < limit:
        raise ValueError(
            f"beta='scale' ({rule} rule) gives beta = exp({log_beta:.4g}), outside "
            f"the range of {_dtype_name(dtype)}: the data's scale (largest "
            f"|X| = {scale:.3g}) is too extreme to describe with this dtype. "
            "Rescale X (e.g. with StandardScaler) or pass a float beta."
        )
    return math.exp(log_beta)


def _dtype_name(dtype):
    return str(dtype).rsplit(".", 1)[-1].strip("'>")


def _weighted_mean(X, w, xp):
    """Weighted mean of all entries (a scalar array)."""
    if w is None:
        return xp.mean(X)
    return xp.sum(w @ X) / (xp.sum(w) * X.shape[1])


def _mean_variance(Xs, w, xp, *, per_feature=True):
    """Weighted mean per-feature variance of (rescaled) rows.

    With ``per_feature=False``, the variance of all entries around their
    common mean (``X.var()``, the rule of :class:`sklearn.svm.SVC`).
    """
    if per_feature:
        mean = xp.mean(Xs, axis=0) if w is None else (w @ Xs) / xp.sum(w)
        mean = mean[None, :]
    else:
        mean = _weighted_mean(Xs, w, xp)
    if w is None:
        return float(xp.mean((Xs - mean) ** 2))
    return float(xp.mean(w @ ((Xs - mean) ** 2)) / xp.sum(w))


def _effective_n(w, X, xp):
    """Kish's effective number of samples (``n`` for equal weights)."""
    if w is None:
        return float(X.shape[0])
    return float(xp.sum(w)) ** 2 / float(xp.sum(w * w))


def median_nearest_sq_distance(X, *, max_queries=MAX_QUERIES):
    """Median squared distance from a row to its nearest *other* distinct row.

    At most ``max_queries`` evenly spaced rows are queried against all rows,
    with one GEMM per chunk (``|q|^2 - 2 q.x + |x|^2``) in the namespace of
    ``X``; chunks of queries fit ``working_memory``. Exact duplicates (distance
    0) are skipped. Returns 0.0 when no row has a distinct neighbour.

    Parameters
    ----------
    X : array of shape (n, d)
        Rows (any array-API namespace).
    max_queries : int

    Returns
    -------
    r2 : float
    """
    xp = array_namespace(X)
    K = X.shape[0]
    if K < 2:
        return 0.0
    dev = array_device(X)
    idx = np.unique(np.linspace(0, K - 1, min(K, max_queries)).astype(np.int64))
    m = idx.shape[0]
    idx = xp.asarray(idx, device=dev)
    queries = xp.take(X, idx, axis=0)
    sq_rows = xp.sum(X * X, axis=1)
    sq_q = xp.take(sq_rows, idx)
    # three (chunk, K) temporaries: the GEMM, the distances, the mask
    per_row = 3 * K * itemsize(X)
    nearest = []
    for sl in chunk_slices(m, per_row):
        sq = sq_q[sl, None] - 2.0 * (queries[sl, :] @ X.T) + sq_rows[None, :]
        # itself (by index) and exact duplicates (distance <= 0) are skipped
        cols = xp.arange(K, device=dev)[None, :]
        sq = xp.where(xp.logical_and(sq > 0, cols != idx[sl][:, None]), sq, xp.inf)
        nearest.append(xp.min(sq, axis=1))
    nearest = xp.concat(nearest) if len(nearest) > 1 else nearest[0]
    nearest = xp.take(nearest, xp.nonzero(xp.isfinite(nearest))[0])
    if nearest.shape[0] == 0:
        return 0.0
    return float(_median(nearest, xp))


def _median(values, xp):
    s = xp.sort(values)
    n = s.shape[0]
    mid = n // 2
    if n % 2:
        return s[mid]
    return 0.5 * (s[mid - 1] + s[mid])
