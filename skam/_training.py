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
"""

from dataclasses import dataclass

from skam._energy import EnergySpec, log_kernel_sum, prepare_memories


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
    pull_from=0,
):
    """Run ``n_steps`` of clamped LSE descent and record them.

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
    pull_from : int, default=0
        The coordinates before ``pull_from`` are clamped (``update_mask`` is
        False there): the steps, and :func:`unrolled_backward`, then pull
        only the coordinates ``pull_from:`` (the label neurons of the
        supervised memories), a (n, K, D - pull_from) product instead of a
        (n, K, D) one. Results are those of ``pull_from=0``.

    Returns
    -------
    tape : UnrolledTape
        ``tape.states[-1]`` is the output ``v^(T)``.
    """
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
