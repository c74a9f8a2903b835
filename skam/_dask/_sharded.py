"""Memories sharded across Dask workers, merged exactly.

``fit`` on a dask array keeps the memories where they are: each block of rows
becomes one *shard*, prepared once on the worker that holds it
(:func:`skam._energy.prepare_memories`) and referenced by a Future. Nothing
the size of the memories ever comes back to the client.

Every reduction over memories then runs shard by shard with the engine's own
functions: each shard returns the mergeable partial state of
:mod:`skam._partial` for a chunk of queries (1 + D numbers per query), the
states are merged (associative, so in any order) and finished once. The
descent loop is the engine's (:func:`skam._descent.descend`), driven by
:class:`ShardedOracle`; for dask queries each query block runs that loop in a
task that submits the shard work from the worker (``worker_client``).

What moves per descent step and query chunk of ``n`` rows: the states
(``n x D``) to every worker holding shards, and one partial state
(``n x (D + 1)`` numbers) back from every shard.
"""

import hashlib

import dask
import dask.array as da
import numpy as np
from array_api_compat import numpy as np_xp
from distributed import wait
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from skam._beta import tree_merge
from skam._dask._blocks import (
    DaskBlocks,
    ShardedBlocks,
    forwarding_warnings,
    tree_reduce,
)
from skam._dask._post_fit import as_queries, default_client
from skam._descent import descend, support_sums
from skam._energy import Memories, energy_from_log_z, prepare_memories
from skam._partial import finish, finish_log_z, merge_all, reduce_blocks

# ------------------------------------------------------------ on the workers


def _prepare_shard(patterns, weights, coord_weights, transform=None):
    """One shard: validated rows -> :class:`Memories` (runs on its worker)."""
    patterns = np.array(patterns, dtype=patterns.dtype, order="C")  # aligned
    if transform is not None:
        patterns = transform(patterns)
    if weights is not None:
        weights = np.array(weights, dtype=patterns.dtype)
    memories = prepare_memories(
        patterns, np_xp, weights=weights, coord_weights=coord_weights
    )
    return memories, weights


@forwarding_warnings
def _shard_state(shard, V, spec, pull_from, need_direction):
    return reduce_blocks(
        _aligned(V),
        shard[0],
        spec,
        np_xp,
        pull_from=pull_from,
        need_direction=need_direction,
    )


def _shard_support(shard, V, spec):
    return support_sums(_aligned(V), shard[0], spec, np_xp)


def _shard_relaxed(shard, V, spec, box, need_direction):
    """Partial state of the self-coupling-free kernel (skam._binary_relaxation)."""
    from skam._binary_relaxation import SelfCouplingFreeOracle

    memories = shard[0]
    if memories.n_memories == 0:
        return None  # the identity of merge_partials
    oracle = SelfCouplingFreeOracle(memories, spec, box, np_xp)
    return oracle.partial(_aligned(V), need_direction)


def _merge_relaxed(a, b):
    from skam._binary_relaxation import merge_partials

    if a is None or b is None:
        return b if a is None else a
    degree = a["degree"]
    a, b = ({k: v for k, v in x.items() if k != "degree"} for x in (a, b))
    return {**merge_partials(a, b, degree, np_xp), "degree": degree}


@forwarding_warnings
def _worker_reduce(kind, V, args, *shards):
    """The shards one worker holds, reduced on it (one result per worker)."""
    if kind == "state":
        return merge_all([_shard_state(s, V, *args) for s in shards], np_xp)
    if kind == "relaxed":
        spec = args[0]
        parts = [_shard_relaxed(s, V, *args) for s in shards]
        parts = [None if p is None else {**p, "degree": spec.degree} for p in parts]
        return tree_merge(parts, _merge_relaxed)
    return _add_support(*[_shard_support(s, V, *args) for s in shards])


def _add_support(*parts):
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def _merge_states(a, b):
    return merge_all([a, b], np_xp)


def _aligned(V):
    return V if V.flags.aligned and V.flags.c_contiguous else np.array(V, order="C")


