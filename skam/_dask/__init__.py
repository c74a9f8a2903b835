"""Dask glue of skam: dask arrays in, lazy dask arrays out; sharded memories.

Importing this package does **not** import Dask (``import skam`` imports it
to decorate the estimators): the modules that need Dask,
:mod:`skam._dask._post_fit` and :mod:`skam._dask._sharded`, are imported on
the first call that receives a dask array or holds sharded memories.

:func:`dask_dispatch` decorates an estimator class. Its post-fit methods
(``transform``, ``predict``, ``predict_proba``, ``energy``, ...) then accept a
dask array and return a lazy dask array (NumPy in stays NumPy out); ``fit``
on a dask array keeps the memories sharded on the workers where the class
supports it (``sharded_fit``), and raises a ``TypeError`` saying what to do
where it does not.
"""

import functools
import inspect
import types

# Per-sample methods that get "dask in, dask out" (when the class has them).
POST_FIT_METHODS = (
    "transform",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "energy",
    "score_samples",
    "descend",
    "contract",
    "hidden_activations",
    "energy_terms",
    "token_embeddings",
)
FIT_METHODS = ("fit", "partial_fit")
# Methods without a sharded version (they need the memories in memory).
UNSHARDED_METHODS = ()
SAMPLE_METHODS = ("sample",)


def is_dask_collection(X):
    """True for a Dask collection, tested without importing Dask."""
    module = type(X).__module__ or ""
    return module.split(".")[0] == "dask" and hasattr(X, "__dask_graph__")


def is_sharded(estimator):
    """True when ``estimator`` holds memories sharded on Dask workers."""
    return getattr(estimator, "_shards", None) is not None


def _post_fit(method):
    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if is_sharded(self):
            from skam._dask._sharded import call_sharded

            return call_sharded(self, method.__name__, X, *args, **kwargs)
        if is_dask_collection(X):
            from skam._dask._post_fit import call_by_blocks

            return call_by_blocks(self, method.__name__, X, *args, **kwargs)
        return method(self, X, *args, **kwargs)

    wrapper._skam_dask = True
    return wrapper


def _needs_local(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if is_sharded(self):
            raise TypeError(
                f"{type(self).__name__}.{method.__name__}() needs the memories in "
                "memory and this model holds them sharded on Dask workers; call "
                "to_local() first."
            )
        return method(self, *args, **kwargs)

    wrapper._skam_dask = True
    return wrapper


def _sample(method):
    @functools.wraps(method)
    def wrapper(self, n_samples=1, **kwargs):
        if (
            is_sharded(self)
            or is_dask_collection(kwargs.get("X"))
            or kwargs.get("chunks") is not None
        ):
            from skam._dask._sample import sample

            return sample(self, method.__name__, n_samples, kwargs)
        return method(self, n_samples, **kwargs)

    wrapper._skam_dask = True
    return wrapper


def _fit(method, sharded_fit):
    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if is_dask_collection(X):
            if sharded_fit is None:
                raise TypeError(
                    f"{type(self).__name__}.{method.__name__}() does not keep a "
                    "model sharded on Dask workers yet; pass X.compute() (a "
                    "NumPy array) to fit in memory. Its post-fit methods accept "
                    "dask arrays."
                )
            from skam._dask._sharded import fit_sharded

            return fit_sharded(self, method.__name__, sharded_fit, X, *args, **kwargs)
        if is_sharded(self) and method.__name__ == "partial_fit":
            raise TypeError(
                f"{type(self).__name__} holds sharded memories; partial_fit on "
                "NumPy input would mix local and sharded memories. Call "
                "to_local() first, or pass a dask array to fit."
            )
        if method.__name__ == "fit" and is_sharded(self):
            self._shards = None
        return method(self, X, *args, **kwargs)

    wrapper._skam_dask = True
    return wrapper


def _to_local(how):
    def to_local(self):
        """Gather memories sharded on Dask workers into NumPy attributes.

        A model fitted on a dask array keeps its memories on the workers;
        this brings them into the estimator (in place), after which it
        pickles and runs without a cluster. A model held in memory is
        returned as it is.

        Returns
        -------
        self : object
            The estimator, its memories held in memory.
        """
        if is_sharded(self):
            from skam._dask._sharded import to_local as gather

            gather(self, how)
        return self

    return to_local


def _getstate(getstate):
    @functools.wraps(getstate)
    def __getstate__(self):
        if is_sharded(self) and self._shards.futures:
            raise TypeError(
                f"This {type(self).__name__} holds memories sharded on Dask "
                "workers (Futures, which do not outlive the cluster). Call "
                "to_local() before pickling it, or refit on the loaded data."
            )
        return getstate(self)

    return __getstate__


def _wrap_method(cls, name, wrap):
    """Wrap ``<name>`` once, where skam defines it; keeps ``available_if``.

    A method inherited from a skam base class is wrapped on that class (its
    subclasses share the wrapper); one inherited from scikit-learn is wrapped
    on ``cls`` (scikit-learn's classes are never modified).
    """
    owner = next((k for k in cls.__mro__ if name in vars(k)), None)
    if owner is None:
        return
    if not (owner.__module__ or "").startswith("skam"):
        owner = cls
    raw = inspect.getattr_static(owner, name)
    if isinstance(raw, staticmethod | classmethod):
        return
    if isinstance(raw, types.FunctionType):
        if not getattr(raw, "_skam_dask", False):
            setattr(owner, name, wrap(raw))
        return
    inner = getattr(raw, "fn", None)  # sklearn's available_if descriptor
    if isinstance(inner, types.FunctionType) and not getattr(
        inner, "_skam_dask", False
    ):
        raw.fn = wrap(inner)


def dask_dispatch(sharded_fit=None, dask_fit=None):
    """Class decorator: route dask input (and sharded models) to skam._dask.

    Parameters
    ----------
    sharded_fit : str or None
        Name of the function of :mod:`skam._dask._sharded` that fits this
        class on a dask array keeping the memories sharded (the class gains
        ``to_local()``).
    dask_fit : str or None
        Name of a fit on a dask array whose fitted model is small and held in
        memory (the data-sized passes run on the workers, e.g. the
        random-feature memory's ``T`` as a tree sum). With neither, ``fit``
        on a dask array is a ``TypeError``.
    """

    def decorate(cls):
        own_score = ("score",) if "score" in vars(cls) else ()
        for names, wrap in (
            (POST_FIT_METHODS, _post_fit),
            (FIT_METHODS, lambda m: _fit(m, sharded_fit or dask_fit)),
            (SAMPLE_METHODS, _sample),
            (UNSHARDED_METHODS + own_score, _needs_local),
        ):
            for name in names:
                _wrap_method(cls, name, wrap)
        if sharded_fit is not None:
            cls.to_local = _to_local(sharded_fit)
            cls.__getstate__ = _getstate(cls.__getstate__)
        return cls

    return decorate
