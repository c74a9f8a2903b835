"""Closed-form backprop through unrolled LSE descent against finite differences."""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam._training import Adam, unrolled_backward, unrolled_forward


def _loss(V0, Xi, logw, target, mask, c, beta=1.7, step_size=0.3, T=4):
    tape = unrolled_forward(
        V0,
        Xi,
        xp,
        beta=beta,
        step_size=step_size,
        n_steps=T,
        update_mask=mask,
        coord_weights=c,
        log_weights=logw,
    )
    out = tape.states[-1]
    return 0.5 * np.sum((out - target) ** 2), tape, out - target


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_c", [False, True])
def test_backward_matches_finite_differences(with_mask, with_c, numerical_gradient):
    rng = np.random.RandomState(0)
    n, K, D = 5, 4, 3
    V0, Xi, target = rng.randn(n, D), rng.randn(K, D), rng.randn(n, D)
    logw = 0.3 * rng.randn(K)
    mask = rng.rand(n, D) > 0.3 if with_mask else None
    c = rng.uniform(0.5, 1.5, D) if with_c else None
    _, tape, g = _loss(V0, Xi, logw, target, mask, c)
    dXi, dV0, dlogw = unrolled_backward(tape, Xi, g, xp, beta=1.7, coord_weights=c)
    args = {"V0": V0, "Xi": Xi, "logw": logw}
    for name, grad in (("Xi", dXi), ("V0", dV0), ("logw", dlogw)):

        def loss(value, name=name):
            kw = {**args, name: value}
            return _loss(kw["V0"], kw["Xi"], kw["logw"], target, mask, c)[0]

        np.testing.assert_allclose(
            grad, numerical_gradient(loss, args[name]), rtol=1e-5, atol=1e-8
        )


def test_forward_step_is_engine_descent():
    """The unrolled forward pass equals the engine's descent with fixed steps."""
    from skam._descent import descend
    from skam._energy import EnergySpec, prepare_memories

    rng = np.random.RandomState(1)
    V0, Xi = rng.randn(6, 4), rng.randn(5, 4)
    tape = unrolled_forward(V0, Xi, xp, beta=2.0, step_size=0.4, n_steps=7)
    spec = EnergySpec(beta=2.0)
    res = descend(
        V0, prepare_memories(Xi, xp), spec, xp, step_size=0.4, max_iter=7, tol=0.0
    )
    np.testing.assert_allclose(tape.states[-1], res.states, rtol=1e-12, atol=1e-12)


def test_adam_minimises_a_quadratic():
    target = np.array([3.0, -2.0])
    opt = Adam([np.zeros(2)], xp, learning_rate=0.1)
    for _ in range(500):
        (p,) = opt.params
        opt.step([2 * (p - target)])
    np.testing.assert_allclose(opt.params[0], target, atol=1e-3)
