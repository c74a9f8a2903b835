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

Mergeable partial statistics
----------------------------
Every rule is computed from *blocks* of rows: each pass maps a statistic over
the blocks (``stat(X_block, w_block, block_index, *args)``), merges the
partial results with one associative merge (in block order) and finishes
once. The in-memory path is one block (:class:`InMemoryBlocks`); the Dask
path (:mod:`skam._dask`) maps the same statistics over the shards or chunks
on the workers and merges them as a tree, so both paths run one
implementation. The passes:

1. *extent*: rows of positive weight per block, per-feature min and max, the
   largest weight (merge: add, min, max);
2. the rescaling ``(X - c) / s`` from the extent (``c`` the mid-range, ``s``
   the half range, so every entry is O(1)); then either the largest squared
   norm (``"overlap"``; merge: max), the weighted mean and sum of squared
   deviations (``"scott"``, ``"variance"``; merge: Chan et al.'s pairwise
   update), or the probe rows (separation rules; merge: concatenate) and
   each probe's nearest other row (merge: minimum), whose median is ``r2``.
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


class InMemoryBlocks:
    """Rows held in memory, as one block or a list of blocks.

    The block interface of the rules: ``reduce(stat, merge, *args)`` maps
    ``stat(X, w, index, *args)`` over the blocks (in order) and merges the
    results pairwise as a balanced tree (``merge(left, right)``).

    Parameters
    ----------
    blocks : list of (X, w)
        Arrays of shape (n_i, d) and (n_i,) or None, one namespace.
    """

    def __init__(self, blocks):
        self.blocks = list(blocks)
        first = self.blocks[0][0]
        self.xp = array_namespace(first)
        self.n_features = int(first.shape[1])
        self.dtype = first.dtype

    def reduce(self, stat, merge, *args):
        parts = [stat(X, w, i, *args) for i, (X, w) in enumerate(self.blocks)]
        return tree_merge(parts, merge)


