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


@pytest.mark.parametrize("n_steps", [1, 3])
def test_backward_with_clamped_leading_coordinates_matches_finite_differences(
    n_steps, numerical_gradient
):
    """``pull_from``: the clamped coordinates' product is taken once for all
    the steps (``(sum_t A_t).T @ v_0``); the gradients are still exact."""
    rng = np.random.RandomState(4)
    n, K, D, p = 6, 5, 5, 3
    V0, Xi, target = rng.randn(n, D), rng.randn(K, D), rng.randn(n, D)
    logw = 0.3 * rng.randn(K)
    mask = np.arange(D) >= p
    c = rng.uniform(0.5, 1.5, D)

    def run(V0, Xi, logw):
        tape = unrolled_forward(
            V0,
            Xi,
            xp,
            beta=1.1,
            step_size=0.7,
            n_steps=n_steps,
            update_mask=mask,
            coord_weights=c,
            log_weights=logw,
            pull_from=p,
        )
        out = tape.states[-1]
        return 0.5 * np.sum((out - target)[:, p:] ** 2), tape, out - target

    _, tape, g = run(V0, Xi, logw)
    dXi, dV0, dlogw = unrolled_backward(tape, Xi, g, xp, beta=1.1, coord_weights=c)
    args = {"V0": V0, "Xi": Xi, "logw": logw}
    for name, grad in (("Xi", dXi), ("V0", dV0), ("logw", dlogw)):

        def loss(value, name=name):
            return run(**{**args, name: value})[0]

        expected = numerical_gradient(loss, args[name])
        if name == "V0":  # of the free coordinates only
            expected = expected[:, p:]
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)


