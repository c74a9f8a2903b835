"""DenseAMClassifier and DenseAMRegressor against independent oracles."""

import dataclasses
import io
import pickle
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from scipy.special import softmax
from sklearn import config_context
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_blobs, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    RadiusNeighborsClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skam._backend import to_numpy
from skam._beta import resolve_beta
from skam._supervised_base import LabelCode, scott_beta, separation_beta
from skam._supervised_training import LabelNeuronModel
from skam.supervised import DenseAMClassifier, DenseAMRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, train_size=500, test_size=200, random_state=0)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _gaussian_knn(X, y, beta_lam, regressor=False):
    cls = KNeighborsRegressor if regressor else KNeighborsClassifier
    return cls(
        n_neighbors=X.shape[0],
        weights=lambda d: np.exp(-beta_lam / 2 * d**2),
        algorithm="brute",
    ).fit(X, y)


# ------------------------------------------------------------ the kNN oracle
@pytest.mark.parametrize("lam", [0.3, 0.5, 0.8])
def test_one_step_is_the_softmax_vote(digits, lam):
    """One step with step_size * (1 - lam) = 1 is the Gaussian-weighted kNN vote."""
    Xtr, Xte, ytr, _ = digits
    beta = 5.0 / lam  # beta * lam = 5: no kNN weight underflows
    clf = DenseAMClassifier(beta=beta, lam=lam).fit(Xtr, ytr)
    assert clf.step_size_ == pytest.approx(1.0 / (1.0 - lam))
    oracle = _gaussian_knn(Xtr, ytr, beta * lam)
    np.testing.assert_allclose(
        clf.predict_proba(Xte), oracle.predict_proba(Xte), rtol=0, atol=1e-12
    )
    np.testing.assert_array_equal(clf.predict(Xte), oracle.predict(Xte))


def test_label_scale_does_not_change_the_one_step_vote(digits):
    Xtr, Xte, ytr, _ = digits
    p1 = DenseAMClassifier(beta=10.0).fit(Xtr, ytr).predict_proba(Xte)
    p3 = DenseAMClassifier(beta=10.0, label_scale=3.0).fit(Xtr, ytr)
    np.testing.assert_allclose(p3.predict_proba(Xte), p1, atol=1e-12)


def test_large_beta_is_one_nearest_neighbour(digits):
    Xtr, Xte, ytr, _ = digits
    clf = DenseAMClassifier(beta=1e4).fit(Xtr, ytr)
    knn = KNeighborsClassifier(1).fit(Xtr, ytr)
    np.testing.assert_array_equal(clf.predict(Xte), knn.predict(Xte))


