"""Memorisation diagnostics for samples of a memory: copy, spurious or novel.

A generated sample is

* a **copy** when it lies within ``copy_threshold`` of its nearest training
  point and within ``copy_ratio`` times that point's distance to its own
  nearest other training point (the local spacing of the data), so that on
  densely sampled data a point near the data manifold is not a copy merely
  because some training point is near;
* **spurious** when, not a copy, it lies within ``spurious_threshold`` of a
  *spurious minimum* of the memory: an isolated minimum of the energy that
  is not a training point (Krotov et al. 2025, Section 4.3);
* **novel** otherwise.

:func:`spurious_minima` finds those minima by energy descent from many
starts (the zero-noise end of sampling), clustering the states reached
(single linkage at ``merge_threshold``) and testing each cluster centre: it
is an isolated minimum when the energy rises by at least ``min_depth`` at
distance ``isolation_scale`` in every one of ``n_probes`` random directions.
By default the distance is one kernel width ``1/sqrt(beta)`` and the depth
``1/(4 beta)``, half the rise of a lone Gaussian well (``r^2/2``) there. Along a continuous valley (a manifold, as the energy of
many points on a circle becomes) the energy barely changes, so the shallow
ripples that finite data leaves in a valley are not states the sampler is
trapped in. Isolated minima that are not copies of a training point are
spurious.

Novelty alone rewards blur: a memory at a high temperature gives samples
that copy nothing because they lie off the data. :func:`sample_quality`
measures the other half of generalisation against held-out data drawn like
the training data (Meehan et al. 2020 compare the same distances): a
generalising model's samples are as far from the training set as unseen
data are (not closer: copies; not farther: off the data), as close to unseen
data as the training points are, and they cover unseen data at least as
well as the training set does.
"""

import numpy as np
from sklearn.base import check_is_fitted
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import Bunch, check_array, check_random_state

LABELS = ("copy", "spurious", "novel")


def _positive(value, name, *, allow_inf=False):
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and value > 0 and (allow_inf or np.isfinite(value))
    if not ok:
        raise ValueError(f"{name} must be a positive float, got {value!r}.")
    return float(value)


def _nearest_distance(A, B):
    return pairwise_distances_argmin_min(A, B)[1]


def _is_copy(A, X_train, copy_threshold, copy_ratio):
    """Within ``copy_threshold`` and ``copy_ratio`` local spacings of a training point."""
    nn = NearestNeighbors(n_neighbors=1).fit(X_train)
    d1, idx = nn.kneighbors(A, return_distance=True)
    copy = d1[:, 0] <= copy_threshold
    if X_train.shape[0] > 1 and copy_ratio is not None:
        spacing = nn.kneighbors(X_train, n_neighbors=2, return_distance=True)[0][:, 1]
        copy &= d1[:, 0] <= copy_ratio * spacing[idx[:, 0]]
    return copy


