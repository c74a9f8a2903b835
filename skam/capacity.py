"""How many patterns a memory stores: measurements and the theory to compare with.

Measurements
------------
:func:`recall_fraction`
    For a fitted memory: the fraction of (a sample of) its stored patterns
    that are fixed points, and the fraction recalled exactly from a
    corruption (bit flips, occlusion or Gaussian noise).
:func:`capacity_curve`
    The same over a grid of numbers of stored patterns ``K``, for an
    estimator (cloned for each ``K``) or a factory, on random +-1 patterns
    (or patterns you give), with the ``K`` at which half the patterns are
    recalled (:func:`capacity_at`).

Theory (random +-1 patterns, ``D`` neurons)
-------------------------------------------
:func:`hopfield_capacity`
    ``0.138 D``: the classical Hopfield network (Amit, Gutfreund and
    Sompolinsky, 1985), the load at which retrieval collapses.
:func:`polynomial_capacity`
    ``D^(n-1) / (2 (2n-3)!! log D)`` for ``F(x) = x^n`` (Krotov and Hopfield,
    2016): every stored pattern a fixed point with high probability.
:func:`exponential_capacity`
    ``exp(alpha D)`` with ``alpha = I(1 - 2 rho) / 2`` for ``F(x) = exp(x)``
    (Demircigil et al., 2017), ``rho`` the fraction of flipped bits and
    ``I(x) = ((1 + x) log(1 + x) + (1 - x) log(1 - x)) / 2``; ``rho = 0`` gives
    ``2^(D/2)``.
"""

import inspect
import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from skam.datasets import flip_bits, occlude

CORRUPTIONS = ("flip", "occlude", "noise")

_HEBBIAN_ALPHA = 0.138


