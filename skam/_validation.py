"""Shared parameter constraints and argument checks.

Written once and reused by every estimator, so that a parameter means and reads
the same everywhere (see also :mod:`skam._docstrings`).
"""

import math
from numbers import Integral, Real

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn import config_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skam._backend import is_non_numpy_array, resolve_backend, to_numpy
from skam._energy import SIMILARITIES, EnergySpec
from skam._separations import SEPARATION_NAMES

BACKEND_CONSTRAINT = [
    StrOptions({"numpy", "cupy"}),
    Hidden(StrOptions({"array_api_strict"})),
]


class Bounded(Interval):
    """An :class:`~sklearn.utils._param_validation.Interval` that says why.

    The reason is appended to scikit-learn's message, e.g. "must be a float in
    the range (0, 2) (the descent is unstable for step_size >= 2)".
    """

    def __init__(self, type, left, right, *, closed, reason):
        super().__init__(type, left, right, closed=closed)
        self.reason = reason

    def __str__(self):
        return f"{super().__str__()} ({self.reason})"


# Finite positive reals (scikit-learn's Interval with right=None accepts inf).
POSITIVE = Interval(Real, 0, math.inf, closed="neither")
NON_NEGATIVE = Interval(Real, 0, math.inf, closed="left")
# Gradient descent on an energy whose Hessian is at most the identity (LSE,
# and the mean-shift steps of the other separations) is stable for steps < 2.
STABLE_STEP = Bounded(
    Real,
    0,
    2,
    closed="neither",
    reason="v <- v - step_size * grad E diverges for step_size >= 2: the "
    "energy's curvature is at most 1",
)
# Integer degrees beyond 2**53 are not exact in floating point (their parity,
# which decides the sign of (1 + z)**n, is lost).
MAX_DEGREE = 2**53

# Parameters of the energy and of the descent, shared by every estimator.
ENERGY_CONSTRAINTS = {
    # the live set of registered names: a new separation is accepted at once
    "separation": [StrOptions(SEPARATION_NAMES)],
    "similarity": [StrOptions(set(SIMILARITIES))],
    "beta": [StrOptions({"scale"}), POSITIVE],
    "degree": [
        Bounded(
            Integral,
            1,
            MAX_DEGREE,
            closed="both",
            reason="larger degrees are not exact in floating point",
        )
    ],
    "epsilon": [NON_NEGATIVE],
}
DESCENT_CONSTRAINTS = {
    "step_size": [STABLE_STEP],
    "max_iter": [Interval(Integral, 0, None, closed="left")],
    "tol": [NON_NEGATIVE],
}


def check_beta_range(
    beta, X, *, extra_scale=0.0, extra_features=0, extra_name="label_scale"
):
    """Raise if ``beta`` makes the energy of data like ``X`` overflow its dtype.

    The engine computes ``beta * S`` (``S`` up to ``2 * d * max|x|**2``) and
    ``log(K) / beta``; both must be finite in the dtype of ``X``.
    ``extra_scale``/``extra_features`` account for coordinates appended to
    the data (the label neurons of the supervised estimators).

    Parameters
    ----------
    beta : float
    X : array of shape (n_samples, n_features)
        Validated training data (any namespace).
    extra_scale : float
    extra_features : int
    extra_name : str
        The parameter that sets ``extra_scale`` (named when it is the cause).
    """
    xp = array_namespace(X)
    if 0 in X.shape:
        return
    top = max(float(xp.max(X)), -float(xp.min(X)), float(extra_scale))
    d = X.shape[1] + int(extra_features)
    log_max = math.log(float(xp.finfo(X.dtype).max)) - 2.0
    log_beta = math.log(beta)
    spread = math.log(2.0 * d) + 2.0 * math.log(top) if top > 0 else -math.inf
    dtype = str(X.dtype).rsplit(".", 1)[-1].strip("'>")
    if log_beta + spread > log_max:
        if extra_scale > 0 and top == float(extra_scale):
            raise ValueError(
                f"{extra_name}={extra_scale:.3g} is too large: beta={beta:.3g} "
                f"times the squared norms of the memories (up to "
                f"{2.0 * d * top * top:.3g}) overflows {dtype}. Use a smaller "
                f"{extra_name}."
            )
        raise ValueError(
            f"beta={beta:.3g} is too large for this data: beta times its squared "
            f"norms (up to {2.0 * d * top * top:.3g}) overflows {dtype}. Use a "
            "smaller beta or rescale X."
        )
    if math.log(math.log(max(X.shape[0], 2)) + 1.0) - log_beta > log_max:
        raise ValueError(
            f"beta={beta:.3g} is too small: energies scale like log(n_samples) / "
            f"beta, which overflows {dtype}. Use a larger beta."
        )


