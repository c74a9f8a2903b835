"""A neuron layer of tokens: any row-wise Lagrangian applied to every token.

The Energy Transformer's layer holds ``n_tokens`` tokens of width ``D`` side
by side in a row of ``n_tokens * D`` numbers (the engine's states are 2-D).
:class:`TokenWise` reshapes to ``(n * n_tokens, D)``, applies its inner
Lagrangian (e.g. :class:`~skam._graph.lagrangians.LayerNorm`, whose
activation is the per-token layer norm) and sums ``L`` over the tokens of a
row. The Hessian stays block diagonal and positive semi-definite.

``legendre=False`` marks a layer without its Legendre term, the Energy
Transformer's rule: the layer adds nothing to the energy and its dynamics have
no leak, ``dx/dt = -dE_syn/dg`` (the engine's dynamics and backprop honour
the flag). The energy still never increases in continuous time, since
``dE/dt = -(dE/dg)^T H (dE/dg) <= 0``.
"""

from array_api_compat import device as _device

from skam._graph.lagrangians import Lagrangian
from skam._graph.token_cache import memoised


class TokenWise(Lagrangian):
    """Apply ``inner`` to each of the ``n_tokens`` tokens of a row.

    Parameters
    ----------
    inner : Lagrangian
        A row-wise Lagrangian of :mod:`skam._graph.lagrangians`.
    n_tokens : int
        Tokens per row.
    legendre : bool, default=True
        Count the layer's Legendre energy and leak; False for the Energy
        Transformer.
    memo : ForwardMemo or None
        Keeps the activation of every state for the backward pass of a
        training step (:mod:`skam._graph.token_cache`).
    """

    _param_names = ("inner", "n_tokens", "legendre")

    def __init__(self, inner, n_tokens, legendre=True, memo=None):
        self.inner = inner
        self.n_tokens = int(n_tokens)
        self.legendre = bool(legendre)
        self.memo = memo

    def _tokens(self, x, xp):
        return xp.reshape(x, (x.shape[0] * self.n_tokens, x.shape[1] // self.n_tokens))

    def _rows(self, a, n, xp):
        return xp.reshape(a, (n, a.shape[0] * a.shape[1] // n))

    def _per_row(self, values, n, xp):
        return xp.sum(xp.reshape(values, (n, self.n_tokens)), axis=1)

    def lagrangian(self, x, xp):
        """``sum_tokens L(x_token)``, shape (n,)."""
        return self._per_row(
            self.inner.lagrangian(self._tokens(x, xp), xp), x.shape[0], xp
        )

    def activation(self, x, xp):
        """The inner activation of every token, shape (n, n_tokens * D)."""
        return memoised(
            self.memo,
            x,
            "activation",
            lambda: self._rows(
                self.inner.activation(self._tokens(x, xp), xp), x.shape[0], xp
            ),
        )

    def hvp(self, x, v, xp):
        """Block-diagonal Hessian times ``v``."""
        out = self.inner.hvp(self._tokens(x, xp), self._tokens(v, xp), xp)
        return self._rows(out, x.shape[0], xp)

    def energy(self, x, xp, g=None):
        """Legendre energy summed over tokens (zeros when ``legendre=False``)."""
        if not self.legendre:
            return xp.zeros((x.shape[0],), dtype=x.dtype, device=_device(x))
        return self._per_row(self.inner.energy(self._tokens(x, xp), xp), x.shape[0], xp)

    @property
    def params(self):
        """Trainable arrays of the inner layer (e.g. ``gamma``, ``delta``)."""
        return getattr(self.inner, "params", {})

    def param_vjp(self, x, cot, xp):
        """``d<cot, g(x)>/dparam`` summed over rows and tokens."""
        return self.inner.param_vjp(self._tokens(x, xp), self._tokens(cot, xp), xp)

    def bytes_per_row(self, d, itemsize):
        return 4 * d * itemsize
