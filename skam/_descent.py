"""Energy descent with clamping: the one retrieval loop of skam.

``v <- v - step_size * m * grad E(v)`` where ``m`` is 0 on clamped (frozen)
coordinates and 1 elsewhere (for the non-LSE separations the gradient is
rescaled per query into the mean-shift step, see
:func:`skam._partial.finish`). Each query stops on its own when the L2 norm of
its update is at most ``tol`` (it is then frozen while the rest of its chunk
goes on), or after ``max_iter`` steps. With the ``"dot"`` similarity the
energy is unbounded below, so the free coordinates are projected back onto the
box spanned by the memories after every step. ``"lsr"`` descent can be
finished by the exact fixed-point iteration of Hoover et al. (2025,
Algorithm 1): replace the free coordinates by the (weighted) mean of the
memories whose support contains the state, until that set stops changing.

Queries are processed in chunks (:mod:`skam._chunking`) so that extra memory
stays within ``working_memory``; the results do not depend on the chunk size.

The loop asks an *energy oracle* for the energy and the descent direction of a
chunk of states. Stored memories (:class:`~skam._energy.Memories` with an
:class:`~skam._energy.EnergySpec`) are wrapped in :class:`KernelSumOracle`;
any other object with the same three members (``n_columns``,
``energy_and_direction(V)``, ``energy(V)``) can be passed instead of the
memories, e.g. the distributed memory of the random-feature AM
(:mod:`skam._bochner`), which stores no patterns.
"""

from dataclasses import dataclass

from array_api_compat import device as _device

from skam._chunking import chunk_slices, concat, itemsize
from skam._energy import (
    descent_direction,
    energy_from_log_z,
    half_sq_distances,
    kernel_sum_temporaries,
    log_kernel_sum,
    log_z_and_direction,
    lsr_support_radius_sq,
)
from skam._partial import MIN_QUERY_ROWS, memory_block_rows

# How many (n_chunk, oracle.n_columns) temporaries a descent step holds at
# once, for oracles that do not say (``oracle.temporaries``): the
# similarity/logit matrix, its exponential and the gradient weights.
TEMPORARIES_PER_COLUMN = 3


class KernelSumOracle:
    """Energy oracle of stored memories: the default of :func:`descend`.

    An energy oracle provides, for one chunk of states ``V`` (n, D):

    * ``n_columns``: width of its per-query temporaries (sizes the chunks);
    * ``energy_and_direction(V)`` -> energy (n,), descent direction (n, D);
    * ``energy(V)`` -> energy (n,).
    """

    def __init__(self, memories, spec, xp):
        self.memories = memories
        self.spec = spec
        self.xp = xp

    # the memory axis can be split into blocks (skam._partial), so a chunk of
    # queries need not shrink below 64 rows to fit working_memory
    splits_memories = True

    @property
    def n_columns(self):
        return self.memories.n_memories

    @property
    def temporaries(self):
        """(n, n_columns) arrays alive at once in one step."""
        return kernel_sum_temporaries(self.spec)

    def energy_and_direction(self, V):
        log_z, direction = log_z_and_direction(V, self.memories, self.spec, self.xp)
        return energy_from_log_z(log_z, self.spec), direction

    def energy(self, V):
        log_z, _ = log_kernel_sum(
            V, self.memories, self.spec, self.xp, need_weights=False
        )
        return energy_from_log_z(log_z, self.spec)

    def direction(self, V):
        """The descent direction alone (optional member of an oracle)."""
        return descent_direction(V, self.memories, self.spec, self.xp)

    def direction_from(self, V, start):
        """The direction on coordinates ``start:`` (:func:`step_from`)."""
        return descent_direction(V, self.memories, self.spec, self.xp, pull_from=start)

    def support_sums(self, V):
        return support_sums(V, self.memories, self.spec, self.xp)


