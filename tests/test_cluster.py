"""AMClustering (ClAM) against independent oracles: finite differences, KMeans,
NumPy re-implementations of the descent, and scikit-learn's tools."""

import pickle

import numpy as np
import pytest
from array_api_compat import numpy as xp
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skam._backend import to_numpy
from skam._cluster_training import draw_masks, masked_loss_and_grad
from skam.cluster import AMClustering

# Fast settings for the tests whose claim does not depend on the schedule: a
# few minibatches per epoch and one restart (a fit of the default schedule
# runs ~1 500 minibatches of 8 rows; `fitted` and the restart and
# early-stopping tests keep the defaults).
FAST = dict(batch_size=64, n_init=1)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(
        n_samples=240, centers=4, cluster_std=0.6, center_box=(-8, 8), random_state=3
    )
    return X, y


@pytest.fixture(scope="module")
def fitted(blobs):
    X, _ = blobs
    return AMClustering(n_clusters=4, random_state=0).fit(X)


# ---------------------------------------------------------------- the loss
def _numpy_descent(V, centres, beta, step_size, n_steps, free=None):
    """ClAM's recursion written independently: v += step_size m (softmax mean - v)."""
    V = V.copy()
    for _ in range(n_steps):
        sq = ((V[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        logits = -0.5 * beta * sq
        P = np.exp(logits - logits.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        step = step_size * (P @ centres - V)
        V = V + (step if free is None else step * free)
    return V


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_matches_finite_differences(masked, weighted, numerical_gradient):
    rng = np.random.RandomState(0)
    b, d, K = 6, 5, 3
    X = rng.randn(b, d)
    centres = rng.randn(K, d)
    mask = draw_masks(rng, b, d, 2) if masked else None
    V0 = np.where(mask, 0.3, X) if masked else X
    w = rng.uniform(0.2, 2.0, b) if weighted else None
    kw = dict(beta=1.3, step_size=0.25, n_steps=4)

    def loss(C):
        losses, _, _ = masked_loss_and_grad(X, V0, mask, C, w, xp, **kw)
        return np.sum(losses if w is None else losses * w) / b

    _, grad, _ = masked_loss_and_grad(X, V0, mask, centres, w, xp, **kw)
    numeric = numerical_gradient(loss, centres)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_loss_is_error_on_hidden_coordinates():
    rng = np.random.RandomState(1)
    X, centres = rng.randn(7, 4), rng.randn(3, 4)
    mask = draw_masks(rng, 7, 4, 1)
    fill = X.mean(axis=0)
    V0 = np.where(mask, fill, X)
    losses, _, _ = masked_loss_and_grad(
        X,
        V0,
        mask,
        centres,
        None,
        xp,
        beta=2.0,
        step_size=0.1,
        n_steps=10,
        with_grad=False,
    )
    out = _numpy_descent(V0, centres, 2.0, 0.1, 10, free=mask)
    np.testing.assert_array_equal(out[~mask], X[~mask])  # visible ones clamped
    expected = (((out - X) * mask) ** 2).sum(axis=1) / 4
    np.testing.assert_allclose(losses, expected, rtol=1e-12)


def test_draw_masks_hides_the_requested_number():
    rng = np.random.RandomState(0)
    m = draw_masks(rng, 50, 9, 3)
    assert m.shape == (50, 9) and m.dtype == bool
    assert (m.sum(axis=1) == 3).all()
    assert len({tuple(r) for r in m}) > 1  # different rows, different masks
    shared = draw_masks(rng, 50, 9, 3, shared=True)
    assert shared.shape == (1, 9) and shared.sum() == 3


# ------------------------------------------------------------- clustering
@pytest.mark.slow  # the default schedule (three restarts, ~1 500 minibatches)
def test_recovers_separated_blobs_like_kmeans(blobs, fitted):
    X, y = blobs
    km = KMeans(4, n_init=10, random_state=0).fit(X)
    assert adjusted_rand_score(y, fitted.labels_) == pytest.approx(1.0)
    assert adjusted_rand_score(km.labels_, fitted.labels_) == pytest.approx(1.0)
    # the centres are the cluster means, up to the softness of the energy
    order = np.argmin(
        euclidean_distances(km.cluster_centers_, fitted.cluster_centers_), axis=1
    )
    np.testing.assert_allclose(
        fitted.cluster_centers_[order], km.cluster_centers_, atol=0.1
    )
    assert fitted.inertia_ <= 1.02 * km.inertia_


def test_predict_is_nearest_centre_of_contracted_point(blobs, fitted):
    X, _ = blobs
    Xq = X + np.random.RandomState(0).normal(scale=1.5, size=X.shape)
    contracted = _numpy_descent(
        Xq, fitted.cluster_centers_, fitted.beta_, fitted.step_size, fitted.n_steps_
    )
    np.testing.assert_allclose(fitted.contract(Xq), contracted, rtol=1e-10, atol=1e-10)
    expected = np.argmin(euclidean_distances(contracted, fitted.cluster_centers_), 1)
    np.testing.assert_array_equal(fitted.predict(Xq), expected)
    np.testing.assert_array_equal(fitted.predict(X), fitted.labels_)
    assert fitted.labels_.dtype == np.int64


def test_contract_matches_dense_am_descent(blobs, fitted):
    from skam.memory import DenseAM

    X, _ = blobs
    am = DenseAM(
        beta=fitted.beta_, step_size=fitted.step_size, max_iter=fitted.n_steps_, tol=0.0
    ).fit(fitted.cluster_centers_)
    np.testing.assert_allclose(fitted.contract(X), am.transform(X), rtol=1e-10)


def test_transform_is_kmeans_distance(blobs, fitted):
    X, _ = blobs
    np.testing.assert_allclose(
        fitted.transform(X),
        euclidean_distances(X, fitted.cluster_centers_),
        rtol=1e-7,
        atol=1e-7,
    )
    # fit_transform is fit then transform (on a new estimator: `fitted` is shared)
    est = AMClustering(n_clusters=4, max_epochs=5, random_state=0, **FAST)
    np.testing.assert_allclose(
        est.fit_transform(X), clone(est).fit(X).transform(X), rtol=1e-12
    )
    names = fitted.get_feature_names_out()
    assert list(names) == [f"amclustering{i}" for i in range(4)]


def test_inertia_and_score(blobs, fitted):
    X, _ = blobs
    own = fitted.cluster_centers_[fitted.labels_]
    assert fitted.inertia_ == pytest.approx(((X - own) ** 2).sum(), rel=1e-10)
    assert fitted.score(X) == pytest.approx(-fitted.inertia_, rel=1e-10)
    w = np.linspace(0.5, 2.0, X.shape[0])
    assert fitted.score(X, sample_weight=w) == pytest.approx(
        -(w * ((X - own) ** 2).sum(axis=1)).sum(), rel=1e-10
    )


def test_fit_predict_and_reproducibility(blobs):
    X, _ = blobs
    a = AMClustering(n_clusters=4, max_epochs=15, random_state=7, **FAST)
    labels = a.fit_predict(X)
    b = AMClustering(n_clusters=4, max_epochs=15, random_state=7, **FAST).fit(X)
    np.testing.assert_array_equal(labels, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.loss_curve_ == b.loss_curve_


def test_training_reduces_loss_and_stops_early(blobs):
    X, _ = blobs
    # from random centres, with a patient schedule (the default one stops at
    # the first plateau, which suits the Lloyd start)
    am = AMClustering(
        n_clusters=4,
        init="random",
        max_epochs=500,
        batch_size=64,
        patience=5,
        tol=1e-3,
        random_state=0,
    )
    am.fit(X)
    assert len(am.loss_curve_) == am.n_iter_
    assert am.n_iter_ < 500  # the learning rate decayed and training stopped
    assert min(am.loss_curve_) < 0.5 * am.loss_curve_[0]


def test_masked_loss_trains_on_higher_dimensional_data():
    X, y = make_blobs(n_samples=300, n_features=10, centers=3, random_state=0)
    # patient: the default stops once the basins no longer change
    am = AMClustering(
        n_clusters=3, mask_prob=0.3, patience=3, random_state=0, **FAST
    ).fit(X)
    assert adjusted_rand_score(y, am.labels_) > 0.95
    assert am.loss_curve_[-1] < am.loss_curve_[0]


@pytest.mark.parametrize("value", ["min", "max"])
def test_mask_values_are_used(value):
    X, y = make_blobs(n_samples=200, n_features=6, centers=3, random_state=1)
    am = AMClustering(
        n_clusters=3, mask_value=value, max_epochs=30, random_state=0, **FAST
    )
    assert adjusted_rand_score(y, am.fit(X).labels_) > 0.9


def test_beta_scale_rule_and_step_count(blobs):
    X, _ = blobs
    init = X[[0, 10, 20, 30]]
    am = AMClustering(n_clusters=4, init=init, step_size=0.25, max_epochs=2).fit(X)
    sq = euclidean_distances(init, squared=True)
    np.fill_diagonal(sq, np.inf)
    assert am.beta_ == pytest.approx(32.0 / np.median(sq.min(axis=1)))
    assert am.n_steps_ == 4
    am = AMClustering(n_clusters=4, beta=0.7, n_steps=3, max_epochs=2).fit(X)
    assert am.beta_ == 0.7 and am.n_steps_ == 3


def test_dead_centre_is_reseeded(blobs, capsys):
    X, _ = blobs
    init = np.vstack([X[[0, 60, 120]], [[500.0, 500.0]]])  # one centre far away
    am = AMClustering(
        n_clusters=4, init=init, max_epochs=40, verbose=1, random_state=0
    ).fit(X)
    assert np.abs(am.cluster_centers_).max() < 50
    assert np.unique(am.labels_).size == 4
    # the objective reported for the trained restart is measured before the
    # post-training relocation of empty clusters: only a centre re-seeded
    # during training makes it a four-cluster inertia
    out = capsys.readouterr().out
    assert "1 centres re-seeded" in out
    trained = float(out.split("k-means objective ")[1].split()[0])
    kmeans = KMeans(n_clusters=4, n_init=10, random_state=0).fit(X)
    assert trained < 1.05 * kmeans.inertia_


def test_empty_cluster_is_relocated_after_training(blobs):
    X, _ = blobs
    init = np.vstack([X[[0, 60, 120]], [[500.0, 500.0]]])
    # a single epoch: too short for the dead-centre re-seeding to act
    am = AMClustering(n_clusters=4, init=init, max_epochs=1, random_state=0).fit(X)
    assert np.unique(am.labels_).size == 4
    np.testing.assert_array_equal(am.predict(X), am.labels_)


def test_zero_sample_weight_ignores_samples():
    X, y = make_blobs(n_samples=300, centers=3, cluster_std=0.5, random_state=2)
    w = (y != 2).astype(float)  # blob 2 weighs nothing
    am = AMClustering(n_clusters=2, random_state=0, **FAST).fit(X, sample_weight=w)
    means = np.array([X[y == k].mean(axis=0) for k in (0, 1)])
    order = np.argmin(euclidean_distances(means, am.cluster_centers_), axis=1)
    np.testing.assert_allclose(am.cluster_centers_[order], means, atol=0.15)
    own = am.cluster_centers_[am.labels_]
    assert am.inertia_ == pytest.approx((w * ((X - own) ** 2).sum(axis=1)).sum())


def test_n_init_keeps_a_restart_and_reports(blobs, capsys):
    X, _ = blobs
    am = AMClustering(
        n_clusters=4, n_init=3, init="random", max_epochs=5, verbose=1, random_state=0
    ).fit(X)
    out = capsys.readouterr().out
    assert "restart 3/3" in out
    assert am.n_iter_ == len(am.loss_curve_)
    AMClustering(n_clusters=4, max_epochs=2, patience=5, verbose=2, random_state=0).fit(
        X
    )
    out = capsys.readouterr().out
    # one line per epoch at verbose=2, in the shared progress format
    assert "[AMClustering] epoch 1/" in out and "[AMClustering] epoch 2/" in out
    assert "loss=" in out and " s, ETA <= " in out


def test_max_samples_per_epoch_subsamples():
    X, y = make_blobs(n_samples=3000, centers=5, cluster_std=0.5, random_state=4)
    am = AMClustering(
        n_clusters=5, max_samples_per_epoch=200, batch_size=50, n_init=1, random_state=0
    ).fit(X)
    assert adjusted_rand_score(y, am.labels_) > 0.95
    assert am.labels_.shape == (3000,)


def test_float32_is_kept(blobs):
    X = blobs[0].astype(np.float32)
    am = AMClustering(n_clusters=4, max_epochs=5, random_state=0, **FAST).fit(X)
    assert am.cluster_centers_.dtype == np.float32
    assert am.transform(X).dtype == np.float32
    assert am.contract(X).dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_clusters=5), "X has 4 samples, fewer than n_clusters=5"),
        (dict(n_clusters=2, init=np.zeros((3, 2))), "init should be of shape"),
    ],
)
def test_bad_input_raises(kwargs, match):
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match=match):
        AMClustering(**kwargs).fit(X)


