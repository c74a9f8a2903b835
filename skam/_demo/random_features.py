"""Main-job section: random-feature memories against the exact models on digits."""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from skam.memory import DenseAM
from skam.random_features import (
    KernelSumClippedWarning,
    RandomFeatureAM,
    RandomFeatureAMClassifier,
)

TITLE = "Random features (DrDAM): distributed memories vs the exact models"

NOTE = """\
Digits / 16 (64 features), shuffled with RandomState(0). Retrieval: 300 digits
stored, 100 of them queried with Gaussian noise (sd 0.15 per pixel); 20 steps,
step_size=0.5; score = the retrieved state is nearest to the digit the query came
from; "vs exact" = fraction of queries ending nearest the same stored digit as
the exact DenseAM (same beta). Classification: first 1300 digits train, the
other 497 test; exact = one DenseAM per class, class of lowest energy (the
one-step log-sum-exp vote); "vs exact" = fraction of equal predictions.
Random features: sincos, Y = 4096 frequencies (8192 numbers in T). Sizes are
the bytes of the fitted arrays (the frequencies W dominate at this K: the
distributed memory pays off when K > Y). beta = 5 is shown on purpose: a
sharp kernel (bandwidth 1/sqrt(5) = 0.45; nearest-neighbour distances of
digits are about 1, typical distances about 3)
makes the random-feature estimate of each class's kernel sum noisier than the
gaps between classes, so the classifier falls far below the exact vote. The
estimate's error falls like 1/sqrt(Y) but rises with beta and the dimension;
the user guide's "Random features" page shows where a given Y stops being
enough."""

_Y = 4096
_SEED = 0


def _nbytes(estimator):
    return sum(
        value.nbytes for value in vars(estimator).values() if hasattr(value, "nbytes")
    )


def _kib(estimators):
    return round(sum(_nbytes(e) for e in estimators) / 1024.0)


def _nearest(V, memories):
    sq = (V**2).sum(1)[:, None] - 2 * V @ memories.T + (memories**2).sum(1)[None, :]
    return np.argmin(sq, axis=1)


def _retrieval_rows(X):
    rng = np.random.RandomState(_SEED)
    stored = X[:300]
    source = rng.choice(300, 100, replace=False)
    queries = stored[source] + 0.15 * rng.normal(size=(100, X.shape[1]))
    params = {"beta": 10.0, "step_size": 0.5, "max_iter": 20, "tol": 0.0}
    task = "retrieval, K=300, beta=10"
    start = time.perf_counter()
    exact = DenseAM(**params).fit(stored)
    reached_exact = _nearest(exact.transform(queries), stored)
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    rf = RandomFeatureAM(n_components=_Y, random_state=_SEED, **params).fit(stored)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KernelSumClippedWarning)
        reached_rf = _nearest(rf.transform(queries), stored)
    t_rf = time.perf_counter() - start
    return [
        [task, "DenseAM (exact)", float(np.mean(reached_exact == source)), "-",
         _kib([exact]), t_exact],
        [task, f"RandomFeatureAM Y={_Y}", float(np.mean(reached_rf == source)),
         float(np.mean(reached_rf == reached_exact)), _kib([rf]), t_rf],
    ]  # fmt: skip


def _exact_vote(Xtr, ytr, Xte, beta):
    """One DenseAM per class; the class whose memory has the lowest energy."""
    classes = np.unique(ytr)
    models = [DenseAM(beta=beta, max_iter=1).fit(Xtr[ytr == c]) for c in classes]
    energies = np.column_stack([m.energy(Xte) for m in models])
    return classes[np.argmin(energies, axis=1)], models


def _classification_rows(X, y):
    Xtr, ytr, Xte, yte = X[:1300], y[:1300], X[1300:], y[1300:]
    rows = []
    for beta in (1.0, 5.0):
        task = f"classification, beta={beta:g}"
        start = time.perf_counter()
        pred_exact, models = _exact_vote(Xtr, ytr, Xte, beta)
        t_exact = time.perf_counter() - start
        start = time.perf_counter()
        clf = RandomFeatureAMClassifier(n_components=_Y, beta=beta, random_state=_SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KernelSumClippedWarning)
            pred_rf = clf.fit(Xtr, ytr).predict(Xte)
        t_rf = time.perf_counter() - start
        rows.append(
            [
                task,
                "DenseAM per class (exact)",
                float(np.mean(pred_exact == yte)),
                "-",
                _kib(models),
                t_exact,
            ]
        )
        rows.append(
            [
                task,
                f"RandomFeatureAMClassifier Y={_Y}",
                float(np.mean(pred_rf == yte)),
                float(np.mean(pred_rf == pred_exact)),
                _kib([clf]),
                t_rf,
            ]
        )
    start = time.perf_counter()
    knn = KNeighborsClassifier(1).fit(Xtr, ytr)
    acc = knn.score(Xte, yte)
    rows.append(
        [
            "classification",
            "KNeighborsClassifier(1)",
            float(acc),
            "-",
            round(Xtr.nbytes / 1024.0),
            time.perf_counter() - start,
        ]
    )
    return rows  # fmt: skip


def run():
    """Scores, agreement with the exact model, fitted size and time per model."""
    X, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(_SEED).permutation(X.shape[0])
    X, y = X[perm] / 16.0, y[perm]
    columns = ["task", "model", "score", "vs exact", "size KiB", "time s"]
    return columns, _retrieval_rows(X) + _classification_rows(X, y)
