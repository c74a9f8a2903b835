"""Learning memories: closed-form backprop through unrolled LSE descent, and Adam.

Shared by every estimator that learns its memories (the parametric
classifier, AMClustering). The model is ``T`` steps of clamped LSE descent
with the squared-Euclidean similarity (see :mod:`skam._energy`)::

    v <- v - a * (v - P @ Xi),   a = step_size * m * c,
    P = softmax_mu(-beta/2 * sum_i c_i (v_i - xi_mu,i)^2 + log w_mu)

with ``m`` the update mask (1 = free, 0 = clamped) and ``c`` optional
per-coordinate weights. :func:`unrolled_forward` keeps the states and softmax
weights of every step; :func:`unrolled_backward` returns the exact gradients
of a loss of the final state with respect to the memories ``Xi``, the initial
states and the log memory weights, written in closed form (one step, given
``g = dL/dv+``)::

    u = a * g
    A = P * (u @ Xi.T - sum(u * (P @ Xi), axis=1))          # dL/dlogits
    dL/dv  = (1 - a) * g - beta * c * (v * sum(A, 1) - A @ Xi)
    dL/dXi += P.T @ u + beta * c * (A.T @ v - sum(A, 0) * Xi)
    dL/dlog w += sum(A, 0)

The cost of a step is a handful of GEMMs of shape (n, K, D); the states of
all steps are stored, O(T n D), so call it on minibatches.

That fused loop is the fast path of LSE. Every other separation (given as
``spec``) runs through the graph engine's one forward loop
(:func:`skam._graph.dynamics.descend_graph` with ``record=True``, the
estimators' memory written as :func:`skam._graph.builders.dense_am_graph`)
and its generic backward (:func:`skam._graph.backprop.backward`), which
differentiates the mean-shift step of those separations, its per-query time
constant ``1 / sum_mu P_mu`` included. Both return the same tape interface
(``states[-1]``, ``weights[-1]``), so callers need not know which ran.
"""

from dataclasses import dataclass, replace

from array_api_compat import device as array_device

from skam._energy import (
    EnergySpec,
    Memories,
    log_kernel_sum,
    prepare_memories,
)


@dataclass
class UnrolledTape:
    """What the forward pass keeps for the backward pass."""

    states: list  # T + 1 arrays (n, D): v^(0) .. v^(T)
    weights: list  # T arrays (n, K): the softmax of each step
    step: object  # a = step_size * m * c, broadcastable to (n, D)
    pull_from: int = 0  # coordinates before it are clamped (a = 0 there)


def flush_subnormals(M, xp):
    """``M`` with its subnormal entries set to 0 (what FTZ/DAZ hardware does).

    Softmax weights of rivals far from a query underflow to subnormal numbers
    (below ``1.2e-38`` in float32, ``2.2e-308`` in float64), and so do the
    backward terms built from them; BLAS kernels run 100-150x slower on
    subnormal inputs on common CPUs (measured: 128 x 1000 x 794 float32 GEMM,
    1.6 ms normal, 233 ms with half of one operand subnormal), which made
    most of the parametric classifier's training time. A subnormal entry is
    below ``1e-30`` of the largest weight (1 for a softmax): setting it to 0
    changes no result beyond rounding.
    """
    tiny = xp.finfo(M.dtype).smallest_normal
    return xp.where(xp.abs(M) < tiny, xp.zeros_like(M), M)


def _step_scale(step_size, update_mask, coord_weights, xp, dtype):
    scale = step_size
    if update_mask is not None:
        scale = scale * xp.astype(update_mask, dtype)
    if coord_weights is not None:
        scale = scale * coord_weights
    return scale