def test_wrong_number_of_features_raises(fitted):
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((3, 5)))


# ------------------------------------------------------- sklearn's tools
def test_pipeline_with_standard_scaler():
    X, y = make_blobs(n_samples=200, centers=3, cluster_std=0.6, random_state=1)
    X = X * np.array([1.0, 1000.0])  # very different feature scales
    pipe = make_pipeline(
        StandardScaler(), AMClustering(n_clusters=3, random_state=0, **FAST)
    )
    labels = pipe.fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.9
    np.testing.assert_array_equal(pipe.predict(X), labels)


def _silhouette_scorer(estimator, X, y=None):
    labels = estimator.predict(X)
    return silhouette_score(X, labels) if np.unique(labels).size > 1 else -1.0


@pytest.mark.slow  # two searches of nine cross-validated fits
def test_grid_search_with_clustering_scores():
    X, y = make_blobs(n_samples=150, centers=3, cluster_std=0.6, random_state=1)
    base = AMClustering(max_epochs=10, random_state=0, **FAST)
    grid = {"n_clusters": [2, 3, 5]}
    search = GridSearchCV(base, grid, scoring=_silhouette_scorer, cv=3).fit(X)
    assert search.best_params_ == {"n_clusters": 3}
    search = GridSearchCV(base, grid, scoring="adjusted_rand_score", cv=3).fit(X, y)
    assert search.best_params_ == {"n_clusters": 3}


