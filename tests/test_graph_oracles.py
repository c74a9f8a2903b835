"""skam's estimators are graphs: energies and trajectories agree to 1e-12.

DenseAM (every separation and similarity), its explicit two-layer HAMUX form,
the label-neuron classifier and AMClustering, each written as an energy graph
(:mod:`skam._graph.builders`) and compared against the estimators' fused fast
paths.
"""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam import AMClustering, DenseAM, DenseAMClassifier
from skam._backend import resolve_backend
from skam._descent import descend
from skam._energy import EnergySpec, energy_from_log_z, log_kernel_sum, prepare_memories
from skam._graph.builders import (
    dense_am_graph,
    label_neuron_graph,
    two_layer_dense_am_graph,
)
from skam._graph.dynamics import descend_graph
from skam._supervised_base import coordinate_weights
from skam._validation import make_spec

TOL = 1e-12

CASES = [
    (sep, sim)
    for sep in ("lse", "poly", "rectified_poly", "lsr")
    for sim in ("sqeuclidean", "dot")
]


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    Xi = rng.randn(30, 12)
    w = rng.rand(30) + 0.1
    V = Xi[rng.randint(30, size=200)] + 0.4 * rng.randn(200, 12)
    return Xi, w, V


def _fitted(sep, sim, Xi, w):
    beta = {"lse": 3.0, "poly": 0.05, "rectified_poly": 0.3, "lsr": 0.3}[sep]
    am = DenseAM(separation=sep, similarity=sim, beta=beta, degree=3)
    am.fit(Xi, sample_weight=w)
    memories = am._memories(resolve_backend(Xi), np.float64)
    return am, memories, am._spec()


@pytest.mark.parametrize(("separation", "similarity"), CASES)
def test_dense_am_energy_is_the_graph_energy(data, separation, similarity):
    Xi, w, V = data
    am, memories, spec = _fitted(separation, similarity, Xi, w)
    graph = dense_am_graph(memories, spec)
    E_graph = graph.energy({"visible": V}, xp)
    E_am = am.energy(V)
    assert np.all(np.isfinite(E_am))
    np.testing.assert_allclose(
        E_graph, E_am, rtol=0, atol=TOL * max(1, np.abs(E_am).max())
    )
    # the per-part breakdown sums to the total
    terms = graph.energy_terms({"visible": V}, xp)
    assert set(terms) == {"visible", "memory"}
    np.testing.assert_allclose(terms["visible"], 0.5 * np.sum(V * V, axis=1))
    np.testing.assert_allclose(terms["visible"] + terms["memory"], E_graph)


@pytest.mark.parametrize(("separation", "similarity"), CASES)
def test_dense_am_trajectory_is_the_graph_trajectory(data, separation, similarity):
    Xi, w, V = data
    am, memories, spec = _fitted(separation, similarity, Xi, w)
    box = am._box(memories, resolve_backend(Xi))
    mask = np.zeros(12, dtype=bool)
    mask[:4] = True
    kwargs = dict(step_size=0.3, max_iter=25, tol=0.0)
    ref = descend(V, memories, spec, xp, clamp_mask=mask, box=box, **kwargs)
    graph = dense_am_graph(memories, spec)
    out = descend_graph(
        graph,
        {"visible": V},
        xp,
        clamp={"visible": mask},
        bounds=None if box is None else {"visible": box},
        **kwargs,
    )
    assert np.abs(out.states["visible"] - V).max() > 1e-3  # it moved
    np.testing.assert_allclose(out.states["visible"], ref.states, rtol=0, atol=TOL)
    np.testing.assert_array_equal(out.states["visible"][:, :4], V[:, :4])


def test_dense_am_per_query_stopping_matches(data):
    Xi, w, V = data
    am, memories, spec = _fitted("lse", "sqeuclidean", Xi, w)
    ref = descend(V, memories, spec, xp, step_size=0.5, max_iter=200, tol=1e-5)
    out = descend_graph(
        dense_am_graph(memories, spec),
        {"visible": V},
        xp,
        step_size=0.5,
        max_iter=200,
        tol=1e-5,
        return_trace=True,
    )
    np.testing.assert_array_equal(out.n_iter, ref.n_iter)
    assert len(np.unique(out.n_iter)) > 1  # queries stopped at different steps
    np.testing.assert_allclose(out.states["visible"], ref.states, rtol=0, atol=TOL)
    np.testing.assert_allclose(out.energy, am.energy(out.states["visible"]), atol=TOL)
    assert np.all(np.diff(out.energy_trace, axis=0) <= 1e-12)


