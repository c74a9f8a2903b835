"""Separation objects: one per energy, checked against the engine and by finite differences."""

import numpy as np
import pytest
from array_api_compat import numpy as xp

from skam._beta import rule_for as scale_rule
from skam._energy import EnergySpec, _log_abs_separation
from skam._separations import SEPARATIONS, from_spec, get_separation

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


def _closed_form(name, degree, z):
    """``F`` and ``F'`` written out in NumPy (the independent oracle)."""
    if name == "lse":
        return np.exp(z), np.exp(z)
    n = 1 if name == "lsr" else degree
    base = 1.0 + z if name == "poly" else np.maximum(1.0 + z, 0.0)
    slope = n * base ** (n - 1)
    if name != "poly":
        slope = np.where(1.0 + z > 0, slope, 0.0)
    return base**n, slope


@pytest.mark.parametrize(("name", "degree"), CASES)
def test_the_engine_gets_the_closed_forms_from_the_objects(name, degree):
    spec = EnergySpec(separation=name, degree=degree)
    z = _z()[None, :]
    log_f, sign_f, log_df, sign_df = _log_abs_separation(z, spec, xp)
    refs = _closed_form(name, degree, z)
    for (log_abs, sign), ref in zip(
        [(log_f, sign_f), (log_df, sign_df)], refs, strict=True
    ):
        value = np.exp(log_abs) * (1 if sign is None else sign)
        np.testing.assert_allclose(value, ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(from_spec(spec).value(z, 0, xp), refs[0], rtol=1e-12)


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
    expected = {
        ("lse", "sqeuclidean"): "separation",
        ("lse", "dot"): "separation",
        ("poly", "sqeuclidean"): "support",
        ("poly", "dot"): "overlap",
        ("rectified_poly", "sqeuclidean"): "support",
        ("rectified_poly", "dot"): "overlap",
        ("lsr", "sqeuclidean"): "support",
        ("lsr", "dot"): "support",
    }
    for (name, similarity), rule in expected.items():
        assert get_separation(name).beta_rule(similarity) == rule
        assert scale_rule(name, similarity) == rule
    assert set(SEPARATIONS) == {name for name, _ in expected}
    with pytest.raises(ValueError, match="Unknown separation"):
        get_separation("tanh")
