"""The random-feature classifier :class:`RandomFeatureAMClassifier`."""

import math
import warnings

import numpy as np
from array_api_compat import device as array_device
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from skam._backend import to_numpy
from skam._bochner import log_kernel_sums
from skam._chunking import itemsize, map_chunks
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._energy import log_softmax
from skam._random_feature_base import (
    KERNEL_CONSTRAINTS,
    KernelSumClippedWarning,
    RandomFeatureMixin,
    accumulate,
    resolve_kernel_beta,
)
from skam._targets import decode_classes, encode_classes, validate_class_labels
from skam._validation import (
    ENERGY_CONSTRAINTS,
    backend_for,
    remember_namespace,
    validate_sample_weight,
    validate_X,
)


@dask_dispatch()
@fill_doc
class RandomFeatureAMClassifier(ClassifierMixin, RandomFeatureMixin, BaseEstimator):
    """Classifier from one random-feature distributed memory per class.

    ``fit`` sums the random features of each class into its own distributed
    memory ``T_c = sum_{mu in c} w_mu phi(x_mu)``, so that
    ``s_c(x) = <phi(x), T_c>`` estimates the class kernel sum
    ``sum_{mu in c} exp(-beta/2 |x - x_mu|^2)``. The exact class posterior
    ``s_c / sum_c' s_c'`` is the one-step log-sum-exp vote of a Dense
    Associative Memory (a Gaussian-kernel smoother, the weighted kNN rule of
    :class:`~sklearn.neighbors.KNeighborsClassifier` with
    ``weights=exp(-beta/2 d^2)``); this is its random-feature version, whose
    size and prediction cost do not depend on the number of training samples.

    Read more in the :ref:`User Guide <random_features>`.

    Parameters
    ----------
    %(kernel)s
    %(nu)s
    %(feature_map)s
    n_components : int, default=4096
        Number of random frequencies ``Y``.
    beta : float or "scale", default="scale"
        Inverse temperature of the kernel ``exp(-beta/2 |x - x'|^2)``
        (``gamma = beta / 2``). ``"scale"`` uses ``2 / (n_features *
        X.var())`` (the ``gamma="scale"`` of :class:`~sklearn.svm.SVC`).
        Random features are accurate at small ``beta`` only.
    %(orthogonal)s
    epsilon : float, default=1e-10
        Prior mass added to the clipped class sums (see Notes).
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    class_memories_ : ndarray of shape (n_classes, n_features_out)
        One distributed memory ``T_c`` per class.
    class_weights_ : ndarray of shape (n_classes,)
        Total sample weight per class (the class priors, unnormalised).
    random_weights_ : ndarray of shape (n_features, n_components)
        Random frequencies ``W``.
    random_offset_ : ndarray of shape (n_components,) or None
        Random phases of the ``"cos"`` map.
    center_ : ndarray of shape (n_features,) or None
        Shift applied before the ``"positive"`` map.
    beta_ : float
        The inverse temperature used.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    RandomFeatureAM : The auto-associative memory.
    sklearn.neighbors.KNeighborsClassifier : The exact kernel vote
        (``weights=lambda d: np.exp(-beta / 2 * d**2)``).

    Notes
    -----
    Probability policy. Trigonometric estimates ``s_c`` can be negative, so
    they are clipped at 0 and a tiny prior mass is added:
    ``p_c = (max(s_c, 0) + epsilon pi_c) / sum_c' (max(s_c', 0) + epsilon
    pi_c')``, ``pi_c`` the class priors. Where every class sum is clipped
    this returns the priors, and a :class:`KernelSumClippedWarning` reports
    how many queries it concerned. ``"positive"`` estimates are positive and
    are normalised in log space (a softmax of ``log s_c``), never clipped.
    ``decision_function`` returns the logarithms of the same (unnormalised)
    class scores, minus their mean over classes for readability (the log-odds
    for two classes), so its ranking always agrees with ``predict_proba``.

    %(kernel_notes)s

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skam.random_features import RandomFeatureAMClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(),
    ...                     RandomFeatureAMClassifier(beta=2.0, random_state=0))
    >>> bool(cross_val_score(clf, X, y, cv=5).mean() > 0.9)
    True
    """

    _parameter_constraints: dict = {
        **KERNEL_CONSTRAINTS,
        "beta": ENERGY_CONSTRAINTS["beta"],
        "epsilon": ENERGY_CONSTRAINTS["epsilon"],
    }

    def __init__(
        self,
        *,
        kernel="gaussian",
        nu=1.5,
        feature_map="sincos",
        n_components=4096,
        beta="scale",
        orthogonal=False,
        epsilon=1e-10,
        random_state=None,
        backend="numpy",
    ):
        self.kernel = kernel
        self.nu = nu
        self.feature_map = feature_map
        self.n_components = n_components
        self.beta = beta
        self.orthogonal = orthogonal
        self.epsilon = epsilon
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Sum the random features of each class into its distributed memory.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels (any hashable labels).
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in its class sum.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        y = validate_class_labels(self, y, X)
        backend = backend_for(self, X)
        self.classes_, codes = encode_classes(y, backend)
        sw = validate_sample_weight(sample_weight, X, backend)
        self.beta_ = resolve_kernel_beta(self.beta, X, sw)
        self._draw(X, backend, self.beta_ / 2.0, sw)
        self.class_memories_ = None
        self._store(X, codes, sw, backend)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Add samples to the class memories (``T_c += phi``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            All the classes; required on the first call, ignored after.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples.

        Returns
        -------
        self : object
            The updated classifier.
        """
        first = not hasattr(self, "class_memories_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        X = validate_X(self, X, reset=first, method="partial_fit")
        y = validate_class_labels(self, y, X)
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        if first:
            remember_namespace(self, X)
            self.classes_, _ = encode_classes(y[:0], backend, classes)
            self.beta_ = resolve_kernel_beta(self.beta, X, sw)
            self._draw(X, backend, self.beta_ / 2.0, sw)
            self.class_memories_ = None
        _, codes = encode_classes(y, backend, to_numpy(self.classes_))
        self._store(X, codes, sw, backend)
        return self

    def _store(self, X, codes, sw, backend):
        xp = backend.xp
        n_classes = self.classes_.shape[0]
        sw = backend.to_compute(sw)
        Xc = backend.to_compute(X)
        codes_c = xp.asarray(codes.astype(np.int64), device=array_device(Xc))
        W, b, center = self._frequencies(backend, Xc.dtype)
        T_new = accumulate(
            self._centered(Xc, center),
            sw,
            codes_c,
            n_classes,
            W,
            b,
            feature_map=self.feature_map,
            gamma=self.beta_ / 2.0,
            xp=xp,
        )
        counts = np.bincount(
            codes,
            weights=None if sw is None else to_numpy(sw).astype(np.float64),
            minlength=n_classes,
        )
        if self.class_memories_ is None:
            self.class_memories_ = backend.to_output(T_new)
            self.class_weights_ = backend.from_host(counts, Xc.dtype)
            return
        old = backend.to_compute(self.class_memories_)
        self.class_memories_ = backend.to_output(old + xp.astype(T_new, old.dtype))
        old_counts = backend.to_compute(self.class_weights_)
        new_counts = backend.to_compute(backend.from_host(counts, old_counts.dtype))
        self.class_weights_ = backend.to_output(old_counts + new_counts)

    def _log_scores(self, X, method):
        """Log class scores (n, C) in the compute namespace, and the backend."""
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        W, b, center = self._frequencies(backend, Xc.dtype)
        T = backend.to_compute(self.class_memories_, Xc.dtype)
        V = self._centered(Xc, center)
        n_out = T.shape[1]
        log_s = map_chunks(
            lambda sl: log_kernel_sums(
                V[sl, :],
                W,
                b,
                T,
                feature_map=self.feature_map,
                gamma=self.beta_ / 2.0,
                xp=xp,
            ),
            V.shape[0],
            3 * (n_out + T.shape[0]) * itemsize(V),
            xp,
        )
        if self.feature_map == "positive":
            return log_s, backend
        counts = backend.to_compute(self.class_weights_, Xc.dtype)
        priors = counts / xp.sum(counts)
        s = xp.exp(log_s)  # exp(-inf) = 0: the clipped (non-positive) sums
        self._warn_fallback(xp.sum(s, axis=1) <= self.epsilon, xp, method)
        scores = s + self.epsilon * priors[None, :]
        empty = xp.sum(scores, axis=1, keepdims=True) <= 0  # only if epsilon == 0
        scores = xp.where(empty, priors[None, :], scores)
        positive = scores > 0
        safe = xp.where(positive, scores, xp.ones_like(scores))
        return xp.where(positive, xp.log(safe), -math.inf), backend

    def _warn_fallback(self, fallback, xp, method):
        n_fallback = int(xp.sum(xp.astype(fallback, xp.int64)))
        if n_fallback:
            warnings.warn(
                f"{type(self).__name__}.{method}(): the random-feature estimates of "
                f"all class kernel sums were <= epsilon={self.epsilon:g} for "
                f"{n_fallback} of {fallback.shape[0]} queries; their probabilities "
                "fall back to the class priors. Increase n_components, lower beta, "
                "or use feature_map='positive'.",
                KernelSumClippedWarning,
                stacklevel=4,
            )

    def _check(self, X, method):
        check_is_fitted(self)
        return validate_X(self, X, reset=False, method=method)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed in log space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log class probabilities (``-inf`` for an impossible class).
        """
        X = self._check(X, "predict_log_proba")
        log_scores, backend = self._log_scores(X, "predict_log_proba")
        return backend.to_output(log_softmax(log_scores, backend.xp))

    def predict_proba(self, X):
        """Normalised class kernel sums (see Notes for the clipping policy).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Class probabilities, columns in the order of ``classes_``.
        """
        X = self._check(X, "predict_proba")
        log_scores, backend = self._log_scores(X, "predict_proba")
        xp = backend.xp
        return backend.to_output(xp.exp(log_softmax(log_scores, xp)))

    def decision_function(self, X):
        """Log class scores, centred over classes (log-odds for two classes).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            ``log s_c`` minus its mean over the (finite) classes; for two
            classes ``log s_1 - log s_0`` (positive favours ``classes_[1]``).
        """
        X = self._check(X, "decision_function")
        log_scores, backend = self._log_scores(X, "decision_function")
        xp = backend.xp
        if log_scores.shape[1] == 2:
            return backend.to_output(log_scores[:, 1] - log_scores[:, 0])
        finite = xp.isfinite(log_scores)
        safe = xp.where(finite, log_scores, xp.zeros_like(log_scores))
        n_finite = xp.sum(xp.astype(finite, log_scores.dtype), axis=1, keepdims=True)
        mean = xp.sum(safe, axis=1, keepdims=True) / xp.maximum(n_finite, 1.0)
        return backend.to_output(log_scores - mean)

    def predict(self, X):
        """Class with the largest estimated kernel sum.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels (values of ``classes_``).
        """
        X = self._check(X, "predict")
        log_scores, backend = self._log_scores(X, "predict")
        idx = backend.xp.argmax(log_scores, axis=1)
        return decode_classes(self.classes_, idx, backend)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags
