"""Private infrastructure shared by the random-feature estimators.

The kernel parameters (constraints and docstring fragments), the frequency
draw every estimator does at ``fit``, the ``gamma``/``beta`` ``"scale"`` rules
and the chunked accumulation of the distributed memories
``T_c = sum_{mu in c} w_mu phi(x_mu)``. The numerics of the feature maps live
in :mod:`skam._bochner`.
"""

from numbers import Integral, Real

from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions

from skam._bochner import (
    FEATURE_MAPS,
    KERNELS,
    MATERN_NUS,
    check_kernel_options,
    draw_frequencies,
    features,
    n_output_features,
)
from skam._chunking import chunk_slices, itemsize
from skam._validation import BACKEND_CONSTRAINT


class KernelSumClippedWarning(UserWarning):
    """The random-feature estimate of a kernel sum was not positive.

    Trigonometric random features estimate ``sum_mu k(v, xi_mu)`` without
    bias but with noise of order ``sqrt(K / Y)``, so far from the stored
    patterns (or at large ``beta``) the estimate can be ``<= 0`` and its
    logarithm, the energy, is undefined. Such estimates are clipped at
    ``epsilon`` (see :class:`RandomFeatureAM`); this warning says for how
    many queries.
    """


KERNEL_CONSTRAINTS = {
    "kernel": [StrOptions(set(KERNELS))],
    "nu": [Options(Real, set(MATERN_NUS))],
    "feature_map": [StrOptions(set(FEATURE_MAPS))],
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "orthogonal": ["boolean"],
    "random_state": ["random_state"],
    "backend": BACKEND_CONSTRAINT,
}


class RandomFeatureMixin:
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
        self.random_weights_ = backend.from_host(W, X.dtype)
        self.random_offset_ = backend.from_host(b, X.dtype)
        self.center_ = None
        if self.feature_map == "positive":
            # The kernel is shift-invariant, but the variance of the positive
            # features grows like exp(|x + y|^2): centring the data reduces it.
            # (weighted, so that weights and repeated rows agree)
            xp_in = array_namespace(X)
            if sample_weight is None:
                self.center_ = xp_in.mean(X, axis=0)
            else:
                sw = xp_in.asarray(sample_weight, device=array_device(X))
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


def resolve_gamma(gamma, X, sample_weight=None):
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
        sw = xp.astype(xp.asarray(sample_weight, device=array_device(X)), X.dtype)
        total = xp.sum(sw) * X.shape[1]
        mean = xp.sum(sw @ X) / total
        var = float(xp.sum(sw @ ((X - mean) ** 2)) / total)
    return 1.0 / (X.shape[1] * var) if var > 0 else 1.0


def resolve_kernel_beta(beta, X, sample_weight=None):
    """``beta`` as a float; ``"scale"`` is ``2 / (n_features * X.var())``."""
    if not isinstance(beta, str):
        return float(beta)
    return 2.0 * resolve_gamma(beta, X, sample_weight)


def accumulate(Xc, weights, codes, n_classes, W, b, *, feature_map, gamma, xp):
    """``T_c = sum_{mu in c} w_mu phi(x_mu)`` in chunks of rows.

    Peak extra memory is one (chunk, n_out) block of features, chunks sized
    from ``working_memory``. ``codes`` (n,) gives each row's memory (None: one
    memory). Returns an array of shape (n_classes, n_out).
    """
    n = Xc.shape[0]
    n_out = 2 * W.shape[1] if feature_map != "cos" else W.shape[1]
    dev = array_device(Xc)
    T = xp.zeros((n_classes, n_out), dtype=Xc.dtype, device=dev)
    for sl in chunk_slices(n, 3 * n_out * itemsize(Xc)):  # Phi, cos, sin
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
