"""The one chunking helper: split rows so temporaries fit ``working_memory``.

Every intermediate of the engine whose size grows with the number of rows
(queries, samples) is built one chunk of rows at a time. The caller states
what one row costs, ``bytes_per_row`` (the sum over the temporaries alive at
once of their width times :func:`itemsize`), and the chunk holds as many rows
as fit scikit-learn's ``get_config()["working_memory"]`` (MiB). Results never
depend on the chunk size.

Usage::

    per_row = 3 * n_memories * itemsize(X)  # three (chunk, K) temporaries
    out = map_chunks(lambda sl: f(X[sl, :]), X.shape[0], per_row, xp)

or, to accumulate::

    for sl in chunk_slices(X.shape[0], per_row):
        total = total + g(X[sl, :])
"""

import os
import sys
import warnings

import sklearn
from array_api_compat import array_namespace, is_numpy_namespace
from array_api_compat import device as array_device
from sklearn import get_config

__all__ = ["chunk_slices", "concat", "itemsize", "map_chunks", "rows_per_chunk"]

# On CPUs (NumPy), the element-wise passes over a chunk's (rows, K)
# temporaries (bias, row max, exp, sums) are memory-bound: they run several
# times faster when those temporaries stay in the cache, so a chunk aims at
# about this many bytes of them (working_memory still caps it). Measured for
# one LSE step, n = K = 10 000 (d = 64) and 5 000 (d = 784): 16-64 MiB are
# 1.3-2.5x faster than one 1 GiB chunk, and at d = 784 64 MiB beats 16 MiB.
CPU_CHUNK_BYTES = 64 * 2**20
# ... but a chunk keeps at least this many rows: each chunk's GEMM reads all
# K memories once, and with too few rows (20 at K = 50 000 with a fixed
# element cap) it is bound by that read instead of by arithmetic.
GEMM_MIN_ROWS = 256

# Frames in these packages are skipped when a warning names the user's line.
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep
    for module in (sys.modules[__package__], sklearn)
)


