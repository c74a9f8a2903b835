"""scikit-learn's estimator checks over every public estimator of skam."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skam import DenseAM, EnergyTransformer, HopfieldNetwork

ESTIMATORS = [
    DenseAM(),
    DenseAM(separation="lsr", beta=0.5),
    DenseAM(backend="array_api_strict"),
    HopfieldNetwork(max_iter=20, random_state=0),
    HopfieldNetwork(update="sync", backend="array_api_strict"),
    EnergyTransformer(
        token_dim=8, n_heads=2, head_dim=4, n_memories=8, max_epochs=2, random_state=0
    ),
    EnergyTransformer(
        token_dim=4,
        n_heads=1,
        head_dim=2,
        n_memories=4,
        max_epochs=1,
        early_stopping=True,
        backend="array_api_strict",
        random_state=0,
    ),
]

# Every expected failure, with the reason it is expected.
EXPECTED_FAILURES = {
    "DenseAM": {
        "check_sample_weight_equivalence_on_dense_data": (
            "beta='scale' depends on the stored rows (log K and a median of "
            "nearest-memory distances), so repeating rows changes beta while "
            "weighting does not; with a float beta the check passes "
            "(test_memory.py::test_sample_weight_equivalence_with_float_beta)"
        ),
    },
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)
