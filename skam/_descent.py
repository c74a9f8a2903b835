"""Energy descent with clamping: the one retrieval loop of skam.

``v <- v - alpha * m * grad E(v)`` where ``m`` is 0 on clamped (frozen)
coordinates and 1 elsewhere (for the non-LSE separations the gradient is
rescaled per query into the mean-shift step, see
:func:`skam._energy.descent_direction`). Each query stops on its own when the L2 norm of
its update is at most ``tol`` (it is then frozen while the rest of its chunk
goes on), or after ``max_iter`` steps. With the ``"dot"`` similarity the
energy is unbounded below, so the free coordinates are projected back onto the
box spanned by the memories after every step. ``"lsr"`` descent can be
finished by the exact fixed-point iteration of Hoover et al. (2025,
Algorithm 1): replace the free coordinates by the (weighted) mean of the
memories whose support contains the state, until that set stops changing.

Queries are processed in chunks (:mod:`skam._chunking`) so that extra memory
stays within ``working_memory``; the results do not depend on the chunk size.
"""

from dataclasses import dataclass

from skam._chunking import chunk_rows, concat, iter_chunks
from skam._energy import (
    descent_direction,
    energy_from_log_z,
    half_sq_distances,
    log_kernel_sum,
    lsr_support_radius_sq,
)


@dataclass
class DescentResult:
    """What :func:`descend` returns.

    Attributes
    ----------
    states : array of shape (n, D)
        Final states.
    n_iter : array of shape (n,), int
        Steps taken by each query.
    converged : array of shape (n,), bool
        Whether each query met ``tol`` before ``max_iter``.
    energy : array of shape (n,)
        Energy of the final states.
    energy_trace : array of shape (T + 1, n) or None
        Energy before every step and after the last; a query that stopped
        early repeats its final energy.
    """

    states: object
    n_iter: object
    converged: object
    energy: object
    energy_trace: object = None


def free_mask(clamp_mask, xp):
    """Boolean (n, D) or (1, D) array, True where coordinates may move."""
    if clamp_mask is None:
        return None
    free = xp.logical_not(clamp_mask)
    if free.ndim == 1:
        free = free[None, :]
    return free


def _take_rows(mask, sl):
    if mask is None or mask.shape[0] == 1:
        return mask
    return mask[sl, :]


def descend(
    V0,
    memories,
    spec,
    xp,
    *,
    clamp_mask=None,
    alpha=1.0,
    max_iter=100,
    tol=1e-6,
    box=None,
    lsr_fixed_point=False,
    return_trace=False,
    chunk_size=None,
):
    """Clamped energy descent of every row of ``V0``.

    Parameters
    ----------
    V0 : array of shape (n, D)
        Initial states (compute namespace, compute dtype).
    memories : Memories
        From :func:`skam._energy.prepare_memories`.
    spec : EnergySpec
    xp : namespace
    clamp_mask : bool array of shape (D,) or (n, D), or None
        True = clamped (frozen) coordinate.
    alpha : float
        Step size.
    max_iter : int
        Maximum number of steps (0 returns the initial states).
    tol : float
        A query stops when ``||v_new - v||_2 <= tol``.
    box : tuple of two arrays of shape (D,), or None
        Lower and upper bounds the free coordinates are projected onto.
    lsr_fixed_point : bool
        Finish with the exact LSR fixed-point iteration.
    return_trace : bool
        Record the energy before every step.
    chunk_size : int or None
        Queries per chunk; None sizes chunks from ``working_memory``.

    Returns
    -------
    result : DescentResult
    """
    n = V0.shape[0]
    itemsize = 4 if V0.dtype == xp.float32 else 8
    rows = chunk_rows(n, memories.n_memories, itemsize, chunk_size=chunk_size)
    free = free_mask(clamp_mask, xp)
    parts = []
    for sl in iter_chunks(n, rows):
        parts.append(
            _descend_chunk(
                V0[sl, :],
                memories,
                spec,
                xp,
                free=_take_rows(free, sl),
                alpha=alpha,
                max_iter=max_iter,
                tol=tol,
                box=box,
                lsr_fixed_point=lsr_fixed_point,
                return_trace=return_trace,
            )
        )
    trace = None
    if return_trace:
        length = max(p.energy_trace.shape[0] for p in parts)
        trace = concat([_pad_trace(p.energy_trace, length, xp) for p in parts], xp, 1)
    return DescentResult(
        states=concat([p.states for p in parts], xp),
        n_iter=concat([p.n_iter for p in parts], xp),
        converged=concat([p.converged for p in parts], xp),
        energy=concat([p.energy for p in parts], xp),
        energy_trace=trace,
    )