def _shard_nearest(shard, states, distinct, offset):
    """Two smallest squared half-distances to distinct rows, and the argmin."""
    from skam._energy import half_sq_distances

    n, block = states.shape[0], shard[0]
    if not distinct.any():
        inf = np.full(n, np.inf)
        return inf, np.full(n, -1, dtype=np.int64), inf
    rows = np.flatnonzero(distinct)
    half_sq = half_sq_distances(
        _aligned(states),
        Memories(block.patterns[rows], None, None, block.half_sqnorms[rows]),
        np_xp,
    )
    nearest = np.argmin(half_sq, axis=1)
    d1 = half_sq[np.arange(n), nearest]
    if rows.size > 1:
        half_sq[np.arange(n), nearest] = np.inf
        d2 = half_sq.min(axis=1)
    else:
        d2 = np.full(n, np.inf)
    return d1, rows[nearest].astype(np.int64) + offset, d2


def _shard_row_hashes(shard):
    """A digest of each row of positive weight (None where the weight is 0)."""
    rows = shard[0].patterns + 0.0  # -0.0 and 0.0 are the same pattern
    weights = shard[1]
    positive = np.ones(rows.shape[0], bool) if weights is None else weights > 0
    return [
        hashlib.blake2b(row.tobytes(), digest_size=16).digest() if keep else None
        for row, keep in zip(rows, positive, strict=True)
    ]


def _shard_take(shard, rows):
    return shard[0].patterns[rows]


def _shard_weights(shard):
    memories, weights = shard
    return (
        np.ones(memories.n_memories, memories.patterns.dtype)
        if weights is None
        else weights
    )


def _shard_box(shard):
    patterns = shard[0].patterns
    if patterns.shape[0] == 0:
        return None
    return patterns.min(axis=0), patterns.max(axis=0)


# ------------------------------------------------------------ the model side
class ShardedMemories:
    """Futures of the shards of a memory and what the client knows of them.

    Attributes
    ----------
    futures : list of distributed.Future
        One :class:`~skam._energy.Memories` per shard, on its worker.
    sizes : list of int
        Rows per shard (the global row of a shard's first memory is the sum
        of the sizes before it).
    n_features : int
    dtype : numpy dtype
    coord_weights : ndarray or None
        The similarity's coordinate weights (small, kept on the client).
    """

    def __init__(
        self, futures, sizes, n_features, dtype, coord_weights=None, weighted=False
    ):
        self.futures = futures
        self.weighted = bool(weighted)
        self.sizes = [int(s) for s in sizes]
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self.coord_weights = coord_weights

    @property
    def n_memories(self):
        return int(sum(self.sizes))

    @property
    def offsets(self):
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    @property
    def keys(self):
        return [f.key for f in self.futures]

    def meta(self):
        """What :func:`skam._partial.finish` needs of the memories."""
        return Memories(None, None, self.coord_weights, None)

    def reduce(self, kind, V, *args, client=None):
        """``kind`` over all shards: one task per worker, then a tree of merges.

        ``kind`` is ``"state"`` (partial states, merged) or ``"support"``
        (support sums, added). Each worker reduces the shards it holds; the
        per-worker results are merged pairwise by tasks on the cluster, and
        only the root comes back.
        """
        client = client or _client()
        if getattr(self, "_groups", None) is None:
            located = client.who_has(self.futures)
            groups = {}
            for f in self.futures:
                holders = sorted(located.get(f.key, ())) or [None]
                groups.setdefault(holders[0], []).append(f)
            self._groups = groups
        jobs = [
            client.submit(
                _worker_reduce,
                kind,
                V,
                args,
                *shards,
                pure=False,
                **(
                    {}
                    if where is None
                    else {"workers": [where], "allow_other_workers": True}
                ),
            )
            for where, shards in self._groups.items()
        ]
        merge = {"state": _merge_states, "relaxed": _merge_relaxed}.get(
            kind, _add_support
        )
        return tree_reduce(client, jobs, merge).result()

    def map(self, func, *args, client=None):
        """``func(shard, *args)`` on every shard; the results, in shard order."""
        client = client or _client()
        return client.gather(
            [client.submit(func, f, *args, pure=False) for f in self.futures]
        )

    def take(self, rows):
        """Gather the memories of global ``rows`` (a small set) to the client."""
        rows = np.asarray(rows, dtype=np.int64)
        offsets = self.offsets
        shard = np.searchsorted(offsets, rows, side="right") - 1
        out = np.empty((rows.size, self.n_features), dtype=self.dtype)
        client = _client()
        jobs = {}
        for s in np.unique(shard):
            pick = np.flatnonzero(shard == s)
            jobs[int(s)] = (
                pick,
                client.submit(
                    _shard_take, self.futures[s], rows[pick] - offsets[s], pure=False
                ),
            )
        for pick, fut in jobs.values():
            out[pick] = fut.result()
        return out


