"""Separation objects: one per energy, checked against the engine and by finite differences."""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam._energy import EnergySpec, _log_abs_separation
from skam._separations import SEPARATIONS, from_spec, get_separation
from skam._validation import scale_rule

CASES = [
    ("lse", 3),
    ("poly", 2),
    ("poly", 3),
    ("poly", 4),
    ("rectified_poly", 2),
    ("rectified_poly", 3),
    ("lsr", 1),
]


def _z():
    z = np.linspace(-3.0, 2.0, 41)
    return z[np.abs(1.0 + z) > 0.05]  # away from the kink of the rectified ones


@pytest.mark.parametrize(("name", "degree"), CASES)
def test_values_and_first_derivative_match_the_engine(name, degree):
    spec = EnergySpec(separation=name, degree=degree)
    sep = from_spec(spec)
    z = _z()[None, :]
    log_f, sign_f, log_df, sign_df = _log_abs_separation(z, spec, xp)
    for order, (log_ref, sign_ref) in enumerate([(log_f, sign_f), (log_df, sign_df)]):
        ref = np.exp(log_ref) * (1 if sign_ref is None else sign_ref)
        np.testing.assert_allclose(
            sep.value(z, order, xp), ref, rtol=1e-12, atol=1e-300
        )


@pytest.mark.parametrize(("name", "degree"), CASES)
def test_derivatives_are_finite_differences(name, degree):
    sep = get_separation(name, degree)
    z, h = _z(), 1e-6
    for order in (1, 2):
        fd = (sep.value(z + h, order - 1, xp) - sep.value(z - h, order - 1, xp)) / (
            2 * h
        )
        np.testing.assert_allclose(sep.value(z, order, xp), fd, rtol=1e-6, atol=1e-6)


def test_closed_forms():
    z = np.array([-2.0, -0.5, 0.5])
    np.testing.assert_allclose(get_separation("poly", 3).value(z, 0, xp), (1 + z) ** 3)
    np.testing.assert_allclose(get_separation("poly", 3).value(z, 2, xp), 6 * (1 + z))
    np.testing.assert_allclose(
        get_separation("rectified_poly", 2).value(z, 2, xp), [0.0, 2.0, 2.0]
    )
    np.testing.assert_allclose(get_separation("lsr").value(z, 2, xp), 0.0)
    np.testing.assert_allclose(get_separation("lse").value(z, 2, xp), np.exp(z))


def test_beta_rule_is_the_shared_one_and_names_are_checked():
    for name in SEPARATIONS:
        for similarity in ("sqeuclidean", "dot"):
            assert get_separation(name).beta_rule(similarity) == scale_rule(
                name, similarity
            )
    with pytest.raises(ValueError, match="Unknown separation"):
        get_separation("tanh")