def _as_oracle(memories, spec, xp):
    if hasattr(memories, "energy_and_direction"):
        return memories
    return KernelSumOracle(memories, spec, xp)


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
    step_size=1.0,
    max_iter=100,
    tol=1e-6,
    box=None,
    lsr_fixed_point=False,
    return_trace=False,
    compute_energy=True,
    chunk_size=None,
    monotone=False,
):
    """Clamped energy descent of every row of ``V0``.

    Parameters
    ----------
    V0 : array of shape (n, D)
        Initial states (compute namespace, compute dtype).
    memories : Memories or energy oracle
        From :func:`skam._energy.prepare_memories`, or an object with
        ``n_columns``, ``energy_and_direction(V)`` and ``energy(V)`` (see
        :class:`KernelSumOracle`); ``spec`` is then unused (may be None).
    spec : EnergySpec or None
    xp : namespace
    clamp_mask : bool array of shape (D,) or (n, D), or None
        True = clamped (frozen) coordinate.
    step_size : float
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
    compute_energy : bool
        Compute the energy of the final states (``result.energy``; None
        otherwise). Retrieval alone does not need it.
    chunk_size : int or None
        Queries per chunk; None sizes chunks from ``working_memory``.
    monotone : bool
        Never raise the energy: a step that would raise a query's energy is
        rejected and that query's step size halved (accepted steps keep it);
        a query also stops when its step size falls below ``1e-9`` of
        ``step_size``. For energies whose plain step can overshoot (the
        polynomial ones).

    Returns
    -------
    result : DescentResult
    """
    oracle = _as_oracle(memories, spec, xp)
    free = free_mask(clamp_mask, xp)
    parts = []
    if monotone:
        chunk = _descend_chunk_monotone
    elif max_iter == 1 and not return_trace:
        chunk = _one_step_chunk  # the default of most estimators
    else:
        chunk = _descend_chunk
    for sl in _query_chunks(V0, oracle, xp, chunk_size):
        parts.append(
            chunk(
                V0[sl, :],
                oracle,
                xp,
                free=_take_rows(free, sl),
                step_size=step_size,
                max_iter=max_iter,
                tol=tol,
                box=box,
                lsr_fixed_point=lsr_fixed_point,
                return_trace=return_trace,
                compute_energy=compute_energy,
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
        energy=concat([p.energy for p in parts], xp) if compute_energy else None,
        energy_trace=trace,
    )


def _query_chunks(V0, oracle, xp, chunk_size):
    """Slices of the queries ``V0`` for ``oracle``'s temporaries (``working_memory``).

    The kernel-sum oracle splits its memories into blocks instead of
    shrinking a chunk below ``MIN_QUERY_ROWS`` queries (huge K).
    """
    temporaries = getattr(oracle, "temporaries", TEMPORARIES_PER_COLUMN)
    per_row = temporaries * oracle.n_columns * itemsize(V0)
    min_rows = MIN_QUERY_ROWS if getattr(oracle, "splits_memories", False) else None
    return chunk_slices(
        V0.shape[0], per_row, chunk_size=chunk_size, min_rows=min_rows, xp=xp
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
    oracle,
    xp,
    *,
    free,
    step_size,
    max_iter,
    tol,
    box,
    lsr_fixed_point,
    return_trace,
    compute_energy,
):
    n = V.shape[0]
    dev = _device(V)
    free_full = free
    active = xp.ones((n,), dtype=xp.bool, device=dev)
    n_iter = xp.zeros((n,), dtype=xp.int64, device=dev)
    # Rows that stopped are set aside (unless a trace is recorded) so that the
    # rest of the chunk does not keep paying for them: ``rows`` holds the
    # original row of each working row, ``finished`` the rows set aside.
    rows = xp.arange(n, device=dev)
    finished = []
    trace = []
    for _ in range(max_iter):
        energy, direction = oracle.energy_and_direction(V)
        if return_trace:
            trace.append(energy)
        step = step_size * direction
        if free is not None:
            step = xp.where(free, step, xp.zeros_like(step))
        V_new = V - step
        if box is not None:
            V_new = _project(V_new, box, free, xp)
            step = V - V_new
        moved_sq = xp.sum(step * step, axis=1)  # squared norm of the update
        V = xp.where(active[:, None], V_new, V)
        n_iter = n_iter + xp.astype(active, xp.int64)
        active = xp.logical_and(active, moved_sq > tol * tol)
        n_active = int(xp.sum(xp.astype(active, xp.int64)))
        if n_active == 0:
            break
        if not return_trace and V.shape[0] - n_active >= max(1, V.shape[0] // 8):
            keep = xp.nonzero(active)[0]
            stop = xp.nonzero(xp.logical_not(active))[0]
            finished.append(
                (xp.take(V, stop, axis=0), xp.take(rows, stop), xp.take(n_iter, stop))
            )
            V, rows = xp.take(V, keep, axis=0), xp.take(rows, keep)
            n_iter, active = xp.take(n_iter, keep), xp.take(active, keep)
            if free is not None and free.shape[0] > 1:
                free = xp.take(free, keep, axis=0)
    if finished:
        converged = xp.concat(
            [xp.ones_like(part[1], dtype=xp.bool) for part in finished]
            + [xp.logical_not(active)]
        )
        order = xp.argsort(xp.concat([part[1] for part in finished] + [rows]))
        V = xp.take(
            xp.concat([part[0] for part in finished] + [V], axis=0), order, axis=0
        )
        n_iter = xp.take(xp.concat([part[2] for part in finished] + [n_iter]), order)
        active = xp.logical_not(xp.take(converged, order))
    return _finish(
        V,
        oracle,
        xp,
        free=free_full,
        n_iter=n_iter,
        active=active,
        trace=trace,
        energy=None,
        lsr_fixed_point=lsr_fixed_point,
        return_trace=return_trace,
        compute_energy=compute_energy,
    )


def _finish(
    V,
    oracle,
    xp,
    *,
    free,
    n_iter,
    active,
    trace,
    energy,
    lsr_fixed_point,
    return_trace,
    compute_energy,
):
    """The end of both descent loops: exact fixed points, final energy, trace.

    ``energy`` is the energy of ``V`` when the loop kept it (None: computed
    here if needed); ``trace`` the per-step energies recorded so far.
    """
    spec = getattr(oracle, "spec", None)
    if lsr_fixed_point and spec is not None and spec.function.constant_slope:
        V = lsr_fixed_point_iteration(V, oracle, xp, free=free)
        energy = None  # the states moved
    wanted = compute_energy or return_trace
    if energy is None and wanted:
        energy = oracle.energy(V)
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
        energy=energy if wanted else None,
        energy_trace=trace if return_trace else None,
    )


def _one_step_chunk(
    V,
    oracle,
    xp,
    *,
    free,
    step_size,
    max_iter,
    tol,
    box,
    lsr_fixed_point,
    return_trace,
    compute_energy,
):
    """:func:`_descend_chunk` for ``max_iter == 1`` without a trace.

    The same step and the same results, without the bookkeeping of queries
    that stop early (a dozen small array calls, which weigh on one-row
    calls).
    """
    if hasattr(oracle, "direction"):  # no energy asked: skip log_z
        direction = oracle.direction(V)
    else:
        _, direction = oracle.energy_and_direction(V)
    step = step_size * direction
    if free is not None:
        step = xp.where(free, step, xp.zeros_like(step))
    V_new = V - step
    if box is not None:
        V_new = _project(V_new, box, free, xp)
        step = V - V_new
    moved_sq = xp.sum(step * step, axis=1)
    spec = getattr(oracle, "spec", None)
    if lsr_fixed_point and spec is not None and spec.function.constant_slope:
        V_new = lsr_fixed_point_iteration(V_new, oracle, xp, free=free)
    return DescentResult(
        states=V_new,
        n_iter=xp.ones((V.shape[0],), dtype=xp.int64, device=_device(V)),
        converged=xp.logical_not(moved_sq > tol * tol),
        energy=oracle.energy(V_new) if compute_energy else None,
    )


def step_from(V0, oracle, xp, *, start, step_size=1.0, chunk_size=None):
    """One descent step of coordinates ``start:`` of every row, the others clamped.

    The default prediction of the supervised estimators (``max_iter=1``,
    the features clamped, no box): the step :func:`descend` takes, computed
    and returned on the free coordinates only, shape (n, D - start), without
    the (n, D) arrays of the clamped ones (a zero direction, the masked step,
    the new states, the update norms: about as many passes over the queries
    as the GEMM's read-out on MNIST-sized data). ``oracle`` provides
    ``direction_from(V, start)``, the direction on those coordinates.

    Parameters
    ----------
    V0 : array of shape (n, D)
        Initial states (compute namespace, compute dtype).
    oracle : energy oracle with ``direction_from`` and ``n_columns``
    xp : namespace
    start : int
        First free coordinate.
    step_size : float
    chunk_size : int or None
        Queries per chunk; None sizes chunks from ``working_memory``.

    Returns
    -------
    free : array of shape (n, D - start)
    """
    parts = [
        V0[sl, start:] - step_size * oracle.direction_from(V0[sl, :], start)
        for sl in _query_chunks(V0, oracle, xp, chunk_size)
    ]
    return concat(parts, xp)


def _descend_chunk_monotone(
    V,
    oracle,
    xp,
    *,
    free,
    step_size,
    max_iter,
    tol,
    box,
    lsr_fixed_point,
    return_trace,
    compute_energy,
):
    """:func:`_descend_chunk` with a per-query step size that never raises E."""
    n = V.shape[0]
    dev = _device(V)
    active = xp.ones((n,), dtype=xp.bool, device=dev)
    n_iter = xp.zeros((n,), dtype=xp.int64, device=dev)
    eta = xp.full((n,), float(step_size), dtype=V.dtype, device=dev)
    smallest = 1e-9 * float(step_size)
    slack = 64.0 * float(xp.finfo(V.dtype).eps)
    trace = []
    energy, direction = oracle.energy_and_direction(V)
    for _ in range(max_iter):
        if return_trace:
            trace.append(energy)
        step = eta[:, None] * direction
        if free is not None:
            step = xp.where(free, step, xp.zeros_like(step))
        V_new = V - step
        if box is not None:
            V_new = _project(V_new, box, free, xp)
            step = V - V_new
        E_new, d_new = oracle.energy_and_direction(V_new)
        worse = E_new > energy + slack * xp.abs(energy)
        accept = xp.logical_and(active, xp.logical_not(worse))
        V = xp.where(accept[:, None], V_new, V)
        energy = xp.where(accept, E_new, energy)
        direction = xp.where(accept[:, None], d_new, direction)
        eta = xp.where(xp.logical_and(active, worse), 0.5 * eta, eta)
        n_iter = n_iter + xp.astype(active, xp.int64)
        moved_sq = xp.sum(step * step, axis=1)
        settled = xp.logical_and(accept, moved_sq <= tol * tol)
        stuck = eta < smallest
        active = xp.logical_and(active, xp.logical_not(xp.logical_or(settled, stuck)))
        if not bool(xp.any(active)):
            break
    return _finish(
        V,
        oracle,
        xp,
        free=free,
        n_iter=n_iter,
        active=active,
        trace=trace,
        energy=energy,
        lsr_fixed_point=lsr_fixed_point,
        return_trace=return_trace,
        compute_energy=compute_energy,
    )


def support_sums(V, memories, spec, xp):
    """Weight and weighted pattern sum of the memories whose support holds V.

    Returns ``(total, summed)`` of shapes (n, 1) and (n, D): a plain sum over
    memories, so blocks (or shards) of memories merge by addition.
    """
    K = memories.n_memories
    rows = memory_block_rows(V.shape[0], K, itemsize(V))
    total, summed = None, None
    for start in range(0, K, rows):  # blocks of memories within working_memory
        block = memories if rows >= K else memories.block(slice(start, start + rows))
        inside = half_sq_distances(V, block, xp) < 0.5 * lsr_support_radius_sq(spec)
        weights = xp.astype(inside, V.dtype)
        del inside
        if block.log_weights is not None:
            weights *= xp.exp(block.log_weights)[None, :]
        part = xp.sum(weights, axis=1, keepdims=True), weights @ block.patterns
        del weights
        if total is None:
            total, summed = part
        else:
            total, summed = total + part[0], summed + part[1]
    return total, summed


def lsr_fixed_point_iteration(V, oracle, xp, *, free=None, max_rounds=50):
    """Exact fixed points of the LSR energy (Hoover et al. 2025, Algorithm 1).

    Each free coordinate becomes the weighted mean of the memories whose
    support contains the state; repeated until that set stops changing.
    States outside every support are left where they are. ``oracle`` provides
    ``support_sums(V)`` (:func:`support_sums` over its memories).
    """
    for _ in range(max_rounds):
        total, summed = oracle.support_sums(V)
        has_support = total > 0
        mean = summed / xp.where(has_support, total, xp.ones_like(total))
        move = has_support if free is None else xp.logical_and(has_support, free)
        V_new = xp.where(move, mean, V)
        if not bool(xp.any(V_new != V)):
            break
        V = V_new
    return V