def fit_seed(random_state):
    """An int seed drawn once, at fit, from ``random_state``.

    Methods that draw random numbers after ``fit`` (HopfieldNetwork's update
    order) seed a fresh generator from it, so that repeated calls on one
    fitted model agree -- also with ``random_state=None``, where the seed
    itself comes from NumPy's global generator (so two fits differ).
    """
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def validate_X(estimator, X, *, reset, method, bounded=True, **check_params):
    """``validate_data`` for NumPy and for array-API input (CuPy, strict...).

    Non-NumPy arrays are validated in their own namespace (scikit-learn's array
    API mode is switched on locally). Floating dtypes are kept (float32 stays
    float32); other dtypes become float64. NaN/inf, empty input, non-2D input
    and a wrong number of features raise ``ValueError``; so do (with
    ``bounded``) values so large that squared distances between samples
    overflow the dtype.
    """
    _check_fitted_namespace(estimator, X, method, reset)
    top = None
    if not (reset or check_params):
        top = _plain_fitted_input(estimator, X)
    if top is not None:
        pass  # every check validate_data makes, passed; see _plain_fitted_input
    elif is_non_numpy_array(X):
        xp = array_namespace(X)
        with config_context(array_api_dispatch=True):
            X = validate_data(
                estimator,
                X,
                reset=reset,
                dtype=[xp.float64, xp.float32],
                **check_params,
            )
    else:
        X = validate_data(
            estimator, X, reset=reset, dtype=[np.float64, np.float32], **check_params
        )
    if bounded:
        check_magnitude(X, "X", top=top)
    check_queries = getattr(estimator, "_check_query_range", None)
    if not reset and check_queries is not None:
        check_queries(X, top=top)
    return X


def check_query_range(beta, X, memory_top, top=None):
    """Raise if ``beta`` times the similarities of ``X`` to the memories overflows.

    The engine computes ``beta * S`` of queries against memories; its terms
    (``beta v.xi``, ``beta/2 ||v||^2``, ``beta/2 ||xi||^2``) stay within
    ``beta * 2 d max(max|X|, max|xi|)^2``, the bound of
    :func:`check_beta_range` at fit. Queries far outside the memories at a
    huge ``beta`` would give an infinite (or NaN) energy; they raise here.

    Parameters
    ----------
    beta : float
    X : array of shape (n_samples, n_features)
        Validated queries.
    memory_top : float
        ``max |xi|`` over the memories.
    top : float or None
        ``max |X|`` when the caller has it (:func:`_plain_fitted_input`).
    """
    if 0 in X.shape:
        return
    if top is None:
        xp = array_namespace(X)
        top = max(float(xp.max(X)), -float(xp.min(X)))
    top = max(top, float(memory_top))
    if not top > 0:
        return
    log_reach = math.log(2.0 * X.shape[1]) + 2.0 * math.log(top)
    largest = _LARGEST.get(X.dtype) if type(X) is np.ndarray else None
    if largest is None:
        largest = float(array_namespace(X).finfo(X.dtype).max)
    log_max = math.log(largest) - 2.0
    if math.log(beta) + log_reach > log_max:
        dtype = str(X.dtype).rsplit(".", 1)[-1].strip("'>")
        raise ValueError(
            f"X lies too far from the memories for beta={beta:.3g}: beta times "
            f"the similarities of X to the memories (up to exp({log_reach:.4g})) "
            f"overflows {dtype}, so the energy of these states is not finite. "
            "Rescale X or use a smaller beta."
        )


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
_LARGEST = {dtype: float(np.finfo(dtype).max) for dtype in _FLOATS}


def _plain_fitted_input(estimator, X):
    """``max |X|`` when ``validate_data(estimator, X, reset=False)`` would return X as is.

    The common case of a prediction, checked in a few microseconds instead
    of the few hundred ``validate_data`` spends on it (as much as a one-row
    prediction's arithmetic): a 2-D, non-empty, finite NumPy array (not a
    subclass) of float32 or float64 with as many columns as seen in ``fit``,
    for an estimator fitted without feature names (an array has none, so
    the feature-name check has nothing to compare). Returns None otherwise:
    anything else, errors included, goes through ``validate_data``. The
    largest magnitude (two reductions, which also rule out NaN and inf:
    both propagate NaN) serves the magnitude checks that follow.
    """
    if not (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in _FLOATS
        and X.size > 0
        and X.shape[1] == getattr(estimator, "n_features_in_", None)
        and not hasattr(estimator, "feature_names_in_")
    ):
        return None
    top = max(float(X.max()), -float(X.min()))
    return top if math.isfinite(top) else None


