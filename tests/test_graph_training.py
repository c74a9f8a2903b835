"""Training through mean-shift steps: the derivative of the per-query time constant.

The non-LSE separations descend with the mean-shift step ``tau * dE/dg``,
``tau = 1 / sum_mu P_mu`` per query; training what predicts needs
``d tau / d state`` and ``d tau / d memories`` in the backward pass. These
tests check them against central finite differences, and check that
dropping them breaks the gradient (so the tests can fail).
"""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam._energy import EnergySpec
from skam._graph import backprop
from skam._graph.backprop import backward
from skam._graph.dynamics import descend_graph
from skam._graph.graph import EnergyGraph
from skam._graph.lagrangians import Identity
from skam._graph.synapses import Memory

SEPARATIONS = ["lse", "poly", "rectified_poly", "lsr"]


def _memory(separation, similarity="sqeuclidean", *, seed=0, D=7, K=9):
    rng = np.random.RandomState(seed)
    spec = EnergySpec(
        separation=separation,
        similarity=similarity,
        beta=0.35 if separation != "lse" else 0.8,
        degree=3,
        epsilon=1e-3,
    )
    return Memory(
        rng.randn(K, D) * 0.6,
        ("f", "l"),
        spec,
        log_weights=np.log(rng.rand(K) + 0.3),
        coord_weights=rng.rand(D) + 0.5,
        mean_shift=True,
    )


def _graph(memory, n_features=4):
    D = memory.params["patterns"].shape[1]
    return EnergyGraph(
        {"f": Identity(), "l": Identity()},
        {"memory": memory},
        {"f": n_features, "l": D - n_features},
    )


def _states(rng, n=6, n_features=4, n_labels=3):
    return {
        "f": rng.randn(n, n_features) * 0.5,
        "l": rng.randn(n, n_labels) * 0.3,
    }


@pytest.mark.parametrize("similarity", ["sqeuclidean", "dot"])
@pytest.mark.parametrize("separation", ["poly", "rectified_poly", "lsr"])
def test_time_constant_vjp_matches_finite_differences(separation, similarity):
    syn = _memory(separation, similarity)
    rng = np.random.RandomState(1)
    g = _states(rng)
    cot = rng.randn(6, 1)

    def f(g_, s=syn):
        return float(np.sum(cot * s.step_scale(g_, xp)))

    d_layers, d_params = syn.step_scale_vjp(g, cot, xp)
    h = 1e-6
    direction = {k: rng.randn(*v.shape) for k, v in g.items()}
    fd = (
        f({k: g[k] + h * direction[k] for k in g})
        - f({k: g[k] - h * direction[k] for k in g})
    ) / (2 * h)
    analytic = sum(np.sum(d_layers[k] * direction[k]) for k in g)
    assert abs(analytic - fd) <= 1e-6 * max(1.0, abs(fd)), (analytic, fd)
    assert abs(fd) > 1e-4 or separation == "lsr"  # a non-trivial check
    for name, value in syn.params.items():
        direction = rng.randn(*value.shape)
        up = f(g, syn.with_params({name: value + h * direction}))
        down = f(g, syn.with_params({name: value - h * direction}))
        fd = (up - down) / (2 * h)
        analytic = float(np.sum(d_params[name] * direction))
        assert abs(analytic - fd) <= 1e-6 * max(1.0, abs(fd)), (name, analytic, fd)


def _loss(graph, x0, n_steps, step, target):
    out = descend_graph(
        graph,
        x0,
        xp,
        step_size=step,
        clamp={"f": True},
        max_iter=n_steps,
        tol=0.0,
        record=True,
        compute_energy=False,
    )
    diff = out.states["l"] - target
    return 0.5 * float(np.sum(diff * diff)), out


