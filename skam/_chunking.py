"""The one chunking helper: split queries so temporaries fit ``working_memory``.

Every (n_queries, n_memories) intermediate of the engine is built one chunk of
queries at a time. The chunk size comes from scikit-learn's
``get_config()["working_memory"]`` (MiB) unless given explicitly, and results do
not depend on it.
"""

import warnings

from sklearn import get_config
from sklearn.utils import gen_batches

# How many (n_chunk, n_memories) temporaries the engine holds at once: the
# similarity/logit matrix, its exponential and the gradient weights.
TEMPORARIES_PER_PAIR = 3


def chunk_rows(n_rows, n_columns, itemsize, *, chunk_size=None, temporaries=None):
    """Number of query rows per chunk.

    Parameters
    ----------
    n_rows : int
        Number of queries.
    n_columns : int
        Width of the per-query temporaries (usually the number of memories).
    itemsize : int
        Bytes per element (4 for float32, 8 for float64).
    chunk_size : int or None
        Explicit chunk size; None derives it from ``working_memory``.
    temporaries : int or None
        Number of (chunk, n_columns) temporaries alive at once.

    Returns
    -------
    rows : int
        At least 1, at most ``n_rows``.
    """
    if chunk_size is not None:
        return max(1, min(int(chunk_size), max(n_rows, 1)))
    temporaries = TEMPORARIES_PER_PAIR if temporaries is None else temporaries
    row_bytes = max(1, n_columns * itemsize * temporaries)
    budget = get_config()["working_memory"] * 2**20
    rows = int(budget // row_bytes)
    if rows < 1:
        warnings.warn(
            f"One query needs {row_bytes / 2**20:.0f} MiB of temporaries, more than "
            f"working_memory={get_config()['working_memory']} MiB; processing one "
            "query at a time.",
            UserWarning,
            stacklevel=3,
        )
        rows = 1
    return max(1, min(rows, max(n_rows, 1)))


def iter_chunks(n_rows, rows_per_chunk):
    """Slices covering ``range(n_rows)`` in chunks of ``rows_per_chunk``."""
    return gen_batches(n_rows, rows_per_chunk)


def concat(parts, xp, axis=0):
    """Concatenate chunk results (a no-op for a single chunk)."""
    if len(parts) == 1:
        return parts[0]
    return xp.concat(parts, axis=axis)