def _client():
    client = default_client()
    if client is None:
        raise RuntimeError(
            "This model holds memories sharded on Dask workers, but there is no "
            "distributed Client: create one (distributed.Client(...)) or call "
            "to_local() while one exists."
        )
    return client


class ShardedOracle:
    """Energy oracle of sharded memories for :func:`skam._descent.descend`.

    ``energy_and_direction(V)`` sends ``V`` to every shard, gets back one
    partial state per shard, merges them and finishes once: the same
    functions the in-memory oracle runs on one block.
    """

    splits_memories = False

    def __init__(self, sharded, spec, *, pull_from=0, client=None):
        self.sharded = sharded
        self.spec = spec
        self.pull_from = pull_from
        self.client = client
        self.xp = np_xp

    @property
    def n_columns(self):  # what a query chunk holds here: states, partials
        return 4 * self.sharded.n_features

    def _states(self, V, need_direction):
        return self.sharded.reduce(
            "state", V, self.spec, self.pull_from, need_direction, client=self.client
        )

    def energy_and_direction(self, V):
        state = self._states(V, True)
        log_z, direction = finish(
            state, V, self.sharded.meta(), self.spec, np_xp, pull_from=self.pull_from
        )
        if self.pull_from:
            frozen = np.zeros((V.shape[0], self.pull_from), dtype=V.dtype)
            direction = np.concatenate([frozen, direction], axis=1)
        return energy_from_log_z(log_z, self.spec), direction

    def energy(self, V):
        state = self._states(V, False)
        log_z = finish_log_z(state, V, self.sharded.meta(), self.spec, np_xp)
        return energy_from_log_z(log_z, self.spec)

    def support_sums(self, V):
        return self.sharded.reduce("support", V, self.spec, client=self.client)


class ShardedSelfCouplingFreeOracle:
    """:class:`skam._binary_relaxation.SelfCouplingFreeOracle` on shards.

    Each shard returns its partial state (kernel sum, pull, spread gradient,
    step norm at its own scale), the states are merged as a tree (rescaled to
    the larger scale) and finished once: the in-memory oracle's functions.
    """

    splits_memories = False

    def __init__(self, sharded, spec, box, *, client=None):
        self.sharded, self.spec, self.box, self.client = sharded, spec, box, client
        self.xp = np_xp

    @property
    def n_columns(self):
        return 4 * self.sharded.n_features

    def _state(self, V, need_direction):
        state = self.sharded.reduce(
            "relaxed", V, self.spec, self.box, need_direction, client=self.client
        )
        return {k: v for k, v in state.items() if k != "degree"}

    def energy_and_direction(self, V):
        from skam._binary_relaxation import finish_direction

        return finish_direction(self._state(V, True), V, self.box, self.spec, np_xp)

    def energy(self, V):
        from skam._binary_relaxation import finish_energy

        return finish_energy(self._state(V, False), self.spec, np_xp)


def _oracle(estimator, spec, client=None):
    """The sharded oracle of a DenseAM: plain kernel sum or self-coupling-free."""
    if getattr(estimator, "self_coupling_", True):
        return ShardedOracle(estimator._shards, spec, client=client)
    return ShardedSelfCouplingFreeOracle(
        estimator._shards, spec, estimator._box_cache, client=client
    )


# ------------------------------------------------------------------ fitting
def _as_rows(X, estimator, dtype=None):
    X = as_queries(X, estimator, "fit")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            f"Found array with shape {X.shape}; fit needs at least one sample and one feature."
        )
    return X


def _as_weights(sample_weight, X):
    if sample_weight is None:
        return None
    w = sample_weight
    if not isinstance(w, da.Array):
        w = da.from_array(np.asarray(w, dtype=X.dtype), chunks=(X.chunks[0],))
    w = w.astype(X.dtype).rechunk((X.chunks[0],))
    if w.shape != (X.shape[0],):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({X.shape[0]},).")
    return w


def _check_finite(X, w):
    """Raise like validate_data on NaN/inf (and negative weights): one pass."""
    checks = [da.isfinite(X).all()]
    if w is not None:
        checks += [da.isfinite(w).all(), (w >= 0).all()]
    ok = dask.compute(*checks)
    if not ok[0]:
        raise ValueError("Input X contains NaN or infinity.")
    if w is not None and not (ok[1] and ok[2]):
        raise ValueError("sample_weight must be finite and non-negative.")


