"""``sample`` with Dask: lazy dask arrays of samples.

Three cases return a lazy dask array (NumPy in stays NumPy out otherwise):

* ``chunks=`` is given (an int: rows per block): ``n_samples`` rows in blocks
  of ``chunks`` rows, each block drawn on a worker by the estimator's own
  ``sample`` with the seed ``seeds[i]`` (below);
* ``X`` is a dask array (starting states / clamped values): every block of
  rows is sampled by the estimator's own ``sample`` on a worker, the block
  ``i`` with the seed ``seeds[i]``, ``seeds =
  check_random_state(random_state).randint(0, 2**31 - 1, n_blocks)``.
* the memories are sharded (``fit`` on a dask array) and ``method="exact"``
  without ``X``: ``n_samples`` rows in blocks of ``chunks`` rows. For each
  block the number of draws from each shard is multinomial with the shards'
  total weights; each shard draws its rows on its worker (the in-memory
  exact sampler on its memories: a memory by weight plus the kernel's
  noise), and the block's rows are shuffled. The draws are independent and
  exactly distributed as ``sum_mu w_mu k(v, xi_mu)``; no memory moves.
"""

import dask
import dask.array as da
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skam._dask._blocks import forwarding_warnings
from skam._dask._post_fit import _row_aligned, as_queries, send_once

# rows per block of the samples of a sharded model (``chunks=None``)
DEFAULT_CHUNK = 4096


@forwarding_warnings
def _sample_block(estimator, method, block, n, seed, kwargs):
    raw = getattr(type(estimator), method).__wrapped__
    if block is not None:
        block, n = np.array(block), None
    return raw(estimator, n, X=block, random_state=seed, **kwargs)


def _seeds(kwargs, n_blocks):
    rng = check_random_state(kwargs.pop("random_state", None))
    return rng.randint(0, 2**31 - 1, size=n_blocks)


def _example(estimator, method, X, kwargs):
    """Trailing shape and dtype of the samples, from one draw on the client."""
    raw = getattr(type(estimator), method).__wrapped__
    kw = dict(kwargs)
    mask = kw.get("clamp_mask")
    if mask is not None and np.ndim(mask) == 2:
        kw["clamp_mask"] = np.asarray(mask[:1])
    probe = None if X is None else np.asarray(X[:1])
    return raw(estimator, 1 if X is None else None, X=probe, random_state=0, **kw)


def _sample_queries(estimator, method, X, kwargs):
    X = as_queries(X, estimator, method)
    seeds = _seeds(kwargs, len(X.chunks[0]))
    example = _example(estimator, method, X, kwargs)
    model = send_once(estimator)
    run = dask.delayed(_sample_block, pure=True)
    parts = [
        da.from_delayed(
            run(model, method, block, None, int(seed), kw),
            shape=(n,) + example.shape[1:],
            dtype=example.dtype,
        )
        for block, n, seed, kw in zip(
            X.to_delayed()[:, 0],
            X.chunks[0],
            seeds,
            _row_aligned(kwargs, X),
            strict=True,
        )
    ]
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def _block_sizes(n_samples, chunks):
    if (
        isinstance(chunks, bool)
        or not isinstance(chunks, int | np.integer)
        or chunks < 1
    ):
        raise ValueError(f"chunks must be a positive int, got {chunks!r}.")
    return [min(chunks, n_samples - start) for start in range(0, n_samples, chunks)]


def _sample_chunks(estimator, method, n_samples, chunks, kwargs):
    from skam._sampling import check_sample_args

    if kwargs.get("clamp_mask") is not None and np.ndim(kwargs["clamp_mask"]) == 2:
        raise ValueError("a per-sample clamp_mask needs X; pass X as a dask array.")
    n_samples = check_sample_args(
        n_samples,
        kwargs.get("method", "exact"),
        kwargs.get("n_steps", 200),
        kwargs.get("step_size", 0.1),
        kwargs.get("beta_start"),
        None,
    )
    sizes = _block_sizes(n_samples, chunks)
    seeds = _seeds(kwargs, len(sizes))
    example = _example(estimator, method, None, kwargs)
    model = send_once(estimator)
    run = dask.delayed(_sample_block, pure=True)
    parts = [
        da.from_delayed(
            run(model, method, None, size, int(seed), kwargs),
            shape=(size,) + example.shape[1:],
            dtype=example.dtype,
        )
        for size, seed in zip(sizes, seeds, strict=True)
    ]
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def _shard_mass(shard):
    memories, weights = shard
    if weights is None:
        return float(memories.n_memories)
    return float(np.sum(weights, dtype=np.float64))


