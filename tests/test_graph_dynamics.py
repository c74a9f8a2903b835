"""Descent and backpropagation on energy graphs."""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam._backend import to_numpy
from skam._energy import EnergySpec
from skam._graph import lagrangians as lg
from skam._graph.backprop import backward
from skam._graph.dynamics import descend_graph
from skam._graph.graph import EnergyGraph
from skam._graph.synapses import Bias, Dense, Memory


def three_layer_graph(visible=None, separation="lse", seed=0, memory=True):
    """visible -- hidden (softmax) -- labels (softmax), plus biases and a memory."""
    rng = np.random.RandomState(seed)
    D, K, C = 6, 8, 3
    synapses = {
        "W_vh": Dense(0.5 * rng.randn(D, K), ("v", "h")),
        "W_hl": Dense(0.5 * rng.randn(K, C), ("h", "l")),
        "b_h": Bias(0.3 * rng.randn(K), "h"),
        "b_l": Bias(0.3 * rng.randn(C), "l"),
    }
    if memory:
        spec = EnergySpec(separation=separation, beta=0.8, degree=3, epsilon=1e-3)
        synapses["memory"] = Memory(
            rng.randn(5, D) * 0.5, ("v",), spec, log_weights=np.log(rng.rand(5) + 0.3)
        )
    layers = {
        "v": visible if visible is not None else lg.Tanh(beta=1.5),
        "h": lg.Softmax(beta=2.0),
        "l": lg.Softmax(beta=1.0),
    }
    return EnergyGraph(layers, synapses, {"v": D, "h": K, "l": C})


def _start(graph, n=20, seed=1):
    rng = np.random.RandomState(seed)
    return {name: 0.5 * rng.randn(n, d) for name, d in graph.sizes.items()}


@pytest.mark.parametrize("step", [0.05, 0.2, 0.5])
def test_energy_never_increases_for_small_synchronous_steps(step):
    graph = three_layer_graph()
    out = descend_graph(
        graph,
        _start(graph, n=100),
        xp,
        step_size=step,
        max_iter=200,
        tol=0.0,
        return_trace=True,
    )
    increase = np.diff(out.energy_trace, axis=0).max()
    assert increase <= 1e-10, increase
    assert out.energy_trace[-1].mean() < out.energy_trace[0].mean() - 0.1


def test_sequential_unit_steps_on_linear_layers_never_increase_energy():
    """The documented stable rule: layers whose synapses are linear in them are
    minimised exactly by a step of 1 when updated alone."""
    graph = three_layer_graph(visible=lg.Identity(), memory=False)
    out = descend_graph(
        graph,
        _start(graph, n=100),
        xp,
        step_size=1.0,
        max_iter=50,
        tol=0.0,
        schedule=[("h",), ("l",), ("v",)],
        return_trace=True,
    )
    assert np.diff(out.energy_trace, axis=0).max() <= 1e-10


def test_the_energy_breakdown_sums_to_the_total():
    graph = three_layer_graph()
    x = _start(graph)
    terms = graph.energy_terms(x, xp)
    assert set(terms) == {"v", "h", "l", "W_vh", "W_hl", "b_h", "b_l", "memory"}
    np.testing.assert_allclose(sum(terms.values()), graph.energy(x, xp))


def test_clamped_layers_and_coordinates_stay_put():
    graph = three_layer_graph()
    x0 = _start(graph)
    mask = np.zeros(6, dtype=bool)
    mask[:2] = True
    out = descend_graph(
        graph,
        x0,
        xp,
        step_size=0.3,
        max_iter=10,
        tol=0.0,
        clamp={"v": mask, "l": True},
    )
    np.testing.assert_array_equal(out.states["v"][:, :2], x0["v"][:, :2])
    np.testing.assert_array_equal(out.states["l"], x0["l"])
    assert np.abs(out.states["v"][:, 2:] - x0["v"][:, 2:]).max() > 1e-3


def test_results_do_not_depend_on_the_chunk_size():
    graph = three_layer_graph()
    x0 = _start(graph, n=37)
    full = descend_graph(graph, x0, xp, step_size=0.3, max_iter=30, tol=1e-4)
    chunked = descend_graph(
        graph, x0, xp, step_size=0.3, max_iter=30, tol=1e-4, chunk_size=5
    )
    for name in graph.layers:
        np.testing.assert_allclose(chunked.states[name], full.states[name], atol=1e-14)
    np.testing.assert_array_equal(chunked.n_iter, full.n_iter)


def test_the_descent_is_the_gradient_flow_of_the_energy():
    """dE/dx_l = H_l dE/dg_l: the Euler step lowers E at first order."""
    graph = three_layer_graph()
    x = _start(graph)
    grad_x = graph.grad_x(x, xp)
    rng = np.random.RandomState(4)
    direction = {k: rng.randn(*v.shape) for k, v in x.items()}
    h = 1e-6
    up = graph.energy({k: x[k] + h * direction[k] for k in x}, xp)
    down = graph.energy({k: x[k] - h * direction[k] for k in x}, xp)
    analytic = sum(np.sum(grad_x[k] * direction[k], axis=1) for k in x)
    np.testing.assert_allclose(analytic, (up - down) / (2 * h), atol=1e-7, rtol=1e-6)


def _loss(graph, x0, mask, n_steps, step, target):
    out = descend_graph(
        graph,
        x0,
        xp,
        step_size=step,
        clamp={"v": mask},
        max_iter=n_steps,
        tol=0.0,
        record=True,
    )
    diff = out.states["v"] - target
    return 0.5 * np.sum(diff * diff) + np.sum(out.states["l"] ** 2), out


