"""Main-job section: DenseAMClassifier against kNN and an RBF SVM."""

import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from skam.supervised import DenseAMClassifier

TITLE = "Classification: label-neuron DenseAM against kNN and SVC"

NOTE = """\
5-fold shuffled stratified CV (seed 0): digits (pixels / 16) and breast_cancer
(StandardScaler on the training fold). accuracy = mean over folds; predict ms =
time to predict one test fold (best of 3, mean over folds); memories = stored
or learned patterns. DenseAM 1 step: nonparametric (memories = training
samples), beta="scale" (Scott's rule), one descent step on the label neurons =
softmax-weighted vote. DenseAM parametric: 10 % of each class as memories,
learned through the descent step by minibatch Adam (cross-entropy, early
stopping). All models run with one BLAS/OpenMP thread (threadpoolctl), so that
their times compare fairly on a shared machine."""


def _models():
    return {
        "1-NN": KNeighborsClassifier(1, algorithm="brute"),
        "5-NN": KNeighborsClassifier(5, algorithm="brute"),
        "SVC rbf C=10": SVC(C=10),
        "DenseAM 1 step": DenseAMClassifier(),
        "DenseAM parametric": DenseAMClassifier(mode="parametric", random_state=0),
    }


def _memories(model, n_train):
    if isinstance(model, SVC):
        return int(model.support_vectors_.shape[0])
    if isinstance(model, DenseAMClassifier):
        return int(model.memories_.shape[0])
    return n_train


def run():
    """Accuracy and predict time of each model on digits and breast_cancer."""
    with threadpool_limits(1):
        return _run()


def _run():
    X_digits, y_digits = load_digits(return_X_y=True)
    data = {
        "digits": (X_digits / 16.0, y_digits, FunctionTransformer()),
        "breast_cancer": (*load_breast_cancer(return_X_y=True), StandardScaler()),
    }
    rows = []
    for name, (X, y, scaler) in data.items():
        folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
        scores = {}
        for train, test in folds:
            prep = make_pipeline(scaler).fit(X[train])
            X_train, X_test = prep.transform(X[train]), prep.transform(X[test])
            for label, model in _models().items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(X_train, y[train])
                seconds = []
                for _ in range(3):
                    start = time.perf_counter()
                    y_pred = model.predict(X_test)
                    seconds.append(time.perf_counter() - start)
                accuracy = float(np.mean(y_pred == y[test]))
                entry = scores.setdefault(label, [[], [], []])
                entry[0].append(accuracy)
                entry[1].append(min(seconds))
                entry[2].append(_memories(model, len(train)))
        for label, (accuracy, seconds, memories) in scores.items():
            rows.append(
                [
                    name,
                    label,
                    float(np.mean(accuracy)),
                    f"{1000 * np.mean(seconds):.1f}",
                    int(round(np.mean(memories))),
                ]
            )
    return ["data", "model", "accuracy", "predict ms", "memories"], rows