def test_clone_and_pickle(fitted, blobs):
    X, _ = blobs
    fresh = clone(fitted)
    assert not hasattr(fresh, "cluster_centers_")
    assert fresh.get_params() == fitted.get_params()
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(restored.cluster_centers_, fitted.cluster_centers_)


# ------------------------------------------------------------- array API
def test_offload_backend_matches_numpy(blobs):
    X, _ = blobs
    kw = dict(n_clusters=4, max_epochs=8, random_state=0, **FAST)
    ref = AMClustering(**kw).fit(X)
    off = AMClustering(**kw, backend="array_api_strict").fit(X)
    assert isinstance(off.cluster_centers_, np.ndarray)
    np.testing.assert_allclose(off.cluster_centers_, ref.cluster_centers_, rtol=1e-9)
    np.testing.assert_array_equal(off.labels_, ref.labels_)
    np.testing.assert_allclose(off.transform(X), ref.transform(X), rtol=1e-9)
    assert off.inertia_ == pytest.approx(ref.inertia_)


def test_strict_input_is_followed(blobs, strict_input):
    X, _ = blobs
    kw = dict(n_clusters=4, max_epochs=4, mask_prob=0.5, random_state=0, **FAST)
    X3 = np.hstack([X, X[:, :1] * 0.5])  # three features: one is hidden
    ref = AMClustering(**kw).fit(X3)
    am = AMClustering(**kw).fit(strict_input(X3))
    assert type(am.labels_).__module__.startswith("array_api_strict")
    np.testing.assert_allclose(
        to_numpy(am.cluster_centers_), ref.cluster_centers_, rtol=1e-9
    )
    pred = am.predict(strict_input(X3))
    np.testing.assert_array_equal(to_numpy(pred), ref.predict(X3))
    with pytest.raises(ValueError, match="must use the same namespace"):
        am.contract(X3)


