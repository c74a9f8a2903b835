"""The one place that decides where skam's numerics run.

Every estimator calls :func:`resolve_backend` once per public method and then
works only with the returned :class:`Backend`: an array namespace ``xp``, a
``device``, and two moves (``to_compute`` and ``to_output``).

Rules
-----
* Input that is already a non-NumPy array-API array (CuPy, ``array_api_strict``,
  PyTorch, ...) is followed: the computation, the outputs and the fitted
  attributes live in its namespace and on its device ("everything follows X",
  the scikit-learn array API convention).
* NumPy input with ``backend="cupy"`` is *offloaded*: moved to the current CuPy
  device for the computation and moved back, so NumPy in gives NumPy out and
  fitted attributes stay NumPy (a pickled model loads on a machine without GPU).
* Anything else runs on NumPy.

CuPy is imported lazily, inside :func:`_cupy_namespace`, never at ``import skam``.
The hidden ``backend="array_api_strict"`` offloads to array-api-strict's
simulated second device: it exercises the offload path on a CPU-only machine and
fails on any hidden ``numpy`` call or missing ``device=``.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from array_api_compat import is_numpy_array as _is_numpy_array
from array_api_compat import numpy as np_compat


def is_numpy_array(x):
    """array_api_compat's test, with the common case (an ndarray) first.

    Every public call of an estimator asks it a few times; the exact type
    check answers in a fraction of the general test's time.
    """
    return type(x) is np.ndarray or _is_numpy_array(x)


@dataclass(frozen=True)
class Backend:
    """Where a computation runs.

    Attributes
    ----------
    xp : module
        Array-API-compatible namespace used for the numerics.
    device : object
        Device of the namespace on which arrays are created.
    offload : bool
        True when NumPy input is moved to ``xp`` and results are moved back.
    """

    xp: Any
    device: Any
    offload: bool = False

    @property
    def is_numpy(self):
        """True when the computation runs on NumPy."""
        return self.xp is np_compat

    def to_compute(self, array, dtype=None):
        """Move an input, fitted or host array (or None) to the compute namespace.

        NumPy arrays are moved whenever the computation does not run on NumPy
        (offloaded input, or host arrays next to non-NumPy input).
        """
        if array is None:
            return None
        if is_numpy_array(array) and not self.is_numpy:
            array = self.xp.asarray(np.ascontiguousarray(array), device=self.device)
        if dtype is not None and array.dtype != dtype:
            array = self.xp.astype(array, dtype)
        return array

    def to_output(self, array):
        """Move a result back to where the caller's input lived."""
        if array is None or not self.offload:
            return array
        return to_numpy(array)

    def from_host(self, host_array, dtype=None):
        """A host (NumPy) array placed where outputs and fitted attributes live.

        The one way to turn something computed on the host (random draws,
        class labels, target statistics) into a fitted attribute or an
        output: NumPy for NumPy input (computed on NumPy or offloaded), the
        input's namespace and device otherwise. ``dtype`` is a floating
        dtype of either namespace (None keeps the host dtype).
        """
        if host_array is None:
            return None
        host = np.asarray(host_array)
        if dtype is not None:
            host = host.astype(_host_float(dtype), copy=False)
        if self.offload or self.is_numpy:
            return host
        return self.xp.asarray(host, device=self.device)


def _host_float(dtype):
    """NumPy float dtype of the same width as a float dtype of any namespace."""
    return np.float32 if "float32" in str(dtype) else np.float64


def _cupy_namespace():
    try:
        import cupy  # noqa: F401  (lazy: never at import skam)
        from array_api_compat import cupy as cp_compat
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "backend='cupy' needs CuPy, which is not installed. On a machine with "
            "an NVIDIA GPU install it with `pip install cupy-cuda12x` (CUDA 12) or "
            "`pip install cupy-cuda13x` (CUDA 13), or, from a skam checkout, "
            '`pip install -e ".[gpu]"` / `-e ".[cuda13]"`.'
        ) from exc
    return cp_compat, cupy.cuda.Device()


_NUMPY = Backend(xp=np_compat, device="cpu", offload=False)  # frozen: shared


def _strict_namespace():
    import array_api_strict as xps

    return xps, xps.Device("device1")


def resolve_backend(X, backend="numpy"):
    """Return the :class:`Backend` for input ``X`` and an estimator's ``backend``.

    Parameters
    ----------
    X : array-like or None
        The input of the public method (or a fitted array when there is none).
    backend : {"numpy", "cupy", "array_api_strict"}, default="numpy"
        Where NumPy input is computed.

    Returns
    -------
    backend : Backend
    """
    if X is not None and not is_numpy_array(X) and hasattr(X, "__array_namespace__"):
        xp = array_namespace(X)
        return Backend(xp=xp, device=array_device(X), offload=False)
    if backend == "cupy":
        xp, dev = _cupy_namespace()
        return Backend(xp=xp, device=dev, offload=True)
    if backend == "array_api_strict":
        xp, dev = _strict_namespace()
        return Backend(xp=xp, device=dev, offload=True)
    return _NUMPY


def is_non_numpy_array(X):
    """True for an array-API array that is not a NumPy array (CuPy, strict...)."""
    return X is not None and not is_numpy_array(X) and hasattr(X, "__array_namespace__")


def to_numpy(array):
    """Copy any array-API array to a NumPy array on the host."""
    if array is None or is_numpy_array(array):
        return array
    module = type(array).__module__
    if module.startswith("cupy"):
        return array.get()
    if module.startswith("array_api_strict"):
        import array_api_strict as xps

        return np.asarray(xps.asarray(array, device=xps.Device("CPU_DEVICE")))
    if module.startswith("torch"):
        return array.detach().cpu().numpy()
    return np.asarray(array)
