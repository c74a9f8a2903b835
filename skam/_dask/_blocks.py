"""Reductions on the cluster: tree merges, blocks for the beta rules, warnings.

* :func:`tree_reduce` merges the results of Futures pairwise as a balanced
  tree of tasks on the cluster (an associative merge of partial states), so
  only the root comes back to the client.
* :class:`ShardedBlocks` (persisted shards) and :class:`DaskBlocks` (the
  chunks of a dask array) are the block interface of :mod:`skam._beta`: the
  rules' per-block statistics run on the workers, their merges as a tree.
* :func:`forwarding_warnings` wraps a function that runs on a worker: the
  warnings it raises there (a ``ConvergenceWarning``, a
  ``KernelSumClippedWarning``, ...) are re-emitted on every connected client
  with :func:`distributed.warn` (asynchronously: they arrive with the
  scheduler's events, shortly after the task ends).
"""

import functools
import warnings

import dask
import numpy as np

from skam._beta import tree_merge


def _emit(message, category):
    try:
        from distributed import get_worker, warn
    except ImportError:  # pragma: no cover - dask without distributed
        warnings.warn(message, category, stacklevel=3)
        return
    try:
        get_worker()
    except ValueError:  # not on a worker: a plain warning here
        warnings.warn(message, category, stacklevel=3)
        return
    warn(message, category)


def forwarding_warnings(func):
    """``func``, its warnings re-emitted on the client when run on a worker."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = func(*args, **kwargs)
        seen = set()
        for item in caught:
            key = (str(item.message), item.category)
            if key not in seen:  # one per message and category per task
                seen.add(key)
                _emit(item.message, item.category)
        return out

    return run


def tree_reduce(client, futures, merge):
    """Merge ``futures`` (in order) as a balanced tree of tasks; the root Future."""
    futures = list(futures)
    while len(futures) > 1:
        paired = [
            client.submit(merge, futures[i], futures[i + 1], pure=False)
            for i in range(0, len(futures) - 1, 2)
        ]
        if len(futures) % 2:
            paired.append(futures[-1])
        futures = paired
    return futures[0]


class _Args:
    """A holder so that a tuple of arguments travels as one scattered key."""

    def __init__(self, values):
        self.values = tuple(values)


@forwarding_warnings
def _shard_stat(shard, stat, index, args, weighted):
    memories, weights = shard
    patterns = memories.patterns
    return stat(patterns, weights if weighted else None, index, *args.values)


@forwarding_warnings
def _block_stat(X, w, stat, index, args, *extra):
    if not X.flags.aligned:
        X = np.array(X)
    return stat(X, w, index, *extra, *args.values)


class ShardedBlocks:
    """Persisted shards (:class:`~skam._dask._sharded.ShardedMemories`) as blocks.

    Parameters
    ----------
    sharded : ShardedMemories
    weighted : bool
        Whether the statistics see the shards' sample weights.
    """

    xp = np

    def __init__(self, sharded, *, weighted):
        self.sharded = sharded
        self.weighted = bool(weighted)
        self.n_features = sharded.n_features
        self.dtype = sharded.dtype

    def reduce(self, stat, merge, *args):
        from skam._dask._sharded import _client

        client = _client()
        ref = client.scatter(_Args(args), hash=False)
        parts = [
            client.submit(_shard_stat, f, stat, i, ref, self.weighted, pure=False)
            for i, f in enumerate(self.sharded.futures)
        ]
        return tree_reduce(client, parts, merge).result()


class DaskBlocks:
    """The row chunks of a dask array (and its weights) as blocks.

    Each statistic is one task per chunk and the merges a tree of tasks, run
    by the current scheduler (the distributed client if there is one).
    ``extra`` are 1-D dask arrays aligned with the rows (labels, ...); their
    blocks are passed to the statistic after the block index.
    """

    xp = np

    def __init__(self, X, w=None, extra=()):
        self.X = X.rechunk({1: -1})
        rows = (self.X.chunks[0],)
        self.w = None if w is None else w.rechunk(rows)
        self.extra = [e.rechunk(rows) for e in extra]
        self.n_features = int(X.shape[1])
        self.dtype = X.dtype

    def reduce(self, stat, merge, *args):
        blocks = list(self.X.to_delayed()[:, 0])
        weights = [None] * len(blocks) if self.w is None else list(self.w.to_delayed())
        extra = [list(e.to_delayed()) for e in self.extra]
        ref = dask.delayed(_Args(args), pure=False, traverse=False)
        run = dask.delayed(_block_stat, pure=True)
        parts = [
            run(b, wb, stat, i, ref, *[e[i] for e in extra])
            for i, (b, wb) in enumerate(zip(blocks, weights, strict=True))
        ]
        root = tree_merge(parts, dask.delayed(merge, pure=True))
        return dask.compute(root)[0]
