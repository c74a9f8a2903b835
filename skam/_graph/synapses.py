"""Hypersynapses: scalar energies of the activations of the layers they join.

A synapse has

* ``layers``: the names of the layers it connects (in order);
* ``params``: a dict ``name -> array`` of its trainable parameters;
  ``with_params(params)`` returns a copy with new ones (synapses are immutable);
* ``energy(g, xp) -> (n,)`` for a dict ``g`` of activations (n, d_layer);
* ``grad(g, xp) -> dict layer -> dE/dg_layer`` (closed form); a synapse may
  accept ``only=`` (a set of layer names) to skip the others, and then sets
  ``grad_accepts_only = True``;
* ``grad_vjp(g, cot, xp) -> (dict layer -> d<cot, grad>/dg, dict param ->
  d<cot, grad>/dparam)`` for a dict ``cot`` of cotangents (layers missing from
  ``cot`` count as zero). ``<cot, grad>`` summed over the rows: the parameter
  derivatives are summed over queries. Because ``grad`` is a gradient, the
  layer part is the Hessian of ``E`` times ``cot``;
* ``bytes_per_row(sizes, itemsize)``: bytes of temporaries per query, so the
  one chunking helper can size the chunks.

=================  ================================================================
class              energy
=================  ================================================================
``Dense``          ``-g_a^T W g_b``
``Bias``           ``-b . g``
``Memory``         ``-(1/beta) log(eps + sum_mu w_mu F(beta S(g, xi_mu)))`` minus
                   ``1/2 ||g||^2`` (the hidden softmax layer of a Dense AM
                   integrated out; any separation ``F`` of :mod:`skam._energy`)
=================  ================================================================
"""

from skam._energy import (
    EnergySpec,
    _finite_or_zero,
    _scaled_similarity,
    energy_from_log_z,
    gradient_from_weights,
    log_kernel_sum,
    prepare_memories,
)
from skam._separations import from_spec


