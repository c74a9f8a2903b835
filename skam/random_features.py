"""Random Fourier features and the random-feature (distributed) associative memory.

* :class:`BochnerFeatures`: random features of shift-invariant kernels drawn
  from their spectral density (Bochner's theorem): Gaussian, Laplacian,
  Cauchy and Matern kernels; ``"sincos"``, ``"cos"`` and positive maps;
  optional orthogonal random features.
* :class:`RandomFeatureAM`: the Dense Associative Memory of Hoover et al.
  (2024, "DrDAM") whose memories are summed into one vector
  ``T = sum_mu phi(xi_mu)``; energy descent as in :class:`skam.DenseAM`
  without keeping the patterns.
* :class:`RandomFeatureAMClassifier`: one distributed memory per class, the
  class-conditional kernel sums as a classifier.

The numerics live in :mod:`skam._bochner`; the descent loop is the engine's
(:func:`skam._descent.descend`, with a random-feature energy oracle).
"""

import math
import warnings
from numbers import Integral, Real

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn import config_context
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _assert_all_finite,
    check_is_fitted,
    column_or_1d,
)

from skam._backend import is_non_numpy_array, to_numpy
from skam._bochner import (
    FEATURE_MAPS,
    KERNELS,
    MATERN_NUS,
    RandomFeatureOracle,
    check_kernel_options,
    draw_frequencies,
    features,
    log_kernel_sums,
    n_output_features,
)
from skam._chunking import chunk_rows, concat, iter_chunks
from skam._dask import dask_dispatch
from skam._descent import descend as _descend
from skam._docstrings import fill_doc
from skam._energy import half_sq_distances, log_softmax, prepare_memories
from skam._validation import (
    BACKEND_CONSTRAINT,
    DESCENT_CONSTRAINTS,
    backend_for,
    remember_namespace,
    validate_clamp_mask,
    validate_sample_weight,
    validate_X,
)

__all__ = [
    "BochnerFeatures",
    "KernelSumClippedWarning",
    "RandomFeatureAM",
    "RandomFeatureAMClassifier",
]

# Rows of the fit batch descended by the fit-time self-recall diagnostic.
_N_PROBES = 16


class KernelSumClippedWarning(UserWarning):
    """The random-feature estimate of a kernel sum was not positive.

    Trigonometric random features estimate ``sum_mu k(v, xi_mu)`` without
    bias but with noise of order ``sqrt(K / Y)``, so far from the stored
    patterns (or at large ``beta``) the estimate can be ``<= 0`` and its
    logarithm, the energy, is undefined. Such estimates are clipped at
    ``epsilon`` (see :class:`RandomFeatureAM`); this warning says for how
    many queries.
    """


_KERNEL_CONSTRAINTS = {
    "kernel": [StrOptions(set(KERNELS))],
    "nu": [Options(Real, set(MATERN_NUS))],
    "feature_map": [StrOptions(set(FEATURE_MAPS))],
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "orthogonal": ["boolean"],
    "random_state": ["random_state"],
    "backend": BACKEND_CONSTRAINT,
}

_KERNEL_DOC = """
kernel : {"gaussian", "laplacian", "cauchy", "matern"}, default="gaussian"
    Shift-invariant kernel whose spectral density the frequencies are drawn
    from (see Notes).
nu : {0.5, 1.5, 2.5}, default=1.5
    Smoothness of the ``"matern"`` kernel (ignored otherwise); 0.5 is the
    exponential kernel ``exp(-|delta| / l)``.
feature_map : {"sincos", "cos", "positive"}, default="sincos"
    ``"sincos"``: ``[cos(W^T x), sin(W^T x)] / sqrt(Y)`` (2Y features, the
    lowest variance); ``"cos"``: ``sqrt(2/Y) cos(W^T x + b)`` with random
    phases ``b ~ U[0, 2 pi]`` (Y features, the map of
    :class:`~sklearn.kernel_approximation.RBFSampler`); ``"positive"``
    (``"gaussian"`` only): ``exp(+-W^T x - 2 gamma |x|^2) / sqrt(2Y)``
    (2Y features, always positive; Choromanski et al. 2021).
orthogonal : bool, default=False
    Orthogonal random features: the directions of the frequencies are rows
    of random orthogonal blocks (lower variance at equal ``n_components``).
    Needs a rotation-invariant kernel (not ``"laplacian"``).
"""

