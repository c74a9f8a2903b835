"""Main-job section: how many random patterns each energy stores (D = 100)."""

import math

from skam.capacity import (
    capacity_curve,
    exponential_capacity,
    hopfield_capacity,
    polynomial_capacity,
)
from skam.discrete import DiscreteDenseAM, HopfieldNetwork
from skam.memory import DenseAM

TITLE = "Capacity: random +-1 patterns of D = 100 bits, recalled from 10% flips"

NOTE = """\
K random +-1 patterns (RandomState(0)) are stored and up to 40 of them queried
with 10 of their 100 bits flipped; score: fraction recalled exactly (every bit).
Each energy is tested at half, once and twice its theoretical capacity K*:
0.138 D for the Hebbian network, D^(n-1) / (2 (2n-3)!! log D) for F(x) = x^n
(Krotov and Hopfield 2016), exp(D I(0.8) / 2) ~ 1e8 for F(x) = exp(x) from 10%
flips (Demircigil et al. 2017; tested at 10^4 patterns only). Recall should be
high at K*/2 and low at 2 K*. DenseAM is the continuous network (energy descent
in the box [-1, 1]^D, self-coupling removed on binary patterns); the discrete
networks flip one bit at a time by the exact energy difference (poly n=4 and exp
with synchronous sweeps). benchmarks/results/capacity.md has the full curves and
the D sweep."""

_D = 100
_Q = 40


def _models():
    return [
        (
            "Hopfield (quadratic)",
            HopfieldNetwork(random_state=0),
            hopfield_capacity(_D),
        ),
        ("Discrete poly n=3", DiscreteDenseAM(degree=3, random_state=0), None),
        ("DenseAM poly n=3", DenseAM(separation="poly", degree=3), None),
        (
            "Discrete poly n=4",
            DiscreteDenseAM(degree=4, update="sync", max_iter=20),
            polynomial_capacity(_D, 4),
        ),
    ]


def run():
    """One row per energy and load: the fraction recalled."""
    columns = ["energy", "K* (theory)", "K tested", "K / K*", "recalled"]
    rows = []
    for name, model, theory in _models():
        theory = theory or polynomial_capacity(_D, 3)
        grid = [int(theory / 2), int(round(theory)), int(2 * theory)]
        curve = capacity_curve(model, grid, n_features=_D, n_queries=_Q, random_state=0)
        for K, recalled in zip(grid, curve.recalled, strict=True):
            rows.append(
                [name, f"{theory:.0f}", K, f"{K / theory:.2f}", float(recalled)]
            )
    exp = DiscreteDenseAM(separation="exp", update="sync")
    curve = capacity_curve(exp, [10_000], n_features=_D, n_queries=_Q, random_state=0)
    log_k = exponential_capacity(_D, 0.1, log=True)
    rows.append(
        [
            "Discrete exp",
            f"{math.exp(log_k):.1e}",
            10_000,
            f"{10_000 / math.exp(log_k):.0e}",
            float(curve.recalled[0]),
        ]
    )
    return columns, rows
