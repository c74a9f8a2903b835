"""The one forward loop of energy graphs: clamped descent, per-query stopping.

Each layer follows ``tau_l dx_l/dt = -dE/dg_l = -(x_l + sum_s dE_s/dg_l)``,
discretised as Euler steps::

    x_l <- x_l - step_size_l * m_l * (x_l + sum_s dE_s/dg_l(g))

with ``m_l`` zero on clamped coordinates (``step_size_l = dt / tau_l``). In
continuous time ``dE/dt = -sum_l (dE/dg_l)^T H_l (dE/dg_l) / tau_l <= 0``:
the energy never increases. Discrete steps keep that property for small
steps; two rules make it exact in practice:

* a layer whose synapses are all linear in its activation (dense, bias) is
  minimised exactly by ``step_size_l = 1`` when it is updated alone (its
  block of the energy is ``x.g - L(x) - I.g``, minimised at ``x = I``), so
  ``schedule`` lets layers be updated in sequence (block coordinate descent);
* the other layers need ``step_size_l <= 1/lambda_max`` of their block's
  curvature; ``0.5`` or less is safe for the graphs built here (measured in
  the tests), the synchronous ``1.0`` is not in general.

A step is a sequence of *groups* (``schedule``; default: one group holding
every layer, i.e. synchronous updates). Each query stops on its own when the
L2 norm of its whole update is at most ``tol``, or after ``max_iter`` steps.

``record=True`` keeps what backpropagation needs (the states before every
group update and the step factors) on a tape: training runs the same loop as
inference (:mod:`skam._graph.backprop`).

Queries are processed in chunks sized from ``working_memory`` by the shared
chunking helper, with each term reporting its bytes per row.
"""

from dataclasses import dataclass, field

from array_api_compat import device as _device

from skam._chunking import chunk_slices, concat, itemsize


@dataclass
class GraphDescentResult:
    """What :func:`descend_graph` returns.

    ``states``: dict of final states; ``n_iter`` (n,); ``converged`` (n,);
    ``energy`` (n,) or None; ``energy_trace`` (T + 1, n) or None; ``tape``
    (a :class:`Tape`) when recorded.
    """

    states: dict
    n_iter: object
    converged: object
    energy: object = None
    energy_trace: object = None
    tape: object = None
    term_trace: dict = None


@dataclass
class Tape:
    """Forward record for backpropagation: one entry per group update."""

    entries: list = field(default_factory=list)  # (group, states before, factors)


def _free_masks(clamp, x, xp):
    """Per-layer float masks (1 = free), None for fully free layers."""
    out = {}
    for name, value in (clamp or {}).items():
        if value is None or value is False:
            continue
        shape = x[name].shape
        if value is True:
            out[name] = xp.zeros(
                (1, shape[1]), dtype=x[name].dtype, device=_device(x[name])
            )
            continue
        free = xp.astype(xp.logical_not(value), x[name].dtype)
        out[name] = free[None, :] if free.ndim == 1 else free
    return out


def _step_factors(graph, step_size, free, xp):
    """``step_size_l * m_l`` of every layer (a float or an array)."""
    factors = {}
    for name in graph.layers:
        alpha = step_size.get(name, 1.0) if isinstance(step_size, dict) else step_size
        factors[name] = alpha * free[name] if name in free else alpha
    return factors


def _rows(value, sl):
    if isinstance(value, float | int) or value.shape[0] == 1:
        return value
    return value[sl, :]


def mean_shift_scales(graph, g, group, xp):
    """Per-query time constants of the layers of ``group``: ``layer -> (synapse, tau)``.

    A synapse with ``mean_shift`` scales the steps of the layers it joins by
    its ``step_scale`` (the last such synapse of a layer wins). Training
    differentiates ``tau`` too (:func:`skam._graph.backprop.backward`).
    """
    scales = {}
    for sname, s in graph.synapses.items():
        if getattr(s, "mean_shift", False) and set(s.layers).intersection(group):
            scale = s.step_scale(g, xp)
            for name in s.layers:
                scales[name] = (sname, scale)
    return scales


def group_directions(graph, x, group, xp, g=None):
    """``dE/dg_l`` of the layers of ``group`` (the leak ``x_l`` included)."""
    g = graph.activations(x, xp) if g is None else g
    syn = graph.synapse_grads(g, xp, layers=group)
    out = {}
    for name in group:
        direction = syn[name]
        if getattr(graph.layers[name], "legendre", True):  # the leak -x
            direction = x[name] + direction
        out[name] = direction
    return out