def check_magnitude(X, name="X", top=None):
    """Raise if squared distances between rows of ``X`` overflow its dtype.

    ``top``: ``max |X|`` when the caller has it.
    """
    if not hasattr(X, "shape") or len(X.shape) != 2 or 0 in X.shape:
        return
    if top is not None and type(X) is np.ndarray:
        largest = _LARGEST.get(X.dtype) or float(np.finfo(X.dtype).max)
    elif type(X) is np.ndarray:  # the common case, without namespace lookups
        top = max(float(X.max()), -float(X.min()))
        largest = _LARGEST.get(X.dtype) or float(np.finfo(X.dtype).max)
    else:
        xp = array_namespace(X)
        top = max(float(xp.max(X)), -float(xp.min(X)))
        largest = float(xp.finfo(X.dtype).max)
    limit = math.sqrt(largest / (4.0 * X.shape[1]))
    if top > limit:
        dtype = str(X.dtype).rsplit(".", 1)[-1].strip("'>")
        raise ValueError(
            f"{name} has values up to {top:.3g}: squared distances between "
            f"samples with {X.shape[1]} features overflow {dtype} above "
            f"{limit:.3g}. Rescale {name} (e.g. with StandardScaler) or use "
            "float64."
        )


def _check_fitted_namespace(estimator, X, method, reset=False):
    """Raise if ``X`` is not in the namespace the estimator was fitted in."""
    fitted_ns = getattr(estimator, "_fit_namespace", None)
    if fitted_ns is None or reset:
        return
    x_ns = _namespace_name(X)
    if x_ns != fitted_ns:
        raise ValueError(
            f"Inputs passed to {type(estimator).__name__}.{method}() must use the "
            f"same namespace as the data the estimator was fitted on: got {x_ns}, "
            f"fitted on {fitted_ns}."
        )


def _namespace_name(X):
    return array_namespace(X).__name__ if is_non_numpy_array(X) else "numpy"


def remember_namespace(estimator, X):
    """Record, privately, the namespace of the data seen by ``fit``."""
    estimator._fit_namespace = _namespace_name(X)


def validate_fit_input(estimator, X, **check_params):
    """The preamble of ``fit``: ``(X, backend)``.

    :func:`validate_X` with ``reset=True`` (``check_params`` passed on), the
    namespace of ``X`` recorded (:func:`remember_namespace`) and the
    :class:`~skam._backend.Backend` of the computation.
    """
    X = validate_X(estimator, X, reset=True, method="fit", **check_params)
    remember_namespace(estimator, X)
    return X, backend_for(estimator, X)


def validate_fitted_input(estimator, X, method, **check_params):
    """The preamble of a method of a fitted estimator: ``(X, backend)``.

    ``check_is_fitted``, then :func:`validate_X` without reset (errors name
    ``method``) and the :class:`~skam._backend.Backend` of the computation.
    """
    if "_prepared_cache" not in estimator.__dict__:  # built at the end of fit
        check_is_fitted(estimator)
    X = validate_X(estimator, X, reset=False, method=method, **check_params)
    return X, backend_for(estimator, X)


