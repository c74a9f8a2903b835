"""Graphs from estimator parameters: layer and synapse lists, and their start.

Used by :class:`skam.HierarchicalAM`. Parameters stay plain Python data
(clone-safe):

* ``layers``: a list of ``(name, lagrangian, size)``; the first is the
  visible layer (``size`` None = the number of features); ``lagrangian`` is a
  name (``"identity"``, ``"softmax"``, ``"relu"``, ...), ``(name, kwargs)``
  or a Lagrangian object.
* ``synapses``: a list of ``("dense", a, b)``, ``("bias", a)`` or
  ``("memory", a, {"n_memories": K, "separation": ..., "beta": ...})``, or
  None for a chain: a dense synapse between consecutive layers and a bias on
  every layer but the visible one.

Starting values (drawn from the training data with ``rng``): a dense synapse
from the visible layer to a softmax layer stores ``K`` random samples as
``W = Xi^T`` with the bias ``-1/2 ||xi||^2`` of that layer (the two-layer
graph then starts as a DenseAM with those memories) and the softmax
``beta`` (when not given) from DenseAM's ``beta="scale"`` rule; other dense
synapses start at ``N(0, 1)`` (from a softmax layer, whose activations sum
to 1) or ``N(0, 1) / sqrt(d_a)``, other biases at 0;
a memory synapse stores random samples.
"""

from numbers import Integral

import numpy as np

from skam._beta import resolve_beta
from skam._beta import rule_for as scale_rule
from skam._energy import EnergySpec
from skam._graph.graph import EnergyGraph
from skam._graph.lagrangians import Softmax, make_lagrangian
from skam._graph.synapses import Bias, Dense, Memory

# A plain "softmax" layer fed by the visible layer gets this fraction of
# DenseAM's beta="scale" rule (4 log K / r2) on its starting memories:
# log K / r2, so that at a stored sample its nearest rival weighs 1/sqrt(K)
# of it instead of 1/K**2. Prototypes then blend and gradients flow: on the
# 8x8 digits (64 units, 10 epochs) the hidden-half MSE after training is
# 0.054 at beta = 1-2 against 0.077 at DenseAM's sharper 7.3 (mean image 0.078).
SOFTMAX_BETA_FRACTION = 0.25
DEFAULT_LAYERS = (("visible", "identity", None), ("hidden", "softmax", 64))


def parse_layers(layers, n_features):
    """``[(name, Lagrangian, size)]`` with the visible size filled in."""
    layers = DEFAULT_LAYERS if layers is None else layers
    if not isinstance(layers, list | tuple) or len(layers) < 2:
        raise ValueError(
            "layers must be a list of at least two (name, lagrangian, size) "
            f"tuples (a visible layer and a hidden one), got {layers!r}."
        )
    out, seen = [], set()
    for i, item in enumerate(layers):
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise ValueError(
                f"layers[{i}] must be (name, lagrangian, size), got {item!r}."
            )
        name, lag, size = item
        if not isinstance(name, str) or name in seen:
            raise ValueError(f"layers[{i}] needs a new string name, got {name!r}.")
        seen.add(name)
        if i == 0:
            if size not in (None, n_features):
                raise ValueError(
                    f"The visible layer {name!r} has {n_features} units (the "
                    f"features), got size={size!r}."
                )
            size = n_features
        elif not isinstance(size, Integral) or size < 1:
            raise ValueError(
                f"layers[{i}] needs a positive integer size, got {size!r}."
            )
        # a plain "softmax" gets its beta from the data at fit time
        lagrangian = Softmax(beta=None) if lag == "softmax" else make_lagrangian(lag)
        out.append((name, lagrangian, int(size), lag))
    return out


