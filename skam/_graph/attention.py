"""The Energy Transformer's attention energy, with closed-form derivatives.

On the activations ``g`` of one layer of ``N`` tokens of width ``D`` (a row of
length ``N * D`` per sample), with ``H`` heads of dimension ``Y``::

    Q_hC = Wq_h g_C,   K_hB = Wk_h g_B                  (Wq, Wk: (H, Y, D))
    E    = -(1/beta) sum_h sum_C log sum_{B != C} exp(beta K_hB . Q_hC)

Per head, with ``P`` the row softmax of ``beta Q K^T`` over the keys (the
diagonal left out unless ``self_attention``)::

    dE/dQ = -P K,   dE/dK = -P^T Q,   dE/dg = (dE/dQ) Wq + (dE/dK) Wk

so the gradient is an attention block whose values are tied to the keys and
the queries. For backprop through descent, :meth:`AttentionEnergy.grad_vjp`
returns the derivatives of ``f = <U, dE/dg>`` for a cotangent ``U``; with
``Uq = U Wq^T``, ``Uk = U Wk^T`` and ``Adot = Uq K^T + Q Uk^T``::

    Gamma = -beta P * (Adot - rowsum(P * Adot))
    df/dQ = Gamma K - P Uk,    df/dK = Gamma^T Q - P^T Uq
    df/dg = (df/dQ) Wq + (df/dK) Wk
    df/dWq = (df/dQ)^T g - (P K)^T U,   df/dWk = (df/dK)^T g - (P^T Q)^T U

Written with ``matmul`` and reshapes only, so it runs on any array-API
namespace.
"""

from skam._graph.synapses import Synapse
from skam._graph.token_cache import memoised


def _to_heads(a, n, n_tokens, heads, hdim, xp):
    """(n, N, H*Y) -> (n, H, N, Y)."""
    return xp.permute_dims(xp.reshape(a, (n, n_tokens, heads, hdim)), (0, 2, 1, 3))


def _from_heads(a, xp):
    """(n, H, N, Y) -> (n * N, H*Y)."""
    n, heads, n_tokens, hdim = a.shape
    return xp.reshape(xp.permute_dims(a, (0, 2, 1, 3)), (n * n_tokens, heads * hdim))


def _t(a, xp):
    return xp.matrix_transpose(a)


# Row sums below these (float64, float32) make the block-wide shift unsafe.
_TINY = {False: 1e-250, True: 1e-20}


def _row_sums(a, xp):
    """Sums over the last axis, keepdims, as a product with a ones vector."""
    ones = xp.ones((a.shape[-1], 1), dtype=a.dtype, device=_device(a))
    return a @ ones


