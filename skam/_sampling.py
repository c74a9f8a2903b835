"""Sampling from the Boltzmann density ``p(v) ~ exp(-beta E(v))`` of a memory.

With skam's energy ``E(v) = -(1/beta) log sum_mu w_mu k(v, xi_mu)``, the
density ``exp(-beta E)`` is the kernel mixture ``sum_mu w_mu k(v, xi_mu)``
(a kernel density estimate), and its score is ``grad log p = -beta grad E``.
Three samplers:

* **exact** (:func:`exact_draws`): draw a memory with probability ``w_mu``,
  then add the kernel's noise: ``N(0, I / beta)`` for ``"lse"`` (the Gaussian
  kernel ``exp(-beta/2 |v - xi|^2)``); for ``"lsr"`` (Epanechnikov) and
  ``"rectified_poly"`` (``max(1 - beta/2 r^2, 0)^n``) a uniform direction and
  a radius ``r = sqrt(2 u / beta)`` with ``u ~ Beta(D/2, n + 1)``. Clamped
  coordinates condition the draw exactly: each memory is reweighted by the
  mass its kernel gives the clamped values, and the free coordinates are
  drawn from the kernel's conditional (Gaussian, or an Epanechnikov ball of
  radius ``sqrt(2 a / beta)`` with ``a = 1 - beta/2 |x_c - xi_c|^2``, weight
  ``a^(d_free/2 + n)``). The unrectified ``"poly"`` kernel and the ``"dot"``
  similarity define no normalisable density: no exact sampler.
* **langevin** (:func:`langevin`): ``v <- v - eta grad E(v) + sqrt(2 eta /
  beta) z`` at fixed ``beta`` (the unadjusted Langevin algorithm), optionally
  with a Metropolis accept/reject step (MALA), which makes ``exp(-beta E)``
  its exact stationary density at any step size.
* **anneal** (:func:`anneal`): reverse diffusion with the exact score. The
  variance-exploding diffusion of the stored patterns has the marginal
  ``p_t = sum_mu w_mu N(xi_mu, sigma^2 t I)``, which is ``exp(-beta_t E_beta_t)``
  with ``beta_t = 1 / (sigma^2 t)``; its score is ``-beta_t grad E_beta_t``.
  The Euler-Maruyama step of the reverse SDE from ``t_k`` to ``t_(k+1)`` is::

      v <- v - eta_k grad E_beta_k(v) + sqrt(eta_k / beta_k) z,
      eta_k = 1 - beta_k / beta_(k+1)

  On a geometric schedule ``beta_k = beta_start * r^k`` every step has the
  same size ``eta = 1 - 1/r < 1``: an LSE step of size at most 1 never
  overshoots a memory (the Hessian of ``E`` is ``I - beta Cov`` <= ``I``), so
  the walk is stable down to any noise level. On a linear grid in ``t`` the
  last steps have ``eta`` close to 1 and a noise far larger than the final
  width ``1/sqrt(beta_end)``: samples end off the memories.

Randomness is drawn on the host by a NumPy ``RandomState`` and moved to the
compute namespace, so a seed gives the same samples on every backend (up to
rounding) and whatever the chunk size.
"""

import math
from dataclasses import replace

import numpy as np
from array_api_compat import device as _device

from skam._chunking import chunk_slices, concat, itemsize, rows_per_chunk
from skam._descent import TEMPORARIES_PER_COLUMN
from skam._energy import (
    energy_and_gradient,
    energy_from_log_z,
    log_kernel_sum,
    log_z_and_direction,
)

METHODS = ("exact", "langevin", "anneal")


# --------------------------------------------------------------------- exact
def exact_kernel(spec):
    """Name of the kernel of an energy that can be sampled exactly, or raise.

    Returns ``"gaussian"`` (``"lse"``) or ``"compact"`` (``"lsr"``,
    ``"rectified_poly"``: ``max(1 - beta/2 r^2, 0)^n``).
    """
    if spec.similarity != "sqeuclidean":
        raise ValueError(
            "sampling needs similarity='sqeuclidean': with the dot product "
            "exp(-beta E) grows without bound and is not a normalisable density."
        )
    family = spec.function.kernel_family
    if family is not None:
        return family
    raise ValueError(
        f"sampling has no density for separation={spec.separation!r}: its kernel "
        "is not a density (for 'poly', (1 - beta/2 |v - xi|^2)^degree is "
        "negative or growing away from the memory). Use "
        "separation='rectified_poly', the same kernel inside its support."
    )