def group_update(graph, x, group, factors, xp):
    """Steps ``a_l * tau_l * dE/dg_l`` of the layers of ``group`` at states ``x``."""
    g = graph.activations(x, xp)
    scales = mean_shift_scales(graph, g, group, xp)
    steps = {}
    for name, direction in group_directions(graph, x, group, xp, g).items():
        if name in scales:
            direction = direction * scales[name][1]
        steps[name] = factors[name] * direction
    return steps


def _project(value, bounds, free, xp):
    lower, upper = bounds
    projected = xp.minimum(xp.maximum(value, lower[None, :]), upper[None, :])
    if free is None:
        return projected
    return xp.where(free > 0, projected, value)


def descend_graph(
    graph,
    x0,
    xp,
    *,
    step_size=1.0,
    clamp=None,
    schedule=None,
    max_iter=100,
    tol=1e-6,
    bounds=None,
    return_trace=False,
    compute_energy=True,
    record=False,
    chunk_size=None,
    return_term_trace=False,
    keep=None,
):
    """Clamped descent of every query of an :class:`~skam._graph.graph.EnergyGraph`.

    Parameters
    ----------
    graph : EnergyGraph
    x0 : dict of str -> array of shape (n, d_l)
        Initial states of every layer.
    xp : namespace
    step_size : float or dict of str -> float
        ``dt / tau_l`` per layer (a dict may omit layers: they get 1.0).
    clamp : dict of str -> bool, or bool array of shape (d_l,) or (n, d_l)
        True freezes a whole layer or the marked coordinates.
    schedule : list of tuples of str, or None
        Groups of layers updated in sequence within a step (None: all at once).
    max_iter : int
        Number of steps at most.
    tol : float
        A query stops when the L2 norm of its update (all layers) is <= tol.
    bounds : dict of str -> (lower, upper) arrays of shape (d_l,), or None
        Box the free coordinates of a layer are projected onto after each update.
    return_trace : bool
        Record the total energy before every step and after the last.
    compute_energy : bool
        Energy of the final states.
    record : bool
        Keep a :class:`Tape` for :func:`skam._graph.backprop.backward` (then
        every query runs ``max_iter`` steps in one chunk: call it on minibatches).
    chunk_size : int or None
        Queries per chunk; None sizes chunks from ``working_memory``.
    return_term_trace : bool
        Also record the energy of every part (layers and synapses) before
        every step and after the last: ``result.term_trace``, a dict of
        (T + 1, n) arrays.
    keep : iterable of str or None
        Layers whose final states are returned (None: all). Each is filled
        chunk by chunk into one array; the others are dropped with their
        chunk, so a caller that needs one layer holds no state of the rest.

    Returns
    -------
    result : GraphDescentResult
    """
    if record and bounds is not None:
        raise ValueError("record=True needs bounds=None (a projection is not smooth).")
    names = list(graph.layers)
    missing = [name for name in names if name not in x0]
    if missing:
        raise ValueError(f"Initial states are missing for layers {missing}.")
    first = x0[names[0]]
    n = first.shape[0]
    sizes = {name: x0[name].shape[1] for name in names}
    groups = [tuple(names)] if schedule is None else [tuple(gr) for gr in schedule]
    free = _free_masks(clamp, x0, xp)
    if record:
        chunk_size = max(n, 1)
    per_row = graph.bytes_per_row(itemsize(first), sizes)
    kept = names if keep is None else [name for name in names if name in set(keep)]
    rows = {name: _RowFiller(n, xp) for name in kept}
    rows["n_iter"], rows["converged"] = _RowFiller(n, xp), _RowFiller(n, xp)
    if compute_energy:
        rows["energy"] = _RowFiller(n, xp)
    traces, term_traces, part = [], [], None
    for sl in chunk_slices(n, per_row, chunk_size=chunk_size):
        x = {name: x0[name][sl, :] for name in names}
        free_sl = {name: _rows(mask, sl) for name, mask in free.items()}
        part = _descend_chunk(
            graph,
            x,
            xp,
            groups=groups,
            factors=_step_factors(graph, step_size, free_sl, xp),
            free=free_sl,
            max_iter=max_iter,
            tol=tol,
            bounds=bounds,
            return_trace=return_trace,
            compute_energy=compute_energy,
            record=record,
            return_term_trace=return_term_trace,
        )
        if sl.stop - sl.start >= n:  # one chunk: nothing to assemble
            part.states = {name: part.states[name] for name in kept}
            return part
        for name in kept:
            rows[name].add(sl, part.states[name])
        rows["n_iter"].add(sl, part.n_iter)
        rows["converged"].add(sl, part.converged)
        if compute_energy:
            rows["energy"].add(sl, part.energy)
        if return_trace:
            traces.append(part.energy_trace)
        if return_term_trace:
            term_traces.append(part.term_trace)
        part = None  # this chunk's other layers are dropped here
    term_trace = None
    if return_term_trace:
        term_trace = {
            key: concat([t[key] for t in term_traces], xp, 1) for key in term_traces[0]
        }
    return GraphDescentResult(
        states={name: rows[name].result() for name in kept},
        n_iter=rows["n_iter"].result(),
        converged=rows["converged"].result(),
        energy=rows["energy"].result() if compute_energy else None,
        energy_trace=concat(traces, xp, 1) if return_trace else None,
        term_trace=term_trace,
    )


