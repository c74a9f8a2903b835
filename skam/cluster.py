"""Clustering with associative memories: :class:`AMClustering` (ClAM)."""

import math
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import silhouette_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array

from skam._backend import to_numpy
from skam._beta import median_nearest_sq_distance, resolve_beta
from skam._chunking import chunk_slices, itemsize, map_chunks, rows_per_chunk
from skam._cluster_training import (
    TrainingSetup,
    basin_labels,
    polish,
    polish_tolerance,
    train,
)
from skam._dask import dask_dispatch
from skam._descent import descend as _descend
from skam._docstrings import fill_doc
from skam._energy import EnergySpec, half_sq_distances, prepare_memories
from skam._progress import Progress
from skam._validation import (
    BACKEND_CONSTRAINT,
    NON_NEGATIVE,
    POSITIVE,
    STABLE_STEP,
    Bounded,
    backend_for,
    check_beta_range,
    check_magnitude,
    remember_namespace,
    validate_fitted_input,
    validate_sample_weight,
    validate_X,
)

# Resolved n_steps above this are rejected: the training keeps every step.
_MAX_STEPS = 10_000
# batch_size="auto": minibatches of this many samples at most (fewer when
# the tape of the unrolled steps would not fit working_memory).
_AUTO_BATCH_MAX = 1024
# init="lloyd": k-means++ seedings drawn (as KMeans's n_init) and Lloyd
# iterations (at most) refining each.
_LLOYD_CANDIDATES = 10
# When the evaluation set is a subsample, the kept restart gets at most this
# many more polish rounds on all samples (each costs one full assignment).
_FULL_DATA_POLISH_ROUNDS = 5
# The polish stops when the centres moved by at most this times the mean
# per-feature variance of the data (sum of squared shifts): KMeans's tol.
_POLISH_TOL = 1e-4
# beta="silhouette": the candidates, as multiples of the "scale" rule, and
# the samples (at most) the silhouette of each is computed on.
_SILHOUETTE_GRID = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
_SILHOUETTE_SAMPLES = 2000
_LLOYD_MAX_ITER = 100
# ... on at most this many samples (or max_samples_per_epoch, if more): a
# smaller subsample than KMeans sees finds worse local optima (sipu s1-s4).
_LLOYD_SAMPLES = 10_000