def _fd_check(graph, x0, target, *, n_steps=8, step=0.7, seed=3):
    """Worst relative error of backward against central differences."""
    rng = np.random.RandomState(seed)
    _, out = _loss(graph, x0, n_steps, step, target)
    cot = {"l": out.states["l"] - target}
    grad_x0, grads = backward(graph, out.tape, cot, xp)
    h = 1e-6
    worst = 0.0
    for key, value in graph.params().items():
        direction = rng.randn(*value.shape)
        up = _loss(
            graph.with_params({key: value + h * direction}), x0, n_steps, step, target
        )
        down = _loss(
            graph.with_params({key: value - h * direction}), x0, n_steps, step, target
        )
        fd = (up[0] - down[0]) / (2 * h)
        analytic = float(np.sum(grads[key] * direction))
        worst = max(worst, abs(analytic - fd) / max(1.0, abs(fd)))
    direction = rng.randn(*x0["l"].shape)
    shifted = [{"f": x0["f"], "l": x0["l"] + s * h * direction} for s in (1, -1)]
    fd = (
        _loss(graph, shifted[0], n_steps, step, target)[0]
        - _loss(graph, shifted[1], n_steps, step, target)[0]
    ) / (2 * h)
    analytic = float(np.sum(grad_x0["l"] * direction))
    return max(worst, abs(analytic - fd) / max(1.0, abs(fd)))


@pytest.mark.parametrize("separation", SEPARATIONS)
def test_backprop_through_mean_shift_steps_matches_finite_differences(separation):
    graph = _graph(_memory(separation))
    rng = np.random.RandomState(2)
    x0 = _states(rng)
    target = rng.rand(6, 3)
    assert _fd_check(graph, x0, target) <= 1e-6


@pytest.mark.parametrize("separation", ["poly", "rectified_poly", "lsr"])
def test_dropping_the_time_constant_term_breaks_the_gradient(separation, monkeypatch):
    graph = _graph(_memory(separation))
    rng = np.random.RandomState(2)
    x0 = _states(rng)
    target = rng.rand(6, 3)
    assert _fd_check(graph, x0, target) <= 1e-6
    monkeypatch.setattr(backprop, "_add_time_constant_terms", lambda *a, **k: None)
    assert _fd_check(graph, x0, target) > 1e-3


def test_training_records_the_inference_trajectory():
    """record=True runs the mean-shift steps of inference (same final states)."""
    graph = _graph(_memory("rectified_poly"))
    x0 = _states(np.random.RandomState(4))
    kwargs = dict(step_size=0.7, clamp={"f": True}, max_iter=6, tol=0.0)
    recorded = descend_graph(graph, x0, xp, record=True, **kwargs)
    plain = descend_graph(graph, x0, xp, **kwargs)
    np.testing.assert_allclose(recorded.states["l"], plain.states["l"], atol=1e-14)


# ------------------------------------------- the estimators' training path
def _unrolled_case(separation, seed=0, n=5, D=6, K=7):
    rng = np.random.RandomState(seed)
    return dict(
        V0=rng.randn(n, D) * 0.5,
        patterns=rng.randn(K, D) * 0.6,
        update_mask=rng.rand(n, D) < 0.6,
        coord_weights=rng.rand(D) + 0.5,
        log_weights=np.log(rng.rand(K) + 0.3),
        target=rng.rand(n, D),
        spec=EnergySpec(separation=separation, beta=0.35, degree=3, epsilon=1e-3),
    )


def _unrolled_loss(case, patterns, V0, *, n_steps=6, step=0.6):
    from skam._training import unrolled_forward

    tape = unrolled_forward(
        V0,
        patterns,
        xp,
        beta=case["spec"].beta,
        step_size=step,
        n_steps=n_steps,
        update_mask=case["update_mask"],
        coord_weights=case["coord_weights"],
        log_weights=case["log_weights"],
        spec=case["spec"],
    )
    diff = tape.states[-1] - case["target"]
    return 0.5 * float(np.sum(diff * diff)), tape, diff


