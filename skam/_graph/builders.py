"""skam's existing memories written as energy graphs.

These builders are what the oracle tests compare against the fused fast
paths of the estimators (:mod:`skam._energy`, :mod:`skam._descent`): the
graph form gives the same energies and trajectories.

* :func:`dense_am_graph`: DenseAM (and AMClustering's centres) = one
  identity visible layer + one :class:`~skam._graph.synapses.Memory`
  synapse (any separation and similarity).
* :func:`two_layer_dense_am_graph`: the explicit HAMUX form of the LSE
  DenseAM: identity visible, softmax(beta) hidden, dense ``W = Xi^T`` and the
  bias ``-1/2 ||xi||^2 + log(w)/beta``; at the hidden equilibrium its energy
  is DenseAM's, and updating the hidden layer with step 1 before the visible
  layer reproduces DenseAM's descent.
* :func:`label_neuron_graph`: the label-neuron classifier/regressor
  {features (clamped), labels} + one memory synapse over both layers.
"""

from skam._graph.graph import EnergyGraph
from skam._graph.lagrangians import Identity, Softmax
from skam._graph.synapses import Bias, Dense, Memory

VISIBLE, HIDDEN, FEATURES, LABELS = "visible", "hidden", "features", "labels"


def dense_am_graph(memories, spec):
    """DenseAM as a graph: ``E_graph(v) = E_skam(v)`` for every separation.

    Parameters
    ----------
    memories : skam._energy.Memories
    spec : skam._energy.EnergySpec
    """
    synapse = Memory(
        memories.patterns,
        (VISIBLE,),
        spec,
        log_weights=memories.log_weights,
        coord_weights=memories.coord_weights,
        mean_shift=True,
    )
    D = memories.patterns.shape[1]
    return EnergyGraph({VISIBLE: Identity()}, {"memory": synapse}, {VISIBLE: D})


def two_layer_dense_am_graph(memories, spec, xp):
    """The LSE DenseAM with its hidden layer explicit (squared-Euclidean only)."""
    if not spec.is_lse or spec.similarity != "sqeuclidean":
        raise ValueError("The explicit two-layer form is the LSE/sqeuclidean energy.")
    if memories.coord_weights is not None:
        raise ValueError("The explicit two-layer form has no coordinate weights.")
    bias = -memories.half_sqnorms
    if memories.log_weights is not None:
        bias = bias + memories.log_weights / spec.beta
    K, D = memories.patterns.shape
    return EnergyGraph(
        {VISIBLE: Identity(), HIDDEN: Softmax(beta=spec.beta)},
        {
            "dense": Dense(memories.patterns.T, (VISIBLE, HIDDEN)),
            "bias": Bias(bias, HIDDEN),
        },
        {VISIBLE: D, HIDDEN: K},
    )


def label_neuron_graph(memories, spec, n_features):
    """The label-neuron memory: features and labels as two identity layers."""
    synapse = Memory(
        memories.patterns,
        (FEATURES, LABELS),
        spec,
        log_weights=memories.log_weights,
        coord_weights=memories.coord_weights,
        mean_shift=True,
    )
    D = memories.patterns.shape[1]
    return EnergyGraph(
        {FEATURES: Identity(), LABELS: Identity()},
        {"memory": synapse},
        {FEATURES: n_features, LABELS: D - n_features},
    )