def label_samples(
    samples,
    X_train,
    *,
    copy_threshold,
    copy_ratio=0.25,
    spurious_minima=None,
    spurious_threshold=None,
):
    """Label each sample ``"copy"``, ``"spurious"`` or ``"novel"``.

    Parameters
    ----------
    samples : array-like of shape (n_samples, n_features)
        Generated samples.
    X_train : array-like of shape (n_train, n_features)
        The training data.
    copy_threshold : float
        A sample within this Euclidean distance of a training point is a copy
        (if ``copy_ratio`` allows); ``numpy.inf`` leaves the decision to
        ``copy_ratio``.
    copy_ratio : float or None, default=0.25
        A copy is also within this fraction of the local spacing of the
        training data (the distance from its training point to the nearest
        other one); None switches this test off.
    spurious_minima : array-like of shape (n_minima, n_features), default=None
        Spurious minima of the memory (e.g. ``spurious_minima(...).minima``);
        None labels no sample spurious.
    spurious_threshold : float, default=None
        A non-copy within this distance of a spurious minimum is spurious;
        None uses ``copy_threshold``.

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype=object
        ``"copy"``, ``"spurious"`` or ``"novel"``.

    See Also
    --------
    label_fractions : The fraction of each label.
    spurious_minima : Finds the spurious minima of a fitted memory.

    Examples
    --------
    >>> import numpy as np
    >>> from skam.diagnostics import label_samples
    >>> train = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> samples = np.array([[0.01, 0.0], [0.5, 0.0], [3.0, 3.0]])
    >>> label_samples(samples, train, copy_threshold=0.05,
    ...               spurious_minima=[[0.5, 0.0]])
    array(['copy', 'spurious', 'novel'], dtype=object)
    """
    samples = check_array(samples, input_name="samples")
    X_train = check_array(X_train, input_name="X_train")
    if samples.shape[1] != X_train.shape[1]:
        raise ValueError(
            f"samples has {samples.shape[1]} features but X_train has "
            f"{X_train.shape[1]}."
        )
    copy_threshold = _positive(copy_threshold, "copy_threshold", allow_inf=True)
    if copy_ratio is not None:
        copy_ratio = _positive(copy_ratio, "copy_ratio")
    labels = np.full(samples.shape[0], "novel", dtype=object)
    copy = _is_copy(samples, X_train, copy_threshold, copy_ratio)
    if spurious_minima is not None:
        minima = check_array(
            spurious_minima, input_name="spurious_minima", ensure_min_samples=0
        )
        if minima.shape[0]:
            radius = (
                copy_threshold if spurious_threshold is None else spurious_threshold
            )
            radius = _positive(radius, "spurious_threshold")
            near = _nearest_distance(samples, minima) <= radius
            labels[near & ~copy] = "spurious"
    labels[copy] = "copy"
    return labels


def label_fractions(labels):
    """Fraction of ``"copy"``, ``"spurious"`` and ``"novel"`` labels.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Output of :func:`label_samples`.

    Returns
    -------
    fractions : dict
        ``{"copy": float, "spurious": float, "novel": float}`` (sums to 1).

    Examples
    --------
    >>> from skam.diagnostics import label_fractions
    >>> label_fractions(["copy", "copy", "novel", "spurious"])
    {'copy': 0.5, 'spurious': 0.25, 'novel': 0.25}
    """
    labels = np.asarray(labels, dtype=object)
    if labels.ndim != 1 or labels.shape[0] == 0:
        raise ValueError("labels must be a non-empty 1-D array.")
    unknown = set(labels.tolist()) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}; expected {LABELS}.")
    return {name: float(np.mean(labels == name)) for name in LABELS}


