"""Root pytest configuration, loaded before scipy/sklearn are imported."""

import os

# scikit-learn's array API mode needs scipy's; set before scipy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pytest  # noqa: E402


def _cuda_available():
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device with CuPy on this machine")
    for item in items:
        if "gpu" in item.keywords or "cupy" in item.name:
            item.add_marker(skip)


def _numerical_gradient(f, x, h=1e-6):
    """Central differences of the scalar function ``f`` at every entry of ``x``."""
    import numpy as np

    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (f(plus) - f(minus)) / (2 * h)
    return grad


@pytest.fixture
def numerical_gradient():
    """The finite-difference oracle of the gradient tests: ``(f, x, h=1e-6)``."""
    return _numerical_gradient
