"""EnergyTransformer: energies against naive loops, derivatives against finite
differences, the descent's guarantees, imputation, and checkpoint I/O."""

import math
import pickle
import re
import warnings

import numpy as np
import pytest
from array_api_compat import numpy as xp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skam import EnergyTransformer
from skam._graph import et_unrolled
from skam._graph.attention import AttentionEnergy
from skam._graph.lagrangians import LayerNorm
from skam._graph.token_embedding import Patcher
from skam._graph.token_memory import TokenMemoryEnergy
from skam._graph.tokenwise import TokenWise

TINY = dict(token_dim=8, n_heads=2, head_dim=4, n_memories=12)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data / 16.0


@pytest.fixture(scope="module")
def fitted(digits):
    et = EnergyTransformer(
        image_shape=(8, 8),
        patch_shape=(2, 4),
        **TINY,
        max_epochs=3,
        learning_rate=3e-3,
        random_state=0,
    )
    return et.fit(digits[:300])


def _half_masked(X, patcher, rng):
    """NaN over half of the patches of every image."""
    n = X.shape[0]
    Np = patcher.n_patches
    mask = np.zeros((n, Np), dtype=bool)
    for i in range(n):
        mask[i, rng.choice(Np, Np // 2, replace=False)] = True
    ones = np.ones((n, Np, patcher.patch_size))
    pix = patcher.unpatchify(ones * mask[:, :, None], xp) > 0
    Xo = X.copy()
    Xo[pix] = np.nan
    return Xo, pix


# ---------------------------------------------------------------- naive oracle
def _naive_tokens(weights, image, image_shape, patch_shape, masked):
    """Initial tokens of one image, with explicit loops over patches and pixels."""
    C, H, W = image_shape
    ph, pw = patch_shape
    tokens = []
    if "cls_token" in weights:
        tokens.append(np.array(weights["cls_token"], dtype=float))
    img = image.reshape(C, H, W)
    b = 0
    for i in range(H // ph):
        for j in range(W // pw):
            if masked[b]:
                tokens.append(np.array(weights["mask_token"], dtype=float))
            else:
                flat = [
                    img[c, i * ph + a, j * pw + e]
                    for c in range(C)
                    for a in range(ph)
                    for e in range(pw)
                ]
                tokens.append(np.asarray(flat) @ weights["W_enc"] + weights["b_enc"])
            b += 1
    return np.array(tokens) + weights["pos"]


def _naive_energy(weights, tokens, beta, self_attention, eps=1e-5):
    """E_att + E_mem of one image's tokens, as written in the tutorial."""
    gamma, delta = float(weights["gamma"]), weights["delta"]
    g = []
    for x in tokens:
        m = sum(x) / len(x)
        s = math.sqrt(sum((v - m) ** 2 for v in x) / len(x) + eps)
        g.append([gamma * (v - m) / s + d for v, d in zip(x, delta, strict=True)])
    g = np.array(g)
    Wq, Wk, Xi = weights["Wq"], weights["Wk"], weights["Xi"]
    N = len(g)
    energy = 0.0
    for h in range(Wq.shape[0]):
        Q = [
            [
                sum(Wq[h, a, j] * g[C, j] for j in range(g.shape[1]))
                for a in range(Wq.shape[1])
            ]
            for C in range(N)
        ]
        K = [
            [
                sum(Wk[h, a, j] * g[B, j] for j in range(g.shape[1]))
                for a in range(Wk.shape[1])
            ]
            for B in range(N)
        ]
        for C in range(N):
            terms = [
                beta * sum(K[B][a] * Q[C][a] for a in range(len(K[B])))
                for B in range(N)
                if self_attention or B != C
            ]
            if terms:
                top = max(terms)
                energy -= (top + math.log(sum(math.exp(t - top) for t in terms))) / beta
    for B in range(N):
        for mu in range(Xi.shape[0]):
            h = sum(Xi[mu, j] * g[B, j] for j in range(g.shape[1]))
            energy -= 0.5 * max(h, 0.0) ** 2
    return energy


def test_energy_matches_naive_loop(fitted, digits):
    rng = np.random.RandomState(1)
    patcher = Patcher(fitted.image_shape_, fitted.patch_shape_)
    Xo, _ = _half_masked(digits[300:304], patcher, rng)
    got = fitted.energy(Xo)
    masked = np.isnan(patcher.patchify(Xo, xp)).any(axis=2)
    for i in range(4):
        tokens = _naive_tokens(
            fitted.weights_,
            np.nan_to_num(Xo[i]),
            fitted.image_shape_,
            fitted.patch_shape_,
            masked[i],
        )
        want = _naive_energy(fitted.weights_, tokens, fitted.beta_, False)
        assert got[i] == pytest.approx(want, rel=1e-10, abs=1e-9)


# ---------------------------------------------------- derivatives against FD
def _fd(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


@pytest.mark.parametrize("self_attention", [False, True])
def test_attention_and_memory_derivatives(self_attention):
    rng = np.random.default_rng(0)
    n, N, D, H, Y, M = 3, 5, 6, 2, 3, 7
    terms = [
        AttentionEnergy(
            "tokens",
            N,
            D,
            rng.normal(size=(H, Y, D)),
            rng.normal(size=(H, Y, D)),
            beta=0.6,
            self_attention=self_attention,
        ),
        TokenMemoryEnergy("tokens", N, D, rng.normal(size=(M, D))),
    ]
    for term in terms:
        g = rng.normal(size=(n, N * D))
        v = rng.normal(size=g.shape)
        U = rng.normal(size=g.shape)

        def energy(a, term=term):
            return term.energy({"tokens": a}, xp)

        def f(a, term=term, U=U):
            return np.sum(U * term.grad({"tokens": a}, xp)["tokens"])

        grad = term.grad({"tokens": g}, xp)["tokens"]
        np.testing.assert_allclose(
            _fd(energy, g, v), np.sum(grad * v, axis=1), rtol=1e-6, atol=1e-6
        )
        d_layers, d_params = term.grad_vjp({"tokens": g}, {"tokens": U}, xp)
        assert _fd(f, g, v) == pytest.approx(np.sum(d_layers["tokens"] * v), rel=1e-6)
        for key, p in term.params.items():
            w = rng.normal(size=p.shape)

            def fp(a, key=key, term=term, g=g):
                old = term.params[key]
                term.params[key] = a
                out = f(g)
                term.params[key] = old
                return out

            assert _fd(fp, p, w) == pytest.approx(np.sum(d_params[key] * w), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_softmax_falls_back_to_row_shift(dtype):
    """A row far below its block's maximum is shifted by its own maximum."""
    att = AttentionEnergy("t", 3, 2, np.ones((1, 1, 2)), np.ones((1, 1, 2)), beta=1.0)
    S = np.array([[0.0, 1.0, 2.0], [-5000.0, -5001.0, -4999.0], [3.0, 3.0, 3.0]])
    S = S.astype(dtype)[None, None]
    P, lse = att._softmax(S, xp)
    m = S.max(axis=-1, keepdims=True)
    e = np.exp(S - m)
    np.testing.assert_allclose(P, e / e.sum(-1, keepdims=True), rtol=1e-6)
    expected = (m + np.log(e.sum(-1, keepdims=True)))[..., 0]
    np.testing.assert_allclose(lse, expected, rtol=1e-6)
    assert P.dtype == dtype and np.all(np.isfinite(P))
    # the usual case (the block-wide shift) gives the same numbers
    S2 = S[:, :, [0, 2]][:, :, :, [0, 2]]
    P2, lse2 = att._softmax(S2, xp)
    e2 = np.exp(S2 - S2.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(P2, e2 / e2.sum(-1, keepdims=True), rtol=1e-6)


def test_tokenwise_layernorm_derivatives():
    rng = np.random.default_rng(1)
    delta = rng.normal(size=6)
    ln = TokenWise(LayerNorm(gamma=1.3, delta=delta), 4, legendre=False)
    x = rng.normal(size=(3, 24))
    v = rng.normal(size=x.shape)
    act = ln.activation(x, xp)
    np.testing.assert_allclose(
        _fd(lambda a: ln.lagrangian(a, xp), x, v), np.sum(act * v, axis=1), rtol=1e-7
    )
    np.testing.assert_allclose(
        _fd(lambda a: ln.activation(a, xp), x, v), ln.hvp(x, v, xp), atol=1e-8
    )
    # the activation is a layer norm of every token, with a scalar gain
    x3 = x.reshape(3, 4, 6)
    ref = (x3 - x3.mean(-1, keepdims=True)) / np.sqrt(x3.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(act, (1.3 * ref + delta).reshape(3, 24), atol=1e-12)
    # the Hessian is symmetric positive semi-definite
    u = rng.normal(size=x.shape)
    assert np.sum(u * ln.hvp(x, v, xp)) == pytest.approx(np.sum(v * ln.hvp(x, u, xp)))
    assert np.all(np.sum(v * ln.hvp(x, v, xp), axis=1) >= -1e-12)
    # no Legendre term: the layer adds nothing to the energy
    np.testing.assert_array_equal(ln.energy(x, xp), np.zeros(3))
    # parameter derivatives of <cot, g>
    grads = ln.param_vjp(x, u, xp)

    def with_gamma(gm):
        layer = TokenWise(LayerNorm(gamma=gm, delta=delta), 4)
        return np.sum(u * layer.activation(x, xp))

    def with_delta(d):
        layer = TokenWise(LayerNorm(gamma=1.3, delta=d), 4)
        return np.sum(u * layer.activation(x, xp))

    assert _fd(with_gamma, 1.3, 1.0) == pytest.approx(float(grads["gamma"]))
    w = rng.normal(size=6)
    assert _fd(with_delta, delta, w) == pytest.approx(np.sum(grads["delta"] * w))


@pytest.mark.parametrize("cls", [False, True])
@pytest.mark.parametrize("clamp_visible", [True, False])
@pytest.mark.parametrize("memo", [False, True])
def test_backprop_through_steps_matches_finite_differences(cls, clamp_visible, memo):
    rng = np.random.default_rng(2)
    patcher = Patcher((1, 6, 6), (2, 3))
    Np, Z = patcher.n_patches, patcher.patch_size
    D, H, Y, M, n = 6, 2, 3, 10, 3
    params = {
        "Wq": rng.normal(size=(H, Y, D)) / 2,
        "Wk": rng.normal(size=(H, Y, D)) / 2,
        "Xi": rng.normal(size=(M, D)) / 3,
        "W_enc": rng.normal(size=(Z, D)),
        "b_enc": rng.normal(size=D),
        "W_dec": rng.normal(size=(D, Z)),
        "b_dec": rng.normal(size=Z),
        "pos": rng.normal(size=(Np + cls, D)),
        "mask_token": rng.normal(size=D),
        "gamma": np.asarray(1.2),
        "delta": rng.normal(size=D),
    }
    if cls:
        params["cls_token"] = rng.normal(size=D)
    config = et_unrolled.ETConfig(
        n_tokens=Np + cls,
        dim=D,
        beta=0.5,
        self_attention=False,
        step_size=0.1,
        n_steps=6,
    )
    patches = patcher.patchify(rng.random((n, 36)), xp)
    token_mask = rng.random((n, Np)) < 0.5
    target = rng.random(patches.shape)

    def loss(p):
        result = et_unrolled.forward(
            p, config, patches, token_mask, xp, clamp_visible=clamp_visible
        )
        out = et_unrolled.decode(p, config, result.states["tokens"], Np, xp)
        return 0.5 * np.sum((out - target) ** 2)

    # memo=True: the training path, where the backward pass reuses what the
    # forward pass computed at every state (skam._graph.token_cache)
    graph = et_unrolled.build_graph(params, config, memo=memo)
    result = et_unrolled.forward(
        params,
        config,
        patches,
        token_mask,
        xp,
        clamp_visible=clamp_visible,
        record=True,
        graph=graph,
    )
    out = et_unrolled.decode(params, config, result.states["tokens"], Np, xp, graph)
    grads = et_unrolled.backward(
        params, config, patches, token_mask, result, out - target, xp, graph
    )
    if memo:  # 6 steps x (layer norm, attention, memory) + the read-out's
        # layer norm: the backward pass found every one of them again
        assert len(graph.layers["tokens"].memo._items) == 3 * 6 + 1
    assert set(grads) == set(params)
    for key, p in params.items():
        w = rng.normal(size=np.shape(p))

        def lp(a, key=key):
            return loss({**params, key: a})

        assert _fd(lp, p, w) == pytest.approx(np.sum(grads[key] * w), rel=1e-6), key


# ------------------------------------------------------- descent guarantees
@pytest.mark.parametrize("model", ["trained", "random"])
def test_energy_never_increases_at_documented_step(fitted, digits, model):
    et = fitted
    if model == "random":
        et = EnergyTransformer(
            image_shape=(8, 8),
            patch_shape=(2, 2),
            **TINY,
            max_epochs=1,
            learning_rate=1e-9,
            random_state=3,
        ).fit(digits[:50])
    patcher = Patcher(et.image_shape_, et.patch_shape_)
    Xo, _ = _half_masked(digits[300:340], patcher, np.random.RandomState(0))
    trace = et.descend(Xo, n_steps=60).energy_trace
    assert trace.shape == (61, 40)
    steps = np.diff(trace, axis=0)
    assert np.all(steps <= 1e-9 * np.abs(trace[:-1]) + 1e-9)
    assert np.all(trace[-1] < trace[0])


def test_clamped_tokens_never_move_and_visible_pixels_kept(fitted, digits):
    patcher = Patcher(fitted.image_shape_, fitted.patch_shape_)
    Xo, pix = _half_masked(digits[300:320], patcher, np.random.RandomState(2))
    start = fitted.descend(Xo, n_steps=0)
    end = fitted.descend(Xo, n_steps=15)
    visible = ~start.token_mask
    np.testing.assert_array_equal(end.tokens[visible], start.tokens[visible])
    assert np.abs(end.tokens[~visible] - start.tokens[~visible]).max() > 1e-3
    out = fitted.transform(Xo)
    np.testing.assert_array_equal(out[~pix], digits[300:320][~pix])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, end.images if fitted.n_steps == 15 else out)
    # unclamped descent moves the visible tokens too
    free = pickle.loads(pickle.dumps(fitted)).set_params(clamp_visible=False)
    moved = free.descend(Xo, n_steps=5).tokens
    assert np.abs(moved[visible] - start.tokens[visible]).max() > 1e-6


def test_cls_token_is_trained_and_moves_freely(digits, tmp_path):
    kw = dict(
        image_shape=(8, 8),
        patch_shape=(2, 4),
        **TINY,
        learning_rate=3e-3,
        random_state=0,
    )
    plain = EnergyTransformer(**kw, max_epochs=1).fit(digits[:200])
    one = EnergyTransformer(**kw, max_epochs=1, cls_token=True).fit(digits[:200])
    two = EnergyTransformer(**kw, max_epochs=2, cls_token=True).fit(digits[:200])
    assert plain.n_tokens_ == 8 and "cls_token" not in plain.weights_
    assert two.n_tokens_ == 9 and two.weights_["pos"].shape == (9, 8)
    # Adam updates it (the same initial draw, one more epoch)
    assert np.abs(two.weights_["cls_token"] - one.weights_["cls_token"]).max() > 1e-6
    patcher = Patcher(two.image_shape_, two.patch_shape_)
    Xo, pix = _half_masked(digits[300:310], patcher, np.random.RandomState(2))
    start, end = two.descend(Xo, n_steps=0), two.descend(Xo, n_steps=5)
    assert end.tokens.shape == (10, 9, 8) and end.token_mask.shape == (10, 8)
    # the CLS token is free under clamp_visible; the visible patches are not
    assert np.abs(end.tokens[:, 0] - start.tokens[:, 0]).max() > 1e-6
    visible = ~start.token_mask
    np.testing.assert_array_equal(
        end.tokens[:, 1:][visible], start.tokens[:, 1:][visible]
    )
    out = two.transform(Xo)
    np.testing.assert_array_equal(out[~pix], digits[300:310][~pix])
    two.save(tmp_path / "cls.npz")
    loaded = EnergyTransformer.load(tmp_path / "cls.npz")
    assert loaded.cls_token and loaded.n_tokens_ == 9
    np.testing.assert_array_equal(loaded.transform(Xo), out)


def test_weight_decay_shrinks_the_weight_matrices_after_each_step(digits):
    kw = dict(
        image_shape=(8, 8),
        patch_shape=(2, 4),
        **TINY,
        learning_rate=1e-2,
        learning_rate_schedule="constant",
        batch_size=100,
        max_epochs=1,
        random_state=0,
    )
    plain = EnergyTransformer(**kw).fit(digits[:100])  # a single Adam step
    decayed = EnergyTransformer(**kw, weight_decay=3.0).fit(digits[:100])
    for name, w in plain.weights_.items():
        if name in ("W_enc", "Wq", "Wk", "Xi", "W_dec"):
            np.testing.assert_allclose(decayed.weights_[name], (1 - 0.03) * w)
        else:
            np.testing.assert_array_equal(decayed.weights_[name], w)
    # over many steps the decayed model keeps smaller weight matrices
    kw.update(batch_size=20, max_epochs=3)
    plain = EnergyTransformer(**kw).fit(digits[:100])
    decayed = EnergyTransformer(**kw, weight_decay=3.0).fit(digits[:100])
    assert np.linalg.norm(decayed.weights_["Xi"]) < np.linalg.norm(plain.weights_["Xi"])


def test_nan_and_clamp_mask_agree(fitted, digits):
    patcher = Patcher(fitted.image_shape_, fitted.patch_shape_)
    Xo, pix = _half_masked(digits[300:310], patcher, np.random.RandomState(3))
    filled = np.where(pix, 7.0, digits[300:310])
    a = fitted.transform(Xo)
    b = fitted.transform(filled, clamp_mask=~pix)
    np.testing.assert_allclose(a, b, atol=1e-12)
    trace = fitted.descend(Xo, return_images=True)
    assert trace.images_trace.shape == (fitted.n_steps + 1, 10, 64)
    np.testing.assert_allclose(trace.images_trace[-1], a, atol=1e-12)
    # nothing missing: nothing to do
    np.testing.assert_array_equal(fitted.transform(digits[:5]), digits[:5])


def test_completion_beats_mean_fill_and_loss_falls(digits):
    X = digits
    et = EnergyTransformer(
        image_shape=(8, 8),
        patch_shape=(4, 4),
        token_dim=16,
        n_heads=2,
        head_dim=8,
        n_memories=32,
        max_epochs=6,
        learning_rate=1e-2,
        learning_rate_schedule="constant",
        random_state=0,
    ).fit(X[:1200])
    assert et.loss_curve_[-1] < et.loss_curve_[0]
    patcher = Patcher(et.image_shape_, et.patch_shape_)
    Xo, pix = _half_masked(X[1200:1400], patcher, np.random.RandomState(4))
    out = et.transform(Xo)
    mse = np.mean((out[pix] - X[1200:1400][pix]) ** 2)
    mean_fill = np.broadcast_to(X[:1200].mean(axis=0), Xo.shape)
    assert mse < 0.95 * np.mean((mean_fill[pix] - X[1200:1400][pix]) ** 2)


def test_token_embeddings(fitted, digits):
    tok = fitted.token_embeddings(digits[:4])
    assert tok.shape == (4, fitted.n_tokens_, 8)
    t3 = tok - tok.mean(axis=2, keepdims=True)
    # layer-normed: each token has variance gamma^2 (up to eps), mean delta
    np.testing.assert_allclose(
        tok.mean(axis=2),
        np.broadcast_to(fitted.weights_["delta"].mean(), (4, 8)),
        atol=1e-12,
    )
    assert np.all(np.sum(t3 * t3, axis=2) > 0)


# -------------------------------------------------------------- estimator API
def test_in_a_pipeline_as_imputer(digits):
    y = load_digits().target
    rng = np.random.RandomState(0)
    X = digits[:600].copy()
    X[rng.random_sample(X.shape) < 0.1] = np.nan
    pipe = make_pipeline(
        EnergyTransformer(
            image_shape=(8, 8), patch_shape=(2, 2), **TINY, max_epochs=2, random_state=0
        ),
        LogisticRegression(max_iter=500),
    ).fit(X[:400], y[:400])
    assert pipe.score(X[400:], y[400:600]) > 0.8


def test_float32_stays_float32(digits):
    et = EnergyTransformer(
        image_shape=(8, 8), patch_shape=(4, 4), **TINY, max_epochs=1, random_state=0
    )
    X = digits[:100].astype(np.float32)
    et.fit(X)
    assert all(v.dtype == np.float32 for v in et.weights_.values())
    X[:, :16] = np.nan
    assert et.transform(X).dtype == np.float32
    assert et.energy(X).dtype == np.float32


def test_early_stopping_and_verbose(digits, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopped early: none
        et = EnergyTransformer(
            image_shape=(8, 8),
            patch_shape=(2, 2),
            **TINY,
            max_epochs=40,
            early_stopping=True,
            n_iter_no_change=2,
            tol=0.5,
            verbose=2,
            random_state=0,
        ).fit(digits[:200])
    assert et.n_iter_ < 40  # tol=0.5 asks for halving the loss every 2 epochs
    assert len(et.validation_scores_) == et.n_iter_
    assert et.best_loss_ == pytest.approx(min(et.validation_scores_))
    # skam's one progress format: one line per epoch at verbose=2, then a note
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == et.n_iter_ + 1
    for k, line in enumerate(lines[:-1], start=1):
        assert line.startswith(f"[EnergyTransformer] epoch {k}/40 (")
        val = float(re.search(r"val_loss=(\S+)", line).group(1))
        assert val == pytest.approx(et.validation_scores_[k - 1], rel=1e-3)
        assert re.search(r"\| \d+\.\d s, ETA <= ", line)
    best = int(np.argmin(et.validation_scores_)) + 1
    assert lines[-1].startswith(
        f"[EnergyTransformer] stopped early at epoch {et.n_iter_}: "
    )
    assert f"kept epoch {best} (validation loss" in lines[-1]


def test_max_epochs_without_early_stop_warns_with_the_facts(digits):
    et = EnergyTransformer(
        image_shape=(8, 8),
        patch_shape=(2, 2),
        **TINY,
        max_epochs=3,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning) as record:
        et.fit(digits[:200])
    (message,) = [str(w.message) for w in record]
    scores = et.validation_scores_
    best = int(np.argmin(scores)) + 1
    assert f"lowest at epoch {best} ({min(scores):.4g})" in message
    assert f"is {scores[-1]:.4g} at the last epoch" in message
    assert "weights of epoch" in message
    # without early stopping, max_epochs is the plan: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        et.set_params(early_stopping=False).fit(digits[:200])


def test_max_time_stops_training(digits):
    et = EnergyTransformer(
        image_shape=(8, 8),
        patch_shape=(2, 2),
        **TINY,
        max_epochs=1000,
        max_time=1e-6,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="stopped by max_time=1e-06 s"):
        et.fit(digits[:200])
    assert et.n_iter_ == 1


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(image_shape=(8, 9)), "pixels"),
        (dict(image_shape=(8, 8), patch_shape=(3, 3)), "divide"),
        (dict(image_shape=(2, 2, 2, 8)), "image_shape"),
        (dict(image_shape=(8, 8), patch_shape=(2, 2, 1)), "patch_shape"),
        (dict(image_shape=(8, 8.0)), "image_shape"),
    ],
)
def test_bad_shapes_raise(digits, params, message):
    with pytest.raises(ValueError, match=message):
        EnergyTransformer(**params, **TINY, max_epochs=1).fit(digits[:20])


def test_pickle_and_npz_round_trip(fitted, digits, tmp_path):
    X = digits[300:310].copy()
    X[:, 20:40] = np.nan
    want = fitted.transform(X)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(X), want)
    path = tmp_path / "et.npz"
    fitted.save(path)
    loaded = EnergyTransformer.load(path)
    np.testing.assert_array_equal(loaded.transform(X), want)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.loss_curve_ == fitted.loss_curve_ and loaded.n_iter_ == 3
    with pytest.raises(ValueError, match="load_published"):
        np.savez(tmp_path / "other.npz", a=np.zeros(2))
        EnergyTransformer.load(tmp_path / "other.npz")


def test_strict_backend_matches_numpy(digits):
    kw = dict(
        image_shape=(8, 8), patch_shape=(2, 4), **TINY, max_epochs=1, random_state=0
    )
    X = digits[:80].copy()
    a = EnergyTransformer(**kw).fit(X)
    b = EnergyTransformer(**kw, backend="array_api_strict").fit(X)
    for k in a.weights_:
        np.testing.assert_allclose(b.weights_[k], a.weights_[k], rtol=1e-9, atol=1e-12)
    X[:, 32:] = np.nan
    np.testing.assert_allclose(b.transform(X), a.transform(X), atol=1e-10)


# ----------------------------------------------------- the published layout
def _published_layout(rng, D, H, Y, M, C, side, patch, dtype=np.float32):
    N = (side // patch) ** 2
    Z = C * patch * patch

    def r(*shape, s=1.0):
        return (s * rng.normal(size=shape)).astype(dtype)

    return {
        "Wq": r(H, Y, D, s=D**-0.5),
        "Wk": r(H, Y, D, s=D**-0.5),
        "Xi": r(D, M, s=D**-0.5),
        "Wenc": r(Z, D, s=Z**-0.5),
        "Benc": r(D),
        "Wdec": r(D, Z, s=0.1),
        "Bdec": r(Z),
        "POS_embed": r(N + 1, D),
        "CLS_token": r(D),
        "MASK_token": r(D),
        "LNORM_gamma": np.asarray(0.9, dtype=dtype),
        "LNORM_bias": r(D, s=0.1),
    }


def _grad_wrt_g(w, x, beta):
    """dE/dg at g = LN(x), by central differences of the energy written on g."""
    gamma, delta = float(w["gamma"]), w["delta"]
    m = x.mean(axis=1, keepdims=True)
    s = np.sqrt(((x - m) ** 2).mean(axis=1, keepdims=True) + 1e-5)
    g = gamma * (x - m) / s + delta
    h = 1e-5
    out = np.zeros_like(g)
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            e = np.zeros_like(g)
            e[i, j] = h
            out[i, j] = (
                _energy_on_g(w, g + e, beta) - _energy_on_g(w, g - e, beta)
            ) / (2 * h)
    return out


def _energy_on_g(w, g, beta):
    Wq, Wk, Xi = w["Wq"], w["Wk"], w["Xi"]
    energy = 0.0
    for hd in range(Wq.shape[0]):
        Q = g @ Wq[hd].T
        K = g @ Wk[hd].T
        for C in range(len(g)):
            t = beta * np.array([K[B] @ Q[C] for B in range(len(g))])
            energy -= (t.max() + math.log(np.exp(t - t.max()).sum())) / beta
    for B in range(len(g)):
        for mu in range(Xi.shape[0]):
            energy -= 0.5 * max(float(Xi[mu] @ g[B]), 0.0) ** 2
    return energy


def test_load_published_layout_matches_notebook_pipeline(tmp_path):
    rng = np.random.default_rng(5)
    C, side, patch = 3, 8, 4
    ck = _published_layout(
        rng, D=6, H=2, Y=3, M=8, C=C, side=side, patch=patch, dtype=np.float64
    )
    path = tmp_path / "et_ckpt.npz"
    np.savez(path, **ck)
    et = EnergyTransformer.load_published(path, n_steps=3)
    assert et.image_shape_ == (3, 8, 8) and et.patch_shape_ == (4, 4)
    assert et.n_tokens_ == 5 and et.self_attention and not et.clamp_visible
    assert et.cls_token
    assert et.beta_ == pytest.approx(1 / math.sqrt(3))
    image = rng.normal(size=C * side * side)
    masked = np.array([False, True, True, False])
    X = image[None].copy()
    patcher = Patcher(et.image_shape_, et.patch_shape_)
    pix = patcher.unpatchify(np.ones((1, 4, 48)) * masked[None, :, None], xp) > 0
    X[pix] = np.nan
    got = et.descend(X).tokens[0]
    w = {
        "cls_token": ck["CLS_token"],
        "mask_token": ck["MASK_token"],
        "W_enc": ck["Wenc"],
        "b_enc": ck["Benc"],
        "pos": ck["POS_embed"],
    }
    x = _naive_tokens(w, image, (C, side, side), (patch, patch), masked)
    wg = {
        "Wq": ck["Wq"],
        "Wk": ck["Wk"],
        "Xi": ck["Xi"].T,
        "gamma": ck["LNORM_gamma"],
        "delta": ck["LNORM_bias"],
    }
    for _ in range(3):
        x = x - 0.1 * _grad_wrt_g(wg, x, et.beta_)
    np.testing.assert_allclose(got, x, atol=1e-6)
    # the decoded completion uses the layer-normed patch tokens
    gamma, delta = float(ck["LNORM_gamma"]), ck["LNORM_bias"]
    m = x.mean(axis=1, keepdims=True)
    g = (
        gamma * (x - m) / np.sqrt(((x - m) ** 2).mean(axis=1, keepdims=True) + 1e-5)
        + delta
    )
    decoded = patcher.unpatchify((g[1:] @ ck["Wdec"] + ck["Bdec"])[None], xp)
    np.testing.assert_allclose(et.transform(X)[pix], decoded[pix], atol=1e-6)


@pytest.mark.slow
def test_load_published_full_size_layout(tmp_path):
    rng = np.random.default_rng(6)
    ck = _published_layout(rng, D=768, H=12, Y=64, M=3072, C=3, side=224, patch=16)
    path = tmp_path / "et_ckpt.npz"
    np.savez(path, **ck)
    et = EnergyTransformer.load_published(path, n_steps=1)
    assert et.image_shape_ == (3, 224, 224) and et.patch_shape_ == (16, 16)
    assert et.n_tokens_ == 197 and et.weights_["Xi"].shape == (3072, 768)
    X = rng.normal(size=(1, 3 * 224 * 224)).astype(np.float32)
    X[0, : 3 * 224 * 16 * 2] = np.nan
    out = et.transform(X)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_learning_rate_schedule():
    et = EnergyTransformer(learning_rate_schedule="cosine")
    # linear warm-up over the first 5 %, then a half cosine down to zero
    assert et._schedule(0.0) < 0.03
    np.testing.assert_allclose(et._schedule(0.025), 0.5, atol=0.02)
    np.testing.assert_allclose(et._schedule(0.05), 1.0)
    np.testing.assert_allclose(et._schedule(0.525), 0.5)
    np.testing.assert_allclose(et._schedule(1.0), 0.0, atol=1e-12)
    np.testing.assert_allclose(et._schedule(2.0), 0.0, atol=1e-12)
    factors = [et._schedule(p) for p in np.linspace(0.05, 1, 50)]
    assert np.all(np.diff(factors) < 0)
    const = EnergyTransformer(learning_rate_schedule="constant")
    assert const._schedule(0.0) == const._schedule(0.7) == 1.0


def test_learning_rate_schedule_reaches_adam(digits, capsys):
    kw = dict(
        image_shape=(8, 8),
        patch_shape=(4, 4),
        token_dim=8,
        n_heads=1,
        head_dim=4,
        n_memories=8,
        n_steps=2,
        max_epochs=3,
        batch_size=100,
        random_state=0,
        verbose=2,
    )
    X = digits[:300]
    a = EnergyTransformer(learning_rate_schedule="cosine", **kw).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    lines = [line for line in lines if "] epoch " in line]  # not the final note
    lrs = [float(line.split("lr=")[1].split()[0]) for line in lines]
    # the last minibatch of epoch e runs at progress (3e + 2) / 9
    expected = [1e-3 * a._schedule((3 * e + 2) / 9) for e in range(3)]
    np.testing.assert_allclose(lrs, expected, rtol=0.01)
    b = EnergyTransformer(learning_rate_schedule="constant", **kw).fit(X)
    assert not np.allclose(a.weights_["Xi"], b.weights_["Xi"])