def spurious_minima(
    estimator,
    X_train,
    *,
    copy_threshold,
    copy_ratio=0.25,
    merge_threshold=None,
    isolation_scale=None,
    min_depth=None,
    n_starts=1000,
    n_probes=8,
    starts=None,
    random_state=None,
):
    """Spurious minima of a fitted memory: descent from many starts, clustered.

    Parameters
    ----------
    estimator : fitted DenseAM-like memory
        Needs ``transform`` (energy descent) and ``energy``; its ``sample``
        (exact draws) gives the starts when ``starts`` is None.
    X_train : array-like of shape (n_train, n_features)
        The training data (stored or not).
    copy_threshold, copy_ratio : float
        Minima that are copies of a training point (see
        :func:`label_samples`) are not spurious.
    merge_threshold : float, default=None
        Descent end points closer than this are merged (single linkage).
        None uses ``copy_threshold``.
    isolation_scale : float, default=None
        Distance of the probes around each cluster centre; None uses the
        kernel width ``1 / sqrt(estimator.beta_)``.
    min_depth : float, default=None
        Rise of the energy at every probe that makes a centre an isolated
        minimum; None uses ``1 / (4 estimator.beta_)``.
    n_starts : int, default=1000
        Number of starts drawn by ``estimator.sample`` (ignored with
        ``starts``).
    starts : array-like of shape (n_starts, n_features), default=None
        Explicit starting states.
    n_probes : int, default=8
        Pushes per cluster centre in the isolation test.
    random_state : int, RandomState instance or None, default=None
        Seed of the starts and of the pushes.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``minima`` (n_minima, n_features): the spurious point minima (cluster
        means); ``n_reached`` (n_minima,): starts that reached each;
        ``energy`` (n_minima,); ``n_point_minima``: point minima found in all
        (copies of training points included); ``n_valley_states``: end
        points whose cluster failed the isolation test (continuous
        valleys, or saddles).

    See Also
    --------
    label_samples : Uses these minima to label samples spurious.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import DenseAM
    >>> from skam.diagnostics import spurious_minima
    >>> train = np.array([[0.0], [1.0]])
    >>> am = DenseAM(beta=1.0).fit(train)      # wide kernels: one merged minimum
    >>> found = spurious_minima(am, train, copy_threshold=0.05, random_state=0)
    >>> found.minima.round(2)
    array([[0.5]])
    """
    check_is_fitted(estimator)
    X_train = check_array(X_train, input_name="X_train")
    copy_threshold = _positive(copy_threshold, "copy_threshold", allow_inf=True)
    merge = copy_threshold if merge_threshold is None else merge_threshold
    merge = _positive(merge, "merge_threshold")
    rng = check_random_state(random_state)
    if starts is None:
        starts = estimator.sample(n_starts, random_state=rng)
    states = np.asarray(estimator.transform(starts), dtype=np.float64)
    if states.shape[0] > 1:
        labels = AgglomerativeClustering(
            n_clusters=None, distance_threshold=merge, linkage="single"
        ).fit_predict(states)
    else:
        labels = np.zeros(states.shape[0], dtype=int)
    clusters = np.unique(labels)
    centres = np.stack([states[labels == c].mean(axis=0) for c in clusters])
    beta = float(getattr(estimator, "beta_", 1.0))
    push = 1 / np.sqrt(beta) if isolation_scale is None else isolation_scale
    push = _positive(push, "isolation_scale")
    depth = 0.25 / beta if min_depth is None else _positive(min_depth, "min_depth")
    isolated = _isolated(estimator, centres, push, depth, n_probes, rng)
    copies = _is_copy(centres, X_train, copy_threshold, copy_ratio)
    counts = np.array([np.sum(labels == c) for c in clusters])
    keep = isolated & ~copies
    minima, counts = centres[keep], counts[keep]
    n_point = int(np.sum(isolated))
    n_valley = int(np.sum(np.array([np.sum(labels == c) for c in clusters])[~isolated]))
    energy = (
        np.asarray(estimator.energy(minima), dtype=np.float64)
        if minima.shape[0]
        else np.zeros(0)
    )
    return Bunch(
        minima=minima,
        n_reached=np.asarray(counts, dtype=np.int64),
        energy=energy,
        n_point_minima=n_point,
        n_valley_states=n_valley,
    )


def _isolated(estimator, centres, push, depth, n_probes, rng):
    """True where the energy rises by ``depth`` at distance ``push``, all around."""
    m, D = centres.shape
    z = rng.standard_normal((m, n_probes, D))
    z *= push / np.linalg.norm(z, axis=2, keepdims=True)
    probes = (centres[:, None, :] + z).reshape(m * n_probes, D)
    rise = np.asarray(estimator.energy(probes), dtype=np.float64).reshape(m, n_probes)
    rise = rise - np.asarray(estimator.energy(centres), dtype=np.float64)[:, None]
    return np.min(rise, axis=1) >= depth


