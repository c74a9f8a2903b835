"""HierarchicalAM and HierarchicalAMClassifier: behaviour and oracles."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skam import DenseAM, HierarchicalAM, HierarchicalAMClassifier
from skam._graph.lagrangians import Softmax, Tanh

TWO = [("visible", "identity", None), ("hidden", "softmax", 12)]
THREE = TWO + [("top", "softmax", 6)]


@pytest.fixture
def prototypes():
    rng = np.random.RandomState(0)
    centres = rng.randn(5, 16)
    X = np.repeat(centres, 40, axis=0) + 0.1 * rng.randn(200, 16)
    return X[rng.permutation(200)]


def test_untrained_two_layer_model_is_dense_am(prototypes):
    """No training: the graph stores 12 samples and descends as DenseAM."""
    am = HierarchicalAM(layers=TWO, max_epochs=0, n_steps=7, step_size=0.4)
    am.fit(prototypes)
    dense = am.graph_.synapses["dense_visible_hidden"].params["W"]
    bias = am.graph_.synapses["bias_hidden"].params["b"]
    np.testing.assert_allclose(bias, -0.5 * np.sum(dense * dense, axis=0))
    beta = am.graph_.layers["hidden"].beta
    ref = DenseAM(beta=beta, step_size=0.4, max_iter=7, tol=0).fit(dense.T)
    rng = np.random.RandomState(1)
    Q = prototypes[:30] + 0.3 * rng.randn(30, 16)
    mask = np.zeros(16, dtype=bool)
    mask[:8] = True
    np.testing.assert_allclose(
        am.transform(Q, clamp_mask=mask), ref.transform(Q, clamp_mask=mask), atol=1e-12
    )
    # the settled hidden layer makes the graph energy DenseAM's (hidden at equilibrium)
    np.testing.assert_allclose(am.energy(Q), ref.energy(Q), atol=1e-10)


@pytest.mark.parametrize("layers", [TWO, THREE], ids=["depth2", "depth3"])
def test_training_improves_completion(prototypes, layers):
    mask = np.zeros(16, dtype=bool)
    mask[:8] = True
    occluded = prototypes.copy()
    kwargs = dict(layers=layers, n_steps=5, random_state=0)
    untrained = HierarchicalAM(max_epochs=0, **kwargs).fit(prototypes)
    occluded[:, 8:] = untrained.fill_[8:]
    trained = HierarchicalAM(max_epochs=15, learning_rate=0.02, **kwargs).fit(
        prototypes
    )
    err = {}
    for name, model in [("untrained", untrained), ("trained", trained)]:
        done = model.transform(occluded, clamp_mask=mask)
        err[name] = np.mean((done[:, 8:] - prototypes[:, 8:]) ** 2)
        np.testing.assert_array_equal(done[:, :8], prototypes[:, :8])
    fill_err = np.mean((occluded[:, 8:] - prototypes[:, 8:]) ** 2)
    assert err["trained"] < 0.5 * err["untrained"] or err["trained"] < 0.05 * fill_err
    assert err["trained"] < 0.2 * fill_err
    assert trained.loss_curve_[-1] < trained.loss_curve_[0]


def test_energy_decreases_step_by_step_and_terms_add_up(prototypes):
    am = HierarchicalAM(layers=THREE, max_epochs=3, random_state=0, n_steps=8)
    am.fit(prototypes)
    Q = prototypes[:20] + 0.5
    mask = np.zeros(16, dtype=bool)
    mask[::2] = True
    out = am.descend(Q, clamp_mask=mask, return_energy_trace=True)
    assert out.energy_trace.shape == (9, 20)
    assert np.diff(out.energy_trace, axis=0).max() <= 1e-9
    total = sum(out.energy_terms_trace.values())
    np.testing.assert_allclose(total, out.energy_trace, atol=1e-10)
    terms = am.energy_terms(Q)
    np.testing.assert_allclose(sum(terms.values()), am.energy(Q), atol=1e-10)
    assert set(terms) == {
        "visible",
        "hidden",
        "top",
        "dense_visible_hidden",
        "dense_hidden_top",
        "bias_hidden",
        "bias_top",
    }


def test_hidden_activations_are_features(prototypes):
    labels = np.repeat(np.arange(5), 40)[
        np.argsort(np.random.RandomState(0).permutation(200))
    ]
    # recover the labels of the shuffled prototypes by nearest centre
    am = HierarchicalAM(layers=THREE, max_epochs=2, random_state=0).fit(prototypes)
    G = am.hidden_activations(prototypes)
    assert G.shape == (200, 6)
    np.testing.assert_allclose(G.sum(axis=1), 1.0)  # softmax layer
    H = am.hidden_activations(prototypes, layer="hidden")
    assert H.shape == (200, 12)
    with pytest.raises(ValueError, match="hidden layers"):
        am.hidden_activations(prototypes, layer="visible")
    pipe = make_pipeline(
        HierarchicalAM(layers=TWO, max_epochs=1, random_state=0),
        LogisticRegression(max_iter=500),
    )
    assert labels.shape == (200,)
    assert pipe.fit(prototypes, labels).predict(prototypes).shape == (200,)


def test_every_separation_trains_as_a_memory_synapse(prototypes):
    """A Dense AM of any separation, as one synapse, learns by backprop."""
    for separation in ("lse", "lsr", "rectified_poly"):
        am = HierarchicalAM(
            layers=[("visible", "identity", None), ("hidden", "softmax", 4)],
            synapses=[
                ("dense", "visible", "hidden"),
                ("bias", "hidden"),
                ("memory", "visible", {"n_memories": 10, "separation": separation}),
            ],
            max_epochs=6,
            learning_rate=0.02,
            random_state=0,
        ).fit(prototypes)
        start = am.graph_.synapses["memory_visible"]
        assert start.spec.separation == separation
        assert am.loss_curve_[-1] < am.loss_curve_[0], separation


def test_layers_as_objects_and_clone(prototypes):
    layers = [
        ("visible", "identity", None),
        ("hidden", Softmax(beta=2.0), 8),
        ("top", ("tanh", {"beta": 0.5}), 4),
    ]
    am = HierarchicalAM(layers=layers, max_epochs=1, random_state=0)
    twin = clone(am)
    assert twin.get_params()["layers"] == layers
    am.fit(prototypes)
    assert am.graph_.layers["hidden"] == Softmax(beta=2.0)
    assert am.graph_.layers["top"] == Tanh(beta=0.5)
    assert not hasattr(twin, "graph_")
    np.testing.assert_allclose(
        clone(am).fit(prototypes).transform(prototypes), am.transform(prototypes)
    )


def test_float32_stays_float32(prototypes):
    X = prototypes.astype(np.float32)
    am = HierarchicalAM(layers=TWO, max_epochs=1, random_state=0).fit(X)
    assert am.transform(X).dtype == np.float32
    assert am.hidden_activations(X).dtype == np.float32
    assert am.energy(X).dtype == np.float32


@pytest.mark.parametrize(
    ("layers", "synapses", "match"),
    [
        ([("visible", "identity", None)], None, "at least two"),
        ([("v", "identity", None), ("v", "softmax", 3)], None, "new string name"),
        ([("v", "identity", 5), ("h", "softmax", 3)], None, "features"),
        ([("v", "identity", None), ("h", "softmax", 0)], None, "positive integer"),
        ([("v", "identity", None), ("h", "softplus", 3)], None, "Unknown Lagrangian"),
        (TWO, [("conv", "visible", "hidden")], "unknown kind"),
        (TWO, [("dense", "visible", "nowhere")], "connects 2"),
        (TWO, [("memory", "hidden")], "visible layer"),
    ],
)
def test_bad_graphs_are_rejected(prototypes, layers, synapses, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalAM(layers=layers, synapses=synapses, max_epochs=0).fit(prototypes)


def test_classifier_learns_iris_and_a_deeper_graph():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = HierarchicalAMClassifier(max_epochs=20, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    Xb, yb = make_blobs(n_samples=300, random_state=0)
    Xb = StandardScaler().fit_transform(Xb)
    deep = HierarchicalAMClassifier(
        layers=[
            ("visible", "identity", None),
            ("hidden", "softmax", 16),
            ("top", "relu", 8),
        ],
        max_epochs=10,
        learning_rate=0.03,
        random_state=0,
    ).fit(Xb, yb)
    assert deep.score(Xb, yb) > 0.8  # chance: 0.33; the blobs overlap
    labels = np.array(["a", "b", "c"])[yb]
    assert set(clone(deep).fit(Xb, labels).predict(Xb)) <= {"a", "b", "c"}