def shard(X, w, coord_weights=None, transform=None):
    """Persist the rows of X (and w) as prepared shards on the workers."""
    client = _client()
    X = X.rechunk({1: -1})
    blocks = list(X.to_delayed()[:, 0])
    weights = [None] * len(blocks) if w is None else list(w.to_delayed())
    prepared = [
        dask.delayed(_prepare_shard, pure=False)(b, wb, coord_weights, transform)
        for b, wb in zip(blocks, weights, strict=True)
    ]
    futures = client.compute(prepared)
    wait(futures)  # errors in X surface here, and the shards have a place
    for future in futures:
        if future.status == "error":
            future.result()
    return ShardedMemories(
        futures, X.chunks[0], X.shape[1], X.dtype, coord_weights, w is not None
    )


def sharded_beta(beta, sharded, rule):
    """:func:`skam._beta.resolve_beta` on sharded memories (unweighted, as
    DenseAM's rules): the same per-block statistics, merged as a tree."""
    from skam._beta import resolve_beta_blocks

    return resolve_beta_blocks(beta, ShardedBlocks(sharded, weighted=False), rule=rule)


def _distinct_rows(sharded):
    """Per shard, a mask of the first rows of distinct patterns of positive
    weight (first over all shards, in row order), scattered next to it."""
    hashes = sharded.map(_shard_row_hashes)
    seen, masks = set(), []
    for shard_hashes in hashes:
        mask = np.zeros(len(shard_hashes), bool)
        for i, h in enumerate(shard_hashes):
            if h is not None and h not in seen:
                seen.add(h)
                mask[i] = True
        masks.append(mask)
    client = _client()
    return [
        client.scatter(m, workers=list(client.who_has(f)[f.key]), hash=False)
        for m, f in zip(masks, sharded.futures, strict=True)
    ]


def fit_sharded(estimator, method, how, X, *args, **kwargs):
    """``fit`` on a dask array: route to the class's sharded fit."""
    if method != "fit":
        raise TypeError(
            f"{type(estimator).__name__}.{method}() on a dask array is not "
            "supported; fit all the data at once with fit(dask_array)."
        )
    estimator._validate_params()
    if how not in _FITS:
        from skam._dask import _fits

        return getattr(_fits, f"fit_{how}")(estimator, X, *args, **kwargs)
    return _FITS[how](estimator, X, *args, **kwargs)


def _reset(estimator, X):
    for name in list(vars(estimator)):
        if name.endswith("_") and not name.startswith("__"):
            delattr(estimator, name)
    estimator.n_features_in_ = int(X.shape[1])
    estimator._fit_namespace = "numpy"


def fit_dense_am(estimator, X, y=None, sample_weight=None):
    """DenseAM.fit on a dask array: sharded memories, exact ``beta="scale"``."""
    from skam._beta import rule_for as scale_rule
    from skam.memory import _resolve_self_coupling, _resolve_similarity

    X = _as_rows(X, estimator)
    w = _as_weights(sample_weight, X)
    _check_finite(X, w)
    _reset(estimator, X)
    sharded = shard(X, w)
    estimator._shards = sharded
    estimator.similarity_ = _resolve_similarity(
        estimator.separation, estimator.similarity
    )
    # the same rule as in memory; two-valued features tested shard by shard
    estimator.self_coupling_ = _resolve_self_coupling(
        estimator, sharded, two_valued=_sharded_two_valued
    )
    rule = scale_rule(estimator.separation, estimator.similarity_)
    estimator.beta_ = sharded_beta(estimator.beta, sharded, rule)
    estimator._distinct_masks = _distinct_rows(sharded)
    estimator._box_cache = _box(estimator) if estimator.similarity_ == "dot" else None
    return estimator


def _two_valued_stat(X, w, index, lo, hi):
    return bool(np.all((X == lo[None, :]) | (X == hi[None, :])))


def _both(a, b):
    return a and b


def _sharded_two_valued(sharded):
    """``skam.memory._two_valued`` over the shards (min/max, then a test)."""
    from skam._beta import extent_stat, merge_extent

    blocks = ShardedBlocks(sharded, weighted=False)
    ext = blocks.reduce(extent_stat, merge_extent)
    return blocks.reduce(_two_valued_stat, _both, ext["lo"], ext["hi"])