# ------------------------------------------------------------------ theory
@validate_params(
    {"n_features": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
def hopfield_capacity(n_features):
    """Capacity ``0.138 D`` of the classical (Hebbian) Hopfield network.

    Parameters
    ----------
    n_features : int
        Number of neurons ``D``.

    Returns
    -------
    capacity : float
        Number of random +-1 patterns beyond which retrieval collapses
        (Amit, Gutfreund and Sompolinsky, 1985).

    Examples
    --------
    >>> from skam.capacity import hopfield_capacity
    >>> round(hopfield_capacity(100), 1)
    13.8
    """
    return _HEBBIAN_ALPHA * n_features


@validate_params(
    {
        "n_features": [Interval(Integral, 2, None, closed="left")],
        "degree": [Interval(Integral, 2, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def polynomial_capacity(n_features, degree):
    """Capacity ``D^(n-1) / (2 (2n-3)!! log D)`` of the polynomial Dense AM.

    The number of random +-1 patterns below which all of them are fixed
    points with high probability for ``F(x) = x^n`` (Krotov and Hopfield,
    2016; the tutorial's Section 2.1 with the tolerance ``gamma^2 = 2 log D``).

    Parameters
    ----------
    n_features : int
        Number of neurons ``D`` (at least 2).
    degree : int
        Degree ``n`` of the separation function (at least 2).

    Returns
    -------
    capacity : float

    Examples
    --------
    >>> from skam.capacity import polynomial_capacity
    >>> round(polynomial_capacity(100, 3))
    362
    """
    log_k = (degree - 1) * math.log(n_features) - math.log(
        2.0 * _double_factorial(2 * degree - 3) * math.log(n_features)
    )
    return _checked_exp(log_k, "polynomial_capacity")


@validate_params(
    {
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "flip_fraction": [Interval(Real, 0, 0.5, closed="left")],
        "log": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def exponential_capacity(n_features, flip_fraction=0.0, *, log=False):
    """Capacity ``exp(alpha D)`` of the exponential Dense AM.

    For ``F(x) = exp(x)``, queries with a fraction ``rho`` of flipped bits
    are retrieved with high probability while ``K < exp(alpha D)``,
    ``alpha = I(1 - 2 rho) / 2`` and
    ``I(x) = ((1 + x) log(1 + x) + (1 - x) log(1 - x)) / 2`` (Demircigil
    et al., 2017). ``rho = 0`` gives ``2^(D/2)``, the square root of the
    number of states.

    Parameters
    ----------
    n_features : int
        Number of neurons ``D``.
    flip_fraction : float in [0, 0.5), default=0.0
        Fraction ``rho`` of flipped bits in the queries.
    log : bool, default=False
        Return ``log K`` (never overflows) instead of ``K``.

    Returns
    -------
    capacity : float
        ``K`` (or ``log K``). Raises ``OverflowError`` when ``K`` exceeds
        the largest float; pass ``log=True`` then.

    Examples
    --------
    >>> from skam.capacity import exponential_capacity
    >>> exponential_capacity(20)
    1024.0
    >>> round(exponential_capacity(100, 0.1, log=True), 2)
    18.4
    """
    x = 1.0 - 2.0 * flip_fraction
    info = 0.5 * (
        (1 + x) * math.log(1 + x) + ((1 - x) * math.log(1 - x) if x < 1 else 0)
    )
    log_k = 0.5 * info * n_features
    return log_k if log else _checked_exp(log_k, "exponential_capacity")


def _double_factorial(k):
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def _checked_exp(log_k, name):
    if log_k > math.log(np.finfo(np.float64).max):
        raise OverflowError(
            f"{name}: the capacity exp({log_k:.1f}) exceeds the largest float"
            + ("; pass log=True." if name == "exponential_capacity" else ".")
        )
    return math.exp(log_k)


# ------------------------------------------------------------ measurements
_MEASURE_PARAMS = {
    "corruption": [StrOptions(set(CORRUPTIONS))],
    "level": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
}


@validate_params(
    {
        "model": [object],
        "patterns": ["array-like", None],
        "n_queries": [Interval(Integral, 1, None, closed="left"), None],
        **_MEASURE_PARAMS,
    },
    prefer_skip_nested_validation=True,
)
def recall_fraction(
    model,
    patterns=None,
    *,
    corruption="flip",
    level=0.1,
    n_queries=None,
    random_state=None,
):
    """Fixed points and exact recall of the stored patterns of a fitted memory.

    Parameters
    ----------
    model : fitted estimator with ``transform``
        A memory (:class:`~skam.DenseAM`, :class:`~skam.DiscreteDenseAM`,
        :class:`~skam.HopfieldNetwork`, ...).
    patterns : array-like of shape (n_patterns, n_features), default=None
        The patterns it stored; None uses ``model.memories_``. A state
        recalls a +-1 pattern when its sign matches in every bit (``> 0`` is
        +1), any other pattern when every coordinate is within ``1e-3``
        times the largest ``|pattern|``.
    corruption : {"flip", "occlude", "noise"}, default="flip"
        ``"flip"`` flips ``round(level * D)`` random bits of each query,
        ``"occlude"`` sets its last ``level`` fraction of bits to -1 (and
        clamps the visible ones when ``transform`` takes a ``clamp_mask``),
        ``"noise"`` adds Gaussian noise of standard deviation ``level``.
    level : float, default=0.1
        Strength of the corruption (see ``corruption``).
    n_queries : int, default=None
        Patterns tested (drawn without replacement); None tests all.
    random_state : int, RandomState instance or None, default=None
        Seed of the sample and of the corruption.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``fixed_points``: fraction of the tested patterns that the dynamics
        leaves in place (recalled from themselves); ``recalled``: fraction of
        their corrupted versions that recall them; ``n_queries``: patterns
        tested.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import HopfieldNetwork
    >>> from skam.capacity import recall_fraction
    >>> patterns = np.sign(np.random.RandomState(0).randn(5, 100))
    >>> net = HopfieldNetwork(random_state=0).fit(patterns)
    >>> r = recall_fraction(net, corruption="flip", level=0.1, random_state=0)
    >>> float(r.fixed_points), float(r.recalled)
    (1.0, 1.0)
    """
    rng = check_random_state(random_state)
    P = np.asarray(model.memories_ if patterns is None else patterns, dtype=float)
    if n_queries is not None and n_queries < P.shape[0]:
        P = P[np.sort(rng.choice(P.shape[0], n_queries, replace=False))]
    stable = _exact(_transform(model, P, None), P)
    queries, clamp = _corrupt(P, corruption, level, rng)
    recalled = _exact(_transform(model, queries, clamp), P)
    return Bunch(
        fixed_points=float(stable.mean()),
        recalled=float(recalled.mean()),
        n_queries=int(P.shape[0]),
    )


@validate_params(
    {
        "estimator": [object],
        "n_memories": ["array-like"],
        "n_features": [Interval(Integral, 1, None, closed="left"), None],
        "patterns": ["array-like", None],
        "n_queries": [Interval(Integral, 1, None, closed="left")],
        **_MEASURE_PARAMS,
    },
    prefer_skip_nested_validation=True,
)
def capacity_curve(
    estimator,
    n_memories,
    *,
    n_features=None,
    patterns=None,
    corruption="flip",
    level=0.1,
    n_queries=100,
    random_state=None,
):
    """Fixed points and exact recall as a function of the number of patterns.

    For each ``K`` in ``n_memories`` the memory stores the first ``K``
    patterns (random +-1 patterns unless given) and :func:`recall_fraction`
    measures it on ``n_queries`` of them.

    Parameters
    ----------
    estimator : estimator or callable
        An unfitted estimator (cloned for every ``K``) or a function
        ``K -> estimator``.
    n_memories : array-like of int
        Numbers of stored patterns ``K`` (increasing).
    n_features : int, default=None
        ``D`` of the random patterns; required when ``patterns`` is None.
    patterns : array-like of shape (n_patterns, n_features), default=None
        Patterns to store (at least ``max(n_memories)`` rows); None draws
        random +-1 patterns.
    corruption : {"flip", "occlude", "noise"}, default="flip"
        See :func:`recall_fraction`.
    level : float, default=0.1
        See :func:`recall_fraction`.
    n_queries : int, default=100
        Stored patterns tested at each ``K`` (all of them when fewer).
    random_state : int, RandomState instance or None, default=None
        Seed of the patterns, the queries and their corruption.

    Returns
    -------
    curve : :class:`~sklearn.utils.Bunch`
        ``n_memories`` (m,), ``fixed_points`` (m,), ``recalled`` (m,) and
        ``k50``: the ``K`` at which half the corrupted queries are recalled
        (:func:`capacity_at`; nan when the curve never crosses one half).

    Examples
    --------
    >>> from skam import HopfieldNetwork
    >>> from skam.capacity import capacity_curve, hopfield_capacity
    >>> curve = capacity_curve(
    ...     HopfieldNetwork(random_state=0), [2, 8, 32], n_features=64,
    ...     random_state=0,
    ... )
    >>> [float(f) for f in curve.recalled]
    [1.0, 1.0, 0.0]
    >>> 8 < curve.k50 < 32 and hopfield_capacity(64) < 32
    True
    """
    rng = check_random_state(random_state)
    grid = np.asarray(n_memories, dtype=np.int64)
    if grid.ndim != 1 or grid.size == 0 or np.any(grid < 1):
        raise ValueError(
            "n_memories must be a non-empty 1-D list of positive integers, "
            f"got {n_memories!r}."
        )
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"n_memories must be increasing, got {n_memories!r}.")
    K_max = int(grid[-1])
    if patterns is None:
        if n_features is None:
            raise ValueError("n_features is required when patterns is None.")
        P = np.where(rng.rand(K_max, n_features) > 0.5, 1.0, -1.0)
    else:
        P = np.asarray(patterns, dtype=float)
        if P.ndim != 2 or P.shape[0] < K_max:
            raise ValueError(
                f"patterns must be 2-D with at least max(n_memories)={K_max} rows, "
                f"got shape {P.shape}."
            )
    make = estimator if callable(estimator) and not hasattr(estimator, "fit") else None
    fixed, recalled = [], []
    for K in grid.tolist():
        model = make(K) if make is not None else clone(estimator)
        stored = P[:K]
        model.fit(stored)
        r = recall_fraction(
            model,
            stored,
            corruption=corruption,
            level=level,
            n_queries=min(n_queries, K),
            random_state=rng,
        )
        fixed.append(r.fixed_points)
        recalled.append(r.recalled)
    fixed, recalled = np.asarray(fixed), np.asarray(recalled)
    return Bunch(
        n_memories=grid,
        fixed_points=fixed,
        recalled=recalled,
        k50=capacity_at(grid, recalled),
    )


def capacity_at(n_memories, fractions, threshold=0.5):
    """The ``K`` at which a recall curve first falls below ``threshold``.

    Interpolated linearly in ``log K`` between the last grid point at or
    above the threshold and the next one.

    Parameters
    ----------
    n_memories : array-like of shape (m,)
        Increasing numbers of stored patterns.
    fractions : array-like of shape (m,)
        Fraction recalled at each of them.
    threshold : float, default=0.5
        The level crossed.

    Returns
    -------
    k : float
        nan when the curve starts below the threshold or never falls below it.

    Examples
    --------
    >>> from skam.capacity import capacity_at
    >>> float(capacity_at([10, 100, 1000], [1.0, 0.75, 0.25]))
    316.22776601683796
    """
    K = np.asarray(n_memories, dtype=float)
    f = np.asarray(fractions, dtype=float)
    below = np.flatnonzero(f < threshold)
    if below.size == 0 or below[0] == 0:
        return math.nan
    j = below[0]
    lo, hi = math.log(K[j - 1]), math.log(K[j])
    t = (f[j - 1] - threshold) / (f[j - 1] - f[j])
    return math.exp(lo + t * (hi - lo))


# ----------------------------------------------------------------- helpers
def _exact(states, patterns):
    """Per row: +-1 patterns by sign in every bit, others within 1e-3 of scale."""
    states = np.asarray(states, dtype=float)
    if np.all(np.abs(patterns) == 1):
        return np.all(np.where(states > 0, 1.0, -1.0) == patterns, axis=1)
    atol = 1e-3 * max(float(np.max(np.abs(patterns))), 1e-300)
    return np.all(np.abs(states - patterns) <= atol, axis=1)


def _transform(model, X, clamp):
    if (
        clamp is not None
        and "clamp_mask" in inspect.signature(model.transform).parameters
    ):
        return np.asarray(model.transform(X, clamp_mask=clamp))
    return np.asarray(model.transform(X))


def _corrupt(P, corruption, level, rng):
    if corruption == "flip":
        if level > 1:
            raise ValueError(
                f"level must be a fraction in [0, 1] for flips, got {level}."
            )
        return flip_bits(P, level, random_state=rng), None
    if corruption == "occlude":
        if level > 1:
            raise ValueError(
                f"level must be a fraction in [0, 1] for occlusion, got {level}."
            )
        return occlude(P, fraction=level)
    return P + level * rng.randn(*P.shape), None