VISIBLES = [
    lg.Identity(),
    lg.Tanh(beta=1.5),
    lg.Sigmoid(beta=1.0),
    lg.LayerNorm(gamma=1.0, delta=0.1),
    lg.SphericalNorm(gamma=2.0),
    lg.Exp(beta=0.3),
    lg.RePU(degree=3),
    lg.ReLU(),
]


@pytest.mark.parametrize(
    ("visible", "separation"),
    [(v, "lse") for v in VISIBLES]
    + [(lg.Tanh(), s) for s in ("poly", "rectified_poly")],
    ids=repr,
)
def test_backprop_through_unrolled_steps_matches_finite_differences(
    visible, separation
):
    graph = three_layer_graph(visible=visible, separation=separation)
    rng = np.random.RandomState(5)
    x0 = _start(graph, n=6)
    if isinstance(visible, lg.RePU):
        x0["v"] = np.abs(x0["v"]) + 0.2  # away from the kink at 0
    mask = rng.rand(6, 6) < 0.3
    target = rng.randn(6, 6)
    n_steps, step = 12, 0.1
    loss, out = _loss(graph, x0, mask, n_steps, step, target)
    cot = {"v": out.states["v"] - target, "l": 2 * out.states["l"]}
    grad_x0, grad_params = backward(graph, out.tape, cot, xp)
    h = 1e-6
    for key, value in graph.params().items():
        direction = rng.randn(*value.shape)
        up = _loss(
            graph.with_params({key: value + h * direction}),
            x0,
            mask,
            n_steps,
            step,
            target,
        )[0]
        down = _loss(
            graph.with_params({key: value - h * direction}),
            x0,
            mask,
            n_steps,
            step,
            target,
        )[0]
        fd = (up - down) / (2 * h)
        analytic = np.sum(grad_params[key] * direction)
        assert abs(analytic - fd) <= 1e-6 * max(1.0, abs(fd)), (key, analytic, fd)
    direction = {k: rng.randn(*v.shape) for k, v in x0.items()}
    up = _loss(
        graph, {k: x0[k] + h * direction[k] for k in x0}, mask, n_steps, step, target
    )[0]
    down = _loss(
        graph, {k: x0[k] - h * direction[k] for k in x0}, mask, n_steps, step, target
    )[0]
    analytic = sum(np.sum(grad_x0[k] * direction[k]) for k in x0)
    assert abs(analytic - (up - down) / (2 * h)) <= 1e-6 * max(1.0, abs(analytic))


def test_backprop_with_a_sequential_schedule():
    graph = three_layer_graph(visible=lg.Identity())
    rng = np.random.RandomState(6)
    x0 = _start(graph, n=5)
    schedule = [("h",), ("l",), ("v",)]
    step = {"h": 1.0, "l": 1.0, "v": 0.2}

    def loss(g, x):
        out = descend_graph(
            g,
            x,
            xp,
            step_size=step,
            schedule=schedule,
            max_iter=6,
            tol=0.0,
            record=True,
        )
        return 0.5 * np.sum(out.states["v"] ** 2), out

    _, out = loss(graph, x0)
    _, grads = backward(graph, out.tape, {"v": out.states["v"]}, xp)
    key = ("W_vh", "W")
    W = graph.params()[key]
    direction = rng.randn(*W.shape)
    h = 1e-6
    fd = (
        loss(graph.with_params({key: W + h * direction}), x0)[0]
        - loss(graph.with_params({key: W - h * direction}), x0)[0]
    ) / (2 * h)
    assert abs(np.sum(grads[key] * direction) - fd) <= 1e-6 * max(1, abs(fd))


def test_graph_runs_on_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    graph = three_layer_graph()
    x0 = _start(graph, n=9)
    ref = descend_graph(graph, x0, xp, step_size=0.2, max_iter=5, tol=0.0, record=True)
    dev = xps.Device("device1")

    def to(a):
        return xps.asarray(a, device=dev)

    strict_graph = EnergyGraph(
        graph.layers,
        {
            n: s.with_params({k: to(v) for k, v in s.params.items()})
            for n, s in graph.synapses.items()
        },
        graph.sizes,
    )
    out = descend_graph(
        strict_graph,
        {k: to(v) for k, v in x0.items()},
        xps,
        step_size=0.2,
        max_iter=5,
        tol=0.0,
        record=True,
    )
    for name in graph.layers:
        np.testing.assert_allclose(
            to_numpy(out.states[name]), ref.states[name], atol=1e-12
        )
    cot = {"v": to(np.ones((9, 6)))}
    g_strict = backward(strict_graph, out.tape, cot, xps)[1]
    g_ref = backward(graph, ref.tape, {"v": np.ones((9, 6))}, xp)[1]
    for key in g_ref:
        np.testing.assert_allclose(to_numpy(g_strict[key]), g_ref[key], atol=1e-10)


def test_bad_inputs_are_rejected():
    graph = three_layer_graph()
    with pytest.raises(ValueError, match="missing"):
        descend_graph(graph, {"v": np.zeros((2, 6))}, xp)
    with pytest.raises(ValueError, match="unknown layers"):
        EnergyGraph({"v": "identity"}, {"s": Bias(np.zeros(3), "h")})
    with pytest.raises(ValueError, match="differ"):
        EnergyGraph({"v": "identity"}, {"v": Bias(np.zeros(3), "v")})
