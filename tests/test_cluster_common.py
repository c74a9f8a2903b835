"""scikit-learn's estimator checks on AMClustering (NumPy and offloaded)."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skam.cluster import AMClustering

# Cheap settings: the checks fit dozens of times on tiny data.
# (batch_size=32: the checks' data sets have 20-100 rows, so one to four
# minibatches per epoch instead of up to twelve of 8 rows.)
ESTIMATORS = [
    AMClustering(n_clusters=2, max_epochs=5, batch_size=32, random_state=0),
    AMClustering(n_clusters=2, max_epochs=3, mask_prob=0.5, n_init=2, random_state=0),
    AMClustering(
        n_clusters=2,
        max_epochs=2,
        batch_size=32,
        n_init=1,
        random_state=0,
        backend="array_api_strict",
    ),
]

# No expected failures: even check_sample_weight_equivalence_on_dense_data
# passes, because the Lloyd start and the basin polish make the result of the
# stochastic training land on the same partition for weighted and repeated rows.
EXPECTED_FAILURES = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation("AMClustering", estimator)
