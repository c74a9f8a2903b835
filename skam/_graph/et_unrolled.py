"""The Energy Transformer as an energy graph: one token layer, two synapses.

The tokens ``x`` (one layer, a row of ``N * D`` numbers per sample) descend the
energy of their layer-normed activations ``g = LN(x)``::

    E(g)    = E_att(g) + E_mem(g)
    x_{t+1} = x_t - step_size * m * dE/dg(g_t)

with ``m`` one on the free tokens and zero on the clamped ones. The layer is
:class:`~skam._graph.tokenwise.TokenWise` over the engine's
:class:`~skam._graph.lagrangians.LayerNorm` with ``legendre=False`` (the
tutorial's rule: no leak ``-x``; the layer norm's Jacobian is positive
semi-definite, so ``dE/dt <= 0``). Descent is the engine's one loop
(:func:`~skam._graph.dynamics.descend_graph`) and training its closed-form
backprop (:func:`~skam._graph.backprop.backward`); this module adds what is
specific to images: the embedding of patches into tokens and the decoding of
the last tokens.
"""

from dataclasses import dataclass

from array_api_compat import device as _device

from skam._graph.attention import AttentionEnergy
from skam._graph.backprop import backward as graph_backward
from skam._graph.dynamics import descend_graph
from skam._graph.graph import EnergyGraph
from skam._graph.lagrangians import LayerNorm
from skam._graph.token_cache import ForwardMemo
from skam._graph.token_embedding import embed, embed_vjp
from skam._graph.token_memory import TokenMemoryEnergy
from skam._graph.tokenwise import TokenWise

LAYER, ATTENTION, MEMORY = "tokens", "attention", "memory"

# where each model array lives in the graph
_GRAPH_KEYS = {
    "Wq": (ATTENTION, "Wq"),
    "Wk": (ATTENTION, "Wk"),
    "Xi": (MEMORY, "Xi"),
    "gamma": (LAYER, "gamma"),
    "delta": (LAYER, "delta"),
}


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


def build_graph(params, config, *, memo=False):
    """The token layer and the attention and memory synapses on ``params``.

    ``memo=True`` gives the terms one :class:`~skam._graph.token_cache.ForwardMemo`:
    the graph then keeps what its forward pass computed at every state for
    the backward pass (use it for one training minibatch, then drop it).
    """
    N, D = config.n_tokens, config.dim
    memo = ForwardMemo() if memo else None
    norm = LayerNorm(gamma=params["gamma"], delta=params["delta"], eps=config.eps)
    return EnergyGraph(
        {LAYER: TokenWise(norm, N, legendre=False, memo=memo)},
        {
            ATTENTION: AttentionEnergy(
                LAYER,
                N,
                D,
                params["Wq"],
                params["Wk"],
                beta=config.beta,
                self_attention=config.self_attention,
                memo=memo,
            ),
            MEMORY: TokenMemoryEnergy(LAYER, N, D, params["Xi"], memo=memo),
        },
        sizes={LAYER: N * D},
    )


