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
