"""Shared fixtures: backends and small data sets."""

import numpy as np
import pytest


def _strict():
    return pytest.importorskip("array_api_strict")


@pytest.fixture(params=["numpy", "array_api_strict"])
def backend(request):
    """The offload backends testable on a CPU (CuPy has its own gpu tests)."""
    if request.param == "array_api_strict":
        _strict()
    return request.param


@pytest.fixture
def strict_input():
    """Convert NumPy arrays to array-api-strict arrays on a simulated device."""
    xps = _strict()

    def convert(array):
        return xps.asarray(np.asarray(array), device=xps.Device("device1"))

    return convert


@pytest.fixture
def binary_patterns():
    rng = np.random.RandomState(0)
    return np.where(rng.rand(20, 64) > 0.5, 1.0, -1.0)