def exact_draws(patterns, weights, spec, n_samples, rng, *, X=None, free=None):
    """Exact draws from ``sum_mu w_mu k(v, xi_mu)``, optionally conditioned.

    Parameters
    ----------
    patterns : ndarray of shape (K, D), host float64
    weights : ndarray of shape (K,) or None
        Memory weights (None = equal).
    spec : EnergySpec
    n_samples : int
    rng : numpy.random.RandomState
    X : ndarray of shape (n_samples, D) or None
        Values of the clamped coordinates (only where ``free`` is False).
    free : bool ndarray of shape (n_samples, D) or None
        True where a coordinate is drawn; None draws every coordinate.

    Returns
    -------
    samples : ndarray of shape (n_samples, D), float64
    """
    kind = exact_kernel(spec)
    beta = spec.beta
    K, D = patterns.shape
    log_w = np.zeros(K) if weights is None else _log_weights(weights)
    if free is None:
        p = np.exp(log_w - np.max(log_w))
        cdf = np.cumsum(p)
        u = rng.uniform(size=n_samples) * cdf[-1]
        idx = np.minimum(np.searchsorted(cdf, u, side="right"), K - 1)
        centres = patterns[idx]
        n_free = np.full(n_samples, D)
        scale = np.ones(n_samples)
        free = np.ones((n_samples, D), dtype=bool)
    else:
        idx, scale = _conditional_memories(patterns, log_w, spec, kind, X, free)
        idx = _categorical(idx, rng)
        scale = scale[np.arange(n_samples), idx]
        centres = patterns[idx]
        n_free = free.sum(axis=1)
    z = rng.standard_normal((n_samples, D)) * free
    if kind == "gaussian":
        noise = z / math.sqrt(beta)
    else:
        # uniform direction in the free coordinates, radius^2 = 2 a u / beta
        norm = np.sqrt(np.sum(z * z, axis=1, keepdims=True))
        direction = z / np.where(norm > 0, norm, 1.0)
        u = rng.beta(np.maximum(n_free, 1) / 2.0, spec.power + 1.0)
        radius = np.sqrt(2.0 * scale * u / beta)
        noise = direction * radius[:, None]
    out = centres + noise
    if X is not None:
        out = np.where(free, out, X)
    return out


def _log_weights(weights):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64))


def _categorical(log_p, rng):
    """One index per row of unnormalised log probabilities (n, K)."""
    shifted = log_p - np.max(log_p, axis=1, keepdims=True)
    p = np.exp(shifted)
    cdf = np.cumsum(p, axis=1)
    u = rng.uniform(size=log_p.shape[0]) * cdf[:, -1]
    idx = np.sum(cdf <= u[:, None], axis=1)
    return np.minimum(idx, log_p.shape[1] - 1)


def _conditional_memories(patterns, log_w, spec, kind, X, free):
    """Log weights (n, K) of each memory given the clamped values, and ``a``.

    Gaussian: ``log w - beta/2 |x_c - xi_c|^2``, ``a = 1``. Compact kernel of
    power n: ``a = 1 - beta/2 |x_c - xi_c|^2`` and weight ``w a^(d_f/2 + n)``
    (the mass of ``(a - beta/2 r_f^2)_+^n`` over the free coordinates).
    """
    clamped = ~free
    Xc = np.where(clamped, X, 0.0)
    # |x_c - xi_c|^2 on each row's clamped coordinates, one GEMM per term
    sq = (
        np.sum(Xc * Xc, axis=1)[:, None]
        - 2.0 * Xc @ patterns.T
        + clamped.astype(np.float64) @ (patterns * patterns).T
    )
    sq = np.maximum(sq, 0.0)
    if kind == "gaussian":
        return log_w[None, :] - 0.5 * spec.beta * sq, np.ones_like(sq)
    a = 1.0 - 0.5 * spec.beta * sq
    inside = a > 0
    if not np.all(np.any(inside & np.isfinite(log_w)[None, :], axis=1)):
        rows = np.flatnonzero(~np.any(inside, axis=1))[:5].tolist()
        raise ValueError(
            "The clamped values of X lie outside the support of every memory "
            f"(rows {rows}...): the conditional density is zero there."
        )
    power = free.sum(axis=1)[:, None] / 2.0 + spec.power
    with np.errstate(divide="ignore"):
        log_a = np.log(np.where(inside, a, 1.0))
    log_p = np.where(inside, log_w[None, :] + power * log_a, -np.inf)
    return log_p, np.where(inside, a, 0.0)