def _pad_trace(trace, length, xp):
    if trace.shape[0] == length:
        return trace
    last = xp.broadcast_to(trace[-1:, :], (length - trace.shape[0], trace.shape[1]))
    return xp.concat([trace, last], axis=0)


def _project(V, box, free, xp):
    lower, upper = box
    projected = xp.minimum(xp.maximum(V, lower[None, :]), upper[None, :])
    if free is None:
        return projected
    return xp.where(free, projected, V)


def _descend_chunk(
    V,
    memories,
    spec,
    xp,
    *,
    free,
    alpha,
    max_iter,
    tol,
    box,
    lsr_fixed_point,
    return_trace,
):
    n = V.shape[0]
    active = xp.ones((n,), dtype=xp.bool, device=_device(V))
    n_iter = xp.zeros((n,), dtype=xp.int64, device=_device(V))
    trace = []
    log_z = None
    for _ in range(max_iter):
        log_z, P = log_kernel_sum(V, memories, spec, xp)
        if return_trace:
            trace.append(energy_from_log_z(log_z, spec))
        step = alpha * descent_direction(V, P, memories, spec, xp)
        if free is not None:
            step = xp.where(free, step, xp.zeros_like(step))
        V_new = V - step
        if box is not None:
            V_new = _project(V_new, box, free, xp)
        delta = xp.linalg.vector_norm(V_new - V, axis=1)
        V = xp.where(active[:, None], V_new, V)
        n_iter = n_iter + xp.astype(active, xp.int64)
        active = xp.logical_and(active, delta > tol)
        if not bool(xp.any(active)):
            break
    if lsr_fixed_point and spec.separation == "lsr":
        V = lsr_fixed_point_iteration(V, memories, spec, xp, free=free)
    log_z, _ = log_kernel_sum(V, memories, spec, xp, need_weights=False)
    energy = energy_from_log_z(log_z, spec)
    if return_trace:
        trace.append(energy)
        trace = xp.stack(trace, axis=0)
        # queries that stopped early keep their final energy from then on
        steps = xp.arange(trace.shape[0], device=_device(V))[:, None]
        trace = xp.where(steps > n_iter[None, :], energy[None, :], trace)
    return DescentResult(
        states=V,
        n_iter=n_iter,
        converged=xp.logical_not(active),
        energy=energy,
        energy_trace=trace if return_trace else None,
    )


def lsr_fixed_point_iteration(V, memories, spec, xp, *, free=None, max_rounds=50):
    """Exact fixed points of the LSR energy (Hoover et al. 2025, Algorithm 1).

    Each free coordinate becomes the weighted mean of the memories whose
    support contains the state; repeated until that set stops changing.
    States outside every support are left where they are.
    """
    radius_sq = lsr_support_radius_sq(spec)
    patterns = memories.patterns
    for _ in range(max_rounds):
        sq = 2.0 * half_sq_distances(V, memories, xp)
        inside = sq < radius_sq
        weights = xp.astype(inside, V.dtype)
        if memories.log_weights is not None:
            weights = weights * xp.exp(memories.log_weights)[None, :]
        total = xp.sum(weights, axis=1, keepdims=True)
        has_support = total > 0
        mean = (weights @ patterns) / xp.where(has_support, total, xp.ones_like(total))
        move = has_support if free is None else xp.logical_and(has_support, free)
        V_new = xp.where(move, mean, V)
        if not bool(xp.any(V_new != V)):
            break
        V = V_new
    return V


def _device(array):
    from array_api_compat import device

    return device(array)
