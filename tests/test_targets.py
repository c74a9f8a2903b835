"""One policy for ``y`` and ``classes_`` across the classifiers."""

import numpy as np
import pytest
from sklearn import clone

from skam import DenseAMClassifier, HierarchicalAMClassifier, RandomFeatureAMClassifier
from skam._backend import resolve_backend, to_numpy
from skam._targets import decode_classes, encode_classes

CLASSIFIERS = [
    DenseAMClassifier(),
    HierarchicalAMClassifier(max_epochs=2, random_state=0),
    RandomFeatureAMClassifier(n_components=64, beta=0.5, random_state=0),
]


@pytest.fixture
def blobs():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(10, 2) - 3, rng.randn(10, 2) + 3])
    return X, np.repeat([4, 7], 10)


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=lambda c: type(c).__name__)
def test_numeric_classes_follow_the_input_namespace(clf, blobs, strict_input):
    X, y = blobs
    fitted = clone(clf).fit(strict_input(X), strict_input(y))
    assert type(fitted.classes_).__module__.startswith("array_api_strict")
    pred = fitted.predict(strict_input(X))
    assert type(pred).__module__.startswith("array_api_strict")
    proba = to_numpy(fitted.predict_proba(strict_input(X)))
    np.testing.assert_array_equal(to_numpy(pred), np.array([4, 7])[proba.argmax(1)])


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_numpy_input_gives_numpy_classes(clf, blobs, backend):
    X, y = blobs
    fitted = clone(clf).set_params(backend=backend).fit(X, y)
    assert isinstance(fitted.classes_, np.ndarray)
    np.testing.assert_array_equal(fitted.classes_, [4, 7])
    assert isinstance(fitted.predict(X), np.ndarray)


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=lambda c: type(c).__name__)
def test_string_classes_stay_numpy(clf, blobs, strict_input):
    X, y = blobs
    labels = np.where(y == 4, "four", "seven")
    fitted = clone(clf).fit(strict_input(X), labels)
    assert isinstance(fitted.classes_, np.ndarray)
    proba = to_numpy(fitted.predict_proba(strict_input(X)))
    expected = np.array(["four", "seven"])[proba.argmax(1)]
    np.testing.assert_array_equal(fitted.predict(strict_input(X)), expected)


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize(
    "y, match",
    [
        (None, "requires y to be passed"),
        (np.arange(19), "inconsistent numbers of samples"),
        (np.linspace(0, 1, 20), "Unknown label type"),
        (np.r_[np.nan, np.zeros(19)], "NaN"),
    ],
    ids=["none", "length", "continuous", "nan"],
)
def test_bad_y_raises_the_same_error(clf, blobs, y, match):
    X, _ = blobs
    with pytest.raises(ValueError, match=match):
        clone(clf).fit(X, y)


def test_encode_decode_round_trip_and_unknown_classes():
    backend = resolve_backend(None)
    classes, index = encode_classes(np.array([3, 1, 3, 2]), backend)
    np.testing.assert_array_equal(classes, [1, 2, 3])
    np.testing.assert_array_equal(index, [2, 0, 2, 1])
    np.testing.assert_array_equal(decode_classes(classes, index, backend), [3, 1, 3, 2])
    with pytest.raises(ValueError, match=r"classes \[5\] that are not in"):
        encode_classes(np.array([1, 5]), backend, classes=[1, 2, 3])