def test_lloyd_init_gives_lloyd_fixed_points_best_first(blobs):
    from skam.cluster import _lloyd_candidates

    X, _ = blobs
    found = _lloyd_candidates(X, None, 4, 3, None, np.random.RandomState(0))
    assert len(found) == 3
    inertias = []
    for centres in found:
        labels = euclidean_distances(X, centres).argmin(axis=1)
        means = np.array([X[labels == k].mean(axis=0) for k in range(4)])
        np.testing.assert_allclose(centres, means, atol=1e-10)
        inertias.append(((X - centres[labels]) ** 2).sum())
    assert inertias == sorted(inertias)


def test_polish_makes_centres_the_means_of_their_basins():
    X, _ = make_blobs(n_samples=400, centers=5, cluster_std=1.5, random_state=3)
    kw = dict(n_clusters=5, max_epochs=10, random_state=0, **FAST)
    am = AMClustering(n_polish=50, **kw).fit(X)
    means = np.array([X[am.labels_ == k].mean(axis=0) for k in range(5)])
    np.testing.assert_allclose(am.cluster_centers_, means, atol=1e-8)
    raw = AMClustering(n_polish=0, **kw).fit(X)
    assert not np.allclose(raw.cluster_centers_, means, atol=1e-8)


def test_restart_with_lowest_inertia_is_kept(blobs, capsys):
    X, _ = blobs
    am = AMClustering(
        n_clusters=4,
        n_init=3,
        init="k-means++",
        max_epochs=5,
        verbose=1,
        random_state=0,
    ).fit(X)
    lines = capsys.readouterr().out.splitlines()
    printed = [
        float(line.split("k-means objective ")[1].split()[0])
        for line in lines
        if line.startswith("[AMClustering] restart")
    ]
    # three trained restarts, then their three starts polished untrained
    assert len(printed) == 6
    assert sum("untrained" in line for line in lines) == 3
    # the evaluation subset is all samples here, so the kept candidate's
    # objective is inertia_, which the last line reports on all samples
    assert am.inertia_ == pytest.approx(min(printed), rel=1e-5)
    assert am.training_kept_ == (int(np.argmin(printed)) < 3)
    (done,) = [line for line in lines if "done: inertia_" in line]
    assert float(done.split("inertia_ ")[1].split()[0]) == pytest.approx(
        am.inertia_, rel=1e-5
    )


