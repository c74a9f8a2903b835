"""scikit-learn's estimator checks for DenseAMClassifier and DenseAMRegressor."""

import pytest
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skam.supervised import DenseAMClassifier, DenseAMRegressor

ESTIMATORS = [
    DenseAMClassifier(),
    DenseAMClassifier(backend="array_api_strict"),
    DenseAMClassifier(separation="lsr", beta=0.5, max_iter=3, step_size=1.0),
    DenseAMClassifier(mode="parametric", max_epochs=20, random_state=0),
    DenseAMRegressor(),
    DenseAMRegressor(backend="array_api_strict", max_iter=2),
    DenseAMRegressor(mode="parametric", max_epochs=20, random_state=0),
]

_RANDOM_INIT = (
    "parametric mode initialises memories by k-means (k-means++ draws rows) and "
    "shuffles minibatches: repeating a row changes both draws, while a weight "
    "does not (nonparametric mode passes this check exactly)"
)
_FEW_PROTOTYPES = (
    "parametric mode keeps 10 % of the rows (n_memories='auto': 20 prototypes here) and "
    "predicts a kernel-weighted mean of their label parts; on the check's linear "
    "10-feature target that smoother reaches R^2 = 0.34 < 0.5 (nonparametric "
    "mode, which keeps every row, passes this check with R^2 = 0.999)"
)
_REGRESSORS_TRAIN = {
    name: _FEW_PROTOTYPES
    for name in (
        "check_regressors_train",
        "check_regressors_train(readonly_memmap=True)",
        "check_regressors_train(readonly_memmap=True,X_dtype=float32)",
    )
}
_SCALE_FREE = (
    "beta='scale' (Scott's rule) counts samples by Kish's effective number "
    "(sum w)^2 / sum w^2, so that only relative weights matter: repeating rows "
    "adds samples and sharpens the kernel, weighting does not; with a float "
    "beta weights equal repeated rows "
    "(test_supervised.py::test_sample_weight_is_repeated_rows)"
)
EXPECTED_FAILURES = {
    ("DenseAMClassifier", "nonparametric"): {
        "check_sample_weight_equivalence_on_dense_data": _SCALE_FREE,
    },
    ("DenseAMRegressor", "nonparametric"): {
        "check_sample_weight_equivalence_on_dense_data": _SCALE_FREE,
    },
    ("DenseAMClassifier", "parametric"): {
        "check_sample_weight_equivalence_on_dense_data": _RANDOM_INIT,
    },
    ("DenseAMRegressor", "parametric"): {
        **_REGRESSORS_TRAIN,
        "check_sample_weight_equivalence_on_dense_data": _RANDOM_INIT,
    },
}


def _expected_failed_checks(estimator):
    key = (type(estimator).__name__, estimator.mode)
    if key[1] == "nonparametric" and estimator.beta != "scale":
        return {}
    return EXPECTED_FAILURES.get(key, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)
