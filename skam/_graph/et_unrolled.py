"""The Energy Transformer's recurrent descent, its energy trace and its backprop.

The tokens ``x`` (one layer, a row of ``N * D`` numbers per sample) descend the
energy of their layer-normed activations ``g = LN(x)``::

    E(g)    = E_att(g) + E_mem(g)
    x_{t+1} = x_t - step_size * m * dE/dg(g_t)

with ``m`` one on the free tokens and zero on the clamped ones. This is Euler
on ``dx/dt = -m dE/dg`` (the notebook's rule: no leak term ``-x``); since the
layer norm's Jacobian is positive semi-definite, ``dE/dt <= 0``.

:func:`backward` runs the adjoint of these steps in closed form (the terms'
``grad_vjp`` and the Lagrangian's Hessian-vector product), for a loss on the
decoded patches of the last state.
"""

from dataclasses import dataclass

from skam._graph.attention import AttentionEnergy
from skam._graph.layernorm import LayerNormLagrangian
from skam._graph.token_embedding import embed, embed_vjp
from skam._graph.token_memory import TokenMemoryEnergy

LAYER = "tokens"


@dataclass(frozen=True)
class ETConfig:
    """Static settings of an Energy Transformer (everything but the arrays)."""

    n_tokens: int  # including CLS
    dim: int
    beta: float
    self_attention: bool
    step_size: float
    n_steps: int
    eps: float = 1e-5


def build_terms(params, config):
    """The layer norm and the two energy terms on ``params``."""
    N, D = config.n_tokens, config.dim
    norm = LayerNormLagrangian(
        N, D, gamma=params["gamma"], delta=params.get("delta"), eps=config.eps
    )
    terms = (
        AttentionEnergy(
            LAYER,
            N,
            D,
            params={"Wq": params["Wq"], "Wk": params["Wk"]},
            beta=config.beta,
            self_attention=config.self_attention,
        ),
        TokenMemoryEnergy(LAYER, N, D, params={"Xi": params["Xi"]}),
    )
    return norm, terms


def total_energy(norm, terms, x, xp):
    """``E(LN(x))`` per sample, shape (n,)."""
    g = {LAYER: norm.activation(x, xp)}
    E = terms[0].energy(g, xp)
    for term in terms[1:]:
        E = E + term.energy(g, xp)
    return E


def total_grad(norm, terms, x, xp):
    """``dE/dg`` at ``g = LN(x)``, shape of ``x``."""
    g = {LAYER: norm.activation(x, xp)}
    out = terms[0].grad(g, xp)[LAYER]
    for term in terms[1:]:
        out = out + term.grad(g, xp)[LAYER]
    return out


def free_mask(token_mask, config, clamp_visible, dtype, xp):
    """Per-token step mask (n, N, 1): 1 where a token moves.

    Masked patch tokens and the CLS token are free; visible patch tokens are
    clamped when ``clamp_visible``.
    """
    m = xp.astype(token_mask, dtype)
    if not clamp_visible:
        m = xp.ones_like(m)
    if config.n_tokens > token_mask.shape[1]:
        ones = xp.ones((m.shape[0], 1), dtype=dtype, device=_device(m))
        m = xp.concat([ones, m], axis=1)
    return m[:, :, None]


def forward(
    params,
    config,
    patches,
    token_mask,
    xp,
    *,
    clamp_visible=True,
    n_steps=None,
    record=False,
    trace=False,
):
    """Embed, descend ``n_steps`` and return the last tokens.

    Returns
    -------
    states : list of arrays (n, N*D)
        ``[x_T]``, or every ``x_t`` when ``record``.
    energies : list of arrays (n,) or None
        ``E`` at every state ``x_0 .. x_T`` when ``trace``.
    """
    n_steps = config.n_steps if n_steps is None else n_steps
    norm, terms = build_terms(params, config)
    n = patches.shape[0]
    x = xp.reshape(
        embed(params, patches, token_mask, xp), (n, config.n_tokens * config.dim)
    )
    m = free_mask(token_mask, config, clamp_visible, x.dtype, xp)
    step = xp.reshape(
        config.step_size * xp.broadcast_to(m, (n, config.n_tokens, config.dim)),
        x.shape,
    )
    states = [x]
    energies = [total_energy(norm, terms, x, xp)] if trace else None
    for _ in range(n_steps):
        x = x - step * total_grad(norm, terms, x, xp)
        if record:
            states.append(x)
        else:
            states[0] = x
        if trace:
            energies.append(total_energy(norm, terms, x, xp))
    return states, energies