# ------------------------------------------------- batched restarts, speed
def test_batched_restarts_match_one_at_a_time_and_the_engine():
    from skam._cluster_training import batched_loss_and_grad
    from skam._training import unrolled_backward, unrolled_forward

    rng = np.random.RandomState(5)
    b, d, K = 9, 6, 4
    X = rng.randn(b, d)
    C = rng.randn(3, K, d)
    betas = np.array([0.5, 1.3, 4.0])
    mask = draw_masks(rng, b, d, 2)
    V0 = np.where(mask, 0.2, X)
    w = rng.uniform(0.5, 1.5, b)
    kw = dict(step_size=0.2, n_steps=5)
    losses, grad, mass = batched_loss_and_grad(
        X, V0, mask, C, w, xp, beta=betas[:, None, None], **kw
    )
    for r in range(3):
        one, g1, m1 = masked_loss_and_grad(
            X, V0, mask, C[r], w, xp, beta=betas[r], **kw
        )
        np.testing.assert_allclose(losses[r], one, rtol=1e-12)
        np.testing.assert_allclose(grad[r], g1, rtol=1e-10, atol=1e-14)
        # the estimators' shared engine (skam._training) as the oracle
        tape = unrolled_forward(V0, C[r], xp, beta=betas[r], update_mask=mask, **kw)
        diff = (tape.states[-1] - X) * mask
        np.testing.assert_allclose(one, (diff**2).sum(axis=1) / d, rtol=1e-12)
        g_out = diff * (2.0 * w[:, None] / (d * b))
        g_ref, _, _ = unrolled_backward(tape, C[r], g_out, xp, beta=betas[r])
        np.testing.assert_allclose(grad[r], g_ref, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(mass[r], tape.weights[-1].sum(axis=0), rtol=1e-12)


def test_batched_polish_matches_the_polish_on_all_samples():
    from skam._cluster_training import polish

    X, _ = make_blobs(n_samples=300, centers=4, cluster_std=1.5, random_state=2)
    am = AMClustering(n_clusters=4, max_epochs=0, n_polish=0, random_state=0).fit(X)
    rng = np.random.RandomState(0)
    C = np.stack([am.cluster_centers_, X[rng.choice(300, 4, replace=False)]])
    kw = dict(step_size=am.step_size, n_steps=am.n_steps_)
    Cp, labels = polish(X, None, C, am.beta_, xp, rounds=30, **kw)
    for r in range(2):
        # the naive loop: descend, nearest centre, means, until stable
        ref = C[r].copy()
        for _ in range(30):
            out = _numpy_descent(X, ref, am.beta_, am.step_size, am.n_steps_)
            lab = np.argmin(euclidean_distances(out, ref), axis=1)
            new = np.array(
                [
                    X[lab == k].mean(axis=0) if (lab == k).any() else ref[k]
                    for k in range(4)
                ]
            )
            if np.allclose(new, ref, rtol=0, atol=0):
                break
            ref = new
        np.testing.assert_allclose(Cp[r], ref, rtol=1e-10, atol=1e-10)
        out = _numpy_descent(X, Cp[r], am.beta_, am.step_size, am.n_steps_)
        np.testing.assert_array_equal(
            labels[r], np.argmin(euclidean_distances(out, Cp[r]), axis=1)
        )


def test_restarts_train_together_each_with_its_schedule(blobs):
    X, _ = blobs
    am = AMClustering(
        n_clusters=4, n_init=3, init="random", max_epochs=60, random_state=1
    ).fit(X)
    assert len(am.loss_curve_) == am.n_iter_ <= 60
    # the kept restart is the one of lowest objective; each one alone
    # (same start, same draws) gives the same centres as in the batch
    assert am.inertia_ <= 1.02 * KMeans(4, n_init=10, random_state=0).fit(X).inertia_


def test_max_epochs_zero_is_the_polished_lloyd_start(blobs):
    X, _ = blobs
    am = AMClustering(n_clusters=4, max_epochs=0, random_state=0).fit(X)
    assert am.n_iter_ == 0 and am.loss_curve_ == [] and not am.training_kept_
    km = KMeans(4, n_init=10, random_state=0).fit(X)
    assert adjusted_rand_score(km.labels_, am.labels_) == pytest.approx(1.0)
    means = np.array([X[am.labels_ == k].mean(axis=0) for k in range(4)])
    np.testing.assert_allclose(am.cluster_centers_, means, atol=1e-8)


# ----------------------------------------------------- beta="silhouette"
def test_beta_silhouette_keeps_the_candidate_of_highest_silhouette():
    X, y = make_blobs(n_samples=300, centers=3, cluster_std=1.0, random_state=3)
    am = AMClustering(n_clusters=3, beta="silhouette", random_state=0).fit(X)
    scale = AMClustering(n_clusters=3, max_epochs=0, random_state=0).fit(X).beta_
    np.testing.assert_allclose(
        am.beta_candidates_, scale * np.array([1 / 16, 1 / 8, 1 / 4, 1 / 2, 1])
    )
    assert am.silhouette_scores_.shape == (5,)
    best = int(np.argmax(am.silhouette_scores_))
    assert am.beta_ == am.beta_candidates_[best]
    # the silhouette reported is that of the kept model's labels (300 samples
    # < the 2 000 subsample: exact)
    assert silhouette_score(X, am.labels_) == pytest.approx(
        am.silhouette_scores_[best], rel=1e-9
    )
    assert adjusted_rand_score(y, am.labels_) > 0.95
    fixed = AMClustering(n_clusters=3, random_state=0).fit(X)
    assert fixed.beta_candidates_ is None and fixed.silhouette_scores_ is None


# ------------------------------------------------------------ partial_fit
def test_partial_fit_is_adam_continued_across_batches():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 2)
    C0 = X[:3] + 0.1
    am = AMClustering(
        n_clusters=3, init=C0, mask_prob=0, batch_size=40, learning_rate=0.05
    )
    am.partial_fit(X[:20])
    am.partial_fit(X[20:])
    # the same by hand: one full-batch Adam step per call on the contraction
    # loss, with the moments carried over
    from skam.cluster import _centre_spacing

    lr = 0.05 * _centre_spacing(C0)
    C, m, v = C0.copy(), np.zeros_like(C0), np.zeros_like(C0)
    for t, batch in enumerate((X[:20], X[20:]), start=1):
        _, g, _ = masked_loss_and_grad(
            batch, batch, None, C, None, xp, beta=am.beta_, step_size=0.1, n_steps=10
        )
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        C = C - step * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(am.cluster_centers_, C, rtol=1e-10)
    assert am.n_iter_ == 2 and len(am.loss_curve_) == 2
    # labels_ and inertia_ are those of the last batch
    np.testing.assert_array_equal(am.labels_, am.predict(X[20:]))
    assert am.inertia_ == pytest.approx(-am.score(X[20:]))