def parse_synapses(synapses, names):
    """Normalised synapse specs ``(kind, layer names, options)``."""
    if synapses is None:
        chain = [("dense", a, b) for a, b in zip(names[:-1], names[1:], strict=True)]
        return [(k, (a, b), {}) for k, a, b in chain] + [
            ("bias", (n,), {}) for n in names[1:]
        ]
    out = []
    for i, item in enumerate(synapses):
        if not isinstance(item, list | tuple) or not item:
            raise ValueError(f"synapses[{i}] must be a tuple, got {item!r}.")
        kind, rest = item[0], list(item[1:])
        options = rest.pop() if rest and isinstance(rest[-1], dict) else {}
        arity = {"dense": 2, "bias": 1, "memory": 1}
        if kind not in arity:
            raise ValueError(
                f"synapses[{i}]: unknown kind {kind!r}; choose dense, bias or memory."
            )
        if len(rest) != arity[kind] or any(n not in names for n in rest):
            raise ValueError(
                f"synapses[{i}] = {item!r}: {kind!r} connects {arity[kind]} of the "
                f"layers {names}."
            )
        out.append((kind, tuple(rest), dict(options)))
    return out


def _rows(X, k, rng):
    n = X.shape[0]
    idx = rng.choice(n, size=k, replace=k > n)
    return np.asarray(X[idx], dtype=np.float64)


def initial_graph(layers, synapses, X, rng, *, dtype=np.float64):
    """The starting :class:`EnergyGraph` (NumPy float64) and resolved layers.

    ``beta="scale"`` is resolved in ``dtype``, the dtype the graph will run
    in: a beta that does not fit it raises a clear ValueError
    (:func:`skam._beta.resolve_beta`) instead of overflowing later.
    """

    def scale_beta(xi, rule):
        return resolve_beta("scale", xi.astype(dtype, copy=False), rule=rule)

    names = [name for name, *_ in layers]
    sizes = {name: size for name, _, size, _ in layers}
    lagrangians = {name: lag for name, lag, _, _ in layers}
    visible = names[0]
    built, counts = {}, {}
    for kind, conn, options in synapses:
        counts[kind] = counts.get(kind, 0) + 1
        label = f"{kind}_{'_'.join(conn)}"
        if label in built or label in sizes:
            label = f"{label}_{counts[kind]}"
        if kind == "dense":
            a, b = conn
            if a == visible and isinstance(lagrangians[b], Softmax):
                xi = _rows(X, sizes[b], rng)
                built[label] = Dense(xi.T.copy(), conn)
                if lagrangians[b].beta is None:
                    lagrangians[b] = Softmax(
                        beta=SOFTMAX_BETA_FRACTION * scale_beta(xi, "separation")
                    )
            else:
                # activations of a softmax layer sum to 1 (norm <= 1); others
                # have norms of order sqrt(d): inputs of order 1 either way
                scale = (
                    1.0
                    if isinstance(lagrangians[a], Softmax)
                    else 1.0 / np.sqrt(sizes[a])
                )
                built[label] = Dense(
                    scale * rng.standard_normal((sizes[a], sizes[b])), conn
                )
        elif kind == "bias":
            (a,) = conn
            b = np.zeros(sizes[a])
            fed = [
                s
                for s in built.values()
                if isinstance(s, Dense) and s.layers == (visible, a)
            ]
            if fed and isinstance(lagrangians[a], Softmax):
                W = fed[0].params["W"]
                b = -0.5 * np.sum(W * W, axis=0)
            built[label] = Bias(b, a)
        else:
            (a,) = conn
            if a != visible:
                raise ValueError("A memory synapse acts on the visible layer.")
            separation = options.get("separation", "lse")
            xi = _rows(X, int(options.get("n_memories", 32)), rng)
            beta = options.get("beta", "scale")
            if beta == "scale":
                beta = scale_beta(xi, scale_rule(separation, "sqeuclidean"))
            spec = EnergySpec(
                separation=separation,
                beta=float(beta),
                degree=int(options.get("degree", 3)),
                epsilon=float(options.get("epsilon", 1e-10)),
            )
            built[label] = Memory(xi, conn, spec)
    for name, lag in lagrangians.items():
        if isinstance(lag, Softmax) and lag.beta is None:
            lagrangians[name] = Softmax(beta=1.0)
    return EnergyGraph(lagrangians, built, sizes)
