"""The fast paths of issue 16 give the results of the slow ones.

Prepared memories cached at fit, chunks sized from ``working_memory`` only,
the one-step descent and the cheap validation of plain NumPy input: each is
checked against the path it replaces (a fresh fit, a cache rebuilt after
pickling, small chunks, the general descent loop, ``validate_data``).
"""

import pickle
import warnings

import numpy as np
import pytest
from array_api_compat import numpy as np_compat
from sklearn import config_context
from sklearn.datasets import load_digits
from sklearn.utils.validation import validate_data

from skam import DenseAM, DenseAMClassifier, DenseAMRegressor
from skam._descent import _descend_chunk, _one_step_chunk, free_mask
from skam._energy import EnergySpec, prepare_memories
from skam._validation import validate_X


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predictions_do_not_depend_on_the_chunking(digits, dtype):
    X, y = digits
    X = X.astype(dtype)
    clf = DenseAMClassifier(beta=8.0).fit(X[::2], y[::2])
    proba = clf.predict_proba(X[1::2])
    with config_context(working_memory=1):  # 1 MiB: chunks of about 40 rows
        small = clf.predict_proba(X[1::2])
    assert proba.dtype == dtype
    tight = dtype == np.float64
    # atol: a label neuron after the step is t0 - (t0 - mean), so a small
    # probability carries an absolute rounding error of about eps * t0 (1e-17)
    np.testing.assert_allclose(
        small, proba, rtol=1e-12 if tight else 1e-5, atol=1e-15 if tight else 1e-7
    )
    np.testing.assert_array_equal(np.argmax(small, 1), np.argmax(proba, 1))


def test_one_step_predict_is_the_kernel_smoother(digits):
    """Oracle: the Nadaraya-Watson vote, written out in NumPy (float64)."""
    X, y = digits
    clf = DenseAMClassifier(beta=6.0, lam=0.4).fit(X[::2], y[::2])
    Q, M = X[1::2], X[::2]
    sq = ((Q[:, None, :] - M[None, :, :]) ** 2).sum(-1)
    logits = -0.5 * 6.0 * 0.4 * sq  # the label coordinates add a constant
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = p @ np.eye(10)[y[::2]]
    np.testing.assert_allclose(clf.predict_proba(Q), expected, atol=1e-10)
    np.testing.assert_array_equal(clf.predict(Q), np.argmax(expected, 1))


def test_cached_memories_give_the_uncached_predictions(digits):
    X, y = digits
    clf = DenseAMClassifier().fit(X[::2], y[::2])
    assert "_prepared_cache" in clf.__dict__  # built at fit
    cached = clf.predict_proba(X[1::2])
    del clf._prepared_cache  # the path of every call before the cache
    np.testing.assert_array_equal(clf.predict_proba(X[1::2]), cached)


def test_cache_follows_partial_fit_and_set_params(digits):
    X, y = digits
    A, B = slice(0, 600), slice(600, 1200)
    inc = DenseAMClassifier(beta=4.0).partial_fit(X[A], y[A], classes=np.arange(10))
    inc.predict(X[1200:])  # fills the cache for the first memories
    inc.partial_fit(X[B], y[B])
    full = DenseAMClassifier(beta=4.0).fit(X[:1200], y[:1200])
    np.testing.assert_allclose(
        inc.predict_proba(X[1200:]), full.predict_proba(X[1200:]), rtol=1e-12
    )
    inc.set_params(lam=0.3)  # coordinate weights change: the cache must too
    full.set_params(lam=0.3)
    del full._prepared_cache
    np.testing.assert_allclose(
        inc.predict_proba(X[1200:]), full.predict_proba(X[1200:]), rtol=1e-12
    )
    reg = DenseAMRegressor(beta=4.0).fit(X[:600], y[:600].astype(float))
    before = reg.predict(X[1200:])
    reg.set_params(label_scale=0.5)  # the read-out divides by label_scale
    assert not np.allclose(reg.predict(X[1200:]), before)