_KERNEL_NOTES = """
    The kernels, with ``l = 1 / sqrt(2 gamma)`` the length scale of the radial
    ones, and the spectral densities the frequencies are drawn from:

    ============  ==================================  =========================
    ``kernel``    ``k(x, y)``                         frequencies
    ============  ==================================  =========================
    gaussian      ``exp(-gamma |x - y|^2)``           normal ``N(0, 2 gamma)``
    laplacian     ``exp(-gamma |x - y|_1)``           Cauchy per coordinate
    cauchy        ``1 / (1 + gamma |x - y|^2)``       multivariate Laplace
    matern        Matern(nu) with length scale l      multivariate t (2 nu dof)
    ============  ==================================  =========================

    ``"laplacian"`` is :func:`sklearn.metrics.pairwise.laplacian_kernel`;
    ``"cauchy"`` is the rational quadratic kernel with ``alpha=1`` and
    ``"matern"`` is :class:`sklearn.gaussian_process.kernels.Matern`, both
    with ``length_scale=l``; ``"matern"`` tends to ``"gaussian"`` as ``nu``
    grows. The error of a kernel estimate falls like ``1/sqrt(n_components)``.
"""


def _fill_kernel_doc(cls):
    cls.__doc__ = cls.__doc__.replace("    %(kernel_params)s", _indent(_KERNEL_DOC))
    cls.__doc__ = cls.__doc__.replace("    %(kernel_notes)s", _KERNEL_NOTES.strip("\n"))
    return fill_doc(cls)


def _indent(text):
    return "\n".join(
        ("    " + line) if line else "" for line in text.strip("\n").split("\n")
    )


def _dev(array):
    return array_device(array)


def _itemsize(array, xp):
    return 4 if array.dtype == xp.float32 else 8


def _to_fitted(host_array, backend, dtype):
    """A host (NumPy) array as a fitted attribute: NumPy, or X's namespace."""
    if host_array is None:
        return None
    if backend.is_numpy or backend.offload:
        return np.asarray(host_array, dtype=_np_dtype(dtype))
    xp = backend.xp
    return xp.astype(xp.asarray(host_array, device=backend.device), dtype)


def _np_dtype(dtype):
    return np.float32 if "float32" in str(dtype) else np.float64


class _RandomFeatureMixin:
    """Frequencies, phases and centre shared by the three estimators."""

    def _draw(self, X, backend, gamma, sample_weight=None):
        """Draw and store the random frequencies for validated X."""
        check_kernel_options(self.kernel, self.feature_map, self.orthogonal, self.nu)
        rng = check_random_state(self.random_state)
        W, b = draw_frequencies(
            X.shape[1],
            self.n_components,
            kernel=self.kernel,
            gamma=gamma,
            nu=self.nu,
            feature_map=self.feature_map,
            orthogonal=self.orthogonal,
            random_state=rng,
        )
        self.random_weights_ = _to_fitted(W, backend, X.dtype)
        self.random_offset_ = _to_fitted(b, backend, X.dtype)
        self.center_ = None
        if self.feature_map == "positive":
            # The kernel is shift-invariant, but the variance of the positive
            # features grows like exp(|x + y|^2): centring the data reduces it.
            # (weighted, so that weights and repeated rows agree)
            xp_in = array_namespace(X)
            if sample_weight is None:
                self.center_ = xp_in.mean(X, axis=0)
            else:
                sw = xp_in.asarray(sample_weight, device=_dev(X))
                sw = xp_in.astype(sw, X.dtype)
                self.center_ = (sw @ X) / xp_in.sum(sw)
        self._n_features_out = n_output_features(self.n_components, self.feature_map)

    def _frequencies(self, backend, dtype):
        """``(W, b, center)`` in the compute namespace and dtype (no caching)."""
        return (
            backend.to_compute(self.random_weights_, dtype),
            backend.to_compute(self.random_offset_, dtype),
            backend.to_compute(self.center_, dtype),
        )

    @staticmethod
    def _centered(Xc, center):
        return Xc if center is None else Xc - center[None, :]


