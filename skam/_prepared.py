"""Per-fit caches: what every call of a fitted estimator reuses.

Preparing stored memories for the engine (moving them to the compute
namespace and dtype, their norms and log weights, the projection box) reads
all of them, which costs as much as a one-row prediction. Estimators build
it once, at ``fit``, and keep it in a private attribute that is keyed on
everything it depends on, checked on every call (so a refit, ``partial_fit``,
``set_params`` or assigned fitted attributes rebuild it) and never pickled
(it is rebuilt on the first call after loading).
"""

_ATTRIBUTE = "_prepared_cache"


def cached(estimator, key, sources, build):
    """``build()``, or its cached result when ``key`` and ``sources`` match.

    Parameters
    ----------
    estimator : object
        Holds the cache (one entry).
    key : tuple
        What the prepared object depends on by value (namespace, device,
        dtype, parameters); compared with ``==``.
    sources : tuple
        Fitted arrays it is built from, compared by identity (a new array
        rebuilds it, even one that reuses a freed array's ``id``: the cache
        holds them).
    build : callable
        Builds the prepared object.

    Returns
    -------
    prepared : object
    """
    entry = estimator.__dict__.get(_ATTRIBUTE)
    if (
        entry is not None
        and entry[0] == key
        and len(entry[1]) == len(sources)
        and all(a is b for a, b in zip(entry[1], sources, strict=True))
    ):
        return entry[2]
    prepared = build()
    setattr(estimator, _ATTRIBUTE, (key, sources, prepared))
    return prepared


class PreparedCacheMixin:
    """Leaves the cache of :func:`cached` out of pickles and copies."""

    def __getstate__(self):
        state = super().__getstate__()
        state.pop(_ATTRIBUTE, None)
        return state