def _reference_descent(X, Xi, Y, y0, *, beta, lam, step_size, steps):
    """Clamped LSE descent on the label neurons, written out in NumPy."""
    Yv = np.tile(y0, (X.shape[0], 1))
    dx = ((X[:, None, :] - Xi[None, :, :]) ** 2).sum(-1)
    for _ in range(steps):
        dy = ((Yv[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
        p = softmax(-beta / 2 * (lam * dx + (1 - lam) * dy), axis=1)
        Yv = Yv - step_size * (1 - lam) * (Yv - p @ Y)
    return Yv


@pytest.mark.parametrize("step_size", [None, 0.5])
def test_several_steps_match_a_written_out_descent(iris, step_size):
    X, y = iris
    clf = DenseAMClassifier(beta=4.0, lam=0.6, step_size=step_size, max_iter=4, tol=0)
    clf.fit(X, y)
    Y = np.eye(3)[y]
    ref = _reference_descent(
        X[::7],
        X,
        Y,
        np.full(3, 1 / 3),
        beta=4.0,
        lam=0.6,
        step_size=clf.step_size_,
        steps=4,
    )
    ref = np.maximum(ref, 0)
    np.testing.assert_allclose(
        clf.predict_proba(X[::7]), ref / ref.sum(1, keepdims=True), atol=1e-12
    )


def test_lsr_one_step_is_a_radius_neighbours_vote(iris):
    """With the Epanechnikov energy the first step is a uniform vote of the
    memories within a radius (the derivative of ReLU is an indicator)."""
    X, y = iris
    beta, lam = 0.8, 0.5
    clf = DenseAMClassifier(separation="lsr", beta=beta, lam=lam).fit(X, y)
    # constant label term at the uniform start: (1 - lam)/2 * ||1/3 - e_c||^2
    label_term = (1 - lam) / 2 * (2 / 3) ** 2 * 1.5
    radius = np.sqrt(2 * (1 - beta * label_term) / (beta * lam))
    oracle = RadiusNeighborsClassifier(radius=radius).fit(X, y)
    np.testing.assert_allclose(
        clf.predict_proba(X), oracle.predict_proba(X), atol=1e-12
    )


def test_dot_similarity_gives_probabilities(iris):
    X, y = iris
    proba = DenseAMClassifier(similarity="dot", beta=1.0).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (proba >= 0).all()


# ------------------------------------------------------ classes and outputs
@pytest.mark.parametrize(
    "labels", [np.array(["cat", "dog", "emu"]), np.array([-3, 7, 100])]
)
def test_any_label_type(iris, labels):
    X, y = iris
    clf = DenseAMClassifier().fit(X, labels[y])
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    ref = DenseAMClassifier().fit(X, y)
    np.testing.assert_array_equal(clf.predict(X), labels[ref.predict(X)])
    assert clf.score(X, labels[y]) > 0.9


def test_binary_decision_function_ranks_like_proba():
    X, y = make_blobs(200, centers=2, cluster_std=3.0, random_state=0)
    y = np.where(y == 1, "yes", "no")
    clf = DenseAMClassifier(beta=0.5).fit(X, y)
    scores, proba = clf.decision_function(X), clf.predict_proba(X)
    assert scores.shape == (200,)
    order = np.argsort(proba[:, 1], kind="stable")
    assert np.all(np.diff(scores[order]) >= -1e-15)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(scores > 0) * 1])


def test_multiclass_decision_function_and_predict(iris):
    X, y = iris
    clf = DenseAMClassifier(beta=1.0).fit(X, y)
    scores = clf.decision_function(X)
    assert scores.shape == (150, 3)
    np.testing.assert_array_equal(clf.predict(X), scores.argmax(1))


def test_float32_stays_float32(iris):
    X, y = iris
    clf = DenseAMClassifier().fit(X.astype(np.float32), y)
    assert clf.memories_.dtype == np.float32
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_sample_weight_is_repeated_rows(iris):
    X, y = iris
    w = np.random.RandomState(0).randint(0, 3, X.shape[0])
    weighted = DenseAMClassifier(beta=2.0).fit(X, y, sample_weight=w)
    repeated = DenseAMClassifier(beta=2.0).fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-12
    )


@pytest.mark.parametrize("Estimator", [DenseAMClassifier, DenseAMRegressor])
def test_sample_weight_is_scale_free(iris, Estimator):
    """beta="scale" sees relative weights only (Kish's effective n)."""
    X, y = iris
    w = np.random.RandomState(0).uniform(0, 3, X.shape[0])
    a = Estimator().fit(X, y, sample_weight=w)
    for scale in (1e-3, 1e3):
        b = Estimator().fit(X, y, sample_weight=scale * w)
        assert b.beta_ == pytest.approx(a.beta_, rel=1e-12)
        np.testing.assert_allclose(b.predict(X), a.predict(X), atol=1e-10)
    # Kish's n_eff = (sum w)^2 / sum w^2 in Scott's rule h^-2 = n^(2/(d+4))/var
    mean = np.average(X, axis=0, weights=w)
    var = np.average((X - mean) ** 2, axis=0, weights=w).mean()
    n_eff = w.sum() ** 2 / (w**2).sum()
    expected = n_eff ** (2 / (X.shape[1] + 4)) / var / a.lam
    assert a.beta_ == pytest.approx(expected, rel=1e-10)


