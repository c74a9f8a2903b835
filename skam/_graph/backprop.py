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
"""


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
        u = {name: factors[name] * xbar[name] for name in group}
        g = graph.activations(x, xp)
        d_layers, d_params = graph.grad_vjp(g, u, xp)
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