def _box(estimator):
    if estimator.similarity_ != "dot":
        return None
    boxes = [b for b in estimator._shards.map(_shard_box) if b is not None]
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def _dense_am_descend(
    estimator, X, clamp_mask, *, compute_energy, return_trace=False, client=None
):
    from skam._separations import get_separation
    from skam._validation import make_spec

    spec = make_spec(estimator, estimator.beta_)
    oracle = _oracle(estimator, spec, client)
    mask = None if clamp_mask is None else np.asarray(clamp_mask, dtype=bool)
    return descend(
        X,
        oracle,
        spec,
        np_xp,
        clamp_mask=mask,
        step_size=estimator.step_size,
        max_iter=estimator.max_iter,
        tol=estimator.tol,
        box=estimator._box_cache if estimator.similarity_ == "dot" else None,
        lsr_fixed_point=True,
        return_trace=return_trace,
        compute_energy=compute_energy,
        monotone=get_separation(estimator.separation).can_overshoot,
    )


def _reached(estimator, states, client=None):
    """DenseAM._reached on sharded memories (the 4x nearest rule, lsr radius)."""
    from skam._energy import lsr_support_radius_sq
    from skam._validation import make_spec

    sharded = estimator._shards
    client = client or _client()
    parts = client.gather(
        [
            client.submit(_shard_nearest, f, states, m, int(o), pure=False)
            for f, m, o in zip(
                sharded.futures, estimator._distinct_masks, sharded.offsets, strict=True
            )
        ]
    )
    d1 = np.stack([p[0] for p in parts])
    idx = np.stack([p[1] for p in parts])
    d2 = np.stack([p[2] for p in parts])
    n = states.shape[0]
    best = np.argmin(d1, axis=0)  # first shard wins ties: the first global row
    first = d1[best, np.arange(n)]
    rival = d1.copy()
    rival[best, np.arange(n)] = d2[best, np.arange(n)]
    second = rival.min(axis=0)
    ok = 4.0 * first <= second
    spec = make_spec(estimator, estimator.beta_)
    if spec.function.constant_slope:
        ok &= 2.0 * first < lsr_support_radius_sq(spec)
    return np.where(ok, idx[best, np.arange(n)], -1)


def _host_labels(y, estimator):
    """Labels gathered to the client (n values: the features stay sharded)."""
    from skam._targets import host_y, require_y

    require_y(estimator, y)
    if isinstance(y, da.Array):
        y = y.compute()
    return host_y(y)


def _scott_beta(estimator, X, w):
    """:func:`skam._supervised_base.scott_beta` on the dask features, / lam."""
    from skam._beta import resolve_beta_blocks

    if not isinstance(estimator.beta, str):
        return float(estimator.beta)
    return resolve_beta_blocks("scale", DaskBlocks(X, w), rule="scott") / estimator.lam


