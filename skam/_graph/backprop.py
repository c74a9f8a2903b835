"""Backpropagation through unrolled graph dynamics, in closed form (no autodiff).

The forward pass is :func:`skam._graph.dynamics.descend_graph` with
``record=True`` (the same loop as inference). One group update is

    x'_l = x_l - a_l * (x_l + s_l(g)),   g = activations(x),  l in the group

with ``a_l = step_size_l * m_l`` and ``s_l = sum_syn dE_syn/dg_l``. Given
``xbar' = dLoss/dx'`` and ``u_l = a_l * xbar'_l`` (layers of the group)::

    xbar_l = xbar'_l - [l in group] u_l - H_l(x_l) (sum_syn d<u, s>/dg_l)
    dLoss/dtheta -= sum_syn d<u, s>/dtheta

``d<u, s>/dg`` and ``d<u, s>/dtheta`` are the synapses' ``grad_vjp`` and
``H_l`` the Lagrangians' closed-form Hessian-vector products, so every layer,
synapse and separation that implements them can be trained. The cost per
step is that of two forward steps; the tape holds the states of every step.

Mean-shift steps (a synapse with ``mean_shift``: ``x'_l = x_l - a_l tau(g)
(x_l + s_l(g))`` with the per-query time constant ``tau = 1 / sum_mu P_mu``)
are differentiated exactly: ``u_l`` carries ``tau``, and the loss also moves
through ``tau`` itself, by ``c = sum_l <a_l xbar'_l, x_l + s_l>`` times the
synapse's ``step_scale_vjp``::

    xbar_l -= H_l(x_l) d(c tau)/dg_l,   dLoss/dtheta -= d(c tau)/dtheta
"""

from skam._graph.dynamics import group_directions, mean_shift_scales


def _add_time_constant_terms(
    graph, x, g, group, factors, xbar, scales, d_layers, d_params, xp
):
    """Add the derivatives through the mean-shift time constants (in place)."""
    directions = group_directions(graph, x, group, xp, g)
    weights = {}
    for name in group:
        if name not in scales:
            continue
        sname = scales[name][0]
        c = xp.sum(factors[name] * xbar[name] * directions[name], axis=1, keepdims=True)
        weights[sname] = c if sname not in weights else weights[sname] + c
    for sname, c in weights.items():
        d_l, d_p = graph.synapses[sname].step_scale_vjp(g, c, xp)
        for name, value in d_l.items():
            d_layers[name] = value if name not in d_layers else d_layers[name] + value
        for pname, value in d_p.items():
            key = (sname, pname)
            d_params[key] = value if key not in d_params else d_params[key] + value


def backward(graph, tape, cot_final, xp):
    """Gradients of a loss of the final states through every recorded update.

    Parameters
    ----------
    graph : EnergyGraph
        The graph the tape was recorded with.
    tape : Tape
    cot_final : dict of str -> array
        ``dLoss/dx_l`` at the final states (missing layers count as zero).
    xp : namespace

    Returns
    -------
    grad_initial : dict of str -> array
        ``dLoss/dx_l`` at the initial states.
    grad_params : dict of (synapse, param) -> array
        ``dLoss/dtheta`` of every trainable parameter (zeros if untouched),
        plus ``(layer, param)`` entries for layers with trainable arrays
        (``params`` and ``param_vjp``, e.g. the layer norm's gamma and delta).
        A layer with ``legendre = False`` has no leak term (the Energy
        Transformer's dynamics ``x' = x - a * s(g)``).
    """
    names = list(graph.layers)
    params = graph.params()
    grad_params = {key: xp.zeros_like(value) for key, value in params.items()}
    if not tape.entries:
        return {name: cot_final.get(name) for name in names}, grad_params
    x_last = tape.entries[-1][1]
    xbar = {
        name: cot_final[name] if name in cot_final else xp.zeros_like(x_last[name])
        for name in names
    }
    for group, x, factors in reversed(tape.entries):
        g = graph.activations(x, xp)
        scales = mean_shift_scales(graph, g, group, xp)
        u = {}
        for name in group:
            u[name] = factors[name] * xbar[name]
            if name in scales:
                u[name] = u[name] * scales[name][1]
        d_layers, d_params = graph.grad_vjp(g, u, xp)
        if scales:
            _add_time_constant_terms(
                graph, x, g, group, factors, xbar, scales, d_layers, d_params, xp
            )
        new = {}
        for name in names:
            lag = graph.layers[name]
            value = xbar[name]
            if name in u and getattr(lag, "legendre", True):
                value = value - u[name]
            if name in d_layers:
                value = value - lag.hvp(x[name], d_layers[name], xp)
                if getattr(lag, "params", None):  # trainable layer (layer norm)
                    for pname, grad in lag.param_vjp(
                        x[name], d_layers[name], xp
                    ).items():
                        key = (name, pname)
                        grad_params[key] = grad_params.get(key, 0.0) - grad
            new[name] = value
        xbar = new
        for key, value in d_params.items():
            grad_params[key] = grad_params[key] - value
    return xbar, grad_params
