"""A Hopfield (memory) energy applied to every token of one layer.

On the activations ``g`` of ``N`` tokens of width ``D`` and memories ``Xi``
of shape (M, D), with ``h = g_B Xi^T`` per token::

    E = -1/2 sum_B sum_mu relu(h_B,mu)^2
    dE/dg_B = -relu(h_B) Xi                        (a weight-tied ReLU MLP)

For a cotangent ``U`` and ``f = <U, dE/dg>``, with ``u = U Xi^T`` and ``[h > 0]``
the ReLU's mask::

    df/dg  = -(u * [h > 0]) Xi
    df/dXi = -(relu(h)^T U + (u * [h > 0])^T g)
"""

from skam._graph.synapses import Synapse
from skam._graph.token_cache import memoised


class TokenMemoryEnergy(Synapse):
    """Rectified-quadratic Hopfield energy over the tokens of one layer.

    Parameters
    ----------
    layer : str
        Name of the token layer it reads.
    n_tokens, dim : int
        Tokens per sample and their width ``D``.
    Xi : array of shape (n_memories, dim)
        The memories (the trainable ``params``).
    memo : ForwardMemo or None
        Keeps the hidden units of every state for the backward pass of a
        training step (:mod:`skam._graph.token_cache`).
    """

    def __init__(self, layer, n_tokens, dim, Xi, *, memo=None):
        super().__init__((layer,), {"Xi": Xi})
        self.memo = memo
        self.layer = layer
        self.n_tokens = int(n_tokens)
        self.dim = int(dim)

    def bytes_per_row(self, sizes, itemsize):
        """Scratch memory per sample: two (N, M) arrays."""
        return int(2 * self.n_tokens * self.params["Xi"].shape[0] * itemsize)

    def _hidden(self, x, xp):
        def compute():
            G = xp.reshape(x, (x.shape[0] * self.n_tokens, self.dim))
            return G, G @ xp.matrix_transpose(self.params["Xi"])

        return memoised(self.memo, x, "memory", compute)

    def energy(self, g, xp):
        """Memory energy per sample, shape (n,)."""
        x = g[self.layer]
        _, h = self._hidden(x, xp)
        r = xp.maximum(h, 0.0)
        per_token = -0.5 * xp.sum(r * r, axis=1)
        return xp.sum(xp.reshape(per_token, (x.shape[0], self.n_tokens)), axis=1)

    def grad(self, g, xp):
        """``{layer: dE/dg}``."""
        x = g[self.layer]
        _, h = self._hidden(x, xp)
        out = -(xp.maximum(h, 0.0) @ self.params["Xi"])
        return {self.layer: xp.reshape(out, x.shape)}

    def grad_vjp(self, g, cot, xp):
        """Derivatives of ``f = <cot, dE/dg>``: ``({layer: df/dg}, {"Xi": df/dXi})``."""
        x = g[self.layer]
        Xi = self.params["Xi"]
        G, h = self._hidden(x, xp)
        U = xp.reshape(cot[self.layer], G.shape)
        r = xp.maximum(h, 0.0)
        u = (U @ xp.matrix_transpose(Xi)) * xp.astype(h > 0, h.dtype)
        d_g = -(u @ Xi)
        d_xi = -(xp.matrix_transpose(r) @ U + xp.matrix_transpose(u) @ G)
        return {self.layer: xp.reshape(d_g, x.shape)}, {"Xi": d_xi}