def fit_supervised(estimator, X, y, sample_weight=None):
    """DenseAMClassifier / DenseAMRegressor.fit (nonparametric) on dask arrays.

    The features stay sharded; the labels (one value per sample) are gathered
    to the client to encode them, and their codes travel to the shards once.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_y

    from skam._supervised_base import coordinate_weights

    if estimator.mode != "nonparametric":
        raise TypeError(
            "mode='parametric' learns a fixed number of prototypes in memory; "
            "fit it on X.compute() (its post-fit methods accept dask arrays)."
        )
    X = _as_rows(X, estimator)
    w = _as_weights(sample_weight, X)
    yh = _host_labels(y, estimator)
    if yh.shape[0] != X.shape[0]:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {yh.shape[0]}]"
        )
    _check_finite(X, w)
    _reset(estimator, X)
    classifier = hasattr(estimator, "predict_proba")
    if classifier:
        yh = _check_y(yh, estimator=estimator)
        check_classification_targets(yh)
        classes, y_idx = np.unique(yh, return_inverse=True)
        estimator.classes_ = classes
        codes = (y_idx[:, None] == np.arange(classes.size)[None, :]).astype(np.float64)
    else:
        yh = np.asarray(
            _check_y(yh, multi_output=True, y_numeric=True, estimator=estimator),
            dtype=np.float64,
        )
        estimator._single_output = yh.ndim == 1
        Y = yh.reshape(yh.shape[0], -1)
        wh = None if w is None else w.compute().astype(np.float64)
        mean = np.average(Y, axis=0, weights=wh)
        std = np.sqrt(np.average((Y - mean) ** 2, axis=0, weights=wh))
        std = np.where(std > 0, std, 1.0)
        estimator.target_mean_ = mean.astype(X.dtype)
        estimator.target_scale_ = std.astype(X.dtype)
        codes = (Y - mean) / std
    code = estimator._label_code(codes.shape[1])
    labels = da.from_array(codes, chunks=(X.chunks[0], -1)).astype(X.dtype)
    augmented = da.concatenate([X, code.encode(labels)], axis=1)
    d, n_labels = X.shape[1], codes.shape[1]
    cw = np.asarray(
        coordinate_weights(d, n_labels, estimator.lam, np_xp, X.dtype, "cpu")
    )
    estimator.step_size_ = estimator._resolved_step_size()
    estimator.beta_ = _scott_beta(estimator, X, w)
    estimator._shards = shard(augmented, w, coord_weights=cw)
    estimator._distinct_masks = []
    estimator._box_cache = _box(estimator) if estimator.similarity == "dot" else None
    estimator.n_iter_ = 1
    return estimator


def _sharded_label_neurons(estimator, backend, X, client=None):
    """LabelNeuronAM._label_neurons with the shards as the memories."""
    from skam._supervised_base import label_update_mask
    from skam._validation import make_spec

    Xc = np.asarray(X)
    d = estimator.n_features_in_
    n_labels = estimator._shards.n_features - d
    spec = make_spec(estimator, estimator.beta_)
    code = estimator._label_code(n_labels)
    V0 = np.asarray(code.start_states(Xc, np_xp))
    oracle = ShardedOracle(estimator._shards, spec, pull_from=d, client=client)
    result = descend(
        V0,
        oracle,
        spec,
        np_xp,
        clamp_mask=~np.asarray(label_update_mask(d, n_labels, np_xp, "cpu")),
        step_size=estimator.step_size_,
        max_iter=estimator.max_iter,
        tol=estimator.tol,
        box=estimator._box_cache,
        compute_energy=False,
    )
    return code.readout(result.states)


def _with_label_neurons(estimator, label_neurons):
    """A shallow copy whose ``_label_neurons`` is ``label_neurons``."""
    import types

    local = object.__new__(type(estimator))
    local.__dict__.update(estimator.__dict__)
    local._label_neurons = types.MethodType(label_neurons, local)
    return local


def _run_supervised(estimator, method, X, args, kwargs, client):
    def label_neurons(self, backend, Xv):
        return _sharded_label_neurons(self, backend, Xv, client=client)

    raw = getattr(type(estimator), method).__wrapped__
    return raw(_with_label_neurons(estimator, label_neurons), X, *args, **kwargs)


def _supervised_example(estimator, method, X):
    """Output structure of ``method`` from one row, without the cluster."""
    n_labels = estimator._shards.n_features - estimator.n_features_in_

    def label_neurons(self, backend, Xv):
        code = self._label_code(n_labels)
        return np.asarray(code.readout(code.start_states(Xv, np_xp)))

    raw = getattr(type(estimator), method).__wrapped__
    probe = np.zeros((1, X.shape[1]), dtype=X.dtype)
    return raw(_with_label_neurons(estimator, label_neurons), probe)


def local_supervised(estimator):
    """Gather sharded memories (and weights) into NumPy attributes (in place)."""
    sharded = estimator._shards
    memories = sharded.take(np.arange(sharded.n_memories))
    weights = None
    if sharded.weighted:
        weights = np.concatenate(sharded.map(_shard_weights)).astype(memories.dtype)
    estimator.memories_, estimator.memory_weights_ = memories, weights
    estimator._shards = None
    estimator._distinct_masks = None
    estimator._box_cache = None
    return estimator


def _binarized(patterns):
    return np.where(patterns > 0, 1.0, -1.0).astype(patterns.dtype)


def _shard_hebbian(shard):
    from skam._discrete import hebbian_coupling

    memories, weights = shard
    return hebbian_coupling(memories.patterns, weights, np_xp)


def _add(a, b):
    return a + b


def _shard_first_match(shard, S, offset):
    """Global row of the first stored pattern equal to each state, or -1."""
    patterns = shard[0].patterns
    if patterns.shape[0] == 0:
        return np.full(S.shape[0], -1, dtype=np.int64)
    exact = (S @ patterns.T) >= S.shape[1] - 0.5
    found = exact.any(axis=1)
    return np.where(found, np.argmax(exact, axis=1) + offset, -1).astype(np.int64)


def fit_hopfield(estimator, X, y=None, sample_weight=None):
    """HopfieldNetwork.fit on a dask array: couplings as a tree sum of shards."""
    X = _as_rows(X, estimator)
    w = _as_weights(sample_weight, X)
    _check_finite(X, w)
    _reset(estimator, X)
    client = _client()
    sharded = shard(X, w, transform=_binarized)
    estimator._shards = sharded
    estimator._distinct_masks = []
    parts = [client.submit(_shard_hebbian, f, pure=False) for f in sharded.futures]
    estimator.coupling_ = tree_reduce(client, parts, _add).result()
    return estimator


def _hopfield_predict(estimator, X, client=None):
    from skam._backend import resolve_backend

    client = client or _client()
    S = estimator._run(resolve_backend(X), X)[0]
    sharded = estimator._shards
    S_ref = client.scatter(S, hash=False)
    hits = client.gather(
        [
            client.submit(_shard_first_match, f, S_ref, int(o), pure=False)
            for f, o in zip(sharded.futures, sharded.offsets, strict=True)
        ]
    )
    out = np.full(S.shape[0], -1, dtype=np.int64)
    for hit in hits:  # shards in row order: the first match wins
        out = np.where((out < 0) & (hit >= 0), hit, out)
    return out


def local_hopfield(estimator):
    """Gather the sharded patterns of a HopfieldNetwork."""
    sharded = estimator._shards
    estimator.memories_ = sharded.take(np.arange(sharded.n_memories))
    estimator._shards = None
    estimator._distinct_masks = None
    return estimator


_FITS = {
    "dense_am": fit_dense_am,
    "supervised": fit_supervised,
    "hopfield": fit_hopfield,
}


# ------------------------------------------------------------ post-fit calls
def call_sharded(estimator, method, X, *args, **kwargs):
    """A post-fit method of a model with sharded memories."""
    check_is_fitted(estimator)
    if hasattr(estimator, "coupling_") and method != "predict":
        # the couplings are local (D x D): the in-memory path, without shards
        light = object.__new__(type(estimator))
        light.__dict__.update(estimator.__dict__)
        light._shards = None
        return getattr(light, method)(X, *args, **kwargs)
    lazy = isinstance(X, da.Array)
    if lazy:
        X = as_queries(X, estimator, method)
    else:
        from skam._validation import validate_X

        X = validate_X(estimator, X, reset=False, method=method)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
            f"expecting {estimator.n_features_in_} features as input."
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if not lazy:
        return _run(estimator, method, X, args, kwargs, None)
    return _lazy(estimator, method, X, args, kwargs)


def _energy_graph(estimator, X, negate):
    """Energy of dask queries as a pure graph: state per (block, shard), tree merge."""
    from skam._validation import make_spec

    spec = make_spec(estimator, estimator.beta_)
    sharded = estimator._shards
    state = dask.delayed(_shard_state, pure=True)
    parts = []
    for block, n in zip(X.to_delayed()[:, 0], X.chunks[0], strict=True):
        states = [state(f, block, spec, 0, False) for f in sharded.futures]
        merged = tree_merge(states, dask.delayed(_merge_states, pure=True))
        out = dask.delayed(_finish_energy, pure=True)(
            merged, block, sharded.meta(), spec, negate
        )
        parts.append(da.from_delayed(out, shape=(n,), dtype=X.dtype))
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def _finish_energy(state, V, meta, spec, negate):
    energy = energy_from_log_z(finish_log_z(state, V, meta, spec, np_xp), spec)
    return -energy if negate else energy


def _run(estimator, method, X, args, kwargs, client):
    """The method on NumPy queries, driving the shards from this process."""
    X = np.array(X, order="C") if not X.flags.aligned else X
    if hasattr(estimator, "_label_code"):
        return _run_supervised(estimator, method, X, args, kwargs, client)
    if hasattr(estimator, "coupling_"):
        return _hopfield_predict(estimator, X, client=client)
    if method in ("energy", "score_samples"):
        from skam._validation import make_spec

        spec = make_spec(estimator, estimator.beta_)
        energy = _oracle(estimator, spec, client).energy(X)
        return -energy if method == "score_samples" else energy
    clamp_mask = kwargs.pop("clamp_mask", args[0] if args else None)
    trace = kwargs.pop("return_energy_trace", False)
    if clamp_mask is not None:
        from skam._backend import resolve_backend
        from skam._validation import validate_clamp_mask

        clamp_mask = validate_clamp_mask(clamp_mask, X, resolve_backend(X))
    result = _dense_am_descend(
        estimator,
        X,
        clamp_mask,
        compute_energy=method == "descend",
        return_trace=trace,
        client=client,
    )
    if method == "transform":
        return result.states
    if method == "predict":
        return _reached(estimator, result.states, client=client)
    if method == "descend":
        out = Bunch(
            states=result.states,
            n_iter=result.n_iter,
            converged=result.converged,
            energy=result.energy,
        )
        if trace:
            out.energy_trace = _pad(result.energy_trace, estimator.max_iter + 1)
        return out
    raise TypeError(f"{type(estimator).__name__}.{method}() has no sharded version")


def _pad(trace, rows):
    if trace.shape[0] >= rows:
        return trace
    return np.concatenate([trace, np.repeat(trace[-1:], rows - trace.shape[0], axis=0)])


@forwarding_warnings
def _descend_task(estimator, method, block, args, kwargs):
    """One query block on a worker: run the descent, shards via worker_client."""
    from distributed import Future, worker_client

    with worker_client() as client:
        # a copy per task: tasks seceded on the same worker share the model
        local = object.__new__(type(estimator))
        local.__dict__.update(estimator.__dict__)
        local._shards = _with_futures(
            estimator._shards,
            [Future(key, client=client) for key in estimator._shard_keys],
        )
        local._distinct_masks = [
            Future(key, client=client) for key in estimator._mask_keys
        ]
        return _run(local, method, block, args, dict(kwargs), client)


def _lazy(estimator, method, X, args, kwargs):
    if hasattr(estimator, "_label_code"):
        return _lazy_supervised(estimator, method, X, args, kwargs)
    energy = method in ("energy", "score_samples")
    if energy and getattr(estimator, "self_coupling_", True):
        return _energy_graph(estimator, X, method == "score_samples")
    from skam._dask._post_fit import _assemble, _row_aligned, send_once

    light = _light_copy(estimator)
    model = send_once(light)
    run = dask.delayed(_descend_task, pure=False)
    results = [
        run(model, method, block, args, kw)
        for block, kw in zip(X.to_delayed()[:, 0], _row_aligned(kwargs, X), strict=True)
    ]
    D = estimator.n_features_in_
    trace_rows = estimator.max_iter + 1
    if method == "descend":
        fields = {
            "states": np.zeros((1, D), X.dtype),
            "n_iter": np.zeros(1, np.int64),
            "converged": np.zeros(1, bool),
            "energy": np.zeros(1, X.dtype),
        }
        if kwargs.get("return_energy_trace"):
            fields["energy_trace"] = np.zeros((trace_rows, 1), X.dtype)
        return _assemble(results, X.chunks[0], Bunch(**fields), (), trace_rows)
    if method == "transform":
        example = np.zeros((1, D), X.dtype)
    else:
        example = np.zeros(1, X.dtype if energy else np.int64)
    return _assemble(results, X.chunks[0], example, (), None)


def _lazy_supervised(estimator, method, X, args, kwargs):
    from skam._dask._post_fit import _assemble, send_once

    example = _supervised_example(estimator, method, X)
    model = send_once(_light_copy(estimator))
    run = dask.delayed(_descend_task, pure=False)
    results = [
        run(model, method, block, args, kwargs) for block in X.to_delayed()[:, 0]
    ]
    return _assemble(results, X.chunks[0], example, (), None)


def _with_futures(sharded, futures):
    return ShardedMemories(
        futures,
        sharded.sizes,
        sharded.n_features,
        sharded.dtype,
        sharded.coord_weights,
        sharded.weighted,
    )


def _light_copy(estimator):
    """The estimator with its Futures replaced by their keys (for the workers)."""
    light = object.__new__(type(estimator))
    light.__dict__.update(estimator.__dict__)
    light._shard_keys = estimator._shards.keys
    light._mask_keys = [f.key for f in estimator._distinct_masks]
    light._shards = _with_futures(estimator._shards, [])
    light._distinct_masks = None
    return light


def local_dense_am(estimator):
    """Gather a sharded DenseAM into NumPy attributes (in place)."""
    from skam.memory import _distinct_rows as distinct_rows

    local_supervised(estimator)
    estimator._distinct_rows = distinct_rows(
        estimator.memories_, estimator.memory_weights_
    )
    return estimator


_LOCAL = {
    "dense_am": local_dense_am,
    "supervised": local_supervised,
    "hopfield": local_hopfield,
}


def to_local(estimator, how):
    """Gather the sharded memories of ``estimator`` (in place); returns it."""
    if getattr(estimator, "_shards", None) is None:
        return estimator
    return _LOCAL[how](estimator)