def test_partial_fit_streams_to_the_clusters():
    X, y = make_blobs(n_samples=2000, n_features=5, centers=4, random_state=0)
    km = KMeans(4, n_init=10, random_state=0).fit(X)
    for mask_prob in (0.2, 0.0):
        am = AMClustering(n_clusters=4, mask_prob=mask_prob, random_state=0)
        for _ in range(2):
            for start in range(0, 2000, 250):
                am.partial_fit(X[start : start + 250])
        assert adjusted_rand_score(y, am.predict(X)) > 0.95
    # the unmasked (contraction) loss is a relaxed k-means objective: the
    # streamed centres reach the k-means ones (the masked loss moves them
    # off the means; fit's basin polish, which partial_fit lacks, undoes that)
    assert -am.score(X) < 1.01 * km.inertia_


def test_partial_fit_checks_features_and_first_batch():
    pd = pytest.importorskip("pandas")
    X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    am = AMClustering(n_clusters=3, random_state=0).partial_fit(X)
    assert am.n_features_in_ == 2
    with pytest.raises(ValueError, match="features"):
        am.partial_fit(np.zeros((10, 3)))
    frame = pd.DataFrame(X, columns=["a", "b"])
    named = AMClustering(n_clusters=3, random_state=0).partial_fit(frame)
    assert list(named.feature_names_in_) == ["a", "b"]
    with pytest.raises(ValueError, match="feature names"):
        named.partial_fit(frame.rename(columns={"b": "c"}))
    with pytest.raises(ValueError, match="fewer than n_clusters=3"):
        AMClustering(n_clusters=3).partial_fit(X[:2])
    with pytest.raises(ValueError, match="partial_fit needs a fixed beta"):
        AMClustering(n_clusters=3, beta="silhouette").partial_fit(X)