@pytest.mark.parametrize("separation", ["poly", "rectified_poly", "lsr"])
def test_estimator_unrolled_gradients_match_finite_differences(separation):
    """skam._training's interface (what the estimators call) for every separation."""
    from skam._training import GraphTape, unrolled_backward

    case = _unrolled_case(separation)
    _, tape, diff = _unrolled_loss(case, case["patterns"], case["V0"])
    assert isinstance(tape, GraphTape)
    grad_patterns, grad_initial, _ = unrolled_backward(
        tape, case["patterns"], diff, xp, beta=case["spec"].beta
    )
    rng = np.random.RandomState(9)
    h = 1e-6
    for name, grad in (("patterns", grad_patterns), ("V0", grad_initial)):
        value = case[name]
        direction = rng.randn(*value.shape)
        args = {"patterns": case["patterns"], "V0": case["V0"]}
        up = _unrolled_loss(case, **{**args, name: value + h * direction})[0]
        down = _unrolled_loss(case, **{**args, name: value - h * direction})[0]
        fd = (up - down) / (2 * h)
        analytic = float(np.sum(grad * direction))
        assert abs(analytic - fd) <= 1e-6 * max(1.0, abs(fd)), (name, analytic, fd)
        assert abs(fd) > 1e-3
    # the normalised mean-shift weights of the last step, like the softmax's
    # (rows whose kernel sum is clipped at 0 have none)
    sums = np.sum(tape.weights[-1], axis=1)
    assert np.all((np.abs(sums - 1) < 1e-12) | (sums == 0)) and np.any(sums > 0)


def test_lse_fused_training_path_is_the_graph_path():
    """The fused LSE loop and the graph engine give the same tape and gradients."""
    from skam._training import _graph_forward, unrolled_backward, unrolled_forward

    case = _unrolled_case("lse")
    kwargs = dict(
        step_size=0.6,
        n_steps=6,
        update_mask=case["update_mask"],
        coord_weights=case["coord_weights"],
        log_weights=case["log_weights"],
    )
    spec = EnergySpec(separation="lse", beta=0.8)
    fused = unrolled_forward(case["V0"], case["patterns"], xp, beta=0.8, **kwargs)
    graph = _graph_forward(case["V0"], case["patterns"], xp, spec=spec, **kwargs)
    np.testing.assert_allclose(graph.states[-1], fused.states[-1], atol=1e-12)
    np.testing.assert_allclose(graph.weights[-1], fused.weights[-1], atol=1e-12)
    diff = fused.states[-1] - case["target"]
    a = unrolled_backward(
        fused, case["patterns"], diff, xp, beta=0.8, coord_weights=case["coord_weights"]
    )
    b = unrolled_backward(graph, case["patterns"], diff, xp, beta=0.8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(y, x, atol=1e-10)


@pytest.mark.parametrize(
    ("separation", "beta"), [("rectified_poly", 0.03), ("poly", 0.01)]
)
def test_trained_non_lse_classifier_beats_its_untrained_start(separation, beta):
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from skam import DenseAMClassifier

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    params = dict(
        mode="parametric",
        separation=separation,
        beta=beta,
        n_memories=5,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = DenseAMClassifier(max_epochs=1, learning_rate=1e-12, **params)
        trained = DenseAMClassifier(max_epochs=15, learning_rate=0.05, **params)
        start.fit(Xtr, ytr)
        trained.fit(Xtr, ytr)
    assert trained.loss_curve_[-1] < 0.5 * start.loss_curve_[-1]
    assert trained.score(Xte, yte) > start.score(Xte, yte) + 0.1


def test_non_lse_regressor_trains():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from skam import DenseAMRegressor

    rng = np.random.RandomState(0)
    X = rng.rand(300, 2) * 4 - 2
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    params = dict(mode="parametric", separation="rectified_poly", beta=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = DenseAMRegressor(max_epochs=1, learning_rate=1e-12, **params).fit(X, y)
        trained = DenseAMRegressor(max_epochs=30, learning_rate=0.05, **params).fit(
            X, y
        )
    assert trained.loss_curve_[-1] < 0.7 * start.loss_curve_[-1]
    assert trained.score(X, y) > start.score(X, y)


def test_non_lse_training_runs_on_array_api_strict():
    pytest.importorskip("array_api_strict")
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from skam import DenseAMClassifier

    rng = np.random.RandomState(0)
    X = np.concatenate([rng.randn(40, 3) - 1.5, rng.randn(40, 3) + 1.5])
    y = np.repeat([0, 1], 40)
    params = dict(
        mode="parametric",
        separation="rectified_poly",
        beta=0.3,
        max_epochs=3,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        strict = DenseAMClassifier(backend="array_api_strict", **params).fit(X, y)
        plain = DenseAMClassifier(**params).fit(X, y)
    np.testing.assert_allclose(
        np.asarray(strict.memories_), plain.memories_, atol=1e-12
    )
    np.testing.assert_allclose(strict.loss_curve_, plain.loss_curve_, rtol=1e-12)