class AttentionEnergy(Synapse):
    """Multi-head attention energy over the tokens of one layer.

    Parameters
    ----------
    layer : str
        Name of the token layer it reads.
    n_tokens, dim : int
        Tokens per sample and their width ``D``.
    Wq, Wk : arrays of shape (n_heads, head_dim, dim)
        Query and key projections (the trainable ``params``).
    beta : float
        Inverse temperature of the softmax over keys.
    self_attention : bool
        Whether a token may attend to itself (the published ImageNet model
        was trained with it; the tutorial's default leaves it out).
    memo : ForwardMemo or None
        Keeps the queries, keys and attention weights of every state for the
        backward pass of a training step (:mod:`skam._graph.token_cache`).
    """

    def __init__(
        self, layer, n_tokens, dim, Wq, Wk, *, beta, self_attention=False, memo=None
    ):
        super().__init__((layer,), {"Wq": Wq, "Wk": Wk})
        self.memo = memo
        self.layer = layer
        self.n_tokens = int(n_tokens)
        self.dim = int(dim)
        self.beta = float(beta)
        self.self_attention = bool(self_attention)

    @property
    def _empty(self):
        return self.n_tokens < 2 and not self.self_attention

    def bytes_per_row(self, sizes, itemsize):
        """Scratch memory per sample: the scores and softmax of every head."""
        heads, hdim, _ = self.params["Wq"].shape
        per = 3 * heads * self.n_tokens**2 + 6 * heads * self.n_tokens * hdim
        return int(per * itemsize)

    # -- shared forward pieces -------------------------------------------------
    def _heads(self, rows, key, xp):
        """Project flat tokens (n*N, D) by ``params[key]``: (n, H, N, Y)."""
        W = self.params[key]
        heads, hdim, dim = W.shape
        out = rows @ _t(xp.reshape(W, (heads * hdim, dim)), xp)
        n = rows.shape[0] // self.n_tokens
        return _to_heads(out, n, self.n_tokens, heads, hdim, xp)

    def _qk(self, g, xp):
        G = xp.reshape(g, (g.shape[0] * self.n_tokens, self.dim))
        return G, self._heads(G, "Wq", xp), self._heads(G, "Wk", xp)

    def _attend(self, g, xp):
        """``(G, Q, K, P)`` at activations ``g`` (memoised on training steps)."""

        def compute():
            G, Q, K = self._qk(g, xp)
            P, _ = self._softmax(self._logits(Q, K, xp), xp)
            return G, Q, K, P

        return memoised(self.memo, g, "attention", compute)

    def _logits(self, Q, K, xp):
        S = self.beta * (Q @ _t(K, xp))  # (n, H, C=query, B=key)
        if not self.self_attention:
            eye = xp.eye(self.n_tokens, dtype=xp.bool, device=_device(S))
            S = xp.where(eye, -xp.inf, S)
        return S

    def _softmax(self, S, xp):
        """Row softmax of the scores and its log normaliser (n, H, N).

        The scores are shifted by their maximum over each head's whole
        (N, N) block, a reduction over one contiguous axis, and the row sums
        are a product with a ones vector: NumPy reduces short trailing axes
        (N = 16) an order of magnitude slower. A row whose every score lies
        far below that maximum (its sum underflows) falls back to its own
        maximum, so the result is that of the row-wise shift.
        """
        n, heads, queries, keys = S.shape
        flat = xp.reshape(S, (n, heads, queries * keys))
        m = xp.reshape(xp.max(flat, axis=-1), (n, heads, 1, 1))
        e = xp.exp(S - m)
        z = _row_sums(e, xp)
        if not bool(xp.all(z > _TINY[e.dtype == xp.float32])):
            m = xp.max(S, axis=-1, keepdims=True)
            e = xp.exp(S - m)
            z = _row_sums(e, xp)
        return e / z, (m + xp.log(z))[..., 0]

    # -- the term interface ------------------------------------------------------
    def energy(self, g, xp):
        """Attention energy per sample, shape (n,)."""
        x = g[self.layer]
        if self._empty:
            return xp.zeros((x.shape[0],), dtype=x.dtype, device=_device(x))
        _, Q, K = self._qk(x, xp)
        _, lse = self._softmax(self._logits(Q, K, xp), xp)  # (n, H, N)
        return -xp.sum(xp.reshape(lse, (x.shape[0], -1)), axis=1) / self.beta

    def grad(self, g, xp):
        """``{layer: dE/dg}``, shape (n, N * D)."""
        x = g[self.layer]
        if self._empty:
            return {self.layer: xp.zeros_like(x)}
        _, Q, K, P = self._attend(x, xp)
        dQ = -(P @ K)
        dK = -(_t(P, xp) @ Q)
        return {self.layer: self._back_project(dQ, dK, x.shape, xp)}

    def _back_project(self, dQ, dK, shape, xp):
        Wq, Wk = self.params["Wq"], self.params["Wk"]
        heads, hdim, dim = Wq.shape
        out = _from_heads(dQ, xp) @ xp.reshape(Wq, (heads * hdim, dim))
        out = out + _from_heads(dK, xp) @ xp.reshape(Wk, (heads * hdim, dim))
        return xp.reshape(out, shape)

    def grad_vjp(self, g, cot, xp):
        """Derivatives of ``f = <cot, dE/dg>``.

        Returns
        -------
        d_layers : dict
            ``{layer: df/dg}`` (the Hessian of ``E`` applied to ``cot``).
        d_params : dict
            ``{"Wq": df/dWq, "Wk": df/dWk}``.
        """
        x = g[self.layer]
        U = cot[self.layer]
        Wq, Wk = self.params["Wq"], self.params["Wk"]
        if self._empty:
            return {self.layer: xp.zeros_like(x)}, {
                "Wq": xp.zeros_like(Wq),
                "Wk": xp.zeros_like(Wk),
            }
        heads, hdim, dim = Wq.shape
        n = x.shape[0]
        G, Q, K, P = self._attend(x, xp)
        Uf = xp.reshape(U, (n * self.n_tokens, dim))
        Uq, Uk = self._heads(Uf, "Wq", xp), self._heads(Uf, "Wk", xp)
        Adot = Uq @ _t(K, xp) + Q @ _t(Uk, xp)
        PA = P * Adot
        Gam = -self.beta * (PA - P * _row_sums(PA, xp))
        PT = _t(P, xp)
        dQ = Gam @ K - P @ Uk
        dK = _t(Gam, xp) @ Q - PT @ Uq
        d_g = self._back_project(dQ, dK, x.shape, xp)
        dUq = _from_heads(-(P @ K), xp)
        dUk = _from_heads(-(PT @ Q), xp)
        dWq = _t(_from_heads(dQ, xp), xp) @ G + _t(dUq, xp) @ Uf
        dWk = _t(_from_heads(dK, xp), xp) @ G + _t(dUk, xp) @ Uf
        return {self.layer: d_g}, {
            "Wq": xp.reshape(dWq, (heads, hdim, dim)),
            "Wk": xp.reshape(dWk, (heads, hdim, dim)),
        }


def _device(a):
    from array_api_compat import device

    return device(a)