def sample_quality(samples, X_train, X_test):
    """Whether samples lie near unseen data: nearest-neighbour distance ratios.

    Three medians of nearest-neighbour (Euclidean) distances, each divided by
    what the training data achieve against held-out data ``X_test`` drawn
    from the same distribution:

    * ``train_distance_ratio``: the samples' distance to the training set
      over the held-out points' distance to it. About 0 for copies, about 1
      for samples distributed like unseen data, above 1 for samples off the
      data (blur). This is the distance the data-copying test of Meehan et
      al. (2020) compares.
    * ``test_distance_ratio``: the samples' distance to the held-out set over
      the training points' distance to it (precision: how close to unseen
      data, relative to a copy). 1 for copies; above 1 off the data.
    * ``coverage_ratio``: the held-out points' distance to the nearest sample
      over their distance to the nearest training point (recall). 1 for
      copies (with enough samples); below 1 when the samples fill the gaps
      between training points; above 1 when they miss part of the data.

    A model generalises when its samples are novel (few copies, see
    :func:`label_samples`) *and* on the data: ``train_distance_ratio`` and
    ``test_distance_ratio`` near 1 or below, ``coverage_ratio`` at most 1.
    On data that lie exactly on a manifold (points of a circle) every
    sample off the manifold is far compared to the spacing of the data, so
    the ratios grow with the samples' distance to the manifold.

    Parameters
    ----------
    samples : array-like of shape (n_samples, n_features)
        Generated samples.
    X_train : array-like of shape (n_train, n_features)
        The training data.
    X_test : array-like of shape (n_test, n_features)
        Held-out data from the same distribution (not in ``X_train``).

    Returns
    -------
    quality : :class:`~sklearn.utils.Bunch`
        ``train_distance_ratio``, ``test_distance_ratio``, ``coverage_ratio``
        (floats) and the six medians they are made of: ``train_distance``,
        ``test_train_distance``, ``test_distance``, ``train_test_distance``,
        ``coverage``, ``test_train_coverage`` (the last equals
        ``test_train_distance``).

    See Also
    --------
    label_samples : Copy, spurious or novel.

    References
    ----------
    .. [1] C. Meehan, K. Chaudhuri, S. Dasgupta, "A Non-Parametric Test to
       Detect Data-Copying in Generative Models", AISTATS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from skam.diagnostics import sample_quality
    >>> rng = np.random.RandomState(0)
    >>> train, test = rng.randn(200, 2), rng.randn(200, 2)
    >>> fresh = sample_quality(rng.randn(200, 2), train, test)
    >>> bool(0.7 < fresh.train_distance_ratio < 1.4)   # like unseen data
    True
    >>> copies = sample_quality(train[:100] + 1e-3, train, test)
    >>> bool(copies.train_distance_ratio < 0.1)          # copies sit on it
    True
    >>> blur = sample_quality(3 * rng.randn(200, 2), train, test)
    >>> bool(blur.test_distance_ratio > 2)                # off the data
    True
    """
    samples = check_array(samples, input_name="samples")
    X_train = check_array(X_train, input_name="X_train")
    X_test = check_array(X_test, input_name="X_test")
    for name, A in (("X_train", X_train), ("X_test", X_test)):
        if A.shape[1] != samples.shape[1]:
            raise ValueError(
                f"samples has {samples.shape[1]} features but {name} has {A.shape[1]}."
            )
    d_s_train = np.median(_nearest_distance(samples, X_train))
    d_test_train = np.median(_nearest_distance(X_test, X_train))
    d_s_test = np.median(_nearest_distance(samples, X_test))
    d_train_test = np.median(_nearest_distance(X_train, X_test))
    d_cover = np.median(_nearest_distance(X_test, samples))
    for name, d in (
        ("X_test to X_train", d_test_train),
        ("X_train to X_test", d_train_test),
    ):
        if not d > 0:
            raise ValueError(
                f"the median distance from {name} is 0: X_test must be held-out "
                "data, not rows of X_train."
            )
    return Bunch(
        train_distance_ratio=float(d_s_train / d_test_train),
        test_distance_ratio=float(d_s_test / d_train_test),
        coverage_ratio=float(d_cover / d_test_train),
        train_distance=float(d_s_train),
        test_train_distance=float(d_test_train),
        test_distance=float(d_s_test),
        train_test_distance=float(d_train_test),
        coverage=float(d_cover),
        test_train_coverage=float(d_test_train),
    )
