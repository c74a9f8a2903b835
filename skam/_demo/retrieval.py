"""Main-job section: retrieve corrupted binarised digits from memory."""

import numpy as np

from skam.datasets import flip_bits, load_binary_digits, occlude
from skam.memory import DenseAM, HopfieldNetwork

TITLE = "Retrieval: exact-recall rate of 100 stored binarised digits"

NOTE = """\
100 random unique 8x8 digits (+-1 pixels, RandomState(0)) are stored; each is
queried intact, with 10% / 20% of its 64 pixels flipped, or with its bottom half
set to -1 (DenseAM clamps the visible top half; HopfieldNetwork cannot clamp).
Score: fraction of queries whose retrieved state has the stored pattern's sign in
every pixel. nn = exact nearest stored pattern by overlap (the beta -> inf
limit). DenseAM lse: beta="scale" = 4 log(K) / r2 with r2 the median squared
distance between a memory and its nearest other memory (value in the header).
poly: similarity="dot", beta=1/64, degree 3 (the default) and 40: correlated
digits need a sharp separation (degree 3 does not even keep the stored patterns).
lsr (Epanechnikov): beta="scale" = 2 / r2, so each memory's support reaches its
nearest neighbour; its flat mean-shift step moves a state to the centroid of all
memories whose support contains it (the "emergent memories" of Hoover et al.
2025), so stored digits inside a neighbour's support and corrupted queries
settle on centroids; LSR retrieves exactly only queries within half the
separation of two memories (tests/test_descent.py). Hopfield: Hebbian rule,
async updates; on such correlated patterns it holds only about 2 at a time
(0.14 D is for random patterns)."""

_K = 100
_SEED = 0


def _exact_recall(recalled, patterns):
    return float(np.mean(np.all(np.sign(recalled) == patterns, axis=1)))


def _queries(patterns):
    hidden, visible = occlude(patterns)
    return [
        ("stored", patterns, None),
        ("flip 10%", flip_bits(patterns, 0.1, random_state=1), None),
        ("flip 20%", flip_bits(patterns, 0.2, random_state=2), None),
        ("occlude 50%", hidden, visible),
    ]


def run():
    """Exact-recall rate of every method on every corruption (one row each)."""
    X, _ = load_binary_digits()
    rng = np.random.RandomState(_SEED)
    patterns = X[rng.choice(X.shape[0], _K, replace=False)]
    D = patterns.shape[1]

    lse = DenseAM().fit(patterns)
    models = {
        "poly n=3": DenseAM(separation="poly", similarity="dot", beta=1.0 / D),
        "poly n=40": DenseAM(
            separation="poly", similarity="dot", beta=1.0 / D, degree=40
        ),
        "lsr": DenseAM(separation="lsr"),
    }
    for model in models.values():
        model.fit(patterns)
    hopfield = HopfieldNetwork(random_state=_SEED).fit(patterns)

    columns = ["query", "nn", f"DenseAM lse (beta={lse.beta_:.2f})"]
    columns += [f"DenseAM {name}" for name in models] + ["Hopfield"]
    rows = []
    for name, queries, visible in _queries(patterns):
        nearest = patterns[np.argmax(queries @ patterns.T, axis=1)]
        row = [name, _exact_recall(nearest, patterns)]
        for model in (lse, *models.values()):
            row.append(
                _exact_recall(model.transform(queries, clamp_mask=visible), patterns)
            )
        row.append(_exact_recall(hopfield.transform(queries), patterns))
        rows.append(row)
    return columns, rows