class _RowFiller:
    """Chunk results of consecutive rows, written into one preallocated array.

    Namespaces without item assignment (Dask, JAX) concatenate instead.
    """

    def __init__(self, n, xp):
        self.n, self.xp, self.out, self.parts = n, xp, None, []

    def add(self, sl, part):
        if self.out is None and not self.parts:
            try:
                out = self.xp.empty(
                    (self.n, *part.shape[1:]), dtype=part.dtype, device=_device(part)
                )
                out[sl, ...] = part
            except (TypeError, NotImplementedError, ValueError):
                pass
            else:
                self.out = out
                return
        if self.out is not None:
            self.out[sl, ...] = part
        else:
            self.parts.append(part)

    def result(self):
        return self.out if self.out is not None else concat(self.parts, self.xp)


def _descend_chunk(
    graph,
    x,
    xp,
    *,
    groups,
    factors,
    free,
    max_iter,
    tol,
    bounds,
    return_trace,
    compute_energy,
    record,
    return_term_trace=False,
):
    names = list(graph.layers)
    first = x[names[0]]
    n = first.shape[0]
    dev = _device(first)
    active = xp.ones((n,), dtype=xp.bool, device=dev)
    n_iter = xp.zeros((n,), dtype=xp.int64, device=dev)
    tape = Tape() if record else None
    trace, terms = [], []
    for _ in range(max_iter):
        if return_term_trace:
            terms.append(graph.energy_terms(x, xp))
        if return_trace:
            trace.append(graph.energy(x, xp))
        moved_sq = xp.zeros((n,), dtype=first.dtype, device=dev)
        for group in groups:
            if record:
                tape.entries.append((group, dict(x), factors))
            steps = group_update(graph, x, group, factors, xp)
            new = dict(x)
            for name, step in steps.items():
                value = x[name] - step
                if bounds is not None and name in bounds:
                    value = _project(value, bounds[name], free.get(name), xp)
                    step = x[name] - value
                moved_sq = moved_sq + xp.sum(step * step, axis=1)
                new[name] = xp.where(active[:, None], value, x[name])
            x = new
        n_iter = n_iter + xp.astype(active, xp.int64)
        if record:  # training unrolls exactly max_iter steps
            continue
        active = xp.logical_and(active, moved_sq > tol * tol)
        if not bool(xp.any(active)):
            break
    energy = None
    if compute_energy or return_trace:
        energy = graph.energy(x, xp)
    if return_trace:
        trace.append(energy)
        trace = xp.stack(trace, axis=0)
        steps = xp.arange(trace.shape[0], device=dev)[:, None]
        trace = xp.where(steps > n_iter[None, :], energy[None, :], trace)
    term_trace = None
    if return_term_trace:
        terms.append(graph.energy_terms(x, xp))
        steps = xp.arange(len(terms), device=dev)[:, None]
        term_trace = {}
        for key in terms[0]:
            stacked = xp.stack([t[key] for t in terms], axis=0)
            term_trace[key] = xp.where(
                steps > n_iter[None, :], stacked[-1:, :], stacked
            )
    return GraphDescentResult(
        states=x,
        n_iter=n_iter,
        converged=xp.logical_not(active),
        energy=energy,
        energy_trace=trace if return_trace else None,
        tape=tape,
        term_trace=term_trace,
    )
