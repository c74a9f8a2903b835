"""Shared parameter constraints, argument checks and the ``beta`` heuristics.

Written once and reused by every estimator, so that a parameter means and reads
the same everywhere (see also :mod:`skam._docstrings`).
"""

import math
from numbers import Integral, Real

import numpy as np
from array_api_compat import array_namespace
from sklearn import config_context
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, validate_data

from skam._backend import is_non_numpy_array, resolve_backend, to_numpy
from skam._energy import SEPARATIONS, SIMILARITIES, EnergySpec

BACKEND_CONSTRAINT = [
    StrOptions({"numpy", "cupy"}),
    Hidden(StrOptions({"array_api_strict"})),
]

# Parameters of the energy and of the descent, shared by every estimator.
ENERGY_CONSTRAINTS = {
    "separation": [StrOptions(set(SEPARATIONS))],
    "similarity": [StrOptions(set(SIMILARITIES))],
    "beta": [StrOptions({"scale"}), Interval(Real, 0, None, closed="neither")],
    "degree": [Interval(Integral, 1, None, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="left")],
}
DESCENT_CONSTRAINTS = {
    "step_size": [Interval(Real, 0, None, closed="neither")],
    "max_iter": [Interval(Integral, 0, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
}


def validate_X(estimator, X, *, reset, method, **check_params):
    """``validate_data`` for NumPy and for array-API input (CuPy, strict...).

    Non-NumPy arrays are validated in their own namespace (scikit-learn's array
    API mode is switched on locally). Floating dtypes are kept (float32 stays
    float32); other dtypes become float64. NaN/inf, empty input, non-2D input
    and a wrong number of features raise ``ValueError``.
    """
    _check_fitted_namespace(estimator, X, method, reset)
    if is_non_numpy_array(X):
        xp = array_namespace(X)
        with config_context(array_api_dispatch=True):
            return validate_data(
                estimator,
                X,
                reset=reset,
                dtype=[xp.float64, xp.float32],
                **check_params,
            )
    return validate_data(
        estimator, X, reset=reset, dtype=[np.float64, np.float32], **check_params
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


def validate_sample_weight(sample_weight, X, backend):
    """Validated non-negative weights in X's namespace (None stays None)."""
    if sample_weight is None:
        return None
    if backend.offload or backend.is_numpy:
        sw = _check_sample_weight(to_numpy(sample_weight), to_numpy(X))
        return sw
    xp = backend.xp
    if is_non_numpy_array(sample_weight):
        sw = xp.astype(sample_weight, X.dtype)
    else:
        sw = xp.asarray(
            np.asarray(sample_weight, dtype=np.float64), device=backend.device
        )
        sw = xp.astype(sw, X.dtype)
    if sw.ndim == 0:
        sw = xp.full((X.shape[0],), sw, dtype=X.dtype, device=backend.device)
    if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
        raise ValueError(
            f"sample_weight.shape == {tuple(sw.shape)}, expected ({X.shape[0]},)!"
        )
    if bool(xp.any(sw < 0)):
        raise ValueError("Negative values in data passed to sample_weight")
    if not bool(xp.any(sw > 0)):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sw


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


def resolve_beta(beta, X, *, rule="separation"):
    """Turn ``beta`` (a float or ``"scale"``) into a positive float.

    The ``"scale"`` rules are functions of the training data only. With ``K``
    memories and ``r2`` the median squared distance from a memory to its
    nearest other memory (estimated from at most 1000 evenly spaced memories
    against all of them):

    * ``rule="separation"`` (LSE retrieval, :class:`~skam.DenseAM`):
      ``beta = 4 * log(K) / r2``. At a stored pattern, its nearest rival then
      weighs about ``1/K**2`` of it in the softmax, so every memory is (close
      to) a fixed point while basins stay as wide as the data allows.
    * ``rule="support"`` (compact kernels, ``"lsr"`` and ``"rectified_poly"``):
      ``beta = 2 / r2``, so the support of each memory (radius
      ``sqrt(2/beta)``) reaches its typical nearest neighbour.
    * ``rule="overlap"`` (the polynomials with the dot product):
      ``beta = n_features / max_mu ||xi_mu||^2``, the overlap counted in bits
      (``beta = 1`` for +-1 patterns, the tutorial's raw overlaps): ``z``
      spans ``[-D, D]`` over the ball of the memories, so the constant of
      ``(1 + z)^n`` does not swamp the signal (with ``1 / ||xi||^2`` it
      did, and the memory stored about 5 random patterns at any D).
    * ``rule="variance"`` (kernel smoothing): the Gaussian kernel of
      :class:`sklearn.svm.SVC`'s ``gamma="scale"``, ``beta = 2 / (n_features *
      X.var())`` (``gamma = beta / 2``).

    Degenerate data (one memory, all identical) falls back to ``beta = 1``.
    """
    if not isinstance(beta, str):
        return float(beta)
    Xh = to_numpy(X).astype(np.float64, copy=False)
    if rule == "variance":
        var = float(Xh.var())
        return 2.0 / (Xh.shape[1] * var) if var > 0 else 1.0
    if rule == "overlap":
        top = float(np.max(np.sum(Xh * Xh, axis=1)))
        return Xh.shape[1] / top if top > 0 else 1.0
    K = Xh.shape[0]
    if K < 2:
        return 1.0
    r2 = median_nearest_sq_distance(Xh)
    if not r2 > 0:
        return 1.0
    if rule == "support":
        return 2.0 / r2
    return 4.0 * math.log(K) / r2


def scale_rule(separation, similarity):
    """The ``beta="scale"`` rule of a DenseAM energy (see :func:`resolve_beta`)."""
    if separation == "lse":
        return "separation"
    if separation in ("poly", "rectified_poly") and similarity == "dot":
        return "overlap"
    return "support"


def median_nearest_sq_distance(X, *, max_queries=1000):
    """Median squared distance from a memory to its nearest *other* memory."""
    from sklearn.metrics import pairwise_distances_chunked

    K = X.shape[0]
    idx = np.unique(np.linspace(0, K - 1, min(K, max_queries)).astype(np.intp))

    def reduce(chunk, start):
        rows = idx[start : start + chunk.shape[0]]
        chunk = chunk.copy()
        chunk[np.arange(chunk.shape[0]), rows] = np.inf
        # exclude exact duplicates: distance 0 says nothing about separation
        chunk[chunk <= 0] = np.inf
        return chunk.min(axis=1)

    nearest = np.concatenate(
        list(
            pairwise_distances_chunked(
                X[idx], X, reduce_func=reduce, metric="sqeuclidean"
            )
        )
    )
    nearest = nearest[np.isfinite(nearest)]
    return float(np.median(nearest)) if nearest.size else 0.0


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
