"""Layers and synapses of the energy graph against finite differences."""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam._energy import EnergySpec
from skam._graph import lagrangians as lg
from skam._graph.synapses import Bias, Dense, Memory

LAGRANGIANS = [
    lg.Identity(),
    lg.Identity(scale=0.7),
    lg.Softmax(beta=2.0),
    lg.RePU(degree=3),
    lg.RePU(degree=4),
    lg.ReLU(),
    lg.Exp(beta=0.5),
    lg.Tanh(beta=1.5),
    lg.Sigmoid(beta=1.2),
    lg.LayerNorm(gamma=1.3, delta=0.2),
    lg.SphericalNorm(gamma=0.8, delta=0.1),
]


def _fd_grad(f, x, h=1e-6):
    """Central finite differences of a per-row scalar f, (n, d)."""
    out = np.zeros_like(x)
    for j in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, j] = h
        out[:, j] = (f(x + e) - f(x - e)) / (2 * h)
    return out


def _states(rng, n=7, d=6):
    x = rng.randn(n, d)
    # keep rectified layers away from their kink at 0
    return np.where(np.abs(x) < 0.05, 0.3, x)


@pytest.mark.parametrize("lag", LAGRANGIANS, ids=repr)
def test_activation_is_the_gradient_of_the_lagrangian(lag):
    x = _states(np.random.RandomState(0))
    fd = _fd_grad(lambda z: lag.lagrangian(z, xp), x)
    np.testing.assert_allclose(lag.activation(x, xp), fd, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("lag", LAGRANGIANS, ids=repr)
def test_hvp_is_the_jacobian_of_the_activation(lag):
    rng = np.random.RandomState(1)
    x, v = _states(rng), rng.randn(7, 6)
    h = 1e-6
    fd = (lag.activation(x + h * v, xp) - lag.activation(x - h * v, xp)) / (2 * h)
    np.testing.assert_allclose(lag.hvp(x, v, xp), fd, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("lag", LAGRANGIANS, ids=repr)
def test_layer_energy_is_the_legendre_transform(lag):
    x = _states(np.random.RandomState(2))
    g = lag.activation(x, xp)
    expected = np.sum(x * g, axis=1) - lag.lagrangian(x, xp)
    np.testing.assert_allclose(lag.energy(x, xp), expected, atol=1e-10)


@pytest.mark.parametrize("lag", LAGRANGIANS, ids=repr)
def test_hessian_is_positive_semidefinite(lag):
    rng = np.random.RandomState(3)
    x, v = _states(rng), rng.randn(7, 6)
    assert np.all(np.sum(v * lag.hvp(x, v, xp), axis=1) >= -1e-12)


def test_make_lagrangian_names_and_errors():
    assert lg.make_lagrangian("softmax") == lg.Softmax()
    assert lg.make_lagrangian(("tanh", {"beta": 2.0})) == lg.Tanh(beta=2.0)
    with pytest.raises(ValueError, match="Unknown Lagrangian"):
        lg.make_lagrangian("softplus")
    with pytest.raises(TypeError, match="Lagrangian"):
        lg.make_lagrangian(3)


# ------------------------------------------------------------------ synapses
def _memory(separation, similarity, *, weights=True, coords=False, layers=("v",)):
    rng = np.random.RandomState(4)
    D = 5 if len(layers) == 1 else 7
    patterns = rng.randn(9, D) * 0.6
    spec = EnergySpec(
        separation=separation, similarity=similarity, beta=0.7, degree=3, epsilon=1e-3
    )
    return Memory(
        patterns,
        layers,
        spec,
        log_weights=np.log(rng.rand(9) + 0.2) if weights else None,
        coord_weights=(rng.rand(D) + 0.5) if coords else None,
    )


SYNAPSES = {
    "dense": lambda: Dense(np.random.RandomState(5).randn(5, 4), ("v", "h")),
    "bias": lambda: Bias(np.random.RandomState(6).randn(4), "h"),
    "memory-lse-sq": lambda: _memory("lse", "sqeuclidean"),
    "memory-lse-dot": lambda: _memory("lse", "dot"),
    "memory-poly-sq": lambda: _memory("poly", "sqeuclidean"),
    "memory-poly-dot": lambda: _memory("poly", "dot"),
    "memory-rpoly-sq": lambda: _memory("rectified_poly", "sqeuclidean"),
    "memory-lsr-sq": lambda: _memory("lsr", "sqeuclidean"),
    "memory-coords-two-layers": lambda: _memory(
        "lse", "sqeuclidean", coords=True, layers=("v", "h")
    ),
    "memory-unweighted": lambda: _memory("lse", "sqeuclidean", weights=False),
}


def _activations(syn, rng, n=6):
    sizes = {"v": 5, "h": 4}
    if isinstance(syn, Memory) and len(syn.layers) == 2:
        sizes = {"v": 3, "h": 4}
    return {name: rng.randn(n, sizes[name]) * 0.5 for name in syn.layers}


def _directional(f, g, direction, h=1e-6):
    plus = {k: g[k] + h * direction[k] for k in g}
    minus = {k: g[k] - h * direction[k] for k in g}
    return (f(plus) - f(minus)) / (2 * h)


@pytest.mark.parametrize("name", SYNAPSES)
def test_synapse_grad_is_the_gradient_of_its_energy(name):
    syn = SYNAPSES[name]()
    rng = np.random.RandomState(7)
    g = _activations(syn, rng)
    direction = {k: rng.randn(*v.shape) for k, v in g.items()}
    grad = syn.grad(g, xp)
    analytic = sum(np.sum(grad[k] * direction[k], axis=1) for k in g)
    fd = _directional(lambda z: syn.energy(z, xp), g, direction)
    np.testing.assert_allclose(analytic, fd, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", SYNAPSES)
def test_synapse_vjp_matches_finite_differences(name):
    syn = SYNAPSES[name]()
    rng = np.random.RandomState(8)
    g = _activations(syn, rng)
    cot = {k: rng.randn(*v.shape) for k, v in g.items()}

    def inner(gg, s=syn):
        grad = s.grad(gg, xp)
        return sum(np.sum(grad[k] * cot[k]) for k in gg)

    d_layers, d_params = syn.grad_vjp(g, cot, xp)
    direction = {k: rng.randn(*v.shape) for k, v in g.items()}
    analytic = sum(np.sum(d_layers.get(k, 0 * g[k]) * direction[k]) for k in g)
    fd = _directional(inner, g, direction)
    np.testing.assert_allclose(analytic, fd, atol=1e-6, rtol=1e-6)
    assert set(d_params) == set(syn.params)
    for pname, value in syn.params.items():
        dp = rng.randn(*value.shape)
        h = 1e-6
        up = inner(g, syn.with_params({pname: value + h * dp}))
        down = inner(g, syn.with_params({pname: value - h * dp}))
        np.testing.assert_allclose(
            np.sum(d_params[pname] * dp), (up - down) / (2 * h), atol=1e-6, rtol=1e-6
        )


def test_dense_vjp_with_one_sided_cotangent():
    syn = SYNAPSES["dense"]()
    g = _activations(syn, np.random.RandomState(9))
    cot = {"h": np.ones((6, 4))}
    d_layers, d_params = syn.grad_vjp(g, cot, xp)
    np.testing.assert_allclose(d_layers["v"], -(cot["h"] @ syn.params["W"].T))
    assert "h" not in d_layers
    np.testing.assert_allclose(d_params["W"], -(g["v"].T @ cot["h"]))
