"""Backends: NumPy, the offload path (array-api-strict stands in for CuPy), CuPy on a GPU."""

import subprocess
import sys

import numpy as np
import pytest
import sklearn

from skam import DenseAM, HopfieldNetwork
from skam.datasets import flip_bits

xps = pytest.importorskip("array_api_strict")

ESTIMATORS = [
    lambda backend: DenseAM(beta=0.5, backend=backend),
    lambda backend: DenseAM(separation="lsr", beta=0.3, backend=backend),
    lambda backend: DenseAM(
        separation="poly", similarity="dot", beta=0.1, backend=backend
    ),
    lambda backend: HopfieldNetwork(random_state=0, backend=backend),
]


def test_import_skam_is_lazy_about_gpu_libraries():
    code = "import sys, skam; sys.exit('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("make", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_offload_matches_numpy(make, dtype, binary_patterns):
    X = binary_patterns.astype(dtype)
    Q = flip_bits(binary_patterns, 0.1, random_state=0).astype(dtype)
    clamp = np.zeros(X.shape[1], dtype=bool)
    clamp[:8] = True
    ref, off = make("numpy").fit(X), make("array_api_strict").fit(X)
    for name in ("transform", "predict", "energy"):
        a, b = getattr(ref, name)(Q), getattr(off, name)(Q)
        assert type(b) is np.ndarray and b.dtype == a.dtype  # NumPy in, NumPy out
        np.testing.assert_allclose(b, a, rtol=1e-5 if dtype == np.float32 else 1e-12)
    if isinstance(ref, DenseAM):
        np.testing.assert_allclose(
            off.transform(Q, clamp_mask=clamp),
            ref.transform(Q, clamp_mask=clamp),
            rtol=1e-5 if dtype == np.float32 else 1e-12,
        )
    assert type(off.memories_) is np.ndarray  # fitted attributes stay NumPy


@pytest.mark.parametrize("make", ESTIMATORS)
def test_array_api_input_is_followed(make, binary_patterns, strict_input):
    Q = flip_bits(binary_patterns, 0.1, random_state=0)
    ref = make("numpy").fit(binary_patterns)
    with sklearn.config_context(array_api_dispatch=True):
        est = make("numpy").fit(strict_input(binary_patterns))
        out = est.transform(strict_input(Q))
        assert isinstance(est.memories_, type(out))
        assert out.device == xps.Device("device1")
        mask = xps.asarray(
            np.zeros(binary_patterns.shape[1], dtype=bool), device=out.device
        )
        if isinstance(est, DenseAM):
            est.transform(strict_input(Q), clamp_mask=mask)
    np.testing.assert_allclose(
        np.asarray(xps.asarray(out, device=xps.Device("CPU_DEVICE"))),
        ref.transform(Q),
        rtol=1e-12,
    )


def test_pickled_offload_model_holds_numpy(binary_patterns):
    import pickle

    am = DenseAM(beta=0.5, backend="array_api_strict").fit(binary_patterns)
    state = pickle.loads(pickle.dumps(am)).__dict__
    arrays = [v for v in state.values() if hasattr(v, "shape")]
    assert arrays and all(type(v) is np.ndarray for v in arrays)


# ------------------------------------------------------------- CuPy (GPU only)
@pytest.mark.gpu
@pytest.mark.parametrize("make", ESTIMATORS)
def test_cupy_backend_matches_numpy(make, binary_patterns):
    Q = flip_bits(binary_patterns, 0.1, random_state=0).astype(np.float32)
    X = binary_patterns.astype(np.float32)
    ref, gpu = make("numpy").fit(X), make("cupy").fit(X)
    for name in ("transform", "predict", "energy"):
        out = getattr(gpu, name)(Q)
        assert type(out) is np.ndarray
        np.testing.assert_allclose(out, getattr(ref, name)(Q), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("make", ESTIMATORS)
def test_cupy_input_is_followed(make, binary_patterns):
    cupy = pytest.importorskip("cupy")
    Q = flip_bits(binary_patterns, 0.1, random_state=0)
    est = make("numpy").fit(cupy.asarray(binary_patterns))
    out = est.transform(cupy.asarray(Q))
    assert isinstance(out, cupy.ndarray) and isinstance(est.memories_, cupy.ndarray)
    np.testing.assert_allclose(
        out.get(), make("numpy").fit(binary_patterns).transform(Q), rtol=1e-10
    )


def test_gpu_backend_without_gpu_libraries_fails_clearly(binary_patterns):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match=r"pip install cupy-cuda12x"):
        DenseAM(backend="cupy").fit(binary_patterns)


def test_refit_in_another_namespace(binary_patterns, strict_input):
    am = DenseAM(beta=0.5).fit(binary_patterns)
    with sklearn.config_context(array_api_dispatch=True):
        am.fit(strict_input(binary_patterns))  # a new fit may change namespace
        with pytest.raises(ValueError, match="must use the same namespace"):
            am.transform(binary_patterns)


def test_feature_names_out(binary_patterns):
    names = DenseAM(beta=0.5).fit(binary_patterns).get_feature_names_out()
    assert list(names[:2]) == ["x0", "x1"] and len(names) == binary_patterns.shape[1]