def test_unfitted_raises():
    with pytest.raises(NotFittedError):
        DenseAMClassifier().predict_proba(np.zeros((2, 2)))


def test_bad_input_names_the_argument(iris):
    X, y = iris
    with pytest.raises(ValueError, match="requires y"):
        DenseAMClassifier().fit(X, None)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        DenseAMClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError, match="similarity='sqeuclidean'"):
        DenseAMClassifier(mode="parametric", similarity="dot").fit(X, y)
    with pytest.raises(ValueError, match="lam"):
        DenseAMClassifier(lam=1.0).fit(X, y)


# --------------------------------------------------------------- beta rules
def test_scale_beta_rules(iris, digits):
    X, y = iris
    n, d = X.shape
    h2 = X.var(axis=0).mean() * n ** (-2 / (d + 4))
    assert scott_beta(X) == pytest.approx(1 / h2, rel=1e-12)
    clf = DenseAMClassifier(lam=0.25).fit(X, y)
    assert clf.beta_ * 0.25 == pytest.approx(1 / h2, rel=1e-12)
    Xtr = digits[0]
    assert separation_beta(Xtr) == resolve_beta("scale", Xtr, rule="separation")


# ----------------------------------------------------------------- backends
def test_offload_backend_matches_numpy(digits, backend):
    Xtr, Xte, ytr, _ = digits
    ref = DenseAMClassifier(max_iter=2).fit(Xtr, ytr).predict_proba(Xte)
    clf = DenseAMClassifier(max_iter=2, backend=backend).fit(Xtr, ytr)
    proba = clf.predict_proba(Xte)
    assert isinstance(proba, np.ndarray) and isinstance(clf.memories_, np.ndarray)
    np.testing.assert_allclose(proba, ref, atol=1e-12)


def test_array_api_input_is_followed(iris, strict_input):
    X, y = iris
    Xs, ys = strict_input(X), strict_input(y)
    with config_context(array_api_dispatch=True):
        clf = DenseAMClassifier().fit(Xs, ys)
        pred = clf.predict(Xs)
        proba = clf.predict_proba(Xs)
        reg = DenseAMRegressor().fit(Xs, strict_input(X[:, 0] * 2.0))
        y_reg = reg.predict(Xs)
    for out in (pred, proba, y_reg, clf.memories_, clf.classes_):
        assert "array_api_strict" in type(out).__module__
    ref = DenseAMClassifier().fit(X, y)
    np.testing.assert_allclose(to_numpy(proba), ref.predict_proba(X), atol=1e-12)
    with pytest.raises(ValueError, match="same namespace"):
        clf.predict(X)