def test_negligible_softmax_weights_change_no_step_beyond_rounding():
    """float32 weights below eps**2 are dropped (their products would be
    subnormal): the step still matches a float64 computation in plain NumPy
    to float32 rounding, though most weights are dropped."""
    from skam._training import drop_negligible_weights

    rng = np.random.RandomState(5)
    n, K, D = 40, 300, 6
    Xi = 3.0 * rng.randn(K, D)
    V0 = Xi[rng.randint(K, size=n)] + 0.3 * rng.randn(n, D)
    beta, step = 2.0, 0.8
    tape = unrolled_forward(
        V0.astype(np.float32),
        Xi.astype(np.float32),
        xp,
        beta=beta,
        step_size=step,
        n_steps=1,
    )
    P32 = tape.weights[0]
    assert P32.dtype == np.float32 and tape.states[-1].dtype == np.float32
    assert np.mean(P32 == 0) > 0.5  # the rule is exercised
    logits = -beta / 2 * ((V0[:, None, :] - Xi[None]) ** 2).sum(-1)
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    expected = V0 - step * (V0 - P @ Xi)
    np.testing.assert_allclose(tape.states[-1], expected, rtol=0, atol=2e-5)
    # the rule itself: strictly below eps**2 goes, the rest stays
    eps2 = np.finfo(np.float32).eps ** 2
    W = np.array([[1.0, 0.99 * eps2, 1.01 * eps2, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(
        drop_negligible_weights(W, xp), np.array([[1.0, 0.0, W[0, 2], 0.0]])
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_in_place_is_the_same_update(dtype):
    rng = np.random.RandomState(6)
    # (300, 500): several blocks of rows (CACHE_BLOCK_BYTES); (4,): one
    start = [rng.randn(300, 500).astype(dtype), rng.randn(4).astype(dtype)]
    kept = [a.copy() for a in start]
    ref = Adam(start, xp, learning_rate=0.05)
    fast = Adam(start, xp, learning_rate=0.05, in_place=True)
    arrays = [id(a) for a in fast.params]
    for _ in range(40):
        grads = [rng.randn(*a.shape).astype(dtype) for a in start]
        ref.step(grads)
        fast.step(grads)
    for a, b in zip(fast.params, ref.params, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)  # the same operations, in order
    assert [id(a) for a in fast.params] == arrays  # updated in place
    assert fast._scratch[0][0].shape[0] < 300  # by blocks
    for a, b in zip(start, kept, strict=True):  # the caller's arrays untouched
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------- parametric initialisation
def test_auto_memory_count_is_a_capped_fraction():
    from skam import DenseAMClassifier
    from skam._supervised_training import (
        AUTO_MAX_MEMORIES,
        AUTO_MAX_PER_CLASS,
        _count,
    )

    assert _count("auto", 500, AUTO_MAX_PER_CLASS) == 50  # 10 %
    assert _count("auto", 5000, AUTO_MAX_PER_CLASS) == AUTO_MAX_PER_CLASS == 100
    assert _count("auto", 50_000, AUTO_MAX_MEMORIES) == AUTO_MAX_MEMORIES == 1000
    assert _count("auto", 3, AUTO_MAX_PER_CLASS) == 1  # at least one
    assert _count(0.1, 5000, AUTO_MAX_PER_CLASS) == 500  # a fraction is not capped
    assert _count(7, 5000, AUTO_MAX_PER_CLASS) == 7
    # end to end: 1 200 and 300 rows per class give 100 and 30 memories
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1], [1200, 300])
    X = rng.randn(y.size, 3) + 4.0 * y[:, None]
    clf = DenseAMClassifier(mode="parametric", max_epochs=1, random_state=0)
    with pytest.warns(Warning):  # max_epochs=1 reached
        clf.fit(X, y)
    owners = np.argmax(clf.memories_[:, 3:], axis=1)
    np.testing.assert_array_equal(np.bincount(owners), [100, 30])


def test_kmeans_initialisation_subsamples_only_large_sets(monkeypatch):
    """Small sets: plain KMeans on every row (the same centres); large ones:
    KMeans on ``max(KMEANS_MIN_ROWS, 20 * k)`` distinct random rows."""
    from sklearn.cluster import KMeans

    import skam._supervised_training as st

    rng = np.random.RandomState(1)
    X = rng.randn(600, 4)
    w = rng.uniform(0.5, 2.0, 600)
    centres = st.kmeans_memories(X, 10, w, np.random.RandomState(2))
    ref = KMeans(10, n_init=1, random_state=np.random.RandomState(2))
    np.testing.assert_allclose(
        centres, ref.fit(X, sample_weight=w).cluster_centers_, rtol=1e-12
    )
    seen = []
    fit = KMeans.fit

    def spy(self, X, y=None, sample_weight=None):
        seen.append((X, sample_weight))
        return fit(self, X, sample_weight=sample_weight)

    monkeypatch.setattr(KMeans, "fit", spy)
    monkeypatch.setattr(st, "KMEANS_MIN_ROWS", 100)
    centres = st.kmeans_memories(X, 10, w, np.random.RandomState(2))
    ((Xs, ws),) = seen
    assert Xs.shape == (200, 4) and centres.shape == (10, 4)  # 20 rows a centre
    # rows of X (without repetition) with their own weights
    index = [int(np.flatnonzero((X == row).all(1))[0]) for row in Xs]
    assert len(set(index)) == 200
    np.testing.assert_array_equal(ws, w[index])


def test_distinct_rows_are_counted_like_numpy_unique():
    from skam._supervised_training import _count_distinct

    rng = np.random.RandomState(3)
    X = rng.randint(0, 3, size=(300, 3)).astype(float)
    X[:50, 0] = -0.0 * X[:50, 0]  # -0.0 equals 0.0
    assert _count_distinct(X) == np.unique(X, axis=0).shape[0] < 300
    assert _count_distinct(X.astype(np.float32)) == np.unique(X, axis=0).shape[0]


def test_training_returns_the_best_epoch_not_the_last():
    """Adam updates in place: the kept memories are a copy of the best epoch's."""
    from array_api_compat import numpy as np_compat

    from skam._supervised_base import LabelCode
    from skam._supervised_training import (
        LabelNeuronModel,
        class_label_logits,
        train,
    )

    rng = np.random.RandomState(4)
    y = rng.randint(3, size=120)
    X = rng.randn(120, 5) + y[:, None]
    onehot = np.eye(3)[y]
    model = LabelNeuronModel(
        code=LabelCode("classification", 3, 1.0),
        n_features=5,
        lam=0.5,
        beta=2.0,
        step_size=1.0,
        n_steps=1,
        xp=np_compat,
        dtype=np.float64,
        device="cpu",
    )
    F0 = X[:6].copy()
    L0 = class_label_logits(y[:6], 3)
    start = (F0.copy(), L0.copy())
    val = np.arange(80, 120)
    result = train(
        model,
        F0,
        L0,
        X,
        onehot,
        np.ones(120),
        train_rows=np.arange(80),
        val_rows=val,
        learning_rate=0.3,  # large: the validation loss goes up again
        batch_size=16,
        max_epochs=40,
        n_iter_no_change=3,
        rng=np.random.RandomState(5),
        verbose=0,
        name="test",
    )
    curve = result.validation_loss_curve
    assert result.n_epochs < 40 and int(np.argmin(curve)) < len(curve) - 1
    kept = model.mean_loss(
        result.F, result.L, X[val], onehot[val], np.ones(40), batch_size=1024
    )
    np.testing.assert_allclose(kept, min(curve), rtol=1e-12)
    np.testing.assert_array_equal(F0, start[0])  # the start is not written to
    np.testing.assert_array_equal(L0, start[1])


def test_backward_by_cache_blocks_equals_the_array_api_path():
    """NumPy assembles dL/dXi in place by blocks of rows (several here); the
    array-API path (array_api_strict, no ``out=``) in one piece."""
    import array_api_strict
    from array_api_compat import array_namespace

    from skam._training import _block_rows

    rng = np.random.RandomState(7)
    n, K, D, p = 30, 700, 50, 45
    V0, Xi, target = rng.randn(n, D), rng.randn(K, D), rng.randn(n, D)
    mask = np.arange(D) >= p
    c = rng.uniform(0.5, 1.5, D)
    assert _block_rows(Xi) < K  # several blocks
    out = []
    for to in (np.asarray, array_api_strict.asarray):
        ns = array_namespace(to(V0))
        args = dict(beta=0.4, coord_weights=to(c))
        tape = unrolled_forward(
            to(V0),
            to(Xi),
            ns,
            step_size=0.8,
            n_steps=2,
            update_mask=to(mask),
            pull_from=p,
            **args,
        )
        grads = unrolled_backward(
            tape, to(Xi), tape.states[-1] - to(target), ns, **args
        )
        out.append([np.asarray(g) for g in grads])
    for a, b in zip(*out, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