@forwarding_warnings
def _shard_exact(shard, spec, count, seed, dtype):
    from skam._sampling import exact_draws

    memories, weights = shard
    patterns = np.asarray(memories.patterns, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    rng = np.random.RandomState(seed)
    return exact_draws(patterns, w, spec, count, rng).astype(dtype)


def _shuffled(seed, *parts):
    rows = np.concatenate(parts, axis=0)
    return rows[np.random.RandomState(seed).permutation(rows.shape[0])]


def _sample_sharded(estimator, n_samples, kwargs, chunks):
    from skam._dask._sharded import _client
    from skam._sampling import check_samplable, check_sample_args

    method = kwargs.get("method", "exact")
    if (
        method != "exact"
        or kwargs.get("X") is not None
        or kwargs.get("clamp_mask") is not None
    ):
        raise TypeError(
            f"{type(estimator).__name__}.sample() on memories sharded on Dask "
            f"workers draws method='exact' without X or clamp_mask (got "
            f"method={method!r}); call to_local() first for Langevin, annealing "
            "or conditional draws."
        )
    if kwargs.get("return_trajectory"):
        raise ValueError("method='exact' has no trajectory.")
    n_samples = check_sample_args(
        n_samples,
        method,
        kwargs.get("n_steps", 200),
        kwargs.get("step_size", 0.1),
        kwargs.get("beta_start"),
        None,
    )
    spec = estimator._spec()
    check_samplable(spec)
    sizes = _block_sizes(n_samples, DEFAULT_CHUNK if chunks is None else chunks)
    sharded = estimator._shards
    _client()  # a clear error without one
    mass = np.array(sharded.map(_shard_mass))
    p = mass / mass.sum()
    rng = check_random_state(kwargs.get("random_state"))
    D, dtype = sharded.n_features, sharded.dtype
    draw = dask.delayed(_shard_exact, pure=True)
    shuffle = dask.delayed(_shuffled, pure=True)
    parts = []
    for size in sizes:
        counts = rng.multinomial(size, p)
        seeds = rng.randint(0, 2**31 - 1, size=counts.size + 1)
        draws = [
            draw(f, spec, int(c), int(s), dtype)
            for f, c, s in zip(sharded.futures, counts, seeds[:-1], strict=True)
            if c > 0
        ]
        block = shuffle(int(seeds[-1]), *draws)
        parts.append(da.from_delayed(block, shape=(size, D), dtype=dtype))
    return da.concatenate(parts) if len(parts) > 1 else parts[0]


def sample(estimator, method, n_samples, kwargs):
    """``estimator.sample`` giving a lazy dask array (see the module docstring)."""
    check_is_fitted(estimator)
    kwargs = dict(kwargs)
    chunks = kwargs.pop("chunks", None)
    if kwargs.get("return_trajectory"):
        raise ValueError(
            "return_trajectory=True needs the whole trajectory in memory; draw "
            "with NumPy input (no chunks, a NumPy X) to get it."
        )
    if getattr(estimator, "_shards", None) is not None:
        return _sample_sharded(estimator, n_samples, kwargs, chunks)
    X = kwargs.pop("X", None)
    if X is None:
        return _sample_chunks(estimator, method, n_samples, chunks, kwargs)
    if n_samples is not None and n_samples != X.shape[0]:
        raise ValueError(
            f"n_samples={n_samples} does not match the {X.shape[0]} rows of X; "
            "pass n_samples=None (or the number of rows) with X."
        )
    if not isinstance(X, da.Array):
        X = da.from_array(np.asarray(X), chunks=(chunks, -1))
    return _sample_queries(estimator, method, X, kwargs)
