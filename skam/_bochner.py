"""Random Fourier features from Bochner's theorem, and the random-feature energy.

Bochner: a continuous shift-invariant kernel ``k(x - y)`` with ``k(0) = 1`` is
positive definite iff ``k(delta) = E_{w ~ p}[cos(w . delta)]`` for a probability
density ``p`` (its spectral density). Sampling ``w`` from ``p`` gives unbiased
kernel estimates ``<phi(x), phi(y)>``. The kernels and their spectral densities
(``gamma`` as in :class:`sklearn.kernel_approximation.RBFSampler`; the length
scale of the radial kernels is ``l = 1 / sqrt(2 gamma)``):

============  ===================================  ===================================
``kernel``    ``k(delta)``                         frequencies ``w`` (columns of W)
============  ===================================  ===================================
gaussian      ``exp(-gamma |delta|^2)``            ``N(0, 2 gamma I)``
laplacian     ``exp(-gamma |delta|_1)``            iid Cauchy, scale ``gamma``
cauchy        ``1 / (1 + gamma |delta|^2)``        ``sqrt(2 gamma s) z``, ``s ~ Exp(1)``
                                                   (multivariate Laplace)
matern        Matern(nu), length scale ``l``       ``sqrt(2 gamma) z sqrt(2 nu / u)``,
                                                   ``u ~ chi2(2 nu)`` (multivariate t)
============  ===================================  ===================================

(``z ~ N(0, I)``.) Three maps of ``h = X @ W`` (Y frequencies):

* ``"sincos"``: ``[cos h, sin h] / sqrt(Y)`` (2Y features);
* ``"cos"``: ``sqrt(2 / Y) cos(h + b)``, ``b ~ U[0, 2 pi]`` (Y features);
* ``"positive"`` (gaussian only): ``exp(+-h - 2 gamma |x|^2) / sqrt(2Y)`` (2Y
  features, always positive; the prefactor ``exp(-2 gamma |x|^2)`` is the one
  that gives the Gaussian kernel, ``exp(-gamma |x|^2)`` would give the softmax
  kernel ``exp(2 gamma x.y)``).

Orthogonal random features replace the directions of ``z`` by rows of
Haar-random orthogonal D x D blocks and keep chi(D)-distributed norms, so each
``w`` keeps its distribution (for the radial kernels) while the directions
within a block are exactly orthogonal.

The random-feature energy (DrDAM) of a distributed memory ``T = sum_mu w_mu
phi(xi_mu)`` is ``E(v) = -(1/beta) log max(<phi(v), T>, eps)`` for the
trigonometric maps; for ``"positive"`` the log of the (always positive) sum is
computed in log space, ``log sum_j exp(log phi_j(v) + log T_j)``, and never
clipped. :class:`RandomFeatureOracle` gives the descent loop of
:mod:`skam._descent` its energy and closed-form gradient.

Random numbers are drawn on the host (NumPy ``RandomState``); everything else
is written against the array namespace ``xp``.
"""

import math

import numpy as np

KERNELS = ("gaussian", "laplacian", "cauchy", "matern")
FEATURE_MAPS = ("sincos", "cos", "positive")
MATERN_NUS = (0.5, 1.5, 2.5)
RADIAL_KERNELS = ("gaussian", "cauchy", "matern")


def n_output_features(n_components, feature_map):
    """Length of ``phi(x)``: 2Y for ``"sincos"`` and ``"positive"``, Y for ``"cos"``."""
    return n_components if feature_map == "cos" else 2 * n_components


def check_kernel_options(kernel, feature_map, orthogonal, nu):
    """Raise ValueError on combinations that the parameter constraints allow."""
    if feature_map == "positive" and kernel != "gaussian":
        raise ValueError(
            f"feature_map='positive' approximates the Gaussian kernel only; got "
            f"kernel={kernel!r}. Use feature_map='sincos' or 'cos'."
        )
    if orthogonal and kernel not in RADIAL_KERNELS:
        raise ValueError(
            f"orthogonal=True needs a rotation-invariant spectral density "
            f"({', '.join(RADIAL_KERNELS)}); kernel={kernel!r} has independent "
            "Cauchy coordinates. Use orthogonal=False."
        )
    if kernel == "matern" and float(nu) not in MATERN_NUS:
        raise ValueError(f"nu must be one of {MATERN_NUS} for kernel='matern'.")


