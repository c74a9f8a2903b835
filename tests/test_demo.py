"""The main job (``python -m skam``): every registered section runs and is sane."""

import importlib
import importlib.util

import pytest

from skam._demo import SECTIONS, format_table

AVAILABLE = [
    name for name in SECTIONS if importlib.util.find_spec(f"skam._demo.{name}")
]

_RESULTS = {}


def _run(name):
    """Run a section once per test session (the sections take seconds)."""
    if name not in _RESULTS:
        module = importlib.import_module(f"skam._demo.{name}")
        _RESULTS[name] = (module, *module.run())
    return _RESULTS[name]


def test_retrieval_section_is_registered():
    assert "retrieval" in AVAILABLE


@pytest.mark.slow  # each section is a small end-to-end benchmark
@pytest.mark.parametrize("name", AVAILABLE)
def test_section_runs_and_rows_match_columns(name):
    module, columns, rows = _run(name)
    assert isinstance(module.TITLE, str) and module.TITLE
    assert isinstance(getattr(module, "NOTE", ""), str)
    assert len(columns) >= 2
    assert len(rows) >= 1
    for row in rows:
        assert len(row) == len(columns), (name, row)
    table = format_table(columns, rows)
    assert table.splitlines()[0].split()[0] == str(columns[0]).split()[0]
    assert len(table.splitlines()) == len(rows) + 2


def _cell(columns, rows, row_name, column_prefix):
    (row,) = [r for r in rows if r[0] == row_name]
    (index,) = [i for i, c in enumerate(columns) if c.startswith(column_prefix)]
    return row[index]


def test_retrieval_dense_am_tracks_nearest_pattern_oracle():
    _, columns, rows = _run("retrieval")
    for row in rows:
        assert all(0.0 <= v <= 1.0 for v in row[1:]), row
    # LSE with the default beta recovers 10%-flipped digits about as often as
    # the exact nearest-pattern lookup (its beta -> inf limit) on the same draws.
    nn = _cell(columns, rows, "flip 10%", "nn")
    lse = _cell(columns, rows, "flip 10%", "DenseAM lse")
    assert nn >= 0.9
    assert lse >= nn - 0.05
    # every stored pattern is a fixed point of the LSE memory ...
    assert _cell(columns, rows, "stored", "DenseAM lse") == 1.0
    # ... but the Hebbian network cannot hold 100 correlated digits
    assert _cell(columns, rows, "stored", "Hopfield") <= 0.1
