"""scikit-learn's estimator checks for DiffusionAM."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skam import DiffusionAM

ESTIMATORS = [
    DiffusionAM(n_memories=4, max_epochs=3, random_state=0),
    DiffusionAM(n_memories=4, max_epochs=3, random_state=0, backend="array_api_strict"),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)