def tree_merge(parts, merge):
    """Merge ``parts`` (in order) pairwise as a balanced tree."""
    parts = list(parts)
    while len(parts) > 1:
        paired = [merge(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            paired.append(parts[-1])
        parts = paired
    return parts[0]


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
    return resolve_beta_blocks(beta, InMemoryBlocks([(X, sample_weight)]), rule=rule)


def resolve_beta_blocks(beta, blocks, *, rule):
    """:func:`resolve_beta` on rows given as blocks (in memory or on Dask).

    Parameters
    ----------
    beta : float or "scale"
    blocks : object
        ``n_features``, ``dtype``, ``xp`` (the namespace of the merged
        statistics) and ``reduce(stat, merge, *args)`` (see
        :class:`InMemoryBlocks`).
    rule : str

    Returns
    -------
    beta : float
    """
    if not isinstance(beta, str):
        return float(beta)
    if rule not in RULES:
        raise ValueError(f"Unknown beta rule {rule!r}; expected one of {RULES}.")
    xp, dtype, d = blocks.xp, blocks.dtype, blocks.n_features
    ext = blocks.reduce(extent_stat, merge_extent)
    K = int(sum(ext["counts"]))
    if K == 0:
        return 1.0
    lo, hi = ext["lo"], ext["hi"]
    if rule == "overlap":
        scale = max(float(xp.max(xp.abs(lo))), float(xp.max(xp.abs(hi))))
        if not scale > 0:
            return 1.0
        top = blocks.reduce(sqnorm_stat, max, scale)
        # the overlap counted in bits: beta = n_features / max ||xi||^2 (1 for
        # +-1 patterns, the tutorial's raw overlaps), so the constant of
        # (1 + z)^n does not swamp the signal
        return _assemble(math.log(d), math.log(top), scale, dtype, xp, rule)
    # the other rules are shift-invariant (the "variance" rule under a common
    # shift of all entries): centre on the mid-range (exact distances of
    # near-duplicates far from the origin), then rescale to O(1)
    if rule == "variance":
        low, high = xp.min(lo), xp.max(hi)
        center = low / 2 + high / 2
        scale = float(high / 2 - low / 2)
    else:
        center = lo / 2 + hi / 2
        scale = float(xp.max(hi / 2 - lo / 2))
    if not scale > 0:
        return 1.0
    if rule in ("scott", "variance"):
        per_feature = rule == "scott"
        mom = blocks.reduce(moments_stat, merge_moments, center, scale, ext["wmax"])
        m2 = xp.sum(mom["m2"]) if per_feature else mom["m2_total"]
        var = float(m2) / (float(mom["sw"]) * d)
        if not var > _DEGENERATE * float(xp.finfo(dtype).eps):
            return 1.0  # constant at the dtype's resolution
        if rule == "variance":
            log_gain = math.log(2.0 / d)
        else:
            n_eff = float(mom["sw"]) ** 2 / float(mom["sw2"])
            log_gain = 2.0 / (d + 4) * math.log(n_eff)
        return _assemble(log_gain, math.log(var), scale, dtype, xp, rule)
    r2 = _median_nearest(blocks, ext["counts"], center, scale, MAX_QUERIES)
    if not r2 > 0:
        return 1.0
    gain = _SEPARATION_GAIN[rule]
    if gain is None:
        gain = 4.0 * math.log(K)
    return _assemble(math.log(gain), math.log(r2), scale, dtype, xp, rule)


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


# -------------------------------------------------- per-block statistics
def _kept(X, w):
    """The rows of positive weight (all rows when unweighted)."""
    if w is None:
        return X, None
    xp = array_namespace(X)
    keep = xp.nonzero(w > 0)[0]
    if keep.shape[0] < X.shape[0]:
        X, w = xp.take(X, keep, axis=0), xp.take(w, keep, axis=0)
    return X, w


def _rescaled(X, center, scale):
    return X / scale if center is None else (X - center) / scale


def extent_stat(X, w, index):
    """Rows of positive weight, per-feature min and max, largest weight."""
    X, w = _kept(X, w)
    xp = array_namespace(X)
    if X.shape[0] == 0:
        return {"counts": [0], "lo": None, "hi": None, "wmax": None}
    return {
        "counts": [int(X.shape[0])],
        "lo": xp.min(X, axis=0),
        "hi": xp.max(X, axis=0),
        "wmax": None if w is None else float(xp.max(w)),
    }


def merge_extent(a, b):
    """Merge two extents (``a`` the earlier rows)."""
    if a["lo"] is None or b["lo"] is None:
        full = b if a["lo"] is None else a
        return {**full, "counts": a["counts"] + b["counts"]}
    xp = array_namespace(a["lo"])
    wmax = None if a["wmax"] is None else max(a["wmax"], b["wmax"])
    return {
        "counts": a["counts"] + b["counts"],
        "lo": xp.minimum(a["lo"], b["lo"]),
        "hi": xp.maximum(a["hi"], b["hi"]),
        "wmax": wmax,
    }


def sqnorm_stat(X, w, index, scale):
    """Largest squared norm of the rescaled rows of positive weight."""
    X, _ = _kept(X, w)
    if X.shape[0] == 0:
        return -math.inf
    xp = array_namespace(X)
    Xs = X / scale
    return float(xp.max(xp.sum(Xs * Xs, axis=1)))


def moments_stat(X, w, index, center, scale, wmax):
    """Weighted sums of one block of rescaled rows (weights divided by ``wmax``).

    ``sw`` (total weight), ``sw2`` (of the squares), per-feature ``mean`` and
    ``m2`` (sum of weighted squared deviations from it), and the mean and
    ``m2_total`` of all entries around their common mean.
    """
    X, w = _kept(X, w)
    xp = array_namespace(X)
    d = X.shape[1]
    if X.shape[0] == 0:
        zeros = xp.zeros((d,), dtype=X.dtype, device=array_device(X))
        return {
            "sw": 0.0,
            "sw2": 0.0,
            "mean": zeros,
            "m2": zeros,
            "mean_total": 0.0,
            "m2_total": 0.0,
        }
    Xs = _rescaled(X, center, scale)
    if w is None:
        sw = sw2 = float(X.shape[0])
        mean = xp.mean(Xs, axis=0)
        m2 = xp.sum((Xs - mean[None, :]) ** 2, axis=0)
        mean_total = xp.mean(Xs)
        m2_total = float(xp.sum((Xs - mean_total) ** 2))
    else:
        w = w / wmax
        sw, sw2 = float(xp.sum(w)), float(xp.sum(w * w))
        mean = (w @ Xs) / sw
        m2 = w @ ((Xs - mean[None, :]) ** 2)
        mean_total = xp.sum(w @ Xs) / (sw * d)
        m2_total = float(xp.sum(w @ ((Xs - mean_total) ** 2)))
    return {
        "sw": sw,
        "sw2": sw2,
        "mean": mean,
        "m2": m2,
        "mean_total": float(mean_total),
        "m2_total": m2_total,
    }


def merge_moments(a, b):
    """Chan, Golub and LeVeque's pairwise update of weighted moments."""
    if not a["sw"] > 0:
        return b
    if not b["sw"] > 0:
        return a
    sw = a["sw"] + b["sw"]
    fb = b["sw"] / sw
    delta = b["mean"] - a["mean"]
    delta_total = b["mean_total"] - a["mean_total"]
    d = int(a["mean"].shape[0])
    return {
        "sw": sw,
        "sw2": a["sw2"] + b["sw2"],
        "mean": a["mean"] + delta * fb,
        "m2": a["m2"] + b["m2"] + (delta * delta) * (a["sw"] * fb),
        "mean_total": a["mean_total"] + delta_total * fb,
        "m2_total": a["m2_total"]
        + b["m2_total"]
        + delta_total * delta_total * (a["sw"] * fb) * d,
    }


def _offset(counts, index):
    return int(sum(counts[:index]))


def probe_stat(X, w, index, counts, idx, center, scale):
    """The rescaled probe rows (global ``idx`` among rows of positive weight)."""
    X, _ = _kept(X, w)
    xp = array_namespace(X)
    start = _offset(counts, index)
    inside = idx[(idx >= start) & (idx < start + X.shape[0])]
    local = xp.asarray(inside - start, device=array_device(X))
    return inside, _rescaled(xp.take(X, local, axis=0), center, scale)


def merge_probes(a, b):
    xp = array_namespace(a[1])
    return np.concatenate([a[0], b[0]]), xp.concat([a[1], b[1]], axis=0)


def nearest_stat(X, w, index, counts, idx, probes, center, scale):
    """Per probe: smallest positive squared distance to a row here but itself."""
    X, _ = _kept(X, w)
    xp = array_namespace(X)
    dev = array_device(X)
    m, K = probes.shape[0], X.shape[0]
    if K == 0:
        return xp.full((m,), math.inf, dtype=probes.dtype, device=dev)
    Xs = _rescaled(X, center, scale)
    start = _offset(counts, index)
    sq_rows = xp.sum(Xs * Xs, axis=1)
    sq_q = xp.sum(probes * probes, axis=1)
    idx = xp.asarray(idx - start, device=dev)
    cols = xp.arange(K, device=dev)[None, :]
    # three (chunk, K) temporaries: the GEMM, the distances, the mask
    nearest = []
    for sl in chunk_slices(m, 3 * K * itemsize(Xs)):
        sq = sq_q[sl, None] - 2.0 * (probes[sl, :] @ Xs.T) + sq_rows[None, :]
        # itself (by index) and exact duplicates (distance <= 0) are skipped
        sq = xp.where(xp.logical_and(sq > 0, cols != idx[sl][:, None]), sq, xp.inf)
        nearest.append(xp.min(sq, axis=1))
    return xp.concat(nearest) if len(nearest) > 1 else nearest[0]


def merge_nearest(a, b):
    return array_namespace(a).minimum(a, b)


def _median_nearest(blocks, counts, center, scale, max_queries):
    xp = blocks.xp
    K = int(sum(counts))
    if K < 2:
        return 0.0
    idx = np.unique(np.linspace(0, K - 1, min(K, max_queries)).astype(np.int64))
    order, probes = blocks.reduce(probe_stat, merge_probes, counts, idx, center, scale)
    if not np.array_equal(order, idx):  # pragma: no cover - a broken reducer
        raise RuntimeError("probe rows came back out of order")
    nearest = blocks.reduce(
        nearest_stat, merge_nearest, counts, idx, probes, center, scale
    )
    nearest = xp.take(nearest, xp.nonzero(xp.isfinite(nearest))[0])
    if nearest.shape[0] == 0:
        return 0.0
    return float(_median(nearest, xp))


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
    blocks = InMemoryBlocks([(X, None)])
    return _median_nearest(blocks, [int(X.shape[0])], None, 1.0, max_queries)


def _median(values, xp):
    s = xp.sort(values)
    n = s.shape[0]
    mid = n // 2
    if n % 2:
        return s[mid]
    return 0.5 * (s[mid - 1] + s[mid])
