"""The chunking helper: chunks fit ``working_memory`` and cover every row once."""

import array_api_strict
import numpy as np
import pytest
import sklearn

from skam._chunking import (
    chunk_slices,
    concat,
    itemsize,
    map_chunks,
    rows_per_chunk,
)


@pytest.mark.parametrize("working_memory", [1, 8, 64], ids=lambda m: f"{m}MiB")
@pytest.mark.parametrize("bytes_per_row", [24, 4096, 240_000], ids=str)
def test_chunk_fits_working_memory_and_is_maximal(working_memory, bytes_per_row):
    budget = working_memory * 2**20
    with sklearn.config_context(working_memory=working_memory):
        rows = rows_per_chunk(10**9, bytes_per_row)
    assert rows * bytes_per_row <= budget
    assert (rows + 1) * bytes_per_row > budget  # no smaller than it needs to be


@pytest.mark.parametrize(
    "n_rows, kwargs, expected",
    [
        (10, {"chunk_size": 3}, 3),
        (2, {"chunk_size": 3}, 2),  # never more rows than there are
        (0, {"chunk_size": 3}, 1),  # at least one
        (10**6, {"max_rows": 7}, 7),
        (5, {}, 5),
    ],
    ids=["explicit", "explicit-capped-by-n", "empty", "max_rows", "all-fit"],
)
def test_rows_per_chunk_bounds(n_rows, kwargs, expected):
    assert rows_per_chunk(n_rows, 8, **kwargs) == expected


def test_row_larger_than_working_memory_warns_and_goes_one_by_one():
    with sklearn.config_context(working_memory=1):
        with pytest.warns(UserWarning, match="needs 2 MiB.*working_memory=1 MiB") as w:
            rows = rows_per_chunk(100, 2 * 2**20)
    assert rows == 1
    assert w[0].filename == __file__  # names the caller's line, not skam's


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 11], ids=lambda c: f"chunk{c}")
def test_slices_cover_every_row_once_in_order(chunk_size):
    covered = [
        i for sl in chunk_slices(10, 8, chunk_size=chunk_size) for i in range(10)[sl]
    ]
    assert covered == list(range(10))


def test_map_chunks_equals_unchunked():
    X = np.arange(40.0).reshape(20, 2)
    out = map_chunks(lambda sl: X[sl, :] * 2.0, 20, 8, np, chunk_size=3)
    np.testing.assert_array_equal(out, X * 2.0)
    axis1 = map_chunks(lambda sl: X[sl, :].T, 20, 8, np, axis=1, chunk_size=6)
    np.testing.assert_array_equal(axis1, X.T)


def test_concat_of_one_part_is_that_part():
    part = np.ones(3)
    assert concat([part], np) is part


@pytest.mark.parametrize(
    "dtype, nbytes",
    [("float32", 4), ("float64", 8), ("int64", 8), ("int8", 1), ("bool", 1)],
    ids=str,
)
@pytest.mark.parametrize("xp", [np, array_api_strict], ids=["numpy", "strict"])
def test_itemsize_matches_numpy(xp, dtype, nbytes):
    array = xp.asarray([0, 1], dtype=getattr(xp, dtype))
    assert itemsize(array) == nbytes == np.dtype(dtype).itemsize