@dask_dispatch(dask_fit="clustering")
@fill_doc
class AMClustering(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Clustering by energy descent: ClAM, end-to-end differentiable k-means.

    The cluster centres are the memories of a Dense Associative Memory with
    the log-sum-exp energy
    ``E(v) = -(1/beta) log sum_j exp(-beta/2 ||v - c_j||^2)``. Descending
    this energy for ``n_steps`` steps of size ``step_size`` (``step_size * n_steps``
    about 1) contracts every point towards a centre; a point's cluster is the
    centre nearest to where it lands. ``fit`` learns the centres by
    minibatch Adam on ClAM's self-supervised loss: hide a random subset of
    each sample's coordinates, let only those evolve under the descent (the
    visible ones are clamped), and score the squared error of the completed
    coordinates. The gradients through the unrolled descent are exact
    (closed form). The restarts (and the candidate ``beta`` of
    ``beta="silhouette"``) train together, as one batched array, on large
    minibatches, and stop at the first plateau of the loss.

    Read more in the :ref:`User Guide <clustering>`.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters (memories).
    beta : float, "scale" or "silhouette", default="scale"
        Inverse temperature of the energy: the kernel bandwidth is
        ``1/sqrt(beta)`` in data units. Larger values make the basins of
        attraction closer to the Voronoi cells of the centres (k-means);
        smaller values blur them, until basins merge and points collapse
        towards a few centres. ``"scale"`` uses ``32 / r2``, with ``r2`` the
        median squared distance between an initial centre (of the first
        restart) and its nearest other initial centre: at a centre, its nearest
        rival then weighs ``exp(-16)`` of it in the softmax, and the soft zone
        between two centres is about ``r / 16`` wide. The rule follows the
        number of clusters and the scale of the data; ClAM's grid 1.1-2.4 is
        for standardised data with few clusters. ``"silhouette"``: the ClAM
        paper's model selection, which needs no labels: the candidates
        ``"scale"`` times 1/16, 1/8, 1/4, 1/2 and 1 train together (with
        every restart), and the one whose basins have the highest
        :func:`~sklearn.metrics.silhouette_score` on the evaluation set (at
        most 2 000 samples of it) is kept; see ``beta_candidates_`` and
        ``silhouette_scores_``.
    step_size : float, default=0.1
        Step size of the descent.
    n_steps : int or None, default=None
        Number of unrolled descent steps ``T``; None uses
        ``round(1 / step_size)`` (ClAM's ``step_size * T = 1``).
    learning_rate : float, default=0.01
        Initial Adam learning rate, in units of ``sqrt(r2)`` (the typical
        distance between neighbouring initial centres, see ``beta``): Adam
        moves each centre by about ``learning_rate * sqrt(r2)`` per step, so
        the same value suits 3 clusters of standardised data and 100 small
        clusters.
    batch_size : int or "auto", default="auto"
        Samples per minibatch. ``"auto"``: 1 024 samples at most (one
        minibatch per epoch for smaller data sets), fewer when the states
        the training keeps of every unrolled step would not fit scikit-learn's
        ``working_memory``. ClAM uses 8: far more Adam steps, each of which
        costs about as much Python overhead as a large one.
    max_epochs : int, default=200
        Maximum number of epochs of each restart. 0 skips the ClAM training:
        the centres are then the Lloyd start (``init``) after the basin
        polish.
    max_samples_per_epoch : int or None, default=4096
        Samples visited per epoch: when the data set is larger, each epoch
        draws a fresh random subset of this size, so that the cost of fitting
        grows with the number of clusters and features but hardly with the
        number of samples. None visits every sample every epoch.
    mask_prob : float, default=0.2
        Fraction of the coordinates hidden in each sample:
        ``int(mask_prob * n_features)`` of them (ClAM's rule), at most
        ``n_features - 1``. When that is 0 (fewer than 5 features at the
        default), or with ``mask_prob=0``, nothing is hidden: every
        coordinate evolves and the loss is the plain contraction loss
        ``||x - f(x)||^2`` (ClAM's surrogate of k-means).
    mask_value : {"mean", "min", "max"}, default="mean"
        Value written into the hidden coordinates: the (weighted) per-feature
        mean, minimum or maximum of the training data.
    mask_cycle : int, default=3
        Every ``mask_cycle``-th epoch one mask is shared by the whole
        minibatch (ClAM's schedule); 0 never shares masks.
    init : {"lloyd", "k-means++", "random"} or array-like of shape (n_clusters, n_features), default="lloyd"
        Initial centres. ``"lloyd"``: 10 k-means++ seedings
        (:func:`sklearn.cluster.kmeans_plusplus`, as many as
        :class:`~sklearn.cluster.KMeans` draws by default; ``n_init`` if more),
        each refined by Lloyd iterations on at most
        ``max(max_samples_per_epoch, 10000)`` samples; the ``n_init`` restarts
        start from those of lowest k-means
        objective (with ``n_init=1``, one ``KMeans(n_init=10)`` fit). ``"k-means++"``: one k-means++
        seeding per restart.
        ``"random"``: random samples. Given centres are used for a single
        restart (``n_init`` is then ignored).
    n_init : int, default=1
        Number of restarts from different initial centres. They train
        together (one batched array: the same minibatches and masks, one
        learning-rate schedule each) and are polished (``n_polish``); the
        one whose descent basins have the lowest k-means objective on one
        fixed evaluation set (at most ``max_samples_per_epoch`` samples) is
        kept. The default ``init="lloyd"`` already picks the best of 10
        k-means++ seedings, as :class:`~sklearn.cluster.KMeans` does.
    n_polish : int, default=20
        Fixed-point polish after training: at most this many rounds of
        "assign every sample of the evaluation set to its descent basin, move
        each centre to the (weighted) mean of its basin", stopping early when
        the basins no longer change or the centres moved by at most ``1e-4``
        times the mean per-feature variance of the data (the sum of their
        squared shifts: :class:`~sklearn.cluster.KMeans`'s ``tol``). Within
        a round, a sample whose softmax weight is already at least
        ``1 - 1e-6`` on one centre after the first descent step goes to that
        centre without the other steps. The labels still come from the
        descent basins of the memory; the polish removes the small bias of
        the stochastic, masked training. The kept restart is then polished
        on all samples (in the dtype of ``X``) for at most
        ``min(n_polish, 5)`` more rounds, and the labels are its exact
        descent basins. Each start, polished the same way without the
        training, competes with its trained restart (see
        ``training_kept_``): the training is kept only where it lowers the
        k-means objective. 0 keeps the trained centres.
    lr_decay : float, default=0.8
        Factor applied to the learning rate on a loss plateau. A restart
        stops once its learning rate has decayed below 0.9 of its initial
        value: at the first plateau with the default (early stopping).
    patience : int, default=1
        A plateau is ``patience`` epochs in a row in which the monitored loss
        did not improve on its best value by a relative ``tol``. The
        monitored loss is the masked loss of at most 512 fixed samples with
        fixed masks, after each epoch: it has none of the noise of the
        random masks and minibatches. A restart also stops once the descent
        basins of those samples have not changed for ``patience`` epochs in
        a row (the training no longer changes their clustering), and
        training stops at ``max_epochs``.
    tol : float, default=1e-2
        Relative improvement of the monitored loss that counts as progress.
    verbose : int, default=0
        0 is silent; 1 prints a progress line (epochs done of the budget,
        loss, learning rate, elapsed time, an upper estimate of the time
        left) at most every 2 seconds, one line per restart (its k-means
        objective on the evaluation subset that restarts are compared on)
        and ``inertia_`` on all samples at the end; 2 prints every epoch.
        With tqdm installed and a terminal attached, a progress bar replaces
        the epoch lines.
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The learned centres (the memories).
    labels_ : ndarray of shape (n_samples,), dtype=int64
        Cluster of each training sample (as :meth:`predict`).
    inertia_ : float
        k-means objective of ``labels_``: the sample-weighted sum of squared
        distances of the training samples to their cluster centre.
    beta_ : float
        The inverse temperature used (``beta`` resolved).
    n_steps_ : int
        The number of descent steps used (``n_steps`` resolved).
    n_iter_ : int
        Epochs run by the kept restart (``partial_fit``: the number of
        calls).
    loss_curve_ : list of float
        Training loss of each epoch of the kept restart (mean squared error
        per coordinate of the hidden coordinates, sample-weighted).
    training_kept_ : bool
        Whether the kept centres are the trained ones. With ``n_polish > 0``
        (and ``max_epochs > 0``), each restart's start, polished but not
        trained, competes with the trained restart on the evaluation set's
        k-means objective; False when the start won (the training did not
        lower the objective).
    beta_candidates_ : ndarray of shape (5,) or None
        With ``beta="silhouette"``: the candidate inverse temperatures.
        None otherwise.
    silhouette_scores_ : ndarray of shape (5,) or None
        With ``beta="silhouette"``: the silhouette of each candidate's
        basins (its best restart) on the evaluation set. None otherwise.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    sklearn.cluster.KMeans : Lloyd's k-means, the objective ClAM relaxes.
    skam.DenseAM : The associative memory whose descent ClAM unrolls.

    Notes
    -----
    With ``step_size * n_steps = 1`` and a large ``beta``, the unmasked loss of a
    point is about ``(1 - (1 - step_size)**n_steps)**2`` times its squared
    distance to its nearest centre: a scaled k-means objective, relaxed near
    the boundaries between clusters. Smaller ``beta`` and the masked loss give
    smoother, non-Voronoi basins. The cost of an epoch is
    ``O(n_init * epoch_size * n_clusters * n_features * n_steps)``; with the
    Lloyd start, training usually stops after a few epochs (the k-means start
    is close to a minimum of the loss). ``predict`` costs ``n_steps``
    descent steps per sample. Empty clusters
    are handled twice: during training a centre that attracts (almost) no
    softmax weight for a whole epoch is moved to a sample far from every
    centre (drawn as in k-means++), and after training a centre left without
    any sample is moved onto the sample farthest from the centre it descended
    to (as :class:`~sklearn.cluster.KMeans` relocates empty clusters).

    Precision: the training and the restarts' polish compute in float32, on
    the data minus its mean (translation changes neither; the centring keeps
    the float32 logits accurate, as :class:`~sklearn.cluster.KMeans` centres
    its data); the polish on all samples, ``labels_``, ``inertia_`` and every
    fitted method compute in the dtype of ``X``.

    The masked coordinates are drawn without replacement among all features
    (the official code draws ``int(0.2 * d)`` with replacement among the last
    ``d - 1``).

    References
    ----------
    .. [1] B. Saha, D. Krotov, M. J. Zaki, P. Ram, "End-to-end Differentiable
       Clustering with Associative Memories", ICML 2023.
    .. [2] D. Krotov, B. Hoover, P. Ram, B. Pham, "Modern Methods in
       Associative Memory", arXiv:2507.06211, 2025, Section 5.3.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from skam.cluster import AMClustering
    >>> X, y = make_blobs(n_samples=300, centers=3, cluster_std=0.8, random_state=1)
    >>> am = AMClustering(n_clusters=3, random_state=0).fit(X)
    >>> am.cluster_centers_.shape
    (3, 2)
    >>> round(float(adjusted_rand_score(y, am.labels_)), 2)
    0.99
    >>> am.transform(X[:2]).shape           # distances to the 3 centres
    (2, 3)
    >>> am.contract(X[:2]).shape            # the points after the descent
    (2, 2)
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "beta": [StrOptions({"scale", "silhouette"}), POSITIVE],
        "step_size": [STABLE_STEP],
        "n_steps": [
            Bounded(
                Integral,
                1,
                _MAX_STEPS,
                closed="both",
                reason="the training keeps the states of every step",
            ),
            None,
        ],
        "learning_rate": [POSITIVE],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "max_samples_per_epoch": [Interval(Integral, 1, None, closed="left"), None],
        "mask_prob": [Interval(Real, 0, 1, closed="left")],
        "mask_value": [StrOptions({"mean", "min", "max"})],
        "mask_cycle": [Interval(Integral, 0, None, closed="left")],
        "init": [StrOptions({"k-means++", "lloyd", "random"}), "array-like"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "n_polish": [Interval(Integral, 0, None, closed="left")],
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "tol": [NON_NEGATIVE],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        beta="scale",
        step_size=0.1,
        n_steps=None,
        learning_rate=0.01,
        batch_size="auto",
        max_epochs=200,
        max_samples_per_epoch=4096,
        mask_prob=0.2,
        mask_value="mean",
        mask_cycle=3,
        init="lloyd",
        n_init=1,
        n_polish=20,
        lr_decay=0.8,
        patience=1,
        tol=1e-2,
        verbose=0,
        random_state=None,
        backend="numpy",
    ):
        self.n_clusters = n_clusters
        self.beta = beta
        self.step_size = step_size
        self.n_steps = n_steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_samples_per_epoch = max_samples_per_epoch
        self.mask_prob = mask_prob
        self.mask_value = mask_value
        self.mask_cycle = mask_cycle
        self.init = init
        self.n_init = n_init
        self.n_polish = n_polish
        self.lr_decay = lr_decay
        self.patience = patience
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.backend = backend

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Learn the cluster centres by descent through the unrolled memory.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples (standardise them first, e.g. in a
            :class:`~sklearn.pipeline.Pipeline` with
            :class:`~sklearn.preprocessing.StandardScaler`, when features have
            different units).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the k-means++ seeding, the loss, the fill
            values and ``inertia_``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        n, d = X.shape
        if n < self.n_clusters:
            raise ValueError(
                f"X has {n} samples, fewer than n_clusters={self.n_clusters}."
            )
        backend, sw, Xc, weights = self._training_data(X, sample_weight)
        xp, dtype = backend.xp, Xc.dtype
        rng = check_random_state(self.random_state)
        X_host = to_numpy(X)
        sw_host = None if sw is None else to_numpy(sw)
        inits = self._initial_centres(X_host, sw_host, rng)
        first = backend.to_compute(xp.asarray(inits[0], device=backend.device), dtype)
        betas = self._candidate_betas(first)
        for beta in betas:
            check_beta_range(beta, Xc)
        self.n_steps_ = self._resolved_n_steps()
        # every (beta, restart) pair is one slice of the batched training
        n_init = len(inits)
        starts = backend.to_compute(
            xp.asarray(np.stack(inits * len(betas)), device=backend.device), dtype
        )
        row_betas = np.repeat(np.asarray(betas, dtype=np.float64), n_init)
        # the training and the restarts' polish run on a float32 copy of the
        # centred data (translation changes none of them); the polish on all
        # samples and the labels run on the data itself
        offset = xp.mean(Xc, axis=0)
        Xw = xp.astype(Xc - offset, xp.float32)
        ww = None if weights is None else xp.astype(weights, xp.float32)
        starts_w = xp.astype(starts - offset, xp.float32)
        setup = self._setup(
            Xw, ww, backend, beta=row_betas, lr_scale=_centre_spacing(first)
        )
        progress = Progress(type(self).__name__, setup.max_epochs, self.verbose)
        setup = replace(setup, progress=progress)
        result = train(Xw, ww, starts_w, rng, setup)
        # restarts are polished and compared on one fixed subset
        X_eval, w_eval, eval_rows = _evaluation_set(Xw, ww, rng, setup)
        kw = dict(step_size=setup.step_size, n_steps=self.n_steps_)
        candidates, cand_betas = result.centres, row_betas
        guard = self.n_polish > 0 and self.max_epochs > 0
        if guard:  # the polished starts compete with the trained restarts
            candidates = xp.concat([result.centres, starts_w], axis=0)
            cand_betas = np.concatenate([row_betas, row_betas])
        shift_tol = polish_tolerance(Xc, _POLISH_TOL, xp)
        centres, labels = polish(
            X_eval,
            w_eval,
            candidates,
            cand_betas,
            xp,
            rounds=self.n_polish,
            tol=shift_tol,
            **kw,
        )
        objectives = [
            float(_inertia(X_eval, centres[r, ...], labels[r, ...], w_eval, xp))
            for r in range(centres.shape[0])
        ]
        groups = np.tile(np.repeat(np.arange(len(betas)), n_init), 1 + guard)
        X_sil = X_host if eval_rows is None else X_host[eval_rows]
        best = self._select(objectives, groups, labels, X_sil, betas, rng)
        R = starts.shape[0]
        for r in range(len(objectives)):
            what = f"restart {r % n_init + 1}/{n_init}"
            if len(betas) > 1:
                what += f" (beta {cand_betas[r]:.4g})"
            if r >= R:
                what += ", its start untrained"
            self._report(progress, what, objectives[r], result, r % R, X_eval)
        self.training_kept_ = bool(best < R) and self.max_epochs > 0
        self.beta_ = float(cand_betas[best])
        centres = xp.astype(centres[best, ...], dtype) + offset
        best = best % R  # the restart of the kept candidate
        rounds = min(self.n_polish, _FULL_DATA_POLISH_ROUNDS)
        centres, labels = self._polish(backend, Xc, weights, centres, rounds, shift_tol)
        centres, labels = self._relocate_empty(backend, Xc, weights, centres, labels)
        self.cluster_centers_ = backend.to_output(centres)
        self.labels_ = backend.to_output(labels)
        raw_weights = None if sw is None else backend.to_compute(sw, dtype)
        self.inertia_ = float(_inertia(Xc, centres, labels, raw_weights, xp))
        self.n_iter_ = result.n_epochs[best]
        self.loss_curve_ = list(result.loss_curves[best])
        self._n_features_out = self.n_clusters
        # what a later partial_fit continues from
        m, v, t = result.optimizer
        self._partial_adam = (
            backend.to_output(m[best, ...]),
            backend.to_output(v[best, ...]),
            t,
        )
        self._partial_lr_scale = setup.learning_rate / float(self.learning_rate)
        self._partial_stats = _FillStats(d)
        self._partial_stats.update(
            np.asarray(X_host, dtype=np.float64),
            None if sw_host is None else np.asarray(sw_host, dtype=np.float64),
        )
        self._partial_rng = rng
        progress.close(
            f"done: inertia_ {self.inertia_:.6g} on all {n} samples, "
            f"{self.n_iter_} epochs in the kept restart"
        )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centres with one epoch of ClAM training on a batch.

        The first call initialises the model from this batch as ``fit``
        would (``init``; one restart, so ``n_init`` is ignored; ``beta`` and
        the step count resolved); each call then runs one epoch of minibatch
        Adam on the batch's masked loss, continuing the optimiser's moments
        and step count of the previous calls. The fill values of the hidden
        coordinates are running statistics of all batches seen. There is no
        basin polish and no early stopping (each call is one epoch):
        ``labels_`` and ``inertia_`` are those of the last batch, as in
        :class:`~sklearn.cluster.MiniBatchKMeans`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training samples; the first one needs at least
            ``n_clusters`` samples, and every later one the features (and
            feature names) of the first.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the seeding, the loss, the fill values
            and ``inertia_``.

        Returns
        -------
        self : object
            The updated estimator.
        """
        first = not hasattr(self, "cluster_centers_")
        X = validate_X(self, X, reset=first, method="partial_fit")
        if first:
            remember_namespace(self, X)
        n, d = X.shape
        backend, sw, Xc, weights = self._training_data(X, sample_weight)
        xp, dtype = backend.xp, Xc.dtype
        rng = getattr(self, "_partial_rng", None)
        if rng is None:
            rng = self._partial_rng = check_random_state(self.random_state)
        X_host = np.asarray(to_numpy(X), dtype=np.float64)
        sw_host = None if sw is None else np.asarray(to_numpy(sw), dtype=np.float64)
        if first:
            if self.beta == "silhouette":
                raise ValueError(
                    "beta='silhouette' selects beta on the whole training set; "
                    "partial_fit needs a fixed beta (a float or 'scale')."
                )
            if n < self.n_clusters:
                raise ValueError(
                    f"The first batch has {n} samples, fewer than "
                    f"n_clusters={self.n_clusters}."
                )
            init = self._initial_centres(X_host, sw_host, rng)[0]
            centres = backend.to_compute(xp.asarray(init, device=backend.device), dtype)
            self.beta_ = resolve_beta(self.beta, centres, rule="spacing")
            self.n_steps_ = self._resolved_n_steps()
            self._partial_lr_scale = _centre_spacing(centres)
            self._partial_stats = _FillStats(d)
            self._partial_adam = None
            self.n_iter_ = 0
            self.loss_curve_ = []
            self.beta_candidates_ = self.silhouette_scores_ = None
            self.training_kept_ = True
        else:
            centres = self._fitted_centres(backend, dtype)
        check_beta_range(self.beta_, Xc)
        self._partial_stats.update(X_host, sw_host)
        setup = self._setup(
            Xc, weights, backend, beta=[self.beta_], lr_scale=self._partial_lr_scale
        )
        fill = self._partial_stats.fill(self.mask_value)
        setup = replace(
            setup,
            max_epochs=1,
            reseed_last=True,
            fill=backend.to_compute(xp.asarray(fill, device=backend.device), dtype),
        )
        state = None
        if self._partial_adam is not None:
            m, v, t = self._partial_adam
            state = (backend.to_compute(m, dtype), backend.to_compute(v, dtype), t)
        result = train(Xc, weights, centres[None, ...], rng, setup, optimizer=state)
        m, v, t = result.optimizer
        self._partial_adam = (backend.to_output(m), backend.to_output(v), t)
        centres = result.centres[0, ...]
        labels = self._assign(backend, Xc, centres)
        self.cluster_centers_ = backend.to_output(centres)
        self.labels_ = backend.to_output(labels)
        raw_weights = None if sw is None else backend.to_compute(sw, dtype)
        self.inertia_ = float(_inertia(Xc, centres, labels, raw_weights, xp))
        self.n_iter_ += 1
        self.loss_curve_.append(result.loss_curves[0][0])
        self._n_features_out = self.n_clusters
        return self

    def _training_data(self, X, sample_weight):
        """Backend, validated weights, compute-namespace data, normalised weights."""
        self._check_schedule()
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        Xc = backend.to_compute(X)
        weights = None if sw is None else backend.to_compute(sw, Xc.dtype)
        if weights is not None:  # mean one
            weights = weights / backend.xp.mean(weights)
        return backend, sw, Xc, weights

    def _candidate_betas(self, first):
        """The inverse temperatures to train: one, or the silhouette grid."""
        if self.beta == "silhouette":
            scale = resolve_beta("scale", first, rule="spacing")
            return [scale * m for m in _SILHOUETTE_GRID]
        return [resolve_beta(self.beta, first, rule="spacing")]

    def _select(self, objectives, groups, labels, X_eval, betas, rng):
        """Row of the kept candidate: lowest objective per beta, then silhouette.

        ``X_eval``: the evaluation samples (host, the input's values).
        """
        objectives = np.asarray(objectives)
        kept = []
        for g in range(len(betas)):
            rows = np.flatnonzero(groups == g)
            kept.append(int(rows[np.argmin(objectives[rows])]))
        if len(betas) == 1:
            self.beta_candidates_ = None
            self.silhouette_scores_ = None
            return int(kept[0])
        X_host = np.asarray(to_numpy(X_eval), dtype=np.float64)
        size = min(X_host.shape[0], _SILHOUETTE_SAMPLES)
        seed = rng.randint(np.iinfo(np.int32).max)
        scores = []
        for r in kept:
            lab = np.asarray(to_numpy(labels[int(r), ...]))
            if not 1 < np.unique(lab).size < X_host.shape[0]:
                scores.append(-1.0)
                continue
            scores.append(
                float(
                    silhouette_score(X_host, lab, sample_size=size, random_state=seed)
                )
            )
        self.beta_candidates_ = np.asarray(betas, dtype=np.float64)
        self.silhouette_scores_ = np.asarray(scores)
        return int(kept[int(np.argmax(scores))])

    def _resolved_n_steps(self):
        if self.n_steps is not None:
            return int(self.n_steps)
        inverse = 1.0 / self.step_size
        if not inverse <= 10 * _MAX_STEPS:  # inf for subnormal steps
            return 10 * _MAX_STEPS + 1
        return max(1, round(inverse))

    def _check_schedule(self):
        """Cross-parameter checks (the constraints check one at a time)."""
        n_steps = self._resolved_n_steps()
        if n_steps > _MAX_STEPS:
            raise ValueError(
                f"step_size={self.step_size:g} gives n_steps = round(1 / step_size) "
                f"= {1.0 / self.step_size:.3g} unrolled descent steps, more than "
                f"{_MAX_STEPS} (the training keeps every step); use step_size >= "
                f"{1 / _MAX_STEPS:g} or set n_steps."
            )
        if (
            self.max_samples_per_epoch is not None
            and self.max_samples_per_epoch < self.n_clusters
        ):
            raise ValueError(
                f"max_samples_per_epoch={self.max_samples_per_epoch} is smaller "
                f"than n_clusters={self.n_clusters}: an epoch must see at least "
                "one sample per cluster."
            )

    def _initial_centres(self, X_host, sw_host, rng):
        """Host arrays of initial centres, one per restart."""
        K = self.n_clusters
        if not isinstance(self.init, str):
            init = check_array(to_numpy(self.init), dtype=np.float64, input_name="init")
            check_magnitude(init, "init")
            if init.shape != (K, X_host.shape[1]):
                raise ValueError(
                    f"init should be of shape ({K}, {X_host.shape[1]}), got "
                    f"{init.shape}."
                )
            return [init]
        if self.init == "lloyd":
            limit = self.max_samples_per_epoch
            if limit is not None:  # Lloyd is cheap: seed on more samples
                limit = max(limit, _LLOYD_SAMPLES)
            return _lloyd_candidates(X_host, sw_host, K, self.n_init, limit, rng)
        inits = []
        for _ in range(self.n_init):
            if self.init == "k-means++":
                centres, _ = kmeans_plusplus(
                    X_host, K, sample_weight=sw_host, random_state=rng
                )
            else:
                p = None if sw_host is None else sw_host / sw_host.sum()
                positive = X_host.shape[0] if p is None else int((p > 0).sum())
                idx = rng.choice(X_host.shape[0], size=K, replace=positive < K, p=p)
                centres = X_host[idx]
            inits.append(np.asarray(centres, dtype=np.float64))
        return inits

    def _report(self, progress, what, objective, result, r, X_eval):
        reseeded = result.n_reseeded[r]
        reseeded = f", {reseeded} centres re-seeded" if reseeded else ""
        epochs = "" if "untrained" in what else f" after {result.n_epochs[r]} epochs"
        progress.note(
            f"{what}: k-means objective {objective:.6g} on the {X_eval.shape[0]} "
            f"evaluation samples{epochs}{reseeded}"
        )

    def _polish(self, backend, Xc, weights, centres, rounds, tol):
        """Fixed-point polish on all samples: centres move to their basin means.

        The rounds as :func:`skam._cluster_training.polish` (screened
        assignments, KMeans's centre-shift tolerance ``tol``). Returns the
        centres and the exact basin labels of those centres.
        """
        xp = backend.xp
        if rounds == 0:
            return centres, self._assign(backend, Xc, centres)
        kw = dict(step_size=float(self.step_size), n_steps=self.n_steps_)
        labels = basin_labels(Xc, centres[None, ...], self.beta_, xp, screen=True, **kw)
        for _ in range(rounds):
            new = _basin_means(Xc, labels[0, ...], weights, centres, xp)
            shift = float(xp.sum((new - centres) ** 2))
            centres = new
            if shift <= tol:
                break
            new_labels = basin_labels(
                Xc, centres[None, ...], self.beta_, xp, screen=True, **kw
            )
            converged = bool(xp.all(new_labels == labels))
            labels = new_labels
            if converged:
                break
        return centres, self._assign(backend, Xc, centres)

    def _setup(self, Xc, weights, backend, *, beta, lr_scale):
        xp = backend.xp
        n, d = Xc.shape
        epoch_size = n
        if self.max_samples_per_epoch is not None:
            epoch_size = min(n, self.max_samples_per_epoch)
        if self.batch_size == "auto":
            # the training keeps, per row and restart, the states, pulled
            # means and softmax weights of every step
            R, T, K = len(beta), self.n_steps_, self.n_clusters
            row_bytes = R * (T + 3) * (2 * d + K) * itemsize(Xc)
            batch_size = rows_per_chunk(
                epoch_size, row_bytes, max_rows=_AUTO_BATCH_MAX, min_rows=1
            )
        else:
            batch_size = self.batch_size
        n_masked = min(d - 1, int(self.mask_prob * d))
        return TrainingSetup(
            xp=xp,
            device=array_device(Xc),
            beta=beta,
            step_size=float(self.step_size),
            n_steps=self.n_steps_,
            learning_rate=float(self.learning_rate) * lr_scale,
            batch_size=int(min(batch_size, epoch_size)),
            max_epochs=self.max_epochs,
            epoch_size=epoch_size,
            n_masked=n_masked,
            fill=_fill_values(Xc, weights, self.mask_value, xp),
            mask_cycle=self.mask_cycle,
            lr_decay=float(self.lr_decay),
            patience=self.patience,
            tol=float(self.tol),
        )

    # ------------------------------------------------------------ inference
    def _spec(self):
        return EnergySpec(separation="lse", similarity="sqeuclidean", beta=self.beta_)

    def _contract(self, backend, Xc, centres):
        """The engine's unmasked descent for ``n_steps_`` steps."""
        memories = prepare_memories(centres, backend.xp)
        return _descend(
            Xc,
            memories,
            self._spec(),
            backend.xp,
            step_size=float(self.step_size),
            max_iter=self.n_steps_,
            tol=0.0,
        ).states

    def _assign(self, backend, Xc, centres):
        """Nearest centre to the contracted point of each sample.

        The batched descent of the training (one restart), chunked within
        ``working_memory``: the same labels as the engine's descent
        (:meth:`contract`) followed by the nearest centre, without the
        energies the engine also computes.
        """
        labels = basin_labels(
            Xc,
            centres[None, ...],
            self.beta_,
            backend.xp,
            step_size=float(self.step_size),
            n_steps=self.n_steps_,
        )
        return labels[0, ...]

    def _relocate_empty(self, backend, Xc, weights, centres, labels):
        """Move centres without samples onto far samples (KMeans-style)."""
        xp = backend.xp
        K = centres.shape[0]
        counts = to_numpy(_bincount(labels, K, xp))
        empty = np.flatnonzero(counts == 0)
        if empty.size == 0 or Xc.shape[0] < K:
            return centres, labels
        far = self._far_scores(backend, Xc, weights, centres, labels)
        donors = np.argsort(-far, kind="stable")[: empty.size]
        source = np.arange(K)
        source[empty] = K + np.arange(empty.size)
        stacked = xp.concat(
            [centres, xp.take(Xc, xp.asarray(donors, device=array_device(Xc)), axis=0)]
        )
        centres = xp.take(stacked, xp.asarray(source, device=array_device(Xc)), axis=0)
        return centres, self._assign(backend, Xc, centres)

    def _far_scores(self, backend, Xc, weights, centres, labels):
        """Host scores of the samples as donors for empty clusters (-inf: none)."""
        xp = backend.xp
        contracted = self._contract(backend, Xc, centres)
        own = xp.take(centres, labels, axis=0)
        far = to_numpy(xp.sum((contracted - own) ** 2, axis=1))
        far = far + to_numpy(xp.sum((Xc - own) ** 2, axis=1))
        if weights is not None:
            far = np.where(to_numpy(weights) > 0, far, -np.inf)
        return far

    def _fitted_centres(self, backend, dtype):
        return backend.to_compute(self.cluster_centers_, dtype)

    def predict(self, X):
        """Cluster of each sample: the centre nearest to its contracted point.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype=int64
            Index of the cluster each sample belongs to.
        """
        backend, Xc, centres = self._fitted_input(X, "predict")
        return backend.to_output(self._assign(backend, Xc, centres))

    def contract(self, X):
        """Descend the energy from each sample: the contracted points.

        ``n_steps_`` unmasked steps of size ``step_size`` (partial contraction
        when ``step_size * n_steps < 1`` or ``beta`` is small; the DCAM use).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        X_contracted : ndarray of shape (n_samples, n_features)
            The states reached, in the dtype of ``X``.
        """
        backend, Xc, centres = self._fitted_input(X, "contract")
        return backend.to_output(self._contract(backend, Xc, centres))

    def transform(self, X):
        """Euclidean distances of each sample to every centre (as KMeans).

        The distances are those of the samples themselves; ``predict`` uses
        the contracted points (``transform(contract(X))``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_clusters)
            Distances to the cluster centres, in the dtype of ``X``.
        """
        backend, Xc, centres = self._fitted_input(X, "transform")
        xp = backend.xp
        memories = prepare_memories(centres, xp)
        distances = map_chunks(
            lambda sl: xp.sqrt(2.0 * half_sq_distances(Xc[sl, :], memories, xp)),
            Xc.shape[0],
            3 * self.n_clusters * itemsize(Xc),
            xp,
        )
        return backend.to_output(distances)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the k-means objective of ``X`` under :meth:`predict`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample.

        Returns
        -------
        score : float
            Minus the weighted sum of squared distances of the samples to the
            centre of their cluster (higher is better).
        """
        backend, Xc, centres = self._fitted_input(X, "score")
        xp = backend.xp
        sw = validate_sample_weight(sample_weight, Xc, backend)
        w = None if sw is None else backend.to_compute(sw, Xc.dtype)
        labels = self._assign(backend, Xc, centres)
        return -float(_inertia(Xc, centres, labels, w, xp))

    def _fitted_input(self, X, method):
        """The preamble of every fitted method: ``(backend, Xc, centres)``."""
        X, backend = validate_fitted_input(self, X, method)
        Xc = backend.to_compute(X)
        return backend, Xc, self._fitted_centres(backend, Xc.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def _centre_spacing(centres):
    """Typical distance from a centre to its nearest other centre (> 0).

    ``sqrt`` of the median squared nearest-other distance of the (small)
    initial centres, computed on the rescaled centres (finite for any
    magnitude); 1.0 when undefined (one centre, or all centres equal).
    """
    xp = array_namespace(centres)
    scale = float(xp.max(xp.abs(centres - xp.mean(centres, axis=0)[None, :])))
    if not scale > 0:
        return 1.0
    r2 = median_nearest_sq_distance(centres / scale)
    return math.sqrt(r2) * scale if r2 > 0 else 1.0


def _evaluation_set(Xc, weights, rng, setup):
    """At most ``epoch_size`` samples to polish and compare restarts.

    Returns the samples, their weights and their host row numbers (None: all).
    """
    xp = setup.xp
    n, d = Xc.shape
    rows = None
    if setup.epoch_size < n:
        rows = np.sort(rng.choice(n, size=setup.epoch_size, replace=False))
        idx = xp.asarray(rows, device=setup.device)
        Xc = xp.take(Xc, idx, axis=0)
        weights = None if weights is None else xp.take(weights, idx, axis=0)
    return Xc, weights, rows


class _FillStats:
    """Running (weighted) mean, minimum and maximum of the batches seen."""

    def __init__(self, d):
        self.total = np.zeros(d)
        self.weight = 0.0
        self.low = np.full(d, np.inf)
        self.high = np.full(d, -np.inf)

    def update(self, X, sw):
        w = np.ones(X.shape[0]) if sw is None else sw
        self.total = self.total + w @ X
        self.weight += float(w.sum())
        self.low = np.minimum(self.low, X.min(axis=0))
        self.high = np.maximum(self.high, X.max(axis=0))

    def fill(self, mask_value):
        if mask_value == "min":
            return self.low
        if mask_value == "max":
            return self.high
        return self.total / self.weight if self.weight > 0 else self.total


def _fill_values(Xc, weights, mask_value, xp):
    if mask_value == "min":
        return xp.min(Xc, axis=0)
    if mask_value == "max":
        return xp.max(Xc, axis=0)
    if weights is None:
        return xp.mean(Xc, axis=0)
    return xp.sum(Xc * weights[:, None], axis=0) / xp.sum(weights)


def _bincount(labels, K, xp):
    ks = xp.arange(K, dtype=labels.dtype, device=array_device(labels))
    total = xp.zeros((K,), dtype=xp.int64, device=array_device(labels))
    for sl in chunk_slices(labels.shape[0], 8 * K):  # one (chunk, K) int64 block
        hits = labels[sl][:, None] == ks[None, :]
        total = total + xp.sum(xp.astype(hits, xp.int64), axis=0)
    return total


def _lloyd_candidates(X, sw, K, n_keep, max_samples, rng):
    """The ``n_keep`` best of k-means++ seedings refined by Lloyd iterations.

    Host computation on at most ``max_samples`` samples (the initial centres
    only; the clustering itself is ClAM's).
    """
    n = X.shape[0]
    if max_samples is not None and n > max_samples:
        idx = rng.choice(n, size=max_samples, replace=False)
        X = X[idx]
        sw = None if sw is None else sw[idx]
    X = np.asarray(X, dtype=np.float64)
    sw = None if sw is None else np.asarray(sw, dtype=np.float64)
    if n_keep == 1:  # the best of the seedings is KMeans's own selection
        best = KMeans(
            K,
            n_init=_LLOYD_CANDIDATES,
            max_iter=_LLOYD_MAX_ITER,
            random_state=rng,
        ).fit(X, sample_weight=sw)
        return [best.cluster_centers_]
    found = []
    for _ in range(max(n_keep, _LLOYD_CANDIDATES)):
        centres, _ = kmeans_plusplus(X, K, sample_weight=sw, random_state=rng)
        # scikit-learn's Lloyd iterations from these seeds; tol=0 runs them
        # until the assignment stops changing (or _LLOYD_MAX_ITER)
        lloyd = KMeans(
            K, init=centres, n_init=1, max_iter=_LLOYD_MAX_ITER, tol=0.0
        ).fit(X, sample_weight=sw)
        found.append((float(lloyd.inertia_), lloyd.cluster_centers_))
    found.sort(key=lambda item: item[0])
    return [centres for _, centres in found[:n_keep]]


def _basin_means(Xc, labels, weights, centres, xp):
    """Weighted mean of the samples of each cluster; empty ones keep their centre."""
    sums, counts = _basin_sums(Xc, labels, weights, centres, xp)
    return _finish_basin_means(sums, counts, centres, xp)


def _basin_sums(Xc, labels, weights, centres, xp):
    """Per cluster: weighted sum and total weight of its samples (mergeable)."""
    K = centres.shape[0]
    ks = xp.arange(K, dtype=labels.dtype, device=array_device(labels))
    sums = xp.zeros_like(centres)
    counts = xp.zeros((K,), dtype=Xc.dtype, device=array_device(Xc))
    for sl in chunk_slices(Xc.shape[0], K * itemsize(Xc)):  # the one-hot block
        onehot = xp.astype(labels[sl][:, None] == ks[None, :], Xc.dtype)
        if weights is not None:
            onehot = onehot * weights[sl][:, None]
        sums = sums + onehot.T @ Xc[sl, :]
        counts = counts + xp.sum(onehot, axis=0)
    return sums, counts


def _finish_basin_means(sums, counts, centres, xp):
    filled = counts > 0
    safe = xp.where(filled, counts, xp.ones_like(counts))
    return xp.where(filled[:, None], sums / safe[:, None], centres)


def _inertia(Xc, centres, labels, weights, xp):
    own = xp.take(centres, labels, axis=0)
    sq = xp.sum((Xc - own) ** 2, axis=1)
    if weights is not None:
        sq = sq * weights
    return xp.sum(sq)
