"""HAMUX-style energy graphs: the general form of skam's engine (private).

A memory is a graph of **neuron layers** (:mod:`~skam._graph.lagrangians`:
a convex Lagrangian per layer, activation ``g = dL/dx``, Legendre energy
``x.g - L``) and **hypersynapses** (:mod:`~skam._graph.synapses`: any scalar
energy of the activations they join). :class:`~skam._graph.graph.EnergyGraph`
sums them; :func:`~skam._graph.dynamics.descend_graph` is the one forward
loop (clamping, per-query stopping, chunking, optional tape) and
:func:`~skam._graph.backprop.backward` backpropagates through it with the
terms' closed-form derivatives. :mod:`~skam._graph.builders` writes skam's
existing estimators (DenseAM, the label-neuron classifier, AMClustering) as
graphs; the tests prove they give the same energies and trajectories.

Interface (shared with the Energy Transformer's terms)
------------------------------------------------------
States are 2-D arrays ``(n, d_layer)`` per named layer (tokens flattened
into ``d``); every function takes the array namespace ``xp``.

* Lagrangian: ``lagrangian(x, xp) -> (n,)``, ``activation(x, xp) -> (n, d)``,
  ``hvp(x, v, xp) -> (n, d)``, ``energy(x, xp, g=None) -> (n,)``,
  ``bytes_per_row(d, itemsize)``.
* Synapse: ``layers`` (tuple of names), ``params`` (dict name -> array),
  ``with_params(dict)``, ``energy(g, xp) -> (n,)``, ``grad(g, xp) -> dict``,
  ``grad_vjp(g, cot, xp) -> (dict layer -> d<cot, grad>/dg, dict param ->
  d<cot, grad>/dparam)`` (parameter parts summed over rows),
  ``bytes_per_row(sizes, itemsize)``; optionally ``mean_shift`` and
  ``step_scale(g, xp) -> (n, 1)``.
"""