def _gaussian_directions(n_features, n_components, orthogonal, rng):
    """``z`` of shape (D, Y): iid N(0, 1), or orthogonal blocks with chi norms."""
    if not orthogonal:
        return rng.normal(size=(n_features, n_components))
    D = n_features
    blocks = []
    for _ in range(-(-n_components // D)):
        G = rng.normal(size=(D, D))
        Q, R = np.linalg.qr(G)
        Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)[None, :]  # Haar measure
        norms = np.sqrt(rng.chisquare(D, size=D))
        blocks.append(Q * norms[None, :])
    return np.concatenate(blocks, axis=1)[:, :n_components]


def draw_frequencies(
    n_features,
    n_components,
    *,
    kernel="gaussian",
    gamma=1.0,
    nu=1.5,
    feature_map="sincos",
    orthogonal=False,
    random_state,
):
    """Random frequencies ``W`` (D, Y) and phases ``b`` (Y,) or None, on the host.

    The draw order makes ``kernel="gaussian", feature_map="cos"`` identical
    to :class:`sklearn.kernel_approximation.RBFSampler` for the same seed:
    first the (D, Y) Gaussian matrix, then the kernel's radial factors, then
    the phases.
    """
    rng = random_state
    Y = n_components
    if kernel == "laplacian":
        W = gamma * rng.standard_cauchy(size=(n_features, Y))
    else:
        W = math.sqrt(2.0 * gamma) * _gaussian_directions(
            n_features, Y, orthogonal, rng
        )
        if kernel == "cauchy":
            W = W * np.sqrt(rng.standard_exponential(size=Y))[None, :]
        elif kernel == "matern":
            nu = float(nu)
            W = W * np.sqrt(2.0 * nu / rng.chisquare(2.0 * nu, size=Y))[None, :]
    b = rng.uniform(0.0, 2.0 * np.pi, size=Y) if feature_map == "cos" else None
    return W, b


def _log_sq_prefactor(X, gamma, n_components, xp):
    """``2 gamma |x|^2 + 1/2 log(2Y)``: minus the log prefactor of ``"positive"``."""
    return 2.0 * gamma * xp.sum(X * X, axis=1) + 0.5 * math.log(2.0 * n_components)


def features(X, W, b, *, feature_map, gamma, xp):
    """``phi(X)`` of shape (n, 2Y) or (n, Y) (compute namespace and dtype)."""
    Y = W.shape[1]
    H = X @ W
    if feature_map == "cos":
        H = H + b[None, :]
        return math.sqrt(2.0 / Y) * xp.cos(H)
    if feature_map == "sincos":
        return xp.concat([xp.cos(H), xp.sin(H)], axis=1) / math.sqrt(Y)
    c = _log_sq_prefactor(X, gamma, Y, xp)[:, None]
    return xp.exp(xp.concat([H - c, -H - c], axis=1))


def _safe_log(x, xp):
    """``log x`` with ``-inf`` where ``x <= 0``, without a divide warning."""
    positive = x > 0
    return xp.where(positive, xp.log(xp.where(positive, x, xp.ones_like(x))), -math.inf)


def _finite_or_zero(x, xp):
    return xp.where(xp.isfinite(x), x, xp.zeros_like(x))


def positive_log_sum(H, log_T, xp):
    """``log sum_j exp(+-h_j + log T_+-j)`` per query, exactly max-shifted.

    Returns ``(log_sum, E, r)`` with ``E / r[:, None]`` the softmax over the
    2Y features (the gradient weights). The prefactor ``-2 gamma |v|^2`` is
    not included.
    """
    Y = H.shape[1]
    L = xp.concat([H + log_T[None, :Y], -H + log_T[None, Y:]], axis=1)
    L_max = _finite_or_zero(xp.max(L, axis=1, keepdims=True), xp)
    E = xp.exp(L - L_max)
    r = xp.sum(E, axis=1)
    return L_max[:, 0] + _safe_log(r, xp), E, r


def log_kernel_sums(V, W, b, T, *, feature_map, gamma, xp):
    """``log <phi(V), T_c>`` for one or several distributed memories.

    Parameters
    ----------
    V : array of shape (n, D)
    W, b : frequencies (D, Y) and phases (Y,) or None
    T : array of shape (C, n_out)
        One distributed memory per row.

    Returns
    -------
    log_s : array of shape (n, C)
        Log of the kernel-sum estimates; ``-inf`` where an estimate is
        ``<= 0`` (possible for the trigonometric maps only).
    """
    if feature_map == "positive":
        H = V @ W
        c = _log_sq_prefactor(V, gamma, W.shape[1], xp)
        log_T = _safe_log(T, xp)
        columns = [
            positive_log_sum(H, log_T[k, :], xp)[0] - c for k in range(T.shape[0])
        ]
        return xp.stack(columns, axis=1)
    s = features(V, W, b, feature_map=feature_map, gamma=gamma, xp=xp) @ T.T
    return _safe_log(s, xp)


class RandomFeatureOracle:
    """Energy and closed-form gradient of ``-(1/beta) log <phi(v), T>``.

    An energy oracle for :func:`skam._descent.descend` (one distributed
    memory ``T`` of shape (n_out,)). For the trigonometric maps the
    kernel-sum estimate ``s`` is clipped at ``epsilon``: where ``s <=
    epsilon`` the energy is ``-(1/beta) log(epsilon)`` and the gradient is 0
    (the query does not move). ``"positive"`` is computed in log space and
    never clipped.

    Gradients (``h = W^T v``, ``grad E = -(1/beta) grad s / s``):

    * sincos: ``grad s = W (-sin h * T_c + cos h * T_s) / sqrt(Y)``;
    * cos: ``grad s = -sqrt(2/Y) W (sin(h + b) * T)``;
    * positive: ``grad s / s = W (p_+ - p_-) - 4 gamma v`` with ``p_+-`` the
      softmax of ``+-h_j + log T_+-j`` over the 2Y features.
    """

    def __init__(self, W, b, T, *, feature_map, gamma, beta, epsilon, xp):
        self.W = W
        self.b = b
        self.T = T
        self.feature_map = feature_map
        self.gamma = gamma
        self.beta = beta
        self.epsilon = epsilon
        self.xp = xp
        self.log_epsilon = math.log(epsilon) if epsilon > 0 else -math.inf
        if feature_map == "positive":
            self.log_T = _safe_log(T, xp)

    @property
    def n_columns(self):
        # H, cos H, sin H (or the two softmax halves) per query
        return self.W.shape[1]

    def log_kernel_sum(self, V):
        """``log max(s, eps)`` (n,) and the mask of clipped queries (n,).

        The kernel sum is :func:`log_kernel_sums` of the one memory ``T``
        (the read-out the random-feature classifier uses for its class
        memories), clipped.
        """
        xp = self.xp
        log_s = log_kernel_sums(
            V,
            self.W,
            self.b,
            self.T[None, :],
            feature_map=self.feature_map,
            gamma=self.gamma,
            xp=xp,
        )[:, 0]
        if self.feature_map == "positive":
            return log_s, xp.zeros(log_s.shape, dtype=xp.bool, device=_device(V))
        clipped = log_s <= self.log_epsilon  # s <= 0 gave -inf
        return xp.where(clipped, xp.full_like(log_s, self.log_epsilon), log_s), clipped

    def _clip(self, s):
        xp = self.xp
        clipped = s <= self.epsilon
        safe = xp.where(clipped, xp.ones_like(s), s)
        log_s = xp.where(clipped, xp.full_like(s, self.log_epsilon), xp.log(safe))
        return log_s, clipped

    def energy(self, V):
        return self.log_kernel_sum(V)[0] * (-1.0 / self.beta)

    def energy_and_direction(self, V):
        xp = self.xp
        W = self.W
        Y = W.shape[1]
        H = V @ W
        if self.feature_map == "positive":
            log_sum, E, r = positive_log_sum(H, self.log_T, xp)
            log_s = log_sum - _log_sq_prefactor(V, self.gamma, Y, xp)
            P = E / r[:, None]
            grad_log_s = (P[:, :Y] - P[:, Y:]) @ W.T - (4.0 * self.gamma) * V
            return log_s * (-1.0 / self.beta), grad_log_s * (-1.0 / self.beta)
        if self.feature_map == "sincos":
            C, S = xp.cos(H), xp.sin(H)
            Tc, Ts = self.T[:Y], self.T[Y:]
            s = (C @ Tc + S @ Ts) / math.sqrt(Y)
            grad_s = ((C * Ts[None, :] - S * Tc[None, :]) @ W.T) / math.sqrt(Y)
        else:
            A = H + self.b[None, :]
            scale = math.sqrt(2.0 / Y)
            s = scale * (xp.cos(A) @ self.T)
            grad_s = (-scale) * ((xp.sin(A) * self.T[None, :]) @ W.T)
        log_s, clipped = self._clip(s)
        safe_s = xp.where(clipped, xp.ones_like(s), s)
        grad = grad_s / safe_s[:, None]
        grad = xp.where(clipped[:, None], xp.zeros_like(grad), grad)
        return log_s * (-1.0 / self.beta), grad * (-1.0 / self.beta)


def _device(array):
    from array_api_compat import device

    return device(array)
