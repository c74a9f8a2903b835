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

import math
from dataclasses import dataclass, replace

from array_api_compat import device as array_device
from array_api_compat import is_numpy_namespace

from skam._chunking import itemsize, rows_per_chunk
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
    means: list  # T arrays (n, D - pull_from): P @ Xi[:, pull_from:] of each step
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
    changes no result beyond rounding. Used on the backward terms ``A``; the
    softmax weights themselves go through the stricter
    :func:`drop_negligible_weights`.
    """
    tiny = xp.finfo(M.dtype).smallest_normal
    return xp.where(xp.abs(M) < tiny, xp.zeros_like(M), M)


def drop_negligible_weights(P, xp):
    """Softmax weights ``P`` (rows summing to 1) with those below ``eps**2`` set to 0.

    Flushing only the subnormal weights is not enough: a normal weight near
    the underflow threshold times a memory coordinate below 1 gives a
    subnormal *product*, and BLAS kernels pay the same penalty for those
    (measured in training at 10 000 x 784, K = 1 000, float32: the
    (128 x 1000) @ (1000 x 10) product of the label columns took 3.7 ms with
    17 % of the weights below ``1e-30``, 0.05 ms without; a whole batch's
    forward and backward 17.1 ms -> 6.5 ms). A row loses at most
    ``K * eps**2`` of its mass (float32: ``1.4e-14 K``, float64
    ``4.9e-32 K``), below the rounding of the sum for any ``K < 1 / eps``.
    """
    eps = xp.finfo(P.dtype).eps
    return xp.where(P < eps * eps, xp.zeros_like(P), P)


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
    states, weights, means = [V0], [], []
    V = V0
    p = int(pull_from)
    for _ in range(n_steps):
        _, P = log_kernel_sum(V, memories, spec, xp)
        P = drop_negligible_weights(P, xp)
        mean = P @ (patterns[:, p:] if p else patterns)
        if p:
            free = V[:, p:]
            free = free - a[..., p:] * (free - mean)
            V = xp.concat([V[:, :p], free], axis=1)
        else:
            V = V - a * (V - mean)
        states.append(V)
        weights.append(P)
        means.append(mean)
    return UnrolledTape(
        states=states, weights=weights, means=means, step=a, pull_from=p
    )


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
    V0 = tape.states[0]
    # Sums over the steps. sum_t A_t.T @ v_t is taken as (sum_t A_t).T @ v_0
    # (one (K, n, D) product for all the steps) plus, from the second step
    # on, A_t.T @ (v_t - v_0) on the free coordinates only: the clamped ones
    # (before p) never move.
    A_sum = None  # sum_t A_t, (n, K)
    moved = None  # sum_t A_t.T @ (v_t - v_0) on coordinates p:, (K, D - p)
    pulled_sum = None  # sum_t P_t.T @ u_t, on coordinates p:
    for t in range(len(tape.weights) - 1, -1, -1):
        V, P = tape.states[t], tape.weights[t]
        V_free = V[:, p:] if p else V
        u = a * g
        pulled = tape.means[t]  # P @ Xi, from the forward pass
        A = P * (u @ Xi.T - xp.sum(u * pulled, axis=1, keepdims=True))
        A = flush_subnormals(A, xp)
        A_rows = xp.sum(A, axis=1, keepdims=True)
        g = (1.0 - a) * g - beta * c_free * (V_free * A_rows - A @ Xi)
        step_pulled = P.T @ u
        if t:
            shift = A.T @ (V_free - (V0[:, p:] if p else V0))
            moved = shift if moved is None else moved + shift
        if A_sum is None:
            A_sum, pulled_sum = A, step_pulled
        else:
            A_sum = A_sum + A
            pulled_sum = pulled_sum + step_pulled
    if A_sum is None:  # no steps
        return xp.zeros_like(patterns), g, xp.zeros_like(patterns[:, 0])
    grad_log_w = xp.sum(A_sum, axis=0)
    # dL/dXi = beta * c * (sum_t A_t.T @ v_t - sum_t A_cols_t * Xi) + P.T @ u
    grad = A_sum.T @ V0
    if moved is not None:
        grad = _add_to_columns(grad, p, moved, xp)
    if is_numpy_namespace(xp):  # in place, by blocks of rows in the cache
        scale = beta * c
        scratch = xp.empty((_block_rows(grad), grad.shape[1]), dtype=grad.dtype)
        for rows in _row_blocks(grad, scratch.shape[0]):
            block, tmp = grad[rows], scratch[: rows.stop - rows.start]
            xp.multiply(patterns[rows], grad_log_w[rows, None], out=tmp)
            block -= tmp
            block *= scale
    else:
        grad = (grad - grad_log_w[:, None] * patterns) * (beta * c)
    return _add_to_columns(grad, p, pulled_sum, xp), g, grad_log_w


def _add_to_columns(M, start, addend, xp):
    """``M`` with ``addend`` added to its columns ``start:`` (in place for NumPy)."""
    if is_numpy_namespace(xp):
        M[:, start:] += addend
        return M
    if not start:
        return M + addend
    return xp.concat([M[:, :start], M[:, start:] + addend], axis=1)


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
    """Adam on a list of arrays of any array-API namespace.

    Parameters
    ----------
    params : list of arrays
        Initial values. By default the updates copy them (never written in
        place), so arrays kept from earlier steps stay valid.
    xp : namespace
    learning_rate : float
    beta1, beta2, eps : float
        The usual Adam constants.
    in_place : bool, default=False
        Update the parameters and moments in place (NumPy arrays of at
        least one dimension; other namespaces have no ``out=`` and copy as
        usual). The parameters are
        copied once at construction; ``params`` then holds the same arrays
        after every step, so a caller keeping a step's values must copy
        them. The update is the same, bit for bit, and costs 12 in-place
        passes over the parameters instead of 12 allocating ones (measured,
        5 000 x 784 float32: 13 ms instead of 22 ms a step).
    """

    def __init__(
        self,
        params,
        xp,
        *,
        learning_rate=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        in_place=False,
    ):
        self.xp = xp
        params = list(params)
        self.in_place = (
            bool(in_place)
            and is_numpy_namespace(xp)
            and all(p.ndim >= 1 for p in params)
        )
        if self.in_place:
            params = [xp.asarray(p, copy=True) for p in params]
        self.params = list(params)
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [xp.zeros_like(p) for p in self.params]
        self.v = [xp.zeros_like(p) for p in self.params]
        self.t = 0
        self._scratch = None

    def step(self, grads):
        """Apply one update; returns the new parameters."""
        xp = self.xp
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        correction = (1 - b2**self.t) ** 0.5 / (1 - b1**self.t)
        lr = self.learning_rate * correction
        if self.in_place:
            self._step_in_place(grads, lr)
            return self.params
        new = []
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * (g * g)
            new.append(p - lr * self.m[i] / (xp.sqrt(self.v[i]) + self.eps))
        self.params = new
        return new

    def _step_in_place(self, grads, lr):
        """The update of :meth:`step` with NumPy's ``out=``, by blocks of rows.

        The same operations in the same order as :meth:`step`, on blocks of
        about ``CACHE_BLOCK_BYTES`` per array, so that the 12 passes run in
        the cache rather than in memory (measured, 1 000 x 784: 2.25 ->
        1.26 ms float32, 4.9 -> 3.2 ms float64).
        """
        xp = self.xp
        b1, b2 = self.beta1, self.beta2
        if self._scratch is None:
            self._scratch = [_block_scratch(p, xp) for p in self.params]
        arrays = zip(self.params, self.m, self.v, grads, self._scratch, strict=True)
        for p_all, m_all, v_all, g_all, (s_all, r_all) in arrays:
            for rows in _row_blocks(p_all, s_all.shape[0]):
                p, m, v, g = p_all[rows], m_all[rows], v_all[rows], g_all[rows]
                n = p.shape[0]
                s, r = s_all[:n], r_all[:n]
                m *= b1
                xp.multiply(g, 1 - b1, out=s)
                m += s
                v *= b2
                xp.multiply(g, g, out=s)
                s *= 1 - b2
                v += s
                xp.sqrt(v, out=s)
                s += self.eps
                xp.multiply(m, lr, out=r)
                xp.divide(r, s, out=s)
                p -= s


# Element-wise passes over large arrays are memory-bound: done by blocks of
# rows of about this many bytes per array, the few arrays of a block stay
# in a core's L2 cache (2 MiB on the machines measured).
CACHE_BLOCK_BYTES = 2**18


def _block_rows(a):
    """Rows of ``a`` per block of about ``CACHE_BLOCK_BYTES``."""
    row_bytes = itemsize(a) * max(1, math.prod(a.shape[1:]))
    return rows_per_chunk(
        a.shape[0], row_bytes, max_rows=CACHE_BLOCK_BYTES // row_bytes
    )


def _block_scratch(a, xp):
    """Two scratch arrays of one block of ``a``'s rows (``a.ndim >= 1``)."""
    shape = (_block_rows(a), *a.shape[1:])
    return xp.empty(shape, dtype=a.dtype), xp.empty(shape, dtype=a.dtype)


def _row_blocks(a, rows):
    """Slices of ``a``'s first axis, ``rows`` at a time."""
    return [slice(i, min(i + rows, a.shape[0])) for i in range(0, a.shape[0], rows)]