def clamp_mask(token_mask, config, clamp_visible, xp):
    """Frozen coordinates (n, N*D): the visible patch tokens when ``clamp_visible``.

    Masked patch tokens and the CLS token are always free.
    """
    if not clamp_visible:
        return None
    n = token_mask.shape[0]
    frozen = xp.logical_not(token_mask)
    if config.n_tokens > token_mask.shape[1]:
        cls = xp.zeros((n, 1), dtype=xp.bool, device=_device(frozen))
        frozen = xp.concat([cls, frozen], axis=1)
    frozen = xp.broadcast_to(frozen[:, :, None], (n, config.n_tokens, config.dim))
    return xp.reshape(frozen, (n, config.n_tokens * config.dim))


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
    chunk_size=None,
    graph=None,
):
    """Embed the patches and descend ``n_steps`` steps.

    ``graph`` is the graph of ``params`` (built here when None; a training
    step passes the one it also gives :func:`backward`).

    Returns
    -------
    result : skam._graph.dynamics.GraphDescentResult
        ``states[LAYER]`` (n, N*D), ``energy_trace`` (n_steps + 1, n) when
        ``trace``, ``tape`` when ``record``.
    """
    n_steps = config.n_steps if n_steps is None else n_steps
    graph = build_graph(params, config) if graph is None else graph
    n = patches.shape[0]
    x0 = xp.reshape(
        embed(params, patches, token_mask, xp), (n, config.n_tokens * config.dim)
    )
    clamp = clamp_mask(token_mask, config, clamp_visible, xp)
    return descend_graph(
        graph,
        {LAYER: x0},
        xp,
        step_size=config.step_size,
        clamp=None if clamp is None else {LAYER: clamp},
        max_iter=n_steps,
        tol=0.0,
        return_trace=trace,
        compute_energy=trace,
        record=record,
        chunk_size=chunk_size,
    )


def normalised_tokens(params, config, x, xp, graph=None):
    """``g = LN(x)`` per token, shape (n, N, D)."""
    graph = build_graph(params, config) if graph is None else graph
    layer = graph.layers[LAYER]
    return xp.reshape(
        layer.activation(x, xp), (x.shape[0], config.n_tokens, config.dim)
    )


def decode(params, config, x, n_patches, xp, graph=None):
    """Patches decoded from the layer-normed patch tokens, (n, n_patches, Z)."""
    g = normalised_tokens(params, config, x, xp, graph)
    g = g[:, config.n_tokens - n_patches :, :]
    return g @ params["W_dec"] + params["b_dec"]


def backward(params, config, patches, token_mask, result, grad_patches, xp, graph=None):
    """Gradients of a loss of the decoded last state, for every model array.

    Parameters
    ----------
    result : GraphDescentResult
        From ``forward(..., record=True)``.
    grad_patches : array of shape (n, n_patches, Z)
        ``dLoss / d decoded patches``.
    graph : EnergyGraph or None
        The graph the forward pass ran (with its memo); None builds one.

    Returns
    -------
    grads : dict
        One array per key of ``params``.
    """
    graph = build_graph(params, config) if graph is None else graph
    layer = graph.layers[LAYER]
    n, n_patches, Z = grad_patches.shape
    N, D = config.n_tokens, config.dim
    x_T = result.states[LAYER]
    g_T = normalised_tokens(params, config, x_T, xp, graph)[:, N - n_patches :, :]
    grads = {
        "W_dec": xp.matrix_transpose(xp.reshape(g_T, (-1, D)))
        @ xp.reshape(grad_patches, (-1, Z)),
        "b_dec": xp.sum(xp.reshape(grad_patches, (-1, Z)), axis=0),
    }
    g_bar = grad_patches @ xp.matrix_transpose(params["W_dec"])  # (n, Np, D)
    if N > n_patches:
        zeros = xp.zeros(
            (n, N - n_patches, D), dtype=g_bar.dtype, device=_device(g_bar)
        )
        g_bar = xp.concat([zeros, g_bar], axis=1)
    g_bar = xp.reshape(g_bar, (n, N * D))
    x_bar = layer.hvp(x_T, g_bar, xp)
    grad_x0, grad_graph = graph_backward(graph, result.tape, {LAYER: x_bar}, xp)
    for name, pvalue in layer.param_vjp(x_T, g_bar, xp).items():
        key = (LAYER, name)
        grad_graph[key] = grad_graph.get(key, 0.0) + pvalue
    for name, key in _GRAPH_KEYS.items():
        grads[name] = (
            grad_graph[key] if key in grad_graph else xp.zeros_like(params[name])
        )
    grads.update(
        embed_vjp(
            params, patches, token_mask, xp.reshape(grad_x0[LAYER], (n, N, D)), xp
        )
    )
    return grads