def unrolled_forward(
    V0,
    patterns,
    xp,
    *,
    beta,
    step_size,
    n_steps,
    update_mask=None,
    coord_weights=None,
    log_weights=None,
    spec=None,
    pull_from=0,
):
    """Run ``n_steps`` of clamped descent and record them.

    Parameters
    ----------
    V0 : array of shape (n, D)
        Initial states.
    patterns : array of shape (K, D)
        The memories ``Xi``.
    xp : namespace
    beta, step_size : float
        Inverse temperature and step size.
    n_steps : int
        Number of steps ``T``.
    update_mask : bool array of shape (n, D) or (D,), or None
        True where a coordinate may move (the complement of a clamp mask).
    coord_weights : array of shape (D,) or None
        Per-coordinate weights ``c`` of the similarity.
    log_weights : array of shape (K,) or None
        Log memory weights.
    spec : EnergySpec or None
        The energy (its ``beta`` is replaced by ``beta``); None or LSE with
        the squared-Euclidean similarity runs the fused LSE loop, anything
        else the graph engine (mean-shift steps, :class:`GraphTape`).
    pull_from : int, default=0
        The coordinates before ``pull_from`` are clamped (``update_mask`` is
        False there): the steps, and :func:`unrolled_backward`, then pull
        only the coordinates ``pull_from:`` (the label neurons of the
        supervised memories), a (n, K, D - pull_from) product instead of a
        (n, K, D) one. Results are those of ``pull_from=0``. The fused LSE
        loop only (the graph engine pulls every coordinate).

    Returns
    -------
    tape : UnrolledTape or GraphTape
        ``tape.states[-1]`` is the output ``v^(T)``.
    """
    if spec is not None and not (spec.is_lse and spec.similarity == "sqeuclidean"):
        return _graph_forward(
            V0,
            patterns,
            xp,
            spec=replace(spec, beta=float(beta)),
            step_size=step_size,
            n_steps=n_steps,
            update_mask=update_mask,
            coord_weights=coord_weights,
            log_weights=log_weights,
        )
    spec = EnergySpec(separation="lse", similarity="sqeuclidean", beta=float(beta))
    memories = prepare_memories(patterns, xp, coord_weights=coord_weights)
    if log_weights is not None:
        memories = type(memories)(
            memories.patterns,
            log_weights,
            memories.coord_weights,
            memories.half_sqnorms,
        )
    a = _step_scale(step_size, update_mask, coord_weights, xp, V0.dtype)
    states, weights = [V0], []
    V = V0
    p = int(pull_from)
    for _ in range(n_steps):
        _, P = log_kernel_sum(V, memories, spec, xp)
        P = flush_subnormals(P, xp)
        if p:
            free = V[:, p:]
            free = free - a[..., p:] * (free - P @ patterns[:, p:])
            V = xp.concat([V[:, :p], free], axis=1)
        else:
            V = V - a * (V - P @ patterns)
        states.append(V)
        weights.append(P)
    return UnrolledTape(states=states, weights=weights, step=a, pull_from=p)


def unrolled_backward(tape, patterns, grad_out, xp, *, beta, coord_weights=None):
    """Gradients of a loss of ``tape.states[-1]`` through all the steps.

    Parameters
    ----------
    tape : UnrolledTape
        From :func:`unrolled_forward` with the same ``patterns``.
    patterns : array of shape (K, D)
        The memories.
    grad_out : array of shape (n, D)
        ``dL/dv^(T)``.
    xp : namespace
    beta : float
        Inverse temperature used in the forward pass.
    coord_weights : array of shape (D,) or None
        Per-coordinate weights used in the forward pass.

    Returns
    -------
    grad_patterns : array of shape (K, D)
        ``dL/dXi``.
    grad_initial : array of shape (n, D)
        ``dL/dv^(0)``; with ``tape.pull_from = p > 0``, of the free
        coordinates ``p:`` only, shape (n, D - p).
    grad_log_weights : array of shape (K,)
        ``dL/dlog w``.

    Notes
    -----
    Where ``a = 0`` (clamped coordinates) ``u = a * g`` vanishes, and the
    gradient on clamped coordinates never reaches ``u``, ``A`` or the
    memories: with ``tape.pull_from = p`` every product but ``A.T @ v`` runs
    on the coordinates ``p:`` only (the same numbers, a fraction of the work).
    """
    if isinstance(tape, GraphTape):
        return _graph_backward(tape, grad_out, xp)
    c = 1.0 if coord_weights is None else coord_weights
    p = tape.pull_from
    a = tape.step[..., p:] if p else tape.step
    c_free = c[p:] if p and coord_weights is not None else c
    Xi = patterns[:, p:] if p else patterns
    g = grad_out[:, p:] if p else grad_out
    # sums over the steps; the first step starts them (no zero arrays of
    # the memories' size to add to: the backward is memory-bound there)
    grad_pulled = None  # the P.T @ u terms, on coordinates p:
    grad_patterns = None
    grad_log_w = None
    for t in range(len(tape.weights) - 1, -1, -1):
        V, P = tape.states[t], tape.weights[t]
        V_free = V[:, p:] if p else V
        u = a * g
        pulled = P @ Xi
        A = P * (u @ Xi.T - xp.sum(u * pulled, axis=1, keepdims=True))
        A = flush_subnormals(A, xp)
        A_rows = xp.sum(A, axis=1, keepdims=True)
        A_cols = xp.sum(A, axis=0)
        g_prev = (1.0 - a) * g - beta * c_free * (V_free * A_rows - A @ Xi)
        step_pulled = P.T @ u
        step_patterns = (A.T @ V - A_cols[:, None] * patterns) * (beta * c)
        if grad_patterns is None:
            grad_pulled, grad_patterns, grad_log_w = step_pulled, step_patterns, A_cols
        else:
            grad_pulled = grad_pulled + step_pulled
            grad_patterns = grad_patterns + step_patterns
            grad_log_w = grad_log_w + A_cols
        g = g_prev
    if grad_patterns is None:  # no steps
        grad_pulled = xp.zeros_like(Xi)
        grad_patterns = xp.zeros_like(patterns)
        grad_log_w = xp.zeros_like(patterns[:, 0])
    if p:
        grad_patterns = xp.concat(
            [grad_patterns[:, :p], grad_patterns[:, p:] + grad_pulled], axis=1
        )
    else:
        grad_patterns = grad_patterns + grad_pulled
    return grad_patterns, g, grad_log_w