@dask_dispatch()
@_fill_kernel_doc
class BochnerFeatures(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _RandomFeatureMixin,
    BaseEstimator,
):
    """Random Fourier features of shift-invariant kernels (Bochner's theorem).

    A continuous shift-invariant kernel ``k(x - y)`` with ``k(0) = 1`` is
    positive definite iff it is the characteristic function of a probability
    density ``p`` (Bochner): ``k(x - y) = E_{w ~ p} cos(w . (x - y))``.
    Drawing ``n_components`` frequencies ``w`` from ``p`` gives a feature map
    with ``<phi(x), phi(y)> ~= k(x, y)``, so a linear model on the features
    approximates a kernel machine. With ``kernel="gaussian"`` and
    ``feature_map="cos"`` this is :class:`~sklearn.kernel_approximation.RBFSampler`
    (the same random numbers for the same seed).

    Read more in the :ref:`User Guide <random_features>`.

    Parameters
    ----------
    %(kernel_params)s
    n_components : int, default=100
        Number of random frequencies ``Y`` (the output has ``2 Y`` features
        for ``"sincos"`` and ``"positive"``, ``Y`` for ``"cos"``).
    gamma : float or "scale", default=1.0
        Inverse squared length scale, as in ``RBFSampler``: the Gaussian
        kernel is ``exp(-gamma |x - y|^2)`` (see Notes for the others).
        ``"scale"`` uses ``1 / (n_features * X.var())``.
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    random_weights_ : ndarray of shape (n_features, n_components)
        The random frequencies ``W`` (one per column).
    random_offset_ : ndarray of shape (n_components,) or None
        Random phases ``b`` of the ``"cos"`` map (None for the others).
    center_ : ndarray of shape (n_features,) or None
        Mean of the training data, subtracted before the ``"positive"`` map
        (None for the others): the kernel is shift-invariant and the variance
        of positive features grows with the norm of the inputs.
    gamma_ : float
        The ``gamma`` used (``"scale"`` resolved).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    sklearn.kernel_approximation.RBFSampler : The Gaussian ``"cos"`` map.
    RandomFeatureAM : An associative memory built on these features.

    Notes
    -----
    %(kernel_notes)s

    References
    ----------
    .. [1] A. Rahimi, B. Recht, "Random Features for Large-Scale Kernel
       Machines", NeurIPS 2007.
    .. [2] F. Yu et al., "Orthogonal Random Features", NeurIPS 2016.
    .. [3] K. Choromanski et al., "Rethinking Attention with Performers",
       ICLR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.metrics.pairwise import rbf_kernel
    >>> from skam.random_features import BochnerFeatures
    >>> X = np.random.RandomState(0).normal(size=(5, 3))
    >>> phi = BochnerFeatures(n_components=20000, gamma=0.5, random_state=0)
    >>> Z = phi.fit_transform(X)
    >>> Z.shape
    (5, 40000)
    >>> bool(np.abs(Z @ Z.T - rbf_kernel(X, gamma=0.5)).max() < 0.03)
    True
    """

    _parameter_constraints: dict = {
        **_KERNEL_CONSTRAINTS,
        "gamma": [StrOptions({"scale"}), Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        kernel="gaussian",
        nu=1.5,
        feature_map="sincos",
        n_components=100,
        gamma=1.0,
        orthogonal=False,
        random_state=None,
        backend="numpy",
    ):
        self.kernel = kernel
        self.nu = nu
        self.feature_map = feature_map
        self.n_components = n_components
        self.gamma = gamma
        self.orthogonal = orthogonal
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Draw the random frequencies (only the shape of ``X`` is used).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (its variance sets ``gamma="scale"``, its mean the
            centre of the ``"positive"`` map).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        backend = backend_for(self, X)
        self.gamma_ = _resolve_gamma(self.gamma, X)
        self._draw(X, backend, self.gamma_)
        return self

    def transform(self, X):
        """Map ``X`` to the random features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out)
            ``phi(X)``, in the dtype of ``X``.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="transform")
        backend = backend_for(self, X)
        Xc = backend.to_compute(X)
        W, b, center = self._frequencies(backend, Xc.dtype)
        Z = features(
            self._centered(Xc, center),
            W,
            b,
            feature_map=self.feature_map,
            gamma=self.gamma_,
            xp=backend.xp,
        )
        return backend.to_output(Z)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def _resolve_gamma(gamma, X, sample_weight=None):
    """``gamma`` as a float; ``"scale"`` is ``1 / (n_features * X.var())``.

    The variance is weighted by ``sample_weight`` (so that integer weights
    and repeated rows agree).
    """
    if not isinstance(gamma, str):
        return float(gamma)
    xp = array_namespace(X)
    if sample_weight is None:
        var = float(xp.mean((X - xp.mean(X)) ** 2))
    else:
        sw = xp.astype(xp.asarray(sample_weight, device=_dev(X)), X.dtype)
        total = xp.sum(sw) * X.shape[1]
        mean = xp.sum(sw @ X) / total
        var = float(xp.sum(sw @ ((X - mean) ** 2)) / total)
    return 1.0 / (X.shape[1] * var) if var > 0 else 1.0


def _resolve_beta(beta, X, sample_weight=None):
    """``beta`` as a float; ``"scale"`` is ``2 / (n_features * X.var())``."""
    if not isinstance(beta, str):
        return float(beta)
    return 2.0 * _resolve_gamma(beta, X, sample_weight)


def _accumulate(Xc, weights, codes, n_classes, W, b, *, feature_map, gamma, xp):
    """``T_c = sum_{mu in c} w_mu phi(x_mu)`` in chunks of rows.

    Peak extra memory is one (chunk, n_out) block of features, chunks sized
    from ``working_memory``. ``codes`` (n,) gives each row's memory (None: one
    memory). Returns an array of shape (n_classes, n_out).
    """
    n = Xc.shape[0]
    n_out = 2 * W.shape[1] if feature_map != "cos" else W.shape[1]
    rows = chunk_rows(n, n_out, _itemsize(Xc, xp), temporaries=3)
    dev = _dev(Xc)
    T = xp.zeros((n_classes, n_out), dtype=Xc.dtype, device=dev)
    for sl in iter_chunks(n, rows):
        Phi = features(Xc[sl, :], W, b, feature_map=feature_map, gamma=gamma, xp=xp)
        if codes is None:
            coef = xp.ones((1, Phi.shape[0]), dtype=Xc.dtype, device=dev)
        else:
            classes = xp.arange(n_classes, device=dev)
            coef = xp.astype(classes[:, None] == codes[None, sl], Xc.dtype)
        if weights is not None:
            coef = coef * weights[None, sl]
        T = T + coef @ Phi
    return T


@dask_dispatch()
@fill_doc
@_fill_kernel_doc
class RandomFeatureAM(
    OneToOneFeatureMixin, TransformerMixin, _RandomFeatureMixin, BaseEstimator
):
    """Random-feature Dense Associative Memory (DrDAM): memories summed into T.

    The log-sum-exp energy of :class:`skam.DenseAM` is a kernel sum,
    ``E(v) = -(1/beta) log sum_mu k(v, xi_mu)`` with the Gaussian kernel
    ``k = exp(-beta/2 |v - xi|^2)``. With random features
    ``k(v, xi) ~= <phi(v), phi(xi)>`` (:class:`BochnerFeatures` with
    ``gamma = beta / 2``) the sum becomes ``<phi(v), T>`` with the
    *distributed memory* ``T = sum_mu w_mu phi(xi_mu)``: ``fit`` builds ``T``
    (in chunks) and forgets the patterns, so the model size and the cost of
    a retrieval step do not depend on the number of stored patterns.
    ``transform`` runs the same clamped energy descent as ``DenseAM`` on

    ``E(v) = -(1/beta) log max(<phi(v), T>, epsilon)``

    with its closed-form gradient. Other shift-invariant kernels give other
    energies (``kernel``).

    Read more in the :ref:`User Guide <random_features>`.

    Parameters
    ----------
    %(kernel_params)s
    n_components : int, default=4096
        Number of random frequencies ``Y``; kernel errors fall like
        ``sqrt(n_features / Y)``. Large ``beta`` needs large ``Y``.
    beta : float or "scale", default=1.0
        Inverse temperature, as in :class:`skam.DenseAM`: the Gaussian kernel
        is ``exp(-beta/2 |v - xi|^2)``, i.e. ``gamma = beta / 2`` for every
        ``kernel``. ``"scale"`` uses ``2 / (n_features * X.var())`` on the
        data of the first ``fit``. Random features degrade quickly as ``beta``
        grows (see the User Guide).
    epsilon : float, default=1e-10
        Clipping threshold of the kernel-sum estimate of the trigonometric
        maps: where ``<phi(v), T> <= epsilon`` the energy is
        ``-(1/beta) log(epsilon)``, the gradient is zero (the query does not
        move) and a :class:`KernelSumClippedWarning` reports how many queries
        were clipped. ``"positive"`` features are computed in log space and
        never clipped.
    step_size : float, default=0.1
        Step size of the descent ``v <- v - step_size * m * grad E(v)``. Smaller
        steps keep the approximate trajectory closer to the exact one.
    %(max_iter)s
    %(tol)s
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    distributed_memory_ : ndarray of shape (n_features_out,)
        ``T = sum_mu w_mu phi(xi_mu)`` (2Y entries for ``"sincos"`` and
        ``"positive"``, Y for ``"cos"``).
    n_stored_ : int
        Number of patterns summed into ``T`` (rows of all ``fit`` and
        ``partial_fit`` calls since the last ``fit``).
    random_weights_ : ndarray of shape (n_features, n_components)
        Random frequencies ``W``.
    random_offset_ : ndarray of shape (n_components,) or None
        Random phases of the ``"cos"`` map.
    center_ : ndarray of shape (n_features,) or None
        Shift applied before the ``"positive"`` map (mean of the first
        ``fit`` data).
    beta_ : float
        The inverse temperature used.
    n_iter_ : int
        Descent steps of the fit-time self-recall check (largest over the
        probes).
    self_recall_ : float
        Fraction of probed patterns (at most 16 rows of the last ``fit`` or
        ``partial_fit`` batch) whose retrieved state is at most half as far
        from the pattern as from any other row of that batch, and whose
        kernel-sum estimate is not clipped: a diagnostic of ``beta`` and
        ``n_components``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    skam.DenseAM : The exact model (stores the patterns).
    BochnerFeatures : The random feature maps.

    Notes
    -----
    The model keeps ``T`` and the random frequencies: ``O(Y n_features)``
    numbers however many patterns are stored, against ``O(K n_features)``
    for ``DenseAM``; a step costs ``O(n_features Y)`` instead of
    ``O(n_features K)``. ``partial_fit`` adds patterns by summation (and
    :meth:`forget` subtracts them). Approximation errors grow with
    ``beta``, with the distance of a query from the stored patterns and with
    the number of steps; see Hoover et al. (2024).

    %(kernel_notes)s

    References
    ----------
    .. [1] B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov, "Dense
       Associative Memory Through the Lens of Random Features", NeurIPS 2024.
    .. [2] A. Rahimi, B. Recht, "Random Features for Large-Scale Kernel
       Machines", NeurIPS 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from skam.random_features import RandomFeatureAM
    >>> rng = np.random.RandomState(0)
    >>> patterns = np.sign(rng.randn(5, 16))
    >>> am = RandomFeatureAM(beta=0.5, random_state=0).fit(patterns)
    >>> am.distributed_memory_.shape        # 2Y numbers, however many patterns
    (8192,)
    >>> noisy = patterns.copy()
    >>> noisy[:, :3] *= -1                      # flip 3 of 16 bits
    >>> bool((np.sign(am.transform(noisy)) == patterns).all())
    True
    """

    _parameter_constraints: dict = {
        **_KERNEL_CONSTRAINTS,
        "beta": [StrOptions({"scale"}), Interval(Real, 0, None, closed="neither")],
        "epsilon": [Interval(Real, 0, None, closed="left")],
        **DESCENT_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        kernel="gaussian",
        nu=1.5,
        feature_map="sincos",
        n_components=4096,
        beta=1.0,
        orthogonal=False,
        epsilon=1e-10,
        step_size=0.1,
        max_iter=100,
        tol=1e-6,
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
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Draw the frequencies and sum the patterns of ``X`` into ``T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to store (not kept).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each pattern in ``T`` (an integer weight acts like a
            repeated pattern).

        Returns
        -------
        self : object
            The fitted memory.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        self.beta_ = _resolve_beta(self.beta, X, sw)
        self._draw(X, backend, self.beta_ / 2.0, sw)
        self.distributed_memory_ = None
        self.n_stored_ = 0
        self._store(X, sw, backend, sign=1.0)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Add the patterns of ``X`` to the distributed memory (``T += phi``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to add.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the new patterns.

        Returns
        -------
        self : object
            The memory with the new patterns added.
        """
        if not hasattr(self, "distributed_memory_"):
            return self.fit(X, sample_weight=sample_weight)
        X = validate_X(self, X, reset=False, method="partial_fit")
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        self._store(X, sw, backend, sign=1.0)
        return self

    def forget(self, X, sample_weight=None):
        """Remove patterns stored earlier (``T -= phi``).

        Only patterns that were stored (with the same weights) should be
        removed: ``T`` is a sum, so forgetting is exact up to rounding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to remove.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights they were stored with.

        Returns
        -------
        self : object
            The memory without these patterns.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="forget")
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        self._store(X, sw, backend, sign=-1.0)
        return self

    def _store(self, X, sw, backend, *, sign):
        """Add ``sign * sum_mu w_mu phi(x_mu)`` to T (``sw`` validated)."""
        xp = backend.xp
        sw = backend.to_compute(sw)
        Xc = backend.to_compute(X)
        dtype = Xc.dtype if self.distributed_memory_ is None else None
        W, b, center = self._frequencies(backend, Xc.dtype)
        T_new = _accumulate(
            self._centered(Xc, center),
            sw,
            None,
            1,
            W,
            b,
            feature_map=self.feature_map,
            gamma=self.beta_ / 2.0,
            xp=xp,
        )[0, :]
        if sign < 0:
            T_new = -T_new
        if self.distributed_memory_ is None:
            T = T_new
        else:
            old = backend.to_compute(self.distributed_memory_)
            T = old + xp.astype(T_new, old.dtype)
            dtype = old.dtype
        self.distributed_memory_ = backend.to_output(xp.astype(T, dtype))
        self.n_stored_ = int(self.n_stored_ + sign * X.shape[0])
        if sign > 0:
            self._self_recall(backend, Xc)

    # ------------------------------------------------------------------ engine
    def _oracle(self, backend, dtype):
        W, b, _ = self._frequencies(backend, dtype)
        T = backend.to_compute(self.distributed_memory_, dtype)
        return RandomFeatureOracle(
            W,
            b,
            T,
            feature_map=self.feature_map,
            gamma=self.beta_ / 2.0,
            beta=self.beta_,
            epsilon=float(self.epsilon),
            xp=backend.xp,
        )

    def _descend(self, backend, Xc, mask, *, return_trace=False):
        """Descent of compute-namespace states; returns (result, clipped mask)."""
        xp = backend.xp
        oracle = self._oracle(backend, Xc.dtype)
        _, _, center = self._frequencies(backend, Xc.dtype)
        V0 = self._centered(Xc, center)
        result = _descend(
            V0,
            oracle,
            None,
            xp,
            clamp_mask=mask,
            step_size=self.step_size,
            max_iter=self.max_iter,
            tol=self.tol,
            return_trace=return_trace,
            compute_energy=True,
        )
        if center is not None:
            # add the displacement back: clamped coordinates stay bit-exact
            result.states = Xc + (result.states - V0)
        return result, self._clipped(result.energy, xp)

    def _clipped(self, energy, xp):
        """Queries whose energy is the clipping ceiling ``-(1/beta) log eps``."""
        if self.feature_map == "positive":
            return xp.zeros(energy.shape, dtype=xp.bool, device=_dev(energy))
        # the same operations as the oracle, so a clipped energy equals it exactly
        log_eps = math.log(self.epsilon) if self.epsilon > 0 else -math.inf
        ceiling = xp.full_like(energy, log_eps) * (-1.0 / self.beta_)
        return energy >= ceiling

    def _warn_clipped(self, clipped, xp, method, stacklevel=3):
        n_clipped = int(xp.sum(xp.astype(clipped, xp.int64)))
        if n_clipped:
            warnings.warn(
                f"{type(self).__name__}.{method}(): the random-feature estimate of "
                f"the kernel sum was <= epsilon={self.epsilon:g} for {n_clipped} of "
                f"{clipped.shape[0]} queries; their energy is capped at "
                "-(1/beta) log(epsilon), where the gradient is zero (a descending "
                "query stops there). Increase n_components, lower beta, or use "
                "feature_map='positive'.",
                KernelSumClippedWarning,
                stacklevel=stacklevel,
            )

    def _self_recall(self, backend, Xc):
        """Fit-time diagnostic on at most 16 evenly spaced rows of the batch."""
        xp = backend.xp
        n = Xc.shape[0]
        idx = np.unique(np.linspace(0, n - 1, min(n, _N_PROBES)).astype(np.intp))
        probes = xp.take(Xc, xp.asarray(idx, device=_dev(Xc)), axis=0)
        result, clipped = self._descend(backend, probes, None)
        self.n_iter_ = max(1, int(xp.max(result.n_iter)))
        states = result.states
        own = xp.sum((states - probes) ** 2, axis=1)
        nearest_other = _nearest_other_sq_distance(states, probes, Xc, xp)
        # a probe stuck where the estimate is clipped is not an attractor
        recalled = xp.logical_and(4.0 * own <= nearest_other, xp.logical_not(clipped))
        self.self_recall_ = float(xp.mean(xp.astype(recalled, xp.float64)))

    # ------------------------------------------------------------- public API
    def transform(self, X, clamp_mask=None):
        """Retrieve: descend the random-feature energy from each query.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries (corrupted or partial patterns).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate: it keeps its value from ``X``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            Retrieved states, in the dtype of ``X``.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="transform")
        backend = backend_for(self, X)
        Xc = backend.to_compute(X)
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        result, clipped = self._descend(backend, Xc, mask)
        # one more frame: transform is wrapped by set_output
        self._warn_clipped(clipped, backend.xp, "transform", stacklevel=4)
        return backend.to_output(result.states)

    def descend(self, X, clamp_mask=None, *, return_energy_trace=False):
        """Run the descent and report, query by query, how it went.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Initial states.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate.
        return_energy_trace : bool, default=False
            Also return the energy of every query before every step.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``states``, ``n_iter``, ``converged``, ``energy`` (of the final
            states), ``clipped`` (final kernel-sum estimate ``<= epsilon``)
            and, if asked, ``energy_trace`` (n_steps + 1, n_samples).
        """
        from sklearn.utils import Bunch

        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="descend")
        backend = backend_for(self, X)
        Xc = backend.to_compute(X)
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        r, clipped = self._descend(backend, Xc, mask, return_trace=return_energy_trace)
        self._warn_clipped(clipped, backend.xp, "descend")
        out = Bunch(
            states=backend.to_output(r.states),
            n_iter=backend.to_output(r.n_iter),
            converged=backend.to_output(r.converged),
            energy=backend.to_output(r.energy),
            clipped=backend.to_output(clipped),
        )
        if return_energy_trace:
            out.energy_trace = backend.to_output(r.energy_trace)
        return out

    def energy(self, X):
        """Random-feature energy ``-(1/beta) log max(<phi(x), T>, epsilon)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
            Lower is more memory-like; approximates :meth:`skam.DenseAM.energy`.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="energy")
        return self._energy(X, "energy")

    def _energy(self, X, method):
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        oracle = self._oracle(backend, Xc.dtype)
        _, _, center = self._frequencies(backend, Xc.dtype)
        V = self._centered(Xc, center)
        rows = chunk_rows(V.shape[0], oracle.n_columns, _itemsize(V, xp))
        energy = concat(
            [oracle.energy(V[sl, :]) for sl in iter_chunks(V.shape[0], rows)], xp
        )
        self._warn_clipped(self._clipped(energy, xp), xp, method)
        return backend.to_output(energy)

    def score_samples(self, X):
        """Score each state by minus its energy (log kernel-sum estimate / beta).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Higher is more memory-like.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="score_samples")
        return -self._energy(X, "score_samples")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def _nearest_other_sq_distance(states, probes, X, xp):
    """Squared distance from each state to the nearest row of X unequal to its probe."""
    rows = chunk_rows(X.shape[0], states.shape[0], _itemsize(X, xp), temporaries=2)
    best = xp.full((states.shape[0],), math.inf, dtype=X.dtype, device=_dev(X))
    state_mem = prepare_memories(states, xp)
    probe_mem = prepare_memories(probes, xp)
    for sl in iter_chunks(X.shape[0], rows):
        block = X[sl, :]
        d_state = 2.0 * half_sq_distances(block, state_mem, xp)  # (chunk, n_probes)
        same = half_sq_distances(block, probe_mem, xp) <= 0.0
        d_state = xp.where(same, math.inf, d_state)
        best = xp.minimum(best, xp.min(d_state, axis=0))
    return best