# -------------------------------------------------------------- the gradient
class GradientOracle:
    """Energy and exact gradient of stored memories, chunked over queries.

    (The descent oracle of :mod:`skam._descent` returns a rescaled direction
    for the compact kernels; samplers need the gradient itself.)
    """

    def __init__(self, memories, spec, xp):
        self.memories = memories
        self.spec = spec
        self.xp = xp

    def with_beta(self, beta):
        return GradientOracle(
            self.memories, replace(self.spec, beta=float(beta)), self.xp
        )

    @property
    def n_columns(self):
        return self.memories.n_memories

    def energy_and_gradient(self, V):
        spec, xp = self.spec, self.xp
        if spec.is_lse and spec.similarity == "sqeuclidean":
            log_z, grad = log_z_and_direction(V, self.memories, spec, xp)
            return energy_from_log_z(log_z, spec), grad
        return energy_and_gradient(V, self.memories, spec, xp)

    def energy(self, V):
        log_z, _ = log_kernel_sum(
            V, self.memories, self.spec, self.xp, need_weights=False
        )
        return energy_from_log_z(log_z, self.spec)


class DirectionOracle:
    """Adapter for an energy oracle whose direction *is* the gradient.

    The random-feature oracle (:class:`skam._bochner.RandomFeatureOracle`)
    returns ``grad E`` from ``energy_and_direction``.
    """

    def __init__(self, oracle):
        self.oracle = oracle

    @property
    def n_columns(self):
        return self.oracle.n_columns

    def energy_and_gradient(self, V):
        return self.oracle.energy_and_direction(V)

    def energy(self, V):
        return self.oracle.energy(V)


def _chunked(fn, V, oracle, xp, *, n_outputs):
    """Apply ``fn`` (returning ``n_outputs`` arrays) chunk by chunk."""
    n = V.shape[0]
    per_row = TEMPORARIES_PER_COLUMN * oracle.n_columns * itemsize(V)
    if rows_per_chunk(n, per_row) >= n:
        return fn(V)
    parts = [fn(V[sl, :]) for sl in chunk_slices(n, per_row)]
    return tuple(concat([p[i] for p in parts], xp) for i in range(n_outputs))


def energy_and_gradient_chunked(oracle, V, xp):
    return _chunked(oracle.energy_and_gradient, V, oracle, xp, n_outputs=2)


def score(oracle, V, beta, xp):
    """``grad log p = -beta grad E``: the score of ``exp(-beta E)``, (n, D)."""
    _, grad = energy_and_gradient_chunked(oracle, V, xp)
    return grad * (-float(beta))


# --------------------------------------------------------------- the walkers
def _noise(rng, shape, xp, dtype, device):
    return xp.asarray(rng.standard_normal(shape), dtype=dtype, device=device)


def _mask(step, free, xp):
    return step if free is None else xp.where(free, step, xp.zeros_like(step))


