"""scikit-learn's estimator checks for the random-feature estimators."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skam.random_features import (
    BochnerFeatures,
    KernelSumClippedWarning,
    RandomFeatureAM,
    RandomFeatureAMClassifier,
)

# The checks' random data lie far apart at beta=1, so clipping is expected
# (and tested in test_random_features.py); keep the output readable.
pytestmark = pytest.mark.filterwarnings(
    f"ignore::{KernelSumClippedWarning.__module__}.{KernelSumClippedWarning.__name__}"
)

ESTIMATORS = [
    BochnerFeatures(),
    BochnerFeatures(kernel="matern", nu=0.5, feature_map="cos", orthogonal=True),
    BochnerFeatures(feature_map="positive", gamma="scale", backend="array_api_strict"),
    RandomFeatureAM(n_components=512),
    RandomFeatureAM(n_components=512, feature_map="positive", beta=0.5),
    RandomFeatureAM(n_components=512, kernel="laplacian", backend="array_api_strict"),
    RandomFeatureAMClassifier(n_components=512),
    RandomFeatureAMClassifier(n_components=512, feature_map="positive", beta=1.0),
    RandomFeatureAMClassifier(
        n_components=512, kernel="cauchy", feature_map="cos", backend="array_api_strict"
    ),
]

# Every expected failure, with the reason it is expected.
_CHAOTIC_DESCENT = (
    "weights and repeated rows give the same distributed memory T up to "
    "rounding (asserted in test_random_features.py::test_sample_weight_is_"
    "repetition), but on this data (beta=1, queries far from the 15 training "
    "rows) the Laplacian random-feature landscape is so noisy that 100 descent "
    "steps amplify 1e-16 differences in T beyond the check's rtol=1e-7"
)


def _expected_failed_checks(estimator):
    if isinstance(estimator, RandomFeatureAM) and estimator.kernel == "laplacian":
        return {"check_sample_weight_equivalence_on_dense_data": _CHAOTIC_DESCENT}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)