# ---------------------------------------------------------------- regressor
def test_regressor_small_label_scale_is_nadaraya_watson():
    X, y = make_regression(120, 3, noise=5.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    reg = DenseAMRegressor(beta=4.0, label_scale=1e-9).fit(X, y)
    oracle = _gaussian_knn(X, y, 4.0 * 0.5, regressor=True)
    np.testing.assert_allclose(reg.predict(X), oracle.predict(X), rtol=1e-10)


def test_regressor_label_prior_and_multi_output():
    """With label_scale s the first step also weighs each memory by
    exp(-beta (1 - lam) s^2 |z_mu|^2 / 2): a shrinkage towards the mean."""
    rng = np.random.RandomState(0)
    X = rng.randn(80, 2)
    Y = np.c_[X[:, 0] + 0.1 * rng.randn(80), np.sin(X[:, 1])]
    beta, lam, s = 3.0, 0.4, 0.7
    reg = DenseAMRegressor(beta=beta, lam=lam, label_scale=s).fit(X, Y)
    mean, std = Y.mean(0), Y.std(0)
    Z = (Y - mean) / std
    dx = ((X[:, None] - X[None]) ** 2).sum(-1)
    logits = -beta / 2 * (lam * dx + (1 - lam) * s**2 * (Z**2).sum(1)[None])
    expected = mean + std * (softmax(logits, axis=1) @ Z)
    pred = reg.predict(X)
    assert pred.shape == (80, 2)
    np.testing.assert_allclose(pred, expected, atol=1e-12)
    assert reg.predict(X[:3]).shape == (3, 2)
    reg1 = DenseAMRegressor().fit(X, Y[:, 0])
    assert reg1.predict(X).shape == (80,)


def test_regressor_fits_the_check_data():
    """The data of sklearn's check_regressors_train, with the default step_size."""
    from sklearn.preprocessing import scale
    from sklearn.utils.estimator_checks import _regression_dataset

    X, y = _regression_dataset()
    assert DenseAMRegressor().fit(X, scale(y)).score(X, scale(y)) > 0.9


def test_parametric_regressor_learns():
    X, y = make_regression(300, 4, noise=2.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    reg = DenseAMRegressor(mode="parametric", n_memories=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X[:200], y[:200])
    assert reg.memories_.shape == (10, 5)
    knn = KNeighborsRegressor(5).fit(X[:200], y[:200]).score(X[200:], y[200:])
    assert reg.score(X[200:], y[200:]) > knn - 0.03
    assert reg.loss_curve_[-1] < reg.loss_curve_[0] / 2


# --------------------------------------------------------------- parametric
def _model(kind, xp, k=3, d=4):
    return LabelNeuronModel(
        code=LabelCode(kind, k, 1.3),
        n_features=d,
        lam=0.6,
        beta=1.7,
        step_size=0.8,
        n_steps=3,
        xp=xp,
        dtype=np.float64,
        device="cpu",
    )


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_readout_gradients_match_finite_differences(kind, numerical_gradient):
    from array_api_compat import numpy as xp

    rng = np.random.RandomState(0)
    model = _model(kind, xp)
    F, L = rng.randn(5, 4), rng.randn(5, 3)
    Xb, w = rng.randn(7, 4), rng.uniform(0.5, 2, 7)
    targets = (
        np.eye(3)[rng.randint(0, 3, 7)]
        if kind == "classification"
        else (rng.randn(7, 3))
    )
    _, gF, gL = model.loss_and_gradients(F, L, Xb, targets, w)

    def loss(F_, L_):
        patterns = model.patterns(F_, L_)
        R = model.readout(model.forward(patterns, Xb))
        return model.loss(R, targets, w)[0]

    num_F = numerical_gradient(lambda F_: loss(F_, L), F)
    num_L = numerical_gradient(lambda L_: loss(F, L_), L)
    np.testing.assert_allclose(gF, num_F, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(gL, num_L, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_training_forward_and_prediction_agree(kind):
    """``fit`` trains through ``LabelNeuronModel.forward`` (the unrolled steps
    of skam._training); ``predict`` runs the engine's descent with the
    ``LabelNeuronOracle``: two code paths for one computation. Checked with
    the features clamped (only label neurons move), coordinate weights
    ``lam != 1/2``, several steps and ``label_scale != 1``."""
    from array_api_compat import numpy as xp

    from skam._supervised_base import normalise_label_neurons

    X, y = make_blobs(80, n_features=3, centers=3, random_state=0)
    if kind == "regression":
        y = X @ np.array([1.0, -2.0, 0.5]) + np.random.RandomState(0).randn(80)
    Estimator = DenseAMClassifier if kind == "classification" else DenseAMRegressor
    kw = dict(mode="parametric", lam=0.3, label_scale=1.7, step_size=0.9)
    kw.update(n_memories=5, max_epochs=3, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Estimator(max_iter=4, **kw).fit(X, y)
    model = LabelNeuronModel(
        code=est._label_code(est.memories_.shape[1] - X.shape[1]),
        n_features=X.shape[1],
        lam=est.lam,
        beta=est.beta_,
        step_size=est.step_size_,
        n_steps=est.max_iter,
        xp=xp,
        dtype=np.float64,
        device="cpu",
    )
    R = model.readout(model.forward(est.memories_, X))
    if kind == "classification":
        expected, got = normalise_label_neurons(R, xp), est.predict_proba(X)
    else:
        expected = est.target_mean_[0] + est.target_scale_[0] * R[:, 0]
        got = est.predict(X)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # the four steps matter: one step from the same memories reads out otherwise
    one_step = dataclasses.replace(model, n_steps=1)
    R1 = one_step.readout(one_step.forward(est.memories_, X))
    assert np.abs(R1 - R).max() > 1e-3


def test_parametric_classifier_learns_few_memories(digits):
    Xtr, Xte, ytr, yte = digits
    clf = DenseAMClassifier(mode="parametric", n_memories=5, random_state=0)
    clf.fit(Xtr, ytr)
    assert clf.memories_.shape == (50, 74)
    labels = clf.memories_[:, 64:]
    assert (labels >= 0).all()
    np.testing.assert_allclose(labels.sum(1), clf.label_scale)
    assert len(clf.loss_curve_) == clf.n_iter_ == len(clf.validation_loss_curve_)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    knn = KNeighborsClassifier(1).fit(Xtr, ytr).score(Xte, yte)
    assert clf.score(Xte, yte) >= knn - 0.03
    proba = clf.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_parametric_training_improves_on_its_initialisation(digits):
    Xtr, Xte, ytr, yte = digits
    params = dict(mode="parametric", n_memories=3, random_state=0)
    start = DenseAMClassifier(max_epochs=1, learning_rate=1e-9, **params)
    with pytest.warns(ConvergenceWarning):
        start.fit(Xtr, ytr)
    trained = DenseAMClassifier(**params).fit(Xtr, ytr)
    assert trained.score(Xte, yte) > start.score(Xte, yte)


def test_parametric_early_stopping_and_verbose(iris):
    X, y = iris
    clf = DenseAMClassifier(
        mode="parametric",
        n_iter_no_change=2,
        max_epochs=500,
        verbose=1,
        random_state=0,
    )
    out = io.StringIO()
    with redirect_stdout(out):
        clf.fit(X, y)
    assert clf.n_iter_ < 500
    assert out.getvalue().count("epoch") == clf.n_iter_
    no_val = clone(clf).set_params(validation_fraction=None, verbose=0).fit(X, y)
    assert no_val.validation_loss_curve_ is None


def test_parametric_is_reproducible_and_backend_independent(iris, backend):
    X, y = iris
    params = dict(mode="parametric", max_iter=2, random_state=0, max_epochs=15)
    ref = DenseAMClassifier(**params).fit(X, y)
    other = DenseAMClassifier(backend=backend, **params).fit(X, y)
    np.testing.assert_allclose(other.memories_, ref.memories_, atol=1e-10)
    np.testing.assert_allclose(other.predict_proba(X), ref.predict_proba(X), atol=1e-10)


# ---------------------------------------------------------- sklearn tooling
def test_pipeline_grid_search_cross_val(iris):
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), DenseAMClassifier())
    grid = GridSearchCV(
        pipe,
        {
            "denseamclassifier__beta": [0.5, 4.0, 50.0],
            "denseamclassifier__lam": [0.3, 0.7],
        },
        cv=3,
    ).fit(X, y)
    assert grid.best_score_ > 0.9
    assert cross_val_score(pipe, X, y, cv=5).mean() > 0.9


def test_clone_and_pickle(digits):
    Xtr, Xte, ytr, _ = digits
    for est in (
        DenseAMClassifier(max_iter=2),
        DenseAMClassifier(mode="parametric", max_epochs=5, random_state=0),
        DenseAMRegressor(),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(Xtr, ytr)
        twin = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(twin.predict(Xte), est.predict(Xte))
        assert clone(est).get_params() == est.get_params()