@pytest.mark.parametrize("Estimator", [DenseAMClassifier, DenseAM])
def test_cache_is_not_pickled(digits, Estimator):
    X, y = digits
    model = Estimator().fit(X, y)
    assert "_prepared_cache" in model.__dict__
    blob = pickle.dumps(model)
    loaded = pickle.loads(blob)
    assert "_prepared_cache" not in loaded.__dict__
    # the stored memories once, not twice (the cache holds norms and views)
    assert len(blob) < 1.2 * model.memories_.nbytes
    out = "predict" if Estimator is DenseAMClassifier else "transform"
    np.testing.assert_array_equal(
        getattr(loaded, out)(X[:50]), getattr(model, out)(X[:50])
    )


@pytest.mark.parametrize("separation", ["lse", "lsr", "rectified_poly"])
@pytest.mark.parametrize("clamped", [False, True])
def test_one_step_is_the_general_loop_with_one_iteration(separation, clamped):
    rng = np.random.RandomState(0)
    M = rng.standard_normal((300, 8))
    V = M[:40] + 0.3 * rng.standard_normal((40, 8))
    xp = np_compat
    memories = prepare_memories(M, xp, weights=rng.uniform(0.5, 2, 300))
    spec = EnergySpec(separation=separation, beta=0.7, degree=2)
    clamp = np.zeros(8, dtype=bool)
    clamp[:3] = clamped
    kwargs = dict(
        free=free_mask(clamp, xp),
        step_size=0.8,
        max_iter=1,
        tol=1e-3,
        box=None,
        lsr_fixed_point=separation == "lsr",
        return_trace=False,
        compute_energy=True,
    )
    from skam._descent import KernelSumOracle

    oracle = KernelSumOracle(memories, spec, xp)
    fast = _one_step_chunk(V, oracle, xp, **kwargs)
    slow = _descend_chunk(V, oracle, xp, **kwargs)
    np.testing.assert_array_equal(fast.states, slow.states)
    np.testing.assert_array_equal(fast.n_iter, slow.n_iter)
    np.testing.assert_array_equal(fast.converged, slow.converged)
    np.testing.assert_array_equal(fast.energy, slow.energy)


def test_plain_input_validation_matches_validate_data(digits):
    X, y = digits
    clf = DenseAMClassifier().fit(X, y)
    for Q in (X[:1], X[:7].astype(np.float32), np.asfortranarray(X[:5])):
        fast = validate_X(clf, Q, reset=False, method="predict")
        slow = validate_data(clf, Q, reset=False, dtype=[np.float64, np.float32])
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast, slow)
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(bad)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:3, :10])
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(X[:0])
    huge = np.full((2, 64), 1e300)  # finite values whose sum overflows
    with pytest.raises(ValueError, match="Rescale X"):
        clf.predict(huge)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    named = DenseAMClassifier().fit(frame, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        named.predict(X[:2])  # fitted with names, called without
    assert any("feature names" in str(w.message) for w in caught)


@pytest.mark.parametrize("with_c", [False, True])
def test_unrolled_pull_from_gives_the_full_width_gradients(with_c):
    """Clamped leading coordinates: the narrow products give the same numbers."""
    from skam._training import unrolled_backward, unrolled_forward

    rng = np.random.RandomState(3)
    n, K, D, p = 7, 6, 5, 3
    V0, Xi, target = rng.randn(n, D), rng.randn(K, D), rng.randn(n, D)
    mask = np.arange(D) >= p  # True = free
    c = rng.uniform(0.5, 1.5, D) if with_c else None
    grads = []
    for pull_from in (0, p):
        tape = unrolled_forward(
            V0,
            Xi,
            np_compat,
            beta=1.3,
            step_size=0.6,
            n_steps=3,
            update_mask=mask,
            coord_weights=c,
            pull_from=pull_from,
        )
        g = tape.states[-1] - target
        grads.append(
            (tape.states[-1],)
            + unrolled_backward(tape, Xi, g, np_compat, beta=1.3, coord_weights=c)
        )
    (out0, dXi0, dV0, dw0), (out1, dXi1, dV1, dw1) = grads
    np.testing.assert_allclose(out1, out0, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dXi1, dXi0, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dV1, dV0[:, p:], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dw1, dw0, rtol=1e-12, atol=1e-13)