@dask_dispatch()
@fill_doc
@_fill_kernel_doc
class RandomFeatureAMClassifier(ClassifierMixin, _RandomFeatureMixin, BaseEstimator):
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
    %(kernel_params)s
    n_components : int, default=4096
        Number of random frequencies ``Y``.
    beta : float or "scale", default="scale"
        Inverse temperature of the kernel ``exp(-beta/2 |x - x'|^2)``
        (``gamma = beta / 2``). ``"scale"`` uses ``2 / (n_features *
        X.var())`` (the ``gamma="scale"`` of :class:`~sklearn.svm.SVC`).
        Random features are accurate at small ``beta`` only.
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
        **_KERNEL_CONSTRAINTS,
        "beta": [StrOptions({"scale"}), Interval(Real, 0, None, closed="neither")],
        "epsilon": [Interval(Real, 0, None, closed="left")],
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
        y = _validate_y(y, X)
        backend = backend_for(self, X)
        self.classes_, codes = np.unique(y, return_inverse=True)
        sw = validate_sample_weight(sample_weight, X, backend)
        self.beta_ = _resolve_beta(self.beta, X, sw)
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
        y = _validate_y(y, X)
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        if first:
            remember_namespace(self, X)
            self.classes_ = np.unique(to_numpy(classes))
            self.beta_ = _resolve_beta(self.beta, X, sw)
            self._draw(X, backend, self.beta_ / 2.0, sw)
            self.class_memories_ = None
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y contains classes {unknown.tolist()} that are not in classes_ "
                f"{self.classes_.tolist()}."
            )
        codes = np.searchsorted(self.classes_, y)
        self._store(X, codes, sw, backend)
        return self

    def _store(self, X, codes, sw, backend):
        xp = backend.xp
        n_classes = self.classes_.shape[0]
        sw = backend.to_compute(sw)
        Xc = backend.to_compute(X)
        codes_c = xp.asarray(codes.astype(np.int64), device=_dev(Xc))
        W, b, center = self._frequencies(backend, Xc.dtype)
        T_new = _accumulate(
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
            self.class_weights_ = _to_fitted(counts, backend, Xc.dtype)
            return
        old = backend.to_compute(self.class_memories_)
        self.class_memories_ = backend.to_output(old + xp.astype(T_new, old.dtype))
        old_counts = backend.to_compute(self.class_weights_)
        new_counts = backend.to_compute(_to_fitted(counts, backend, old_counts.dtype))
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
        rows = chunk_rows(V.shape[0], n_out + T.shape[0], _itemsize(V, xp))
        parts = []
        for sl in iter_chunks(V.shape[0], rows):
            parts.append(
                log_kernel_sums(
                    V[sl, :],
                    W,
                    b,
                    T,
                    feature_map=self.feature_map,
                    gamma=self.beta_ / 2.0,
                    xp=xp,
                )
            )
        log_s = concat(parts, xp)
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
        return _labels(self.classes_, idx, X, backend)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags


def _validate_y(y, X):
    """Class labels as a NumPy array on the host (checked against X)."""
    if is_non_numpy_array(y):
        with config_context(array_api_dispatch=True):
            y = column_or_1d(y, warn=True)
        y = to_numpy(y)
    else:
        y = column_or_1d(y, warn=True)
    if y.dtype.kind == "f":
        _assert_all_finite(y, input_name="y")
    check_classification_targets(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {y.shape[0]}]"
        )
    return y


def _labels(classes, idx, X, backend):
    """``classes[idx]`` in the namespace of the output (X's, or NumPy)."""
    host_idx = to_numpy(idx) if not backend.is_numpy else np.asarray(idx)
    labels = classes[host_idx]
    if backend.is_numpy or backend.offload or labels.dtype.kind not in "biuf":
        return labels
    xp = array_namespace(X)
    return xp.asarray(labels, device=_dev(X))
