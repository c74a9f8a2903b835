"""Post-fit methods on dask arrays for models held in memory.

The queries are a dask array of shape (n_samples, n_features), chunked along
the samples. The fitted estimator travels to the workers **once per call**:
it is scattered to the current default :class:`distributed.Client` (without
content hashing, so an identical model scattered again gets a fresh key the
memory manager has not dropped) and each block's task refers to it by key;
without a distributed client it is a single ``dask.delayed`` node of the
graph, never copied into every task. Each block runs the estimator's own
NumPy method, so the results are those of the in-memory call.
"""

import warnings

import dask
import dask.array as da
import numpy as np
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

# keyword arguments given per sample (row-aligned with X)
ROW_ALIGNED = ("clamp_mask",)


def default_client():
    """The current default distributed client, or None (local scheduler)."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - dask without distributed
        return None
    try:
        return get_client()
    except ValueError:
        return None


def send_once(obj):
    """``obj`` as one key on the cluster: a Future, or a delayed node."""
    client = default_client()
    if client is not None:
        return client.scatter(obj, hash=False)
    return dask.delayed(obj, pure=False, traverse=False)


def realign(obj):
    """Copy unaligned NumPy attributes of ``obj`` in place (once per worker).

    Arrays unpickled from network frames can start at any byte; BLAS and
    NumPy loops then take slow paths (about 1.6x here).
    """
    for name, value in list(vars(obj).items()):
        if isinstance(value, np.ndarray) and not _aligned(value):
            setattr(obj, name, np.array(value, order="C"))
    return obj


def _aligned(array):
    return array.flags.aligned and array.ctypes.data % 64 == 0 or array.size == 0


def as_queries(X, estimator, method):
    """Validate the dask query array: 2-D, known chunks, one column chunk."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{type(estimator).__name__}.{method}() accepts dask arrays, got "
            f"{type(X).__name__}; convert a dask DataFrame with "
            "to_dask_array(lengths=True)."
        )
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D dask array for X in {method}(), got ndim={X.ndim}."
        )
    if any(np.isnan(c) for c in X.chunks[0]) or np.isnan(X.shape[1]):
        raise ValueError(
            f"X passed to {method}() has unknown chunk sizes; call "
            "X.compute_chunk_sizes() first."
        )
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def _row_aligned(kwargs, X):
    """Split row-aligned keyword arrays with X's row chunks (others as is)."""
    per_block = [dict(kwargs) for _ in X.chunks[0]]
    for name in ROW_ALIGNED:
        value = kwargs.get(name)
        if value is None:
            continue
        ndim = len(getattr(value, "shape", np.shape(value)))
        if ndim != 2 or np.shape(value)[0] != X.shape[0]:
            continue  # one mask for every query: sent with each block (small)
        if isinstance(value, da.Array):
            value = value.rechunk((X.chunks[0], -1))
            blocks = list(value.to_delayed()[:, 0])
        else:
            value = np.asarray(value)
            bounds = np.cumsum((0,) + X.chunks[0])
            blocks = [value[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for kw, block in zip(per_block, blocks, strict=True):
            kw[name] = block
    return per_block


def _pad_traces(result, trace_rows):
    """Pad every ``*trace`` array of a (nested) Bunch to ``trace_rows`` rows."""
    for key, value in list(result.items()):
        if isinstance(value, dict):
            _pad_traces(value, trace_rows)
        elif "trace" in key:
            pad = np.repeat(value[-1:], trace_rows - value.shape[0], axis=0)
            result[key] = np.concatenate([value, pad], axis=0)
    return result


def _run_block(estimator, method, block, args, kwargs, trace_rows):
    from skam._dask._blocks import forwarding_warnings

    return forwarding_warnings(_run_block_here)(
        estimator, method, block, args, kwargs, trace_rows
    )


def _run_block_here(estimator, method, block, args, kwargs, trace_rows):
    realign(estimator)
    if not block.flags.aligned:
        block = np.array(block)
    result = getattr(estimator, method)(block, *args, **kwargs)
    if trace_rows is not None and isinstance(result, dict):
        _pad_traces(result, trace_rows)
    return result


def trace_length(estimator):
    """Rows of an energy trace of a dask call: the most steps + 1."""
    steps = getattr(estimator, "max_iter", None)
    if steps is None:
        steps = getattr(estimator, "n_steps", None)
    return int(steps) + 1


def _probe(estimator, method, X, args, kwargs):
    """Structure of the output (kinds, trailing shapes, dtypes) from one row."""
    probe = np.zeros((1, X.shape[1]), dtype=X.dtype)
    kw = dict(kwargs)
    for name in ROW_ALIGNED:
        value = kw.get(name)
        if (
            value is not None
            and np.ndim(value) == 2
            and np.shape(value)[0] == X.shape[0]
        ):
            kw[name] = np.zeros((1, X.shape[1]), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(estimator, method)(probe, *args, **kw)


def call_by_blocks(estimator, method, X, *args, **kwargs):
    """Run ``estimator.<method>`` block by block on dask queries, lazily.

    Returns a dask array (or a :class:`~sklearn.utils.Bunch` of dask arrays
    for ``descend``) with one block per block of rows of ``X``. With
    ``return_energy_trace=True`` the trace of every block is padded to
    ``max_iter + 1`` rows with its final energy (the in-memory call pads to
    the longest trace instead).
    """
    check_is_fitted(estimator)
    X = as_queries(X, estimator, method)
    example = _probe(estimator, method, X, args, kwargs)
    trace_rows = None
    if kwargs.get("return_energy_trace"):
        trace_rows = trace_length(estimator)
    model = send_once(estimator)
    run = dask.delayed(_run_block, pure=True)
    blocks = list(X.to_delayed()[:, 0])
    results = [
        run(model, method, block, args, kw, trace_rows)
        for block, kw in zip(blocks, _row_aligned(kwargs, X), strict=True)
    ]
    return _assemble(results, X.chunks[0], example, (), trace_rows)


def _assemble(results, row_chunks, example, path, trace_rows):
    """Dask arrays shaped like ``example`` (an array or a nested Bunch/dict).

    ``path`` is the sequence of keys leading to ``example`` in each block's
    result; arrays whose key says ``trace`` have the samples on axis 1.
    """
    if isinstance(example, dict):
        kind = Bunch if isinstance(example, Bunch) else dict
        return kind(
            **{
                key: _assemble(results, row_chunks, value, path + (key,), trace_rows)
                for key, value in example.items()
            }
        )
    example = np.asarray(example)
    is_trace = (
        bool(path) and "trace" in path[-1] or (len(path) > 1 and "trace" in path[0])
    )
    pick = dask.delayed(_pick, pure=True)
    parts = []
    for result, n in zip(results, row_chunks, strict=True):
        item = pick(result, path) if path else result
        if is_trace:  # (steps + 1, samples, ...): padded, or as long as the probe's
            shape = (trace_rows or example.shape[0], n) + example.shape[2:]
        else:
            shape = (n,) + example.shape[1:]
        parts.append(da.from_delayed(item, shape=shape, dtype=example.dtype))
    axis = 1 if is_trace else 0
    return da.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]


def _pick(result, path):
    for key in path:
        result = result[key]
    return result
