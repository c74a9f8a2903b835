"""Polynomial energies of binary patterns without self-coupling, on continuous states.

On binary patterns the polynomial energy ``-log sum_mu F(beta v . xi_mu)`` with
``F(z) = (1 + z)^n`` couples every neuron to itself: ``d/dv_i`` of
``F(beta m_mu)`` contains ``beta^2 F''(beta m_mu) xi_mu_i^2 v_i``, a push of each
coordinate towards its own sign that grows with the number of patterns. Past
a load far below the capacity of the discrete network (about 1900 patterns at
D = 100 for n = 4) it beats the signal, every corner of the box becomes a
fixed point of the descent, and corrupted queries never move. The discrete
update of the tutorial (Eq. 2.2) leaves that coupling out.

This module removes it from the energy itself, so that the descent stays an
energy descent. A state ``v`` in the box ``[lo, hi]`` is read as the mean of
independent two-valued neurons ``s_i in {lo_i, hi_i}``, and the kernel of each
memory is the second-order (Gaussian) expansion of its expectation::

    kappa_mu(v) = F(z_mu) + 1/2 beta^2 F''(z_mu) Var_mu(v),
    z_mu = beta v . xi_mu,   Var_mu(v) = sum_i xi_mu_i^2 (hi_i - v_i)(v_i - lo_i)

``Var_mu`` is the variance of ``xi_mu . s``: it vanishes at the corners, where
``kappa`` is exactly ``F`` (the energies of binary states are unchanged), and
its gradient cancels the self-coupling to first order (exactly for n = 2,
where this is the Hopfield energy with a zero diagonal). The energy is
``E(v) = -(1/beta) log(eps + max(sum_mu w_mu kappa_mu(v), 0))``, as for every
skam energy.

Computed with the powers of ``(1 + z) / c``, ``c`` the largest ``|1 + z|`` of
the query, so nothing overflows at any degree; two (n, K) products per step
(three when the patterns are not +-1).
"""

import math

from skam._energy import energy_from_log_z


class SelfCouplingFreeOracle:
    """Energy oracle of :func:`skam._descent.descend` for the relaxation above.

    Parameters
    ----------
    memories : skam._energy.Memories
        Stored patterns (no coordinate weights).
    spec : skam._energy.EnergySpec
        ``"poly"`` or ``"rectified_poly"`` with the ``"dot"`` similarity.
    box : tuple of two arrays of shape (D,)
        Per-feature minimum and maximum of the memories: the two values of
        each neuron.
    xp : namespace
    """

    def __init__(self, memories, spec, box, xp):
        self.memories = memories
        self.spec = spec
        self.xp = xp
        self.lower, self.upper = box
        patterns = memories.patterns
        self.squares = patterns * patterns
        self.unit = bool(xp.all(self.squares == 1.0))
        self.weights = None
        if memories.log_weights is not None:
            self.weights = xp.exp(memories.log_weights)

    @property
    def n_columns(self):
        # twice the (n, K) temporaries of a plain kernel sum
        return 2 * self.memories.n_memories

    def _variance(self, V):
        xp = self.xp
        spread = (self.upper[None, :] - V) * (V - self.lower[None, :])
        if self.unit:
            return xp.sum(spread, axis=1, keepdims=True)
        return spread @ self.squares.T

    def _terms(self, V):
        """Scaled kernel pieces of one chunk of states."""
        xp, spec = self.xp, self.spec
        n, beta = int(spec.degree), float(spec.beta)
        u = 1.0 + beta * (V @ self.memories.patterns.T)
        scale = xp.max(xp.abs(u), axis=1, keepdims=True)
        scale = xp.where(scale > 0, scale, xp.ones_like(scale))
        t = u / scale
        c = 0.5 * beta * beta * n * (n - 1)
        var = (c * self._variance(V)) / (scale * scale)
        if spec.separation == "rectified_poly":
            inside = xp.astype(t > 0, t.dtype)
            t = t * inside
        else:
            inside = None
        low = t ** (n - 2) if n > 2 else (xp.ones_like(t) if inside is None else inside)
        kernel = low * (t * t + var)  # kappa / scale^n
        # d kappa / du / scale^(n-1) and d kappa / dVar / scale^(n-2)
        if n == 2:
            d_u = 2.0 * t
        else:
            d_u = (t ** (n - 3)) * (n * t * t + (n - 2) * var)
            if inside is not None:  # the third derivative of F vanishes outside
                d_u = d_u * inside
        d_var = c * low
        if self.weights is not None:
            w = self.weights[None, :]
            kernel, d_u, d_var = kernel * w, d_u * w, d_var * w
        return kernel, d_u, d_var, scale

    def partial(self, V, need_direction=True):
        """Mergeable partial state of these memories for the queries ``V``.

        The kernel sum, the pull, the spread gradient and the step norm, each
        in units of a power of the query's ``scale`` (the largest ``|1 + z|``
        over these memories); :func:`merge_partials` brings two states to the
        larger scale, so memories split into blocks (or shards) give the
        state of all of them.
        """
        xp = self.xp
        kernel, d_u, d_var, scale = self._terms(V)
        state = {"scale": scale, "total": xp.sum(kernel, axis=1)}
        if not need_direction:
            return state
        pull = float(self.spec.beta) * (d_u @ self.memories.patterns)
        if self.unit:
            spread = xp.sum(d_var, axis=1, keepdims=True)
        else:
            spread = d_var @ self.squares
        norm = float(self.spec.beta) * xp.sum(xp.abs(d_u), axis=1, keepdims=True)
        return {**state, "pull": pull, "spread": spread, "norm": norm}

    def energy(self, V):
        return finish_energy(self.partial(V, False), self.spec, self.xp)

    def gradient(self, V):
        """``grad E`` (n, D) in closed form (tested against finite differences)."""
        box = (self.lower, self.upper)
        return finish_gradient(self.partial(V), V, box, self.spec, self.xp)

    def energy_and_direction(self, V):
        """Energy and the mean-shift-scaled step: ``grad E / sum_mu |P_mu|``.

        ``P_mu`` are the weights of the patterns in the gradient, so the step
        is (minus) a weighted mean of patterns plus the self-coupling
        correction, in data units whatever ``beta`` and the degree.
        """
        box = (self.lower, self.upper)
        return finish_direction(self.partial(V), V, box, self.spec, self.xp)


