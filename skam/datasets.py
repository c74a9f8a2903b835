"""Data for examples, tests and benchmarks: bundled, generated or shared.

Nothing here downloads. Binarised digits come from scikit-learn's bundled
``load_digits``; MNIST t10k and the clustering batteries are read from the
shared data folder beside the project (``$SKAM_DATA`` or ``../shared/data``),
which is never copied into the repository. Loaders of shared data raise
:class:`FileNotFoundError` when it is absent, so tests can skip.
"""

import gzip
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state

__all__ = [
    "flip_bits",
    "load_binary_digits",
    "load_clustering_benchmark",
    "load_mnist_t10k",
    "occlude",
    "shared_data_dir",
]


def shared_data_dir():
    """The shared data folder, or None when it is not there.

    Looks at ``$SKAM_DATA``, then ``../shared/data`` from the working
    directory, then ``shared/data`` beside the folder holding the package.

    Returns
    -------
    path : pathlib.Path or None
        The folder, if it exists.
    """
    candidates = []
    if os.environ.get("SKAM_DATA"):
        candidates.append(Path(os.environ["SKAM_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


def _require_shared(*parts):
    root = shared_data_dir()
    path = None if root is None else root.joinpath(*parts)
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"{'/'.join(parts)} not found: set SKAM_DATA to the shared data folder "
            "(it is not bundled with skam)."
        )
    return path


def load_binary_digits(*, threshold=8, unique=True):
    """Load scikit-learn's 8x8 digits binarised to +-1 patterns.

    Parameters
    ----------
    threshold : int, default=8
        Pixels ``>= threshold`` (of 0..16) become +1, the others -1.
    unique : bool, default=True
        Drop repeated patterns (1750 of the 1797 digits are unique at 8).

    Returns
    -------
    X : ndarray of shape (n_samples, 64), dtype=float64
        The +-1 patterns.
    y : ndarray of shape (n_samples,)
        Digit labels.
    """
    digits = load_digits()
    X = np.where(digits.data >= threshold, 1.0, -1.0)
    y = digits.target
    if unique:
        _, idx = np.unique(X, axis=0, return_index=True)
        idx = np.sort(idx)
        X, y = X[idx], y[idx]
    return X, y


def load_mnist_t10k(*, binarize=False):
    """The MNIST test set (10000 images) from the shared data folder.

    Parameters
    ----------
    binarize : bool, default=False
        If True, return +-1 patterns (pixel ``>= 128`` is +1); otherwise pixel
        intensities scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (10000, 784), dtype=float64
        Flattened images.
    y : ndarray of shape (10000,), dtype=int64
        Labels 0-9.
    """
    folder = _require_shared("mnist_t10k")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    if binarize:
        return np.where(images >= 128, 1.0, -1.0), labels
    return images.astype(np.float64) / 255.0, labels


def load_clustering_benchmark(battery, name):
    """A labelled set of the clustering batteries (``fcps`` or ``sipu``).

    Parameters
    ----------
    battery : {"fcps", "sipu"}
        The battery.
    name : str
        The set, e.g. ``"hepta"`` or ``"r15"``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The points.
    y : ndarray of shape (n_samples,), dtype=int64
        Reference labels; 0 marks noise, clusters are 1..k.
    """
    folder = _require_shared("clustering", battery)
    X = np.loadtxt(folder / f"{name}.data.gz", ndmin=2)
    y = np.loadtxt(folder / f"{name}.labels0.gz", dtype=np.int64)
    return X, y


def flip_bits(X, fraction, *, random_state=None):
    """Flip the sign of ``round(fraction * n_features)`` entries of each row.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        +-1 patterns.
    fraction : float
        Fraction of entries to flip in every row, in [0, 1].
    random_state : int, RandomState instance or None, default=None
        Seed of the positions flipped.

    Returns
    -------
    X_flipped : ndarray of shape (n_samples, n_features)
        A corrupted copy.
    """
    rng = check_random_state(random_state)
    X = np.array(X, dtype=np.float64, copy=True)
    n, d = X.shape
    k = int(round(fraction * d))
    for i in range(n):
        X[i, rng.choice(d, size=k, replace=False)] *= -1
    return X


def occlude(X, *, fraction=0.5, fill=-1.0):
    """Hide the last ``fraction`` of the features of each row (an image's bottom).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Patterns (images flattened row by row).
    fraction : float, default=0.5
        Fraction of trailing features hidden.
    fill : float, default=-1.0
        Value written into the hidden features.

    Returns
    -------
    X_occluded : ndarray of shape (n_samples, n_features)
        A copy with the trailing features set to ``fill``.
    clamp_mask : ndarray of shape (n_features,), dtype=bool
        True on the visible features: clamp them while the rest is completed.
    """
    X = np.array(X, dtype=np.float64, copy=True)
    d = X.shape[1]
    start = d - int(round(fraction * d))
    X[:, start:] = fill
    clamp_mask = np.zeros(d, dtype=bool)
    clamp_mask[:start] = True
    return X, clamp_mask