def test_two_layer_hamux_form_is_dense_am(data):
    """Identity visible + softmax hidden + dense W = Xi^T + bias: DenseAM."""
    Xi, w, V = data
    am, memories, spec = _fitted("lse", "sqeuclidean", Xi, w)
    graph = two_layer_dense_am_graph(memories, spec, xp)
    h_star = V @ Xi.T - 0.5 * np.sum(Xi * Xi, axis=1) + np.log(w) / spec.beta
    E = graph.energy({"visible": V, "hidden": h_star}, xp)
    np.testing.assert_allclose(E, am.energy(V), rtol=0, atol=TOL * np.abs(E).max())
    # the hidden equilibrium minimises the energy over the hidden state
    rng = np.random.RandomState(1)
    E_off = graph.energy(
        {"visible": V, "hidden": h_star + rng.randn(*h_star.shape)}, xp
    )
    assert np.all(E_off >= E - 1e-12)
    # hidden first with step 1, then visible: DenseAM's clamped descent
    mask = np.zeros(12, dtype=bool)
    mask[:4] = True
    ref = descend(
        V, memories, spec, xp, clamp_mask=mask, step_size=0.3, max_iter=25, tol=0
    )
    out = descend_graph(
        graph,
        {"visible": V, "hidden": np.zeros((200, 30))},
        xp,
        step_size={"visible": 0.3, "hidden": 1.0},
        clamp={"visible": mask},
        schedule=[("hidden",), ("visible",)],
        max_iter=25,
        tol=0.0,
    )
    np.testing.assert_allclose(out.states["visible"], ref.states, rtol=0, atol=TOL)


@pytest.mark.parametrize("separation", ["lse", "rectified_poly"])
def test_label_neuron_classifier_is_a_graph(separation):
    rng = np.random.RandomState(2)
    X = np.vstack([rng.randn(40, 5) + 2, rng.randn(40, 5) - 2])
    y = np.repeat([0, 1], 40)
    beta = 0.5 if separation == "lse" else 0.02
    clf = DenseAMClassifier(separation=separation, beta=beta, lam=0.7, tol=1e-8)
    clf.fit(X, y)
    Xq = rng.randn(30, 5) * 2
    backend = resolve_backend(Xq)
    d = X.shape[1]
    cw = coordinate_weights(d, 2, clf.lam, xp, np.float64, "cpu")
    memories = prepare_memories(clf.memories_, xp, coord_weights=cw)
    spec = make_spec(clf, clf.beta_)
    graph = label_neuron_graph(memories, spec, d)
    t0 = np.full((30, 2), clf.label_scale / 2)
    # energy of the joint state is the engine's
    state = {"features": Xq, "labels": t0}
    V = np.concatenate([Xq, t0], axis=1)
    log_z, _ = log_kernel_sum(V, memories, spec, xp, need_weights=False)
    np.testing.assert_allclose(
        graph.energy(state, xp), energy_from_log_z(log_z, spec), rtol=0, atol=TOL
    )
    out = descend_graph(
        graph,
        state,
        xp,
        step_size=clf.step_size_,
        clamp={"features": True},
        max_iter=clf.max_iter,
        tol=clf.tol,
    )
    expected = clf._label_neurons(backend, Xq)
    np.testing.assert_allclose(
        out.states["labels"] / clf.label_scale, expected, atol=TOL
    )
    np.testing.assert_array_equal(out.states["features"], Xq)


def test_am_clustering_contraction_is_a_graph():
    rng = np.random.RandomState(3)
    X = np.vstack([rng.randn(60, 3) + c for c in ([4, 0, 0], [0, 4, 0], [0, 0, 4])])
    km = AMClustering(n_clusters=3, random_state=0, max_epochs=5).fit(X)
    memories = prepare_memories(km.cluster_centers_, xp)
    spec = EnergySpec(beta=km.beta_)
    out = descend_graph(
        dense_am_graph(memories, spec),
        {"visible": X},
        xp,
        step_size=float(km.step_size),
        max_iter=km.n_steps_,
        tol=0.0,
    )
    np.testing.assert_allclose(out.states["visible"], km.contract(X), rtol=0, atol=TOL)