def merge_partials(a, b, degree, xp):
    """Merge two partial states (associative): rescale to the larger scale.

    ``None`` (no memories) is the identity.
    """
    if a is None or b is None:
        return b if a is None else a
    n = int(degree)
    scale = xp.maximum(a["scale"], b["scale"])
    out = {"scale": scale}
    fa, fb = a["scale"] / scale, b["scale"] / scale
    powers = (("total", n), ("pull", n - 1), ("spread", n - 2), ("norm", n - 1))
    for key, power in powers:
        if key not in a:
            continue
        ga, gb = fa**power, fb**power
        if key == "total":
            ga, gb = ga[:, 0], gb[:, 0]
        out[key] = a[key] * ga + b[key] * gb
    return out


def _log_z(state, spec, xp):
    total, scale = state["total"], state["scale"]
    positive = total > 0
    log_sum = xp.where(
        positive,
        int(spec.degree) * xp.log(scale[:, 0])
        + xp.log(xp.where(positive, total, xp.ones_like(total))),
        -math.inf,
    )
    log_eps = xp.full_like(log_sum, spec.log_epsilon)
    return xp.logaddexp(log_sum, log_eps), total, positive


def _pull_push(state, V, box):
    lower, upper = box
    slope = upper[None, :] + lower[None, :] - 2.0 * V
    return state["pull"], (state["spread"] * slope) / state["scale"]


def finish_energy(state, spec, xp):
    """Energy of the queries from a (merged) partial state."""
    return energy_from_log_z(_log_z(state, spec, xp)[0], spec)


def finish_gradient(state, V, box, spec, xp):
    """Energy and ``grad E`` from a (merged) partial state."""
    log_z, total, positive = _log_z(state, spec, xp)
    pull, push = _pull_push(state, V, box)
    scale = state["scale"]
    n = int(spec.degree)
    # grad Z / (eps + Z), with Z = scale^n total
    denominator = total + xp.exp(
        xp.full_like(total, spec.log_epsilon) - n * xp.log(scale[:, 0])
    )
    safe = xp.where(positive, denominator, xp.ones_like(denominator))
    grad_log = (pull + push) / (scale * safe[:, None])
    grad_log = xp.where(positive[:, None], grad_log, xp.zeros_like(grad_log))
    return energy_from_log_z(log_z, spec), grad_log * (-1.0 / spec.beta)


def finish_direction(state, V, box, spec, xp):
    """Energy and the mean-shift-scaled descent direction from a partial state."""
    log_z, _, positive = _log_z(state, spec, xp)
    pull, push = _pull_push(state, V, box)
    norm = state["norm"]
    ok = xp.logical_and(positive[:, None], norm > 0)
    direction = -(pull + push) / xp.where(ok, norm, xp.ones_like(norm))
    direction = xp.where(ok, direction, xp.zeros_like(direction))
    return energy_from_log_z(log_z, spec), direction