# ------------------------------------------- every other energy: the graph
@dataclass
class GraphTape:
    """The graph engine's record of the unrolled steps (non-LSE energies).

    ``states`` holds the initial and the final states; ``weights[-1]``
    (computed on demand) are the normalised mean-shift weights
    ``wF'(z) / sum wF'(z)`` of the last step, (n, K), like the softmax of
    :class:`UnrolledTape`.
    """

    graph: object
    result: object
    states: list
    xp: object

    @property
    def weights(self):
        from skam._graph.builders import VISIBLE

        if not self.result.tape.entries:
            return []
        _, x, _ = self.result.tape.entries[-1]
        synapse = self.graph.synapses["memory"]
        V = x[VISIBLE]
        _, P = log_kernel_sum(V, synapse.memories(self.xp), synapse.spec, self.xp)
        total = self.xp.sum(P, axis=1, keepdims=True)
        positive = total > 0
        return [P / self.xp.where(positive, total, self.xp.ones_like(total))]


def _graph_forward(
    V0,
    patterns,
    xp,
    *,
    spec,
    step_size,
    n_steps,
    update_mask,
    coord_weights,
    log_weights,
):
    from skam._graph.builders import VISIBLE, dense_am_graph
    from skam._graph.dynamics import descend_graph

    memories = Memories(patterns, log_weights, coord_weights, None)
    graph = dense_am_graph(memories, spec)
    clamp = None if update_mask is None else {VISIBLE: xp.logical_not(update_mask)}
    result = descend_graph(
        graph,
        {VISIBLE: V0},
        xp,
        step_size=step_size,
        clamp=clamp,
        max_iter=int(n_steps),
        tol=0.0,
        record=True,
        compute_energy=False,
    )
    return GraphTape(graph, result, [V0, result.states[VISIBLE]], xp)


def _graph_backward(tape, grad_out, xp):
    from skam._graph.backprop import backward
    from skam._graph.builders import VISIBLE

    grad_initial, grads = backward(
        tape.graph, tape.result.tape, {VISIBLE: grad_out}, xp
    )
    grad_log_w = grads.get(("memory", "log_weights"))
    if grad_log_w is None:  # no memory weights: nothing moves them
        K = tape.graph.synapses["memory"].params["patterns"].shape[0]
        grad_log_w = xp.zeros((K,), dtype=grad_out.dtype, device=array_device(grad_out))
    return grads[("memory", "patterns")], grad_initial[VISIBLE], grad_log_w


class Adam:
    """Adam on a list of arrays of any array-API namespace (in place of none).

    Parameters
    ----------
    params : list of arrays
        Initial values (copied by the updates, never written in place).
    xp : namespace
    learning_rate : float
    beta1, beta2, eps : float
        The usual Adam constants.
    """

    def __init__(
        self, params, xp, *, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8
    ):
        self.xp = xp
        self.params = list(params)
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [xp.zeros_like(p) for p in self.params]
        self.v = [xp.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads):
        """Apply one update; returns the new parameters."""
        xp = self.xp
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        correction = (1 - b2**self.t) ** 0.5 / (1 - b1**self.t)
        lr = self.learning_rate * correction
        new = []
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * (g * g)
            new.append(p - lr * self.m[i] / (xp.sqrt(self.v[i]) + self.eps))
        self.params = new
        return new