def itemsize(array):
    """Bytes per element of an array of any namespace (NumPy, CuPy, strict, Dask).

    Parameters
    ----------
    array : array
        An array with a numeric or boolean dtype.

    Returns
    -------
    nbytes : int
        Size of one element in bytes (4 for float32, 8 for float64 or int64).
    """
    dtype = array.dtype
    size = getattr(dtype, "itemsize", None)  # NumPy and CuPy dtypes: no lookup
    if isinstance(size, int):
        return size
    xp = array_namespace(array)
    if xp.isdtype(dtype, "bool"):
        return 1
    if xp.isdtype(dtype, "integral"):
        return xp.iinfo(dtype).bits // 8
    if xp.isdtype(dtype, "complex floating"):
        return 2 * (xp.finfo(dtype).bits // 8)
    return xp.finfo(dtype).bits // 8


def rows_per_chunk(
    n_rows,
    bytes_per_row,
    *,
    chunk_size=None,
    max_rows=None,
    min_rows=None,
    reserved_bytes=0,
    xp=None,
):
    """Number of rows per chunk so that a chunk fits ``working_memory``.

    Parameters
    ----------
    n_rows : int
        Number of rows to process.
    bytes_per_row : int
        Bytes of temporaries one row needs (all alive at once).
    chunk_size : int or None, default=None
        Explicit rows per chunk (overrides ``working_memory``).
    max_rows : int or None, default=None
        Upper bound on the rows per chunk (a cache or allocator limit).
    min_rows : int or None, default=None
        Lower bound on the rows per chunk, for callers that split the other
        axis instead when rows alone do not fit (the engine's memory blocks,
        :mod:`skam._partial`); no warning then.
    reserved_bytes : int, default=0
        Bytes the caller holds for the whole call besides the chunks (e.g. a
        derived copy of the memories); the chunks get what is left of
        ``working_memory`` (at least one row).
    xp : namespace or None, default=None
        Namespace of the computation. NumPy chunks are also kept near
        ``CPU_CHUNK_BYTES`` of temporaries (in cache), with at least
        ``GEMM_MIN_ROWS`` rows; other namespaces (GPUs) get the largest
        chunks ``working_memory`` allows.

    Returns
    -------
    rows : int
        At least 1, at most ``max(n_rows, 1)``.

    Warns
    -----
    UserWarning
        If one row alone exceeds ``working_memory`` and ``min_rows`` is None
        (rows are then processed one at a time).
    """
    n_rows = max(int(n_rows), 1)
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n_rows))
    budget_mib = get_config()["working_memory"]
    bytes_per_row = max(1, int(bytes_per_row))
    rows = int(budget_mib * 2**20 // bytes_per_row)
    if reserved_bytes and rows >= 1:
        left = budget_mib * 2**20 - int(reserved_bytes)
        rows = max(1, int(left // bytes_per_row))
    if min_rows is not None:
        rows = max(rows, int(min_rows))
    if rows < 1:
        warnings.warn(
            f"One row needs {bytes_per_row / 2**20:.3g} MiB of temporaries, more "
            f"than working_memory={budget_mib} MiB; processing one row at a time.",
            UserWarning,
            stacklevel=_caller_stacklevel(),
        )
        rows = 1
    if xp is not None and is_numpy_namespace(xp):
        rows = min(rows, max(GEMM_MIN_ROWS, CPU_CHUNK_BYTES // bytes_per_row))
    if max_rows is not None:
        rows = min(rows, max(1, int(max_rows)))
    return max(1, min(rows, n_rows))


def chunk_slices(
    n_rows,
    bytes_per_row,
    *,
    chunk_size=None,
    max_rows=None,
    min_rows=None,
    reserved_bytes=0,
    xp=None,
):
    """Slices covering ``range(n_rows)``, each chunk sized by :func:`rows_per_chunk`.

    Parameters
    ----------
    n_rows : int
        Number of rows to process.
    bytes_per_row : int
        Bytes of temporaries one row needs.
    chunk_size : int or None, default=None
        Explicit rows per chunk.
    max_rows : int or None, default=None
        Upper bound on the rows per chunk.
    min_rows : int or None, default=None
        Lower bound on the rows per chunk (see :func:`rows_per_chunk`).
    reserved_bytes : int, default=0
        Bytes held besides the chunks (see :func:`rows_per_chunk`).
    xp : namespace or None, default=None
        Namespace of the computation (see :func:`rows_per_chunk`).

    Returns
    -------
    slices : iterator of slice
        Consecutive row slices (none when ``n_rows`` is 0).
    """
    rows = rows_per_chunk(
        n_rows,
        bytes_per_row,
        chunk_size=chunk_size,
        max_rows=max_rows,
        min_rows=min_rows,
        reserved_bytes=reserved_bytes,
        xp=xp,
    )
    n_rows = int(n_rows)
    # plain slices (sklearn's gen_batches validates its arguments on every
    # call, a noticeable share of a one-row prediction)
    return (slice(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows))


def map_chunks(
    fn,
    n_rows,
    bytes_per_row,
    xp,
    *,
    axis=0,
    chunk_size=None,
    max_rows=None,
    min_rows=None,
    reserved_bytes=0,
):
    """``fn(slice)`` for each chunk of rows, the results concatenated.

    Parameters
    ----------
    fn : callable
        Maps a row slice to an array whose ``axis`` runs over those rows.
    n_rows : int
        Number of rows to process (at least 1).
    bytes_per_row : int
        Bytes of temporaries one row needs.
    xp : namespace
        Array namespace of the results.
    axis : int, default=0
        Axis of the results to concatenate along.
    chunk_size : int or None, default=None
        Explicit rows per chunk.
    max_rows : int or None, default=None
        Upper bound on the rows per chunk.
    min_rows : int or None, default=None
        Lower bound on the rows per chunk (see :func:`rows_per_chunk`).
    reserved_bytes : int, default=0
        Bytes held besides the chunks (see :func:`rows_per_chunk`).

    Returns
    -------
    result : array
        The chunk results concatenated along ``axis``.
    """
    rows = rows_per_chunk(
        n_rows,
        bytes_per_row,
        chunk_size=chunk_size,
        max_rows=max_rows,
        min_rows=min_rows,
        reserved_bytes=reserved_bytes,
    )
    n_rows = int(n_rows)
    # slices made one at a time: a list of them costs O(n_rows / rows) memory
    slices = (
        slice(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows)
    )
    first_slice = next(slices)
    first = fn(first_slice)
    if rows >= n_rows:
        return first
    if axis == 0:
        # fill one preallocated result: the chunks and their concatenation
        # would hold the whole output twice
        try:
            out = xp.empty(
                (n_rows, *first.shape[1:]),
                dtype=first.dtype,
                device=array_device(first),
            )
            out[first_slice, ...] = first
        except (TypeError, NotImplementedError, ValueError):
            pass  # a namespace without item assignment (Dask, JAX): concatenate
        else:
            del first
            for sl in slices:
                out[sl, ...] = fn(sl)
            return out
    return concat([first] + [fn(sl) for sl in slices], xp, axis=axis)


def concat(parts, xp, axis=0):
    """Concatenate chunk results (a no-op for a single chunk).

    Parameters
    ----------
    parts : list of array
        Results of consecutive chunks.
    xp : namespace
        Their array namespace.
    axis : int, default=0
        Axis to concatenate along.

    Returns
    -------
    result : array
        ``parts[0]`` for one part, otherwise their concatenation.
    """
    if len(parts) == 1:
        return parts[0]
    return xp.concat(parts, axis=axis)


def _caller_stacklevel():
    """Stack level of the first frame outside skam and scikit-learn."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _LIBRARY_DIRS
    ):
        frame = frame.f_back
        level += 1
    return level
