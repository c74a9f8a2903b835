"""The beta rules as mergeable per-block statistics (skam._beta).

The in-memory path is one block; any split of the rows into blocks (empty
ones and all-zero-weight ones included) merged in order gives the same beta,
and one block agrees with a brute-force oracle written here.
"""

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from skam._beta import RULES, InMemoryBlocks, resolve_beta, resolve_beta_blocks


def _data(seed=0, n=240, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 5.0, d) + 40.0
    X[100] = X[7]  # an exact duplicate
    w = rng.uniform(0.2, 3.0, n)
    w[50:80] = 0.0  # a block of zero weights
    return X, w


def _split(X, w, cuts):
    bounds = [0, *cuts, X.shape[0]]
    return [
        (X[a:b], None if w is None else w[a:b])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("rule", RULES)
def test_any_split_gives_the_one_block_beta(rule, weighted):
    X, w = _data()
    w = w if weighted else None
    one = resolve_beta("scale", X, rule=rule, sample_weight=w)
    for cuts in ([1], [50, 50, 80], [13, 97, 98, 200], list(range(10, 240, 10))):
        blocks = InMemoryBlocks(_split(X, w, cuts))
        got = resolve_beta_blocks("scale", blocks, rule=rule)
        assert got == pytest.approx(one, rel=1e-12), cuts


def _oracle(X, w, rule):
    """The rules written out by brute force (NumPy, SciPy)."""
    if w is not None:
        X, w = X[w > 0], w[w > 0]
    n, d = X.shape
    ww = np.ones(n) if w is None else w
    if rule == "overlap":
        return d / np.max(np.sum(X * X, axis=1))
    if rule == "variance":
        mean = np.sum(ww[:, None] * X) / (ww.sum() * d)
        var = np.sum(ww[:, None] * (X - mean) ** 2) / (ww.sum() * d)
        return 2.0 / (d * var)
    if rule == "scott":
        mean = ww @ X / ww.sum()
        var = np.mean(ww @ (X - mean) ** 2) / ww.sum()
        n_eff = ww.sum() ** 2 / np.sum(ww * ww)
        return n_eff ** (2.0 / (d + 4)) / var
    idx = np.unique(np.linspace(0, n - 1, min(n, 1000)).astype(int))
    D = cdist(X[idx], X, "sqeuclidean")
    D[np.arange(idx.size), idx] = np.inf
    D[D <= 1e-9] = np.inf  # exact duplicates
    r2 = np.median(D.min(axis=1))
    gain = {"separation": 4.0 * math.log(n), "support": 2.0, "spacing": 32.0}[rule]
    return gain / r2


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("rule", RULES)
def test_rules_match_a_brute_force_oracle(rule, weighted):
    X, w = _data(seed=1)
    w = w if weighted else None
    got = resolve_beta("scale", X, rule=rule, sample_weight=w)
    assert got == pytest.approx(_oracle(X, w, rule), rel=1e-9)


def test_blocks_without_kept_rows_are_the_identity():
    X, w = _data(seed=2)
    w = w.copy()
    w[:40] = 0.0  # the whole first block has zero weight
    blocks = InMemoryBlocks([(X[:40], w[:40]), (X[40:40], w[40:40]), (X[40:], w[40:])])
    for rule in RULES:
        want = resolve_beta("scale", X[40:], rule=rule, sample_weight=w[40:])
        got = resolve_beta_blocks("scale", blocks, rule=rule)
        assert got == pytest.approx(want, rel=1e-12), rule
