"""The random Fourier feature transformer :class:`BochnerFeatures`."""

from numbers import Real

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions

from skam._bochner import features
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._random_feature_base import (
    KERNEL_CONSTRAINTS,
    RandomFeatureMixin,
    resolve_gamma,
)
from skam._validation import (
    validate_fit_input,
    validate_fitted_input,
)


@dask_dispatch()
@fill_doc
class BochnerFeatures(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    RandomFeatureMixin,
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
    %(kernel)s
    %(nu)s
    %(feature_map)s
    n_components : int, default=100
        Number of random frequencies ``Y`` (the output has ``2 Y`` features
        for ``"sincos"`` and ``"positive"``, ``Y`` for ``"cos"``).
    gamma : float or "scale", default=1.0
        Inverse squared length scale, as in ``RBFSampler``: the Gaussian
        kernel is ``exp(-gamma |x - y|^2)`` (see Notes for the others).
        ``"scale"`` uses ``1 / (n_features * X.var())``.
    %(orthogonal)s
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
        **KERNEL_CONSTRAINTS,
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
        X, backend = validate_fit_input(self, X)
        self.gamma_ = resolve_gamma(self.gamma, X)
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
        X, backend = validate_fitted_input(self, X, "transform")
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
