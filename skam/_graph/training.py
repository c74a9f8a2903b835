"""Fitting an energy graph by backpropagation through its unrolled dynamics.

One minibatch: run :func:`~skam._graph.dynamics.descend_graph` with
``record=True`` (the inference loop itself), score the final states, and
backpropagate with :func:`~skam._graph.backprop.backward`; Adam
(:class:`skam._training.Adam`) updates every synapse parameter.
"""

from skam._graph.backprop import backward
from skam._graph.dynamics import descend_graph
from skam._training import Adam


class GraphTrainer:
    """Adam on every parameter of an :class:`~skam._graph.graph.EnergyGraph`.

    Parameters
    ----------
    graph : EnergyGraph
        Starting graph, parameters in the compute namespace.
    xp : namespace
    learning_rate : float
    dynamics : dict
        Keyword arguments of ``descend_graph`` (``step_size``, ``schedule``,
        ``max_iter``).
    """

    def __init__(self, graph, xp, *, learning_rate, dynamics):
        self.graph = graph
        self.xp = xp
        self.keys = list(graph.params())
        params = graph.params()
        self.adam = Adam(
            [params[k] for k in self.keys], xp, learning_rate=learning_rate
        )
        self.dynamics = dict(dynamics)

    def step(self, x0, clamp, loss_and_cotangent):
        """One minibatch: forward, loss, backward, Adam update; returns the loss.

        ``loss_and_cotangent(states) -> (loss float, dict layer -> dLoss/dx)``.
        """
        out = descend_graph(
            self.graph,
            x0,
            self.xp,
            clamp=clamp,
            tol=0.0,
            record=True,
            compute_energy=False,
            **self.dynamics,
        )
        loss, cot = loss_and_cotangent(out.states)
        _, grads = backward(self.graph, out.tape, cot, self.xp)
        new = self.adam.step([grads[k] for k in self.keys])
        self.graph = self.graph.with_params(dict(zip(self.keys, new, strict=True)))
        return loss