# ------------------------------------------- the rules that make fit fast
def _naive_softmax(V, centres, beta):
    sq = ((V[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    logits = -0.5 * beta * sq
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True)


def _naive_screened_labels(X, centres, beta, step_size, n_steps, settled=1e-6):
    """Rows with a softmax weight >= 1 - settled at the start go to that centre."""
    P = _naive_softmax(X, centres, beta)
    out = _numpy_descent(X, centres, beta, step_size, n_steps)
    labels = np.argmin(euclidean_distances(out, centres), axis=1)
    done = P.max(axis=1) >= 1 - settled
    return np.where(done, P.argmax(axis=1), labels), done


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_weights_match_a_naive_softmax_and_are_never_subnormal(dtype):
    from skam._cluster_training import _beta_array, _prepared, _softmax_mean

    rng = np.random.RandomState(0)
    # far-apart centres: most weights are below exp(-700) (subnormal or 0)
    centres = rng.uniform(-40, 40, size=(6, 3))
    V = centres[rng.randint(0, 6, 50)] + rng.randn(50, 3)
    C = centres[None].astype(dtype)
    C_beta, hb, CT = _prepared(C, _beta_array(1.0, C, xp), xp)
    P, M = _softmax_mean(V.T[None].astype(dtype), C_beta, hb, CT, xp)
    ref = _naive_softmax(V, centres, 1.0)
    atol = 1e-15 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(P[0].T, ref, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(M[0].T, ref @ centres, rtol=1e-5, atol=1e-4)
    assert P.dtype == dtype and P.min() >= np.finfo(dtype).tiny
    assert ref.min() < np.finfo(np.float64).tiny  # the floor was needed


def test_screened_labels_stop_settled_rows_after_one_step(monkeypatch):
    import skam._cluster_training as ct

    X, _ = make_blobs(n_samples=400, centers=5, cluster_std=1.8, random_state=4)
    C = X[np.random.RandomState(0).choice(400, 5, replace=False)]
    kw = dict(step_size=0.1, n_steps=10)
    out = {beta: _numpy_descent(X, C, beta, **kw) for beta in (0.5, 3.0)}
    for beta in (0.5, 3.0):
        ref, done = _naive_screened_labels(X, C, beta, **kw)
        assert 0 < done.sum() < 400  # both kinds of rows occur
        got = ct.basin_labels(X, C[None], beta, xp, screen=True, **kw)[0]
        np.testing.assert_array_equal(got, ref)
        exact = ct.basin_labels(X, C[None], beta, xp, **kw)[0]
        nearest = np.argmin(euclidean_distances(out[beta], C), axis=1)
        np.testing.assert_array_equal(exact, nearest)
    # a loose threshold settles rows whose descent ends elsewhere: the rule
    # is what decides their labels
    monkeypatch.setattr(ct, "_SETTLED", 0.6)
    ref, _ = _naive_screened_labels(X, C, 0.5, settled=0.6, **kw)
    got = ct.basin_labels(X, C[None], 0.5, xp, screen=True, **kw)[0]
    np.testing.assert_array_equal(got, ref)
    assert (ref != np.argmin(euclidean_distances(out[0.5], C), axis=1)).any()


def test_polish_stops_on_the_kmeans_centre_shift_tolerance():
    from skam._cluster_training import polish, polish_tolerance

    X, _ = make_blobs(n_samples=300, centers=6, cluster_std=2.5, random_state=5)
    tol = 1e-4 * np.var(X, axis=0).mean()  # KMeans's _tolerance
    assert polish_tolerance(X, 1e-4, xp) == pytest.approx(tol, rel=1e-12)
    C0 = X[np.random.RandomState(1).choice(300, 6, replace=False)]
    beta, kw = 0.8, dict(step_size=0.1, n_steps=10)
    for shift_tol in (0.0, 200 * tol):
        Cp, labels = polish(X, None, C0[None], beta, xp, rounds=30, tol=shift_tol, **kw)
        # the naive loop: screened basins, means, until the basins stay or
        # the centres moved by at most the tolerance
        ref, rounds = C0.copy(), 0
        lab, _ = _naive_screened_labels(X, ref, beta, **kw)
        while rounds < 30:
            rounds += 1
            new = np.array([X[lab == k].mean(axis=0) for k in range(6)])
            shift = ((new - ref) ** 2).sum()
            ref = new
            new_lab, _ = _naive_screened_labels(X, ref, beta, **kw)
            stable = (new_lab == lab).all()
            lab = new_lab
            if stable or shift <= shift_tol:
                break
        np.testing.assert_allclose(Cp[0], ref, rtol=1e-10, atol=1e-10)
        out = _numpy_descent(X, ref, beta, **kw)
        exact = np.argmin(euclidean_distances(out, ref), axis=1)
        np.testing.assert_array_equal(labels[0], exact)  # exact basins
        if shift_tol > 0:
            assert rounds < 30 and not stable  # the tolerance stopped it
        else:
            assert stable


def test_training_stops_once_the_monitored_basins_no_longer_change():
    # well-separated blobs in 64 dimensions: the masked loss keeps falling
    # (the centres overshoot to make up for the partial contraction) while
    # no basin changes; tol=0 and lr_decay=1 turn the loss plateau off
    X, _ = make_blobs(n_samples=600, n_features=64, centers=5, random_state=0)
    kw = dict(n_clusters=5, tol=0.0, lr_decay=1.0, max_epochs=30, random_state=0)
    for patience in (1, 3):
        am = AMClustering(patience=patience, **kw).fit(X)
        assert am.n_iter_ == patience
        assert np.all(np.diff(am.loss_curve_) < 0)
    # from random samples, with many Adam steps per epoch, the basins move
    moving = AMClustering(
        init="random", batch_size=16, patience=1, **{**kw, "n_clusters": 5}
    ).fit(X[:, :2])
    assert moving.n_iter_ > 1


def test_fit_on_the_float32_copy_is_translation_invariant():
    # the training runs in float32 on the centred data: an offset of 1e6
    # (float32 spacing 0.06 there) changes nothing
    X, _ = make_blobs(n_samples=500, n_features=6, centers=4, random_state=2)
    am = AMClustering(n_clusters=4, random_state=0).fit(X)
    far = AMClustering(n_clusters=4, random_state=0).fit(X + 1e6)
    np.testing.assert_array_equal(far.labels_, am.labels_)
    # the float32 training saw the same numbers (uncentred, its logits of
    # order 1e12 would be rounding noise)
    assert far.n_iter_ == am.n_iter_
    np.testing.assert_allclose(far.loss_curve_, am.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(
        far.cluster_centers_ - 1e6, am.cluster_centers_, atol=1e-6
    )
    assert far.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(far.predict(X + 1e6), far.labels_)