class Synapse:
    """Base class (see the module docstring)."""

    layers = ()

    def __init__(self, layers, params):
        self.layers = tuple(layers)
        self.params = dict(params)

    def with_params(self, params):
        """A copy of this synapse with ``params`` (a dict) replacing its own."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.params = {**self.params, **params}
        return new

    def bytes_per_row(self, sizes, itemsize):
        return 2 * sum(sizes[name] for name in self.layers) * itemsize

    def __repr__(self):
        return f"{type(self).__name__}(layers={self.layers})"


class Dense(Synapse):
    """``E = -sum_ij g_a,i W_ij g_b,j`` between layers ``a`` and ``b``.

    Parameters
    ----------
    W : array of shape (d_a, d_b)
    layers : (str, str)
    """

    grad_accepts_only = True

    def __init__(self, W, layers):
        super().__init__(layers, {"W": W})
        if len(self.layers) != 2:
            raise ValueError(f"Dense connects two layers, got {layers!r}.")

    def energy(self, g, xp):
        a, b = self.layers
        return -xp.sum((g[a] @ self.params["W"]) * g[b], axis=1)

    def grad(self, g, xp, only=None):
        a, b = self.layers
        W = self.params["W"]
        out = {}
        if only is None or a in only:
            out[a] = -(g[b] @ W.T)
        if only is None or b in only:
            out[b] = -(g[a] @ W)
        return out

    def grad_vjp(self, g, cot, xp):
        a, b = self.layers
        W = self.params["W"]
        out, dW = {}, None
        if a in cot:  # <cot_a, -g_b W^T>
            out[b] = -(cot[a] @ W)
            dW = -(cot[a].T @ g[b])
        if b in cot:  # <cot_b, -g_a W>
            out[a] = -(cot[b] @ W.T)
            term = -(g[a].T @ cot[b])
            dW = term if dW is None else dW + term
        return out, ({} if dW is None else {"W": dW})

    def bytes_per_row(self, sizes, itemsize):
        a, b = self.layers
        return 2 * (sizes[a] + sizes[b]) * itemsize


class Bias(Synapse):
    """``E = -b . g`` on one layer.

    Parameters
    ----------
    b : array of shape (d,)
    layer : str
    """

    def __init__(self, b, layer):
        super().__init__((layer,), {"b": b})

    def energy(self, g, xp):
        (a,) = self.layers
        return -xp.sum(g[a] * self.params["b"], axis=1)

    def grad(self, g, xp):
        (a,) = self.layers
        return {a: -xp.broadcast_to(self.params["b"][None, :], g[a].shape)}

    def grad_vjp(self, g, cot, xp):
        (a,) = self.layers
        if a not in cot:
            return {}, {}
        return {}, {"b": -xp.sum(cot[a], axis=0)}


def _signed_exp(log_abs, sign, shift, xp):
    out = xp.exp(log_abs - shift)
    return out if sign is None else out * sign


class Memory(Synapse):
    """Stored memories as one synapse: the hidden layer of a Dense AM integrated out.

    Its energy is skam's kernel-sum energy (:mod:`skam._energy`) of the
    concatenated activations ``v = [g_layer1, g_layer2, ...]``::

        E(v) = -(1/beta) log(eps + sum_mu w_mu F(beta S(v, xi_mu))) - q(v)

    with ``q(v) = 1/2 ||v||^2`` when ``subtract_identity`` is True (default):
    the Legendre energy of identity layers is then cancelled, so identity
    layers plus this synapse have exactly skam's energy, and their dynamics
    ``dx/dt = -(x + dE/dg)`` are the engine's gradient descent. With LSE and
    the squared-Euclidean similarity this is the two-layer graph {identity
    visible, softmax(beta) hidden, dense ``W = Xi^T``, bias ``-1/2 ||xi||^2 +
    log(w)/beta``} with the hidden layer at equilibrium.

    Parameters
    ----------
    patterns : array of shape (K, D)
        The memories ``xi`` (``D`` = sum of the connected layers' sizes).
    layers : tuple of str
    spec : EnergySpec
        Separation, similarity, ``beta``, degree and epsilon.
    log_weights : array of shape (K,) or None
        Log memory weights (trainable when given).
    coord_weights : array of shape (D,) or None
        Per-coordinate similarity weights ``c`` (not trained).
    subtract_identity : bool
    mean_shift : bool
        Ask the dynamics to divide the step of the connected layers by
        ``sum_mu P_mu`` (per query, when positive): the mean-shift step of
        skam's descent for the non-LSE separations (a positive per-query
        time constant, so the energy still never increases in continuous
        time). Ignored by training.
    """

    def __init__(
        self,
        patterns,
        layers,
        spec=None,
        *,
        log_weights=None,
        coord_weights=None,
        subtract_identity=True,
        mean_shift=False,
    ):
        params = {"patterns": patterns}
        if log_weights is not None:
            params["log_weights"] = log_weights
        super().__init__(layers, params)
        self.spec = EnergySpec() if spec is None else spec
        self.coord_weights = coord_weights
        self.subtract_identity = subtract_identity
        self.mean_shift = mean_shift and not self.spec.is_lse

    # -------------------------------------------------------------- helpers
    def _concat(self, g, xp):
        parts = [g[name] for name in self.layers]
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)

    def _split(self, V, g):
        out, start = {}, 0
        for name in self.layers:
            d = g[name].shape[1]
            out[name] = V[:, start : start + d]
            start += d
        return out

    def memories(self, xp):
        """:class:`~skam._energy.Memories` of the current parameters."""
        memories = prepare_memories(
            self.params["patterns"], xp, coord_weights=self.coord_weights
        )
        log_w = self.params.get("log_weights")
        if log_w is not None:
            memories = type(memories)(
                memories.patterns, log_w, memories.coord_weights, memories.half_sqnorms
            )
        return memories

    def _q(self, V, xp):
        return 0.5 * xp.sum(V * V, axis=1)

    # --------------------------------------------------------------- energy
    def energy(self, g, xp):
        V = self._concat(g, xp)
        log_z, _ = log_kernel_sum(
            V, self.memories(xp), self.spec, xp, need_weights=False
        )
        E = energy_from_log_z(log_z, self.spec)
        return E - self._q(V, xp) if self.subtract_identity else E

    def grad(self, g, xp):
        return self._split(self._grad_and_scale(g, xp)[0], g)

    def _grad_and_scale(self, g, xp):
        V = self._concat(g, xp)
        memories = self.memories(xp)
        _, P = log_kernel_sum(V, memories, self.spec, xp)
        G = gradient_from_weights(V, P, memories, self.spec, xp)
        if self.subtract_identity:
            G = G - V
        return G, xp.sum(P, axis=1, keepdims=True)

    def step_scale(self, g, xp):
        """``1 / sum_mu P_mu`` per query (mean-shift time constant), (n, 1)."""
        _, total = self._grad_and_scale(g, xp)
        positive = total > 0
        return 1.0 / xp.where(positive, total, xp.ones_like(total))

    def step_scale_vjp(self, g, cot, xp):
        """``d<cot, tau>/dg`` and ``d<cot, tau>/dtheta`` of the time constant.

        ``tau = 1 / sum_mu P_mu`` per query where that sum is positive (else
        1, a constant), ``cot`` of shape (n, 1). With ``P = wF'/Z``,
        ``Q = wF''/Z`` and ``R = wF/Z``, ``d sum_mu P_mu / dz_nu = Q_nu -
        P_nu sum_mu P_mu`` and ``d sum_mu P_mu / dlog w_nu = P_nu - R_nu
        sum_mu P_mu``; ``dtau = -tau^2 d sum P``. What backpropagation through
        mean-shift steps needs beyond :meth:`grad_vjp` (the steps are
        ``tau * dE/dg``, and ``tau`` moves with the state).
        """
        V = self._concat(g, xp)
        memories = self.memories(xp)
        Xi = memories.patterns
        c = 1.0 if self.coord_weights is None else self.coord_weights
        P, Q, R = self._weights(V, memories, xp)
        total = xp.sum(P, axis=1, keepdims=True)
        positive = total > 0
        tau = 1.0 / xp.where(positive, total, xp.ones_like(total))
        k = xp.where(positive, -cot * tau * tau, xp.zeros_like(total))
        G = k * (Q - P * total)  # k * d sum P / dz
        beta = self.spec.beta
        if self.spec.similarity == "dot":
            d_v = beta * c * (G @ Xi)
            d_xi = beta * c * (G.T @ V)
        else:
            d_v = beta * c * (G @ Xi - xp.sum(G, axis=1, keepdims=True) * V)
            d_xi = beta * c * (G.T @ V - xp.sum(G, axis=0)[:, None] * Xi)
        grads = {"patterns": d_xi}
        if "log_weights" in self.params:
            grads["log_weights"] = xp.sum(k * (P - R * total), axis=0)
        return self._split(d_v, g), grads

    def _weights(self, V, memories, xp):
        """``z``, ``P = wF'/Z``, ``Q = wF''/Z``, ``R = wF/Z`` (rows with Z <= 0: 0)."""
        spec = self.spec
        z = _scaled_similarity(V, memories, spec, xp)
        log_z, _ = log_kernel_sum(V, memories, spec, xp, need_weights=False)
        separation = from_spec(spec)
        log_f, sign_f = separation.log_abs(z, 0, xp)
        log_df, sign_df = separation.log_abs(z, 1, xp)
        log_ddf, sign_ddf = separation.log_abs(z, 2, xp)
        if memories.log_weights is not None:
            lw = memories.log_weights[None, :]
            log_f, log_df, log_ddf = log_f + lw, log_df + lw, log_ddf + lw
        finite = xp.isfinite(log_z)
        shift = _finite_or_zero(log_z, xp)[:, None]
        P = _signed_exp(log_df, sign_df, shift, xp)
        Q = _signed_exp(log_ddf, sign_ddf, shift, xp)
        R = _signed_exp(log_f, sign_f, shift, xp)
        if not spec.is_lse:  # kernel sum clipped at 0: flat energy there
            total = xp.sum(R, axis=1, keepdims=True)
            keep = xp.logical_and(finite[:, None], total > 0)
            zero = xp.zeros_like(P)
            P, Q, R = (xp.where(keep, A, zero) for A in (P, Q, R))
        return P, Q, R

    def grad_vjp(self, g, cot, xp):
        present = [name for name in self.layers if name in cot]
        if not present:
            return {}, {}
        V = self._concat(g, xp)
        U = self._concat(
            {n: cot[n] if n in cot else xp.zeros_like(g[n]) for n in self.layers}, xp
        )
        memories = self.memories(xp)
        Xi = memories.patterns
        c = 1.0 if self.coord_weights is None else self.coord_weights
        P, Q, R = self._weights(V, memories, xp)
        beta = self.spec.beta
        cU = c * U
        # a_mu = grad_v S_mu . U
        if self.spec.similarity == "dot":
            a = cU @ Xi.T
        else:
            a = cU @ Xi.T - xp.sum(cU * V, axis=1, keepdims=True)
        Pa = xp.sum(P * a, axis=1, keepdims=True)
        G = Q * a - P * Pa
        P_rows = xp.sum(P, axis=1, keepdims=True)
        if self.spec.similarity == "dot":
            hvp = (-beta) * ((G @ Xi) * c)
            d_xi = (-beta) * ((G.T @ V) * c) - (P.T @ U) * c
        else:
            G_rows = xp.sum(G, axis=1, keepdims=True)
            hvp = beta * c * (V * G_rows - G @ Xi) + c * P_rows * U
            G_cols = xp.sum(G, axis=0)[:, None]
            d_xi = (-beta) * c * (G.T @ V - G_cols * Xi) - (P.T @ U) * c
        if self.subtract_identity:
            hvp = hvp - U
        grads = {"patterns": d_xi}
        if "log_weights" in self.params:
            grads["log_weights"] = -xp.sum(P * a - R * Pa, axis=0)
        return self._split(hvp, g), grads

    def bytes_per_row(self, sizes, itemsize):
        K = self.params["patterns"].shape[0]
        return 4 * K * itemsize + 2 * sum(sizes[n] for n in self.layers) * itemsize