def langevin(
    V0,
    oracle,
    xp,
    *,
    beta,
    step_size,
    n_steps,
    rng,
    free=None,
    metropolis=True,
    return_trajectory=False,
):
    """Langevin dynamics at fixed ``beta`` targeting ``exp(-beta E)``.

    ``v' = v - eta grad E(v) + sqrt(2 eta / beta) z`` on the free coordinates.
    With ``metropolis`` the move is accepted with probability
    ``min(1, exp(-beta E(v')) q(v | v') / (exp(-beta E(v)) q(v' | v)))``
    (MALA), ``q`` the Gaussian proposal; otherwise always (ULA, whose
    stationary density is biased by O(eta)).

    Returns
    -------
    states : array (n, D)
    trajectory : array (n_steps + 1, n, D) or None
    acceptance : float
        Mean acceptance rate (1.0 without ``metropolis``).
    """
    dev = _device(V0)
    V = V0
    E, G = energy_and_gradient_chunked(oracle, V, xp)
    G = _mask(G, free, xp)
    sd = math.sqrt(2.0 * step_size / beta)
    trajectory = [V] if return_trajectory else None
    accepted = 0.0
    for _ in range(n_steps):
        z = _mask(_noise(rng, V.shape, xp, V.dtype, dev), free, xp)
        proposal = V - step_size * G + sd * z
        if metropolis:
            E_new, G_new = energy_and_gradient_chunked(oracle, proposal, xp)
            G_new = _mask(G_new, free, xp)
            # log q(v | v') - log q(v' | v), both Gaussian with variance sd^2
            back = V - proposal + step_size * G_new
            fwd = proposal - V + step_size * G
            log_ratio = -beta * (E_new - E) - (
                xp.sum(back * back, axis=1) - xp.sum(fwd * fwd, axis=1)
            ) / (2.0 * sd * sd)
            log_u = xp.asarray(
                np.log(rng.uniform(size=V.shape[0])), dtype=V.dtype, device=dev
            )
            ok = xp.logical_and(log_u < log_ratio, xp.isfinite(E_new))
            V = xp.where(ok[:, None], proposal, V)
            E = xp.where(ok, E_new, E)
            G = xp.where(ok[:, None], G_new, G)
            accepted += float(xp.mean(xp.astype(ok, xp.float64)))
        else:
            V = proposal
            E, G = energy_and_gradient_chunked(oracle, V, xp)
            G = _mask(G, free, xp)
            accepted += 1.0
        if return_trajectory:
            trajectory.append(V)
    traj = xp.stack(trajectory, axis=0) if return_trajectory else None
    return V, traj, (accepted / n_steps if n_steps else 1.0)


def geometric_betas(beta_start, beta_end, n_steps):
    """``n_steps + 1`` inverse temperatures, geometric from start to end."""
    return np.geomspace(beta_start, beta_end, n_steps + 1)


def anneal(
    V0,
    oracle,
    xp,
    *,
    beta_start,
    beta_end,
    n_steps,
    rng,
    free=None,
    return_trajectory=False,
):
    """Reverse diffusion with the exact score on a geometric ``beta`` schedule.

    ``oracle`` must provide ``with_beta(beta)`` (the energy at another
    inverse temperature, same memories). Step ``k`` goes from ``beta_k`` to
    ``beta_(k+1)``: ``v <- v - eta grad E_beta_k(v) + sqrt(eta / beta_k) z``,
    ``eta = 1 - beta_k / beta_(k+1)``; the last step adds no noise (it returns
    the mean of the final reverse step, as Euler-Maruyama samplers do).

    Returns
    -------
    states : array (n, D)
    trajectory : array (n_steps + 1, n, D) or None
    """
    dev = _device(V0)
    betas = geometric_betas(beta_start, beta_end, n_steps)
    V = V0
    trajectory = [V] if return_trajectory else None
    for k in range(n_steps):
        b_now, b_next = float(betas[k]), float(betas[k + 1])
        eta = 1.0 - b_now / b_next
        _, G = energy_and_gradient_chunked(oracle.with_beta(b_now), V, xp)
        step = eta * G
        if k < n_steps - 1:
            z = _noise(rng, V.shape, xp, V.dtype, dev)
            step = step - math.sqrt(eta / b_now) * z
        V = V - _mask(step, free, xp)
        if return_trajectory:
            trajectory.append(V)
    traj = xp.stack(trajectory, axis=0) if return_trajectory else None
    return V, traj