def validate_sample_weight(sample_weight, X, backend):
    """The one check of ``sample_weight``, for every estimator and namespace.

    Weights must be real, finite, non-negative and of positive (finite) sum;
    a scalar is broadcast to every sample, as in scikit-learn. Every error is
    a ``ValueError`` or ``TypeError`` naming ``sample_weight``. Weights are
    relative: skam's estimators and their ``beta="scale"`` rules do not change
    when every weight is multiplied by the same constant.

    Parameters
    ----------
    sample_weight : None, float or array-like of shape (n_samples,)
    X : array of shape (n_samples, n_features)
        The validated data (its namespace, device and float dtype are used).
    backend : Backend

    Returns
    -------
    sample_weight : None or array of shape (n_samples,)
        In the namespace and dtype of ``X`` (None stays None).
    """
    if sample_weight is None:
        return None
    n = X.shape[0]
    host = (
        to_numpy(sample_weight) if is_non_numpy_array(sample_weight) else sample_weight
    )
    try:
        host = np.asarray(host)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise TypeError(
            f"sample_weight must be a number or a 1-D array of numbers: {exc}"
        ) from exc
    if host.dtype.kind not in "biuf":
        raise TypeError(
            "sample_weight must be real numbers (bool, int or float), got dtype "
            f"{host.dtype}."
        )
    host = host.astype(np.float64)
    if host.ndim == 0:
        host = np.full(n, float(host))
    if host.shape != (n,):
        raise ValueError(
            f"sample_weight.shape == {host.shape}, expected ({n},) (one weight "
            "per sample of X)."
        )
    if not np.all(np.isfinite(host)):
        raise ValueError("sample_weight must be finite (it contains NaN or inf).")
    if np.any(host < 0):
        raise ValueError(
            f"sample_weight must be non-negative (got {float(host.min()):g})."
        )
    total = float(np.sum(host))
    if not total > 0:
        raise ValueError(
            "sample_weight must have a positive sum: all weights are zero."
        )
    if not math.isfinite(total):
        raise ValueError(
            "sample_weight sums to inf; weights are relative, divide them by "
            "their maximum."
        )
    xp = array_namespace(X)
    if is_non_numpy_array(X):
        return xp.astype(xp.asarray(host, device=array_device(X)), X.dtype)
    return host.astype(X.dtype, copy=False)


def append_sample_weight(stored, stored_weight, new, new_weight, xp):
    """Weights of the ``stored`` rows followed by those of the ``new`` rows.

    The one rule of every ``partial_fit`` that appends rows: None means
    "all ones" on that side, and the result is None when neither side is
    weighted (the fit stays unweighted). Otherwise an array in the dtype of
    ``stored_weight`` (of ``stored`` when that is None), on ``stored``'s
    device.
    """
    if stored_weight is None and new_weight is None:
        return None
    dtype = stored.dtype if stored_weight is None else stored_weight.dtype

    def ones(rows):
        return xp.ones((rows.shape[0],), dtype=dtype, device=array_device(stored))

    stored_weight = ones(stored) if stored_weight is None else stored_weight
    new_weight = ones(new) if new_weight is None else xp.astype(new_weight, dtype)
    return xp.concat([stored_weight, new_weight], axis=0)


def weight_unit(sample_weight):
    """The unit of the weights of an accumulating estimator: 1.0 or their mean.

    Estimators whose fitted state is a weighted *sum* (Hebbian couplings, the
    random-feature memory) divide the weights of every batch by the mean
    weight of their first batch, so that only relative weights matter and the
    sums stay finite for any positive scale (one weight of 1e308 included).
    """
    if sample_weight is None:
        return 1.0
    return float(np.mean(to_numpy(sample_weight), dtype=np.float64))


def validate_clamp_mask(clamp_mask, X, backend, *, argname="clamp_mask"):
    """Check a clamping mask and move it next to ``X``.

    Parameters
    ----------
    clamp_mask : None or bool array-like of shape (n_features,) or (n_samples, n_features)
        True marks a clamped (frozen) coordinate.
    X : array of shape (n_samples, n_features)
        Validated input (compute namespace).
    backend : Backend

    Returns
    -------
    mask : bool array in the compute namespace, or None
    """
    if clamp_mask is None:
        return None
    xp = backend.xp
    if is_non_numpy_array(clamp_mask):
        dtype_ok = clamp_mask.dtype == xp.bool
        mask = clamp_mask
    else:
        host = np.asarray(clamp_mask)
        dtype_ok = host.dtype == np.bool_
        mask = host
    if not dtype_ok:
        raise TypeError(
            f"{argname} must be a boolean array (True = clamped), got dtype "
            f"{mask.dtype}."
        )
    n, d = X.shape
    if tuple(mask.shape) not in ((d,), (n, d)):
        raise ValueError(
            f"{argname} must have shape ({d},) or ({n}, {d}) to match X, got "
            f"{tuple(mask.shape)}."
        )
    if not is_non_numpy_array(mask):
        mask = xp.asarray(mask, device=backend.device)
    return mask


def make_spec(estimator, beta):
    """:class:`EnergySpec` from an estimator's energy parameters."""
    return EnergySpec(
        separation=estimator.separation,
        # DenseAM resolves similarity="auto" at fit time
        similarity=getattr(estimator, "similarity_", estimator.similarity),
        beta=float(beta),
        degree=int(estimator.degree),
        epsilon=float(estimator.epsilon),
    )


def backend_for(estimator, X):
    """The :class:`~skam._backend.Backend` of a call with input ``X``."""
    return resolve_backend(X, getattr(estimator, "backend", "numpy"))
