"""Class labels and targets of the supervised estimators: one policy for all.

* ``y`` is validated on the host (NumPy), whatever its namespace:
  :func:`validate_class_labels`.
* ``classes_`` are the sorted distinct labels; numeric ones are placed like
  every fitted attribute (:meth:`skam._backend.Backend.from_host`: NumPy for
  NumPy input, else the input's namespace and device), other labels (strings,
  objects) stay NumPy: :func:`encode_classes`.
* Predictions are ``classes_[index]`` in the same place: :func:`decode_classes`.
"""

import numpy as np
from array_api_compat import array_namespace
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_y, check_consistent_length

from skam._backend import is_non_numpy_array, to_numpy


def require_y(estimator, y):
    """Raise the error scikit-learn expects when a supervised fit gets no y."""
    if y is None:
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, but the target y "
            "is None."
        )


def host_y(y):
    """``y`` as a host array (a non-NumPy array-API array is copied)."""
    return to_numpy(y) if is_non_numpy_array(y) else y


def validate_class_labels(estimator, y, X):
    """Class labels as a 1-D host array with one label per row of ``X``.

    Parameters
    ----------
    estimator : estimator instance
        Named in the error messages.
    y : array-like of shape (n_samples,)
        Class labels, of any namespace.
    X : array of shape (n_samples, n_features)
        The validated features.

    Returns
    -------
    y : ndarray of shape (n_samples,)
        Finite classification targets (a column vector is flattened with a
        warning).
    """
    require_y(estimator, y)
    y = _check_y(host_y(y), estimator=estimator)
    check_consistent_length(X, y)
    check_classification_targets(y)
    return y


def encode_classes(y, backend, classes=None):
    """``classes_`` and the class index of each label.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Validated host labels.
    backend : Backend
        Of the fit.
    classes : array-like or None
        All the classes (``partial_fit``); None takes those of ``y``.

    Returns
    -------
    classes_ : array of shape (n_classes,)
        Sorted classes, placed by :func:`place_classes`.
    index : ndarray of int64, shape (n_samples,)
        Position of each label in ``classes_``.

    Raises
    ------
    ValueError
        If ``y`` holds a label that is not in ``classes``.
    """
    if classes is None:
        host, index = np.unique(y, return_inverse=True)
    else:
        host = np.unique(host_y(classes))
        unknown = np.setdiff1d(y, host)
        if unknown.size:
            raise ValueError(
                f"y contains classes {unknown.tolist()} that are not in classes_ "
                f"{host.tolist()}."
            )
        index = np.searchsorted(host, y)
    return place_classes(host, backend), index.astype(np.int64)


def place_classes(host_classes, backend):
    """Numeric classes placed like a fitted attribute; other labels stay NumPy."""
    if host_classes.dtype.kind in "biuf":
        return backend.from_host(host_classes)
    return host_classes


def decode_classes(classes_, index, backend):
    """``classes_[index]`` where the predictions belong (like ``classes_``).

    ``index`` is an integer array of the compute namespace.
    """
    if is_non_numpy_array(classes_):  # then index lives in the same namespace
        return array_namespace(classes_).take(classes_, index, axis=0)
    host = np.asarray(to_numpy(classes_))
    return place_classes(host[np.asarray(to_numpy(index))], backend)