# ---------------------------------------------------------- estimator glue
def check_sample_args(n_samples, method, n_steps, step_size, beta_start, X):
    """Validate the arguments shared by every ``sample`` method."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if X is not None:
        if n_samples is not None and n_samples != X.shape[0]:
            raise ValueError(
                f"n_samples={n_samples} does not match the {X.shape[0]} rows of X; "
                "pass n_samples=None (or the number of rows) with X."
            )
        n_samples = X.shape[0]
    if n_samples is None:
        raise ValueError("n_samples must be given when X is None.")
    _check_int(n_samples, "n_samples", 1)
    _check_int(n_steps, "n_steps", 1)
    if not (isinstance(step_size, int | float) and math.isfinite(step_size)):
        raise TypeError(f"step_size must be a finite float, got {step_size!r}.")
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}.")
    if beta_start is not None:
        if not isinstance(beta_start, int | float) or isinstance(beta_start, bool):
            raise TypeError(f"beta_start must be a float or None, got {beta_start!r}.")
        if not (math.isfinite(beta_start) and beta_start > 0):
            raise ValueError(
                f"beta_start must be a positive float, got {beta_start!r}."
            )
    return int(n_samples)


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}.")


def check_samplable(spec):
    """Raise unless ``exp(-beta E)`` is a normalisable density."""
    if spec.similarity != "sqeuclidean" or spec.function.kernel_family is None:
        exact_kernel(spec)  # raises with the specific reason


def broad_beta(patterns_host, beta):
    """Default ``beta_start``: ``1 / total variance`` of the memories, <= beta.

    The kernel width ``1/sqrt(beta_start)`` is then the radius of the whole
    data cloud (``beta = 1`` for the unit circle: ``t = 1`` of a diffusion
    with ``sigma = 1``).
    """
    total = float(np.sum(np.var(patterns_host, axis=0)))
    if not total > 0:
        return float(beta)
    return min(float(beta), 1.0 / total)


def sample_stored(
    patterns,
    weights,
    spec,
    backend,
    *,
    n_samples,
    method,
    X,
    clamp_mask,
    n_steps,
    step_size,
    beta_start,
    metropolis,
    return_trajectory,
    random_state,
):
    """``sample`` of a memory that stores its patterns (DenseAM and kin).

    ``patterns`` / ``weights`` are the fitted arrays (any namespace), ``X`` a
    validated array or None, ``clamp_mask`` as given by the user. Returns
    ``(samples, trajectory)`` in the compute namespace (trajectory None
    unless asked).
    """
    from sklearn.utils import check_random_state

    from skam._backend import to_numpy
    from skam._energy import prepare_memories
    from skam._validation import validate_clamp_mask

    n_samples = check_sample_args(n_samples, method, n_steps, step_size, beta_start, X)
    check_samplable(spec)
    if method == "anneal" and not spec.is_lse:
        raise ValueError(
            "method='anneal' is reverse diffusion, defined for the Gaussian kernel "
            f"of separation='lse'; got separation={spec.separation!r}. Use "
            "method='exact' or method='langevin'."
        )
    if clamp_mask is not None and X is None:
        raise ValueError("clamp_mask needs X: the values of the clamped coordinates.")
    rng = check_random_state(random_state)
    xp = backend.xp
    patterns_host = to_numpy(patterns).astype(np.float64)
    weights_host = None if weights is None else to_numpy(weights).astype(np.float64)
    dtype = patterns.dtype
    Xc = (
        None if X is None else backend.to_compute(X, backend.to_compute(patterns).dtype)
    )
    mask = None if clamp_mask is None else validate_clamp_mask(clamp_mask, Xc, backend)
    free_host = None
    X_host = None if X is None else to_numpy(Xc).astype(np.float64)
    if mask is not None:
        free_host = np.broadcast_to(~to_numpy(mask), (n_samples, patterns.shape[1]))
        free_host = np.ascontiguousarray(free_host)

    def to_xp(host):
        return xp.asarray(
            host, dtype=backend.to_compute(patterns).dtype, device=backend.device
        )

    if method == "exact":
        out = exact_draws(
            patterns_host, weights_host, spec, n_samples, rng, X=X_host, free=free_host
        )
        return to_xp(out), None
    start_beta = (
        broad_beta(patterns_host, spec.beta) if beta_start is None else beta_start
    )
    if method == "langevin" and X is not None:
        V0 = backend.to_compute(Xc)
    else:
        # compact kernels start inside their support (exact draws at beta)
        broad = replace(spec, beta=float(start_beta if spec.is_lse else spec.beta))
        V0 = to_xp(
            exact_draws(
                patterns_host,
                weights_host,
                broad,
                n_samples,
                rng,
                X=X_host,
                free=free_host,
            )
        )
    compute_dtype = V0.dtype
    memories = prepare_memories(
        backend.to_compute(patterns, compute_dtype),
        xp,
        weights=backend.to_compute(weights, compute_dtype),
    )
    # the density is the kernel sum itself: epsilon (which keeps the energy
    # finite outside a compact support) is dropped, so MALA never steps out
    oracle = GradientOracle(memories, replace(spec, epsilon=0.0), xp)
    free = None
    if mask is not None:
        free = xp.logical_not(mask)
        free = free[None, :] if free.ndim == 1 else free
    if method == "langevin":
        V, traj, acceptance = langevin(
            V0,
            oracle,
            xp,
            beta=spec.beta,
            step_size=float(step_size),
            n_steps=n_steps,
            rng=rng,
            free=free,
            metropolis=metropolis,
            return_trajectory=return_trajectory,
        )
        warn_low_acceptance(acceptance, metropolis)
        return V, traj
    if start_beta >= spec.beta:
        raise ValueError(
            f"beta_start={start_beta:g} must be below the memory's beta={spec.beta:g}: "
            "annealing raises beta from beta_start to beta."
        )
    V, traj = anneal(
        V0,
        oracle,
        xp,
        beta_start=float(start_beta),
        beta_end=spec.beta,
        n_steps=n_steps,
        rng=rng,
        free=free,
        return_trajectory=return_trajectory,
    )
    del dtype
    return V, traj


def warn_low_acceptance(acceptance, metropolis, threshold=0.2):
    if metropolis and acceptance < threshold:
        import warnings

        warnings.warn(
            f"Langevin sampling accepted only {acceptance:.0%} of its moves; lower "
            "step_size for better mixing.",
            UserWarning,
            stacklevel=4,
        )


def sample_langevin_only(
    oracle,
    backend,
    *,
    beta,
    n_features,
    start_mean,
    start_std,
    center,
    dtype,
    n_samples,
    method,
    X,
    clamp_mask,
    n_steps,
    step_size,
    metropolis,
    return_trajectory,
    random_state,
    reason,
):
    """``sample`` of a memory that keeps no patterns (an energy oracle only).

    Only ``method="langevin"``; ``reason`` says why the others are not
    available. Starts are ``X`` or draws from ``N(start_mean, start_std^2)``
    per coordinate (host arrays of shape (n_features,)). The oracle works on
    states shifted by ``-center`` (compute array or None). Returns
    ``(samples, trajectory)`` in the compute namespace.
    """
    from sklearn.utils import check_random_state

    from skam._validation import validate_clamp_mask

    n_samples = check_sample_args(n_samples, method, n_steps, step_size, None, X)
    if method != "langevin":
        raise ValueError(f"method={method!r} is not available: {reason}")
    if clamp_mask is not None and X is None:
        raise ValueError("clamp_mask needs X: the values of the clamped coordinates.")
    rng = check_random_state(random_state)
    xp = backend.xp
    if X is None:
        host = start_mean + start_std * rng.standard_normal((n_samples, n_features))
        V0 = xp.asarray(host, dtype=dtype, device=backend.device)
    else:
        V0 = backend.to_compute(X, dtype)
    free = None
    if clamp_mask is not None:
        mask = validate_clamp_mask(clamp_mask, V0, backend)
        free = xp.logical_not(mask)
        free = free[None, :] if free.ndim == 1 else free
    shifted = V0 if center is None else V0 - center[None, :]
    V, traj, acceptance = langevin(
        shifted,
        DirectionOracle(oracle),
        xp,
        beta=float(beta),
        step_size=float(step_size),
        n_steps=n_steps,
        rng=rng,
        free=free,
        metropolis=metropolis,
        return_trajectory=return_trajectory,
    )
    warn_low_acceptance(acceptance, metropolis)
    if center is not None:  # add the displacement back: clamped stay bit-exact
        V = V0 + (V - shifted)
        if traj is not None:
            traj = V0[None, :, :] + (traj - shifted[None, :, :])
    return V, traj


def add_moments(moments, X, weights, sign):
    """Running ``(sum w, sum w x, sum w x^2)`` of stored patterns (host float64)."""
    from skam._backend import to_numpy

    Xh = to_numpy(X).astype(np.float64)
    w = (
        np.ones(Xh.shape[0])
        if weights is None
        else to_numpy(weights).astype(np.float64)
    )
    new = (sign * w.sum(), sign * (w @ Xh), sign * (w @ (Xh * Xh)))
    if moments is None:
        return new
    return tuple(a + b for a, b in zip(moments, new, strict=True))


def moments_mean_std(moments):
    """Per-feature mean and standard deviation from :func:`add_moments`."""
    total, s1, s2 = moments
    if not total > 0:
        raise ValueError("No patterns are stored (all were forgotten).")
    mean = s1 / total
    return mean, np.sqrt(np.maximum(s2 / total - mean * mean, 0.0))