def decode(params, config, x, n_patches, xp):
    """Patches decoded from the layer-normed patch tokens, (n, n_patches, Z)."""
    norm, _ = build_terms(params, config)
    n = x.shape[0]
    g = xp.reshape(norm.activation(x, xp), (n, config.n_tokens, config.dim))
    g = g[:, config.n_tokens - n_patches :, :]
    return g @ params["W_dec"] + params["b_dec"]


def backward(
    params, config, patches, token_mask, states, grad_patches, xp, *, clamp_visible=True
):
    """Gradients of a loss of the decoded last state for every parameter.

    Parameters
    ----------
    states : list
        Every state ``x_0 .. x_T`` (``forward(..., record=True)``).
    grad_patches : array of shape (n, n_patches, Z)
        ``dLoss / d decoded patches``.

    Returns
    -------
    grads : dict
        One array per key of ``params``.
    """
    norm, terms = build_terms(params, config)
    n, n_patches, Z = grad_patches.shape
    N, D = config.n_tokens, config.dim
    x_T = states[-1]
    g_T = xp.reshape(norm.activation(x_T, xp), (n, N, D))[:, N - n_patches :, :]
    grads = {
        "W_dec": xp.matrix_transpose(xp.reshape(g_T, (-1, D)))
        @ xp.reshape(grad_patches, (-1, Z)),
        "b_dec": xp.sum(xp.reshape(grad_patches, (-1, Z)), axis=0),
    }
    for key in ("Wq", "Wk", "Xi"):
        grads[key] = xp.zeros_like(params[key])
    grads["gamma"] = xp.zeros_like(params["gamma"])
    if params.get("delta") is not None:
        grads["delta"] = xp.zeros_like(params["delta"])

    def add_norm(x, g_bar):
        for k, v in norm.param_vjp(x, g_bar, xp).items():
            grads[k] = grads[k] + v
        return norm.hvp(x, g_bar, xp)

    g_bar = grad_patches @ xp.matrix_transpose(params["W_dec"])  # (n, Np, D)
    if N > n_patches:
        zeros = xp.zeros(
            (n, N - n_patches, D), dtype=g_bar.dtype, device=_device(g_bar)
        )
        g_bar = xp.concat([zeros, g_bar], axis=1)
    x_bar = add_norm(x_T, xp.reshape(g_bar, (n, N * D)))
    m = free_mask(token_mask, config, clamp_visible, x_T.dtype, xp)
    step = xp.reshape(config.step_size * xp.broadcast_to(m, (n, N, D)), (n, N * D))
    term_keys = [("Wq", "Wk"), ("Xi",)]
    for t in range(len(states) - 2, -1, -1):
        x = states[t]
        u = {LAYER: step * x_bar}
        g = {LAYER: norm.activation(x, xp)}
        g_bar = None
        for term, keys in zip(terms, term_keys, strict=True):
            d_layers, d_params = term.grad_vjp(g, u, xp)
            g_bar = -d_layers[LAYER] if g_bar is None else g_bar - d_layers[LAYER]
            for k in keys:
                grads[k] = grads[k] - d_params[k]
        x_bar = x_bar + add_norm(x, g_bar)
    grads.update(
        embed_vjp(params, patches, token_mask, xp.reshape(x_bar, (n, N, D)), xp)
    )
    return grads


def _device(a):
    from array_api_compat import device

    return device(a)
