"""The Energy Transformer's layer norm, written as the gradient of a Lagrangian.

One neuron layer holds ``n_tokens`` tokens of width ``D`` side by side, as a
2-D state ``x`` of shape ``(n, n_tokens * D)``; the Lagrangian is blocked over
tokens. Per token, with ``xc = x - mean(x)``, ``s = sqrt(mean(xc**2) + eps)``
and ``z = xc / s``::

    L(x)  = D * gamma * s + delta . x          (convex for gamma >= 0)
    g(x)  = dL/dx = gamma * z + delta          (layer norm, scalar gain)
    H(x)v = (gamma / s) * (v - mean(v) - z * (z . v) / D)

The Hessian ``H`` is symmetric positive semi-definite (its null space holds
the constant vector and ``x`` itself), which is what makes descent on the
activations ``tau dx/dt = -dE/dg`` lower any energy ``E(g)``: ``dE/dt =
-(dE/dg)^T H (dE/dg) <= 0``.
"""

from dataclasses import dataclass
from typing import Any


@dataclass
class LayerNormLagrangian:
    """Per-token layer-norm Lagrangian over ``n_tokens`` tokens of width ``dim``.

    Parameters
    ----------
    n_tokens, dim : int
        The state of one sample is ``n_tokens`` tokens of ``dim`` numbers,
        stored as a row of length ``n_tokens * dim``.
    gamma : float or 0-d array
        Scalar gain (``>= 0`` keeps the Lagrangian convex).
    delta : array of shape (dim,) or None
        Bias added to every token (None: no bias).
    eps : float
        Added to the variance.
    """

    n_tokens: int
    dim: int
    gamma: Any = 1.0
    delta: Any = None
    eps: float = 1e-5

    def _split(self, x, xp):
        n = x.shape[0]
        x3 = xp.reshape(x, (n, self.n_tokens, self.dim))
        xc = x3 - xp.mean(x3, axis=2, keepdims=True)
        s = xp.sqrt(xp.mean(xc * xc, axis=2, keepdims=True) + self.eps)
        return x3, xc / s, s

    def lagrangian(self, x, xp):
        """``L(x)`` per sample, shape (n,)."""
        x3, _, s = self._split(x, xp)
        L = self.dim * self.gamma * xp.sum(s[:, :, 0], axis=1)
        if self.delta is not None:
            L = L + xp.sum(xp.sum(x3 * self.delta, axis=2), axis=1)
        return L

    def activation(self, x, xp):
        """``g = dL/dx``, shape (n, n_tokens * dim)."""
        _, z, _ = self._split(x, xp)
        g = self.gamma * z
        if self.delta is not None:
            g = g + self.delta
        return xp.reshape(g, (x.shape[0], self.n_tokens * self.dim))

    def normalised(self, x, xp):
        """The unit-variance tokens ``z`` (n, n_tokens, dim): ``dg/dgamma``."""
        return self._split(x, xp)[1]

    def hvp(self, x, v, xp):
        """Hessian-vector product ``(d^2 L / dx^2) v``, shape of ``x``."""
        n = x.shape[0]
        _, z, s = self._split(x, xp)
        v3 = xp.reshape(v, (n, self.n_tokens, self.dim))
        vc = v3 - xp.mean(v3, axis=2, keepdims=True)
        zv = xp.sum(z * v3, axis=2, keepdims=True)
        out = (self.gamma / s) * (vc - z * zv / self.dim)
        return xp.reshape(out, (n, self.n_tokens * self.dim))

    def energy(self, x, xp):
        """The layer's Legendre energy ``x . g - L`` per sample, shape (n,)."""
        return xp.sum(x * self.activation(x, xp), axis=1) - self.lagrangian(x, xp)

    def param_vjp(self, x, cot, xp):
        """``d<cot, g(x)>/d(gamma, delta)``: the gradients of the parameters."""
        n = x.shape[0]
        z = self.normalised(x, xp)
        c3 = xp.reshape(cot, (n, self.n_tokens, self.dim))
        grads = {"gamma": xp.sum(c3 * z)}
        if self.delta is not None:
            grads["delta"] = xp.sum(xp.sum(c3, axis=0), axis=0)
        return grads
