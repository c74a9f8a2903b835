"""Supervised Dense Associative Memories: :class:`DenseAMClassifier` and
:class:`DenseAMRegressor` (label neurons, Krotov et al. 2025, section 5.2)."""

import math

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import _check_y, check_consistent_length

from skam._backend import to_numpy
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._supervised_base import (
    SUPERVISED_CONSTRAINTS,
    LabelNeuronAM,
    normalise_label_neurons,
)
from skam._supervised_training import (
    LabelNeuronModel,
    class_label_logits,
    memories_per_class,
    regression_memories,
    split_validation,
    train,
)
from skam._targets import (
    decode_classes,
    encode_classes,
    host_y,
    place_classes,
    require_y,
    validate_class_labels,
)
from skam._validation import (
    append_sample_weight,
    backend_for,
    check_beta_range,
    make_spec,
    remember_namespace,
    validate_fitted_input,
    validate_sample_weight,
    validate_X,
)


def _weights_on_host(sample_weight, n, dtype):
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
    return np.asarray(to_numpy(sample_weight), dtype=dtype)


def _nonparametric(estimator):
    """``partial_fit`` exists only where the model is incremental: with
    ``mode="nonparametric"`` the memories are the samples, so adding samples
    is exact; parametric memories are learned by ``fit`` over all the data."""
    return estimator.mode == "nonparametric"


def _stored_and_new(estimator, X, sample_weight):
    """Stored feature rows and weights followed by the new ones (X's namespace).

    Returns ``(X_all, sw_all, n_stored)``; ``sw_all`` is None when neither the
    stored memories nor the new rows are weighted.
    """
    backend = backend_for(estimator, X)
    sw = validate_sample_weight(sample_weight, X, backend)
    if not hasattr(estimator, "memories_"):
        return X, sw, 0
    xp = array_namespace(estimator.memories_)
    d = estimator.n_features_in_
    old = estimator.memories_[:, :d]
    X_all = xp.concat([old, xp.astype(X, old.dtype)], axis=0)
    sw_all = append_sample_weight(old, estimator.memory_weights_, X, sw, xp)
    return X_all, sw_all, old.shape[0]


class _SupervisedAM(LabelNeuronAM):
    """``fit`` plumbing shared by the classifier and the regressor."""

    _parameter_constraints: dict = dict(SUPERVISED_CONSTRAINTS)

    def _fit_memories(self, X, targets, sw, *, stratify, beta=None):
        """Set ``memories_``, ``memory_weights_``, ``beta_``, ``step_size_`` and
        ``n_iter_`` (and the training curves in parametric mode).

        ``targets`` (n, n_labels) is the host label code (one-hot or
        standardised targets) and ``sw`` the validated sample weights (None or
        an array in the namespace the fit runs in). ``beta``: the
        ``beta_`` to keep (``partial_fit`` after the first call), else
        resolved here.
        """
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        dtype, dev = Xc.dtype, array_device(Xc)
        code = self._label_code(targets.shape[1])
        self.step_size_ = self._resolved_step_size()
        if self.mode == "nonparametric":
            if beta is None:
                beta = self._resolved_beta(Xc, backend.to_compute(sw, dtype))
            self.beta_ = beta
            check_beta_range(
                self.beta_,
                Xc,
                extra_scale=float(self.label_scale),
                extra_features=targets.shape[1],
            )
            labels = xp.asarray(targets, device=dev)
            memories = xp.concat([Xc, code.encode(xp.astype(labels, dtype))], axis=1)
            self.memories_ = backend.to_output(memories)
            self.memory_weights_ = sw
            self.n_iter_ = 1
            self._prepared(backend, dtype)  # predictions reuse it
            return
        self._check_parametric()
        rng = check_random_state(self.random_state)
        Xh = np.asarray(to_numpy(X))
        w = _weights_on_host(sw, Xh.shape[0], Xh.dtype)
        if code.kind == "classification":
            F0, owners = memories_per_class(
                Xh, stratify, w, targets.shape[1], self.n_memories, rng
            )
            L0 = class_label_logits(owners, targets.shape[1])
        else:
            F0, L0 = regression_memories(Xh, targets, w, self.n_memories, rng)
        self.beta_ = self._resolved_beta(F0, prototypes=True)
        check_beta_range(
            self.beta_,
            Xc,
            extra_scale=float(self.label_scale),
            extra_features=targets.shape[1],
        )
        model = LabelNeuronModel(
            code=code,
            n_features=Xh.shape[1],
            lam=float(self.lam),
            beta=self.beta_,
            step_size=self.step_size_,
            n_steps=int(self.max_iter),
            xp=xp,
            dtype=dtype,
            device=dev,
            spec=make_spec(self, self.beta_),
        )
        keep = np.flatnonzero(w > 0)
        train_rows, val_rows = split_validation(
            keep.size,
            self.validation_fraction,
            None if stratify is None else stratify[keep],
            rng,
        )
        train_rows = keep[train_rows]
        val_rows = None if val_rows is None else keep[val_rows]

        def compute(a):
            return xp.asarray(np.asarray(a, dtype=Xh.dtype), device=dev)

        result = train(
            model,
            compute(F0),
            compute(L0),
            Xc,
            compute(targets),
            compute(w),
            train_rows=train_rows,
            val_rows=val_rows,
            learning_rate=float(self.learning_rate),
            batch_size=int(self.batch_size),
            max_epochs=int(self.max_epochs),
            n_iter_no_change=int(self.n_iter_no_change),
            rng=rng,
            verbose=self.verbose,
            name=type(self).__name__,
        )
        self.memories_ = backend.to_output(model.patterns(result.F, result.L))
        self.memory_weights_ = None
        self.n_iter_ = result.n_epochs
        self.loss_curve_ = result.loss_curve
        self.validation_loss_curve_ = result.validation_loss_curve
        self._prepared(backend, dtype)  # predictions reuse it

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags


@dask_dispatch(sharded_fit="supervised")
@fill_doc
class DenseAMClassifier(ClassifierMixin, _SupervisedAM):
    """Dense Associative Memory classifier with label neurons.

    Each memory is the concatenation ``[x_mu, label_scale * onehot(y_mu)]``
    of a feature vector and a one-hot code of its class (the *label
    neurons*). To predict, the features of ``[x, label_scale / k * 1]`` are
    clamped and the energy descent runs on the label neurons only, from the
    uninformative start ``1/k`` (times ``label_scale``); after ``max_iter``
    steps the label neurons are read out as class probabilities.

    With the defaults (log-sum-exp energy, one step, ``step_size * (1 - lam) =
    1``) the read-out is the softmax-weighted vote of the memories,
    ``sum_mu p_mu onehot(y_mu)`` with
    ``p = softmax(-beta * lam / 2 * ||x - x_mu||^2)``: a Gaussian kernel
    smoother (Nadaraya-Watson classifier), which tends to the 1-nearest
    neighbour rule as ``beta`` grows.

    Read more in the :ref:`User Guide <classification>`.

    Parameters
    ----------
    %(separation)s
    %(similarity)s
    beta : float or "scale", default="scale"
        Inverse temperature of the energy; the feature kernel is
        ``exp(-beta * lam / 2 * ||x - x_mu||^2)``, of bandwidth
        ``h = 1 / sqrt(beta * lam)``. ``"scale"`` sets ``beta * lam`` from the
        training features. Nonparametric mode: Scott's rule of thumb for
        kernel density estimation, ``h = sigma * n ** (-1 / (d + 4))``, with
        ``sigma**2`` the mean per-feature variance, ``n`` samples and ``d``
        features. Parametric mode: the separation rule of
        :class:`~skam.DenseAM` on the k-means initial memories,
        ``beta * lam = 4 * log(K) / r2`` (``K`` memories, ``r2`` the median
        squared distance from one to its nearest other), so that every memory
        is close to a fixed point. Standardise the features first and tune
        ``beta`` by cross-validation. ``"scale"`` is resolved by ``fit`` or
        the first ``partial_fit`` and kept by later ``partial_fit`` calls.
    %(degree)s
    %(epsilon)s
    %(lam)s
    label_scale : float, default=1.0
        Amplitude ``s`` of the label part of the memories (``s`` times the
        one-hot label code).
    %(label_step_size)s
    %(label_max_iter)s
    %(tol)s
    %(mode)s
    n_memories : int, float or "auto", default="auto"
        Memories per class in parametric mode: an int, or a fraction of each
        class's training samples (at least 1). ``"auto"``: 10 % of each
        class's samples, at most 100 per class, so that a training epoch
        costs O(n_samples) rather than O(n_samples^2) (on MNIST 100 memories
        per class were no more accurate than 50 or 20).
    %(learning_rate)s
    %(batch_size)s
    %(max_epochs)s
    %(validation_fraction)s
    %(n_iter_no_change)s
    %(backend)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (any type; sorted).
    memories_ : ndarray of shape (n_memories, n_features_in_ + n_classes)
        The stored patterns ``[features, label part]``: the training samples
        with ``label_scale * onehot(y)`` in nonparametric mode; learned
        prototypes whose label parts lie on the scaled probability simplex in
        parametric mode.
    memory_weights_ : ndarray of shape (n_memories,) or None
        ``sample_weight`` of the stored samples (nonparametric mode; None
        when unweighted or parametric).
    beta_ : float
        The inverse temperature used.
    step_size_ : float
        The step size used.
    n_iter_ : int
        Training epochs run (parametric mode); 1 in nonparametric mode (the
        samples are stored in one pass).
    loss_curve_ : list of float
        Training cross-entropy of every epoch (parametric mode only).
    validation_loss_curve_ : list of float or None
        Validation cross-entropy of every epoch (parametric mode only; None
        without a validation set).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DenseAMRegressor : The same model for continuous targets.
    sklearn.neighbors.KNeighborsClassifier : The ``beta -> inf`` limit.
    sklearn.svm.SVC : A kernel classifier with the same Gaussian kernel.

    Notes
    -----
    The read-out ``predict_proba`` clips the label neurons at 0 and
    renormalises them to sum to one (uniform when all are <= 0). For the
    defaults, and in general when ``step_size * (1 - lam) <= 1`` with label parts
    on the simplex, the label neurons already are a probability vector and
    the read-out changes nothing.

    In parametric mode the memories (feature and label parts) minimise the
    cross-entropy of this read-out through the ``max_iter`` unrolled steps
    (eq. 5.18 of [1]_), with exact gradients (closed-form backpropagation
    through the descent) and minibatch Adam; the best memories on the
    validation set are kept.

    References
    ----------
    .. [1] D. Krotov, B. Hoover, P. Ram, B. Pham, "Modern Methods in
       Associative Memory", arXiv:2507.06211, 2025 (section 5.2).
    .. [2] D. Krotov, J. J. Hopfield, "Dense Associative Memory for Pattern
       Recognition", NeurIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skam.supervised import DenseAMClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), DenseAMClassifier())
    >>> round(float(cross_val_score(clf, X, y, cv=5).mean()), 3)
    0.96
    >>> clf.fit(X, y).predict_proba(X[[0, 70]]).round(2)
    array([[1.  , 0.  , 0.  ],
           [0.  , 0.55, 0.45]])
    >>> clf.predict(X[[0, 70]])
    array([0, 1])
    """

    _label_kind = "classification"

    def __init__(
        self,
        *,
        separation="lse",
        similarity="sqeuclidean",
        beta="scale",
        degree=3,
        epsilon=1e-10,
        lam=0.5,
        label_scale=1.0,
        step_size=None,
        max_iter=1,
        tol=1e-6,
        mode="nonparametric",
        n_memories="auto",
        learning_rate=0.01,
        batch_size=128,
        max_epochs=100,
        validation_fraction=0.1,
        n_iter_no_change=5,
        backend="numpy",
        random_state=None,
        verbose=0,
    ):
        self.separation = separation
        self.similarity = similarity
        self.beta = beta
        self.degree = degree
        self.epsilon = epsilon
        self.lam = lam
        self.label_scale = label_scale
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.mode = mode
        self.n_memories = n_memories
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Store (or learn) memories ``[x, label_scale * onehot(y)]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (standardise them, or scale images to [0, 1]).
        y : array-like of shape (n_samples,)
            Class labels (any type).
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample: the weight of its memory in the energy
            (nonparametric), or of its loss term (parametric).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        X = validate_X(self, X, reset=True, method="fit")
        y = validate_class_labels(self, y, X)
        remember_namespace(self, X)
        backend = backend_for(self, X)
        self.classes_, y_idx = encode_classes(y, backend)
        sw = validate_sample_weight(sample_weight, X, backend)
        self._fit_classes(X, y_idx, sw)
        return self

    def _fit_classes(self, X, y_idx, sw, beta=None):
        n_classes = self.classes_.shape[0]
        onehot = (y_idx[:, None] == np.arange(n_classes)[None, :]).astype(np.float64)
        self._fit_memories(
            X,
            onehot,
            sw,
            stratify=y_idx,
            beta=beta,
        )

    @available_if(_nonparametric)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Add samples to the memories (nonparametric mode only).

        The memories are the training samples, so this is exact:
        ``partial_fit(A, ...)`` then ``partial_fit(B)`` gives the same model as
        ``fit`` on ``A`` and ``B`` together with ``beta=beta_``. As in
        :class:`~skam.DenseAM` and :class:`~skam.RandomFeatureAM`,
        ``beta="scale"`` is resolved by the first call (``fit`` or the first
        ``partial_fit``) and kept afterwards: adding samples never changes
        the temperature of the memories already stored.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New training features.
        y : array-like of shape (n_samples,)
            Their class labels (each one of ``classes``).
        classes : array-like of shape (n_classes,), default=None
            Every class that will ever be seen; required on the first call
            (as in :meth:`sklearn.linear_model.SGDClassifier.partial_fit`),
            optional afterwards (it must then match ``classes_``).
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each new memory.

        Returns
        -------
        self : object
            The classifier with the new samples stored.
        """
        require_y(self, y)
        first = not hasattr(self, "classes_")
        X = validate_X(self, X, reset=first, method="partial_fit")
        y = validate_class_labels(self, y, X)
        if classes is not None:
            classes = np.unique(host_y(classes))
        if first:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: "
                    "the labels of every class that will ever be seen."
                )
            remember_namespace(self, X)
            self.classes_ = place_classes(classes, backend_for(self, X))
        known = np.asarray(to_numpy(self.classes_))
        if classes is not None and not np.array_equal(classes, known):
            raise ValueError(
                f"classes={classes.tolist()} differs from the classes seen so far "
                f"(classes_={known.tolist()})."
            )
        unseen = ~np.isin(y, known)
        if unseen.any():
            raise ValueError(
                f"y contains labels {np.unique(y[unseen]).tolist()} that are not "
                f"in classes_={known.tolist()}; pass every class on the first call."
            )
        X_all, sw_all, n_old = _stored_and_new(self, X, sample_weight)
        y_idx = np.searchsorted(known, y)
        if n_old:
            d = self.n_features_in_
            label_part = np.asarray(to_numpy(self.memories_[:, d:]))
            y_idx = np.concatenate([np.argmax(label_part, axis=1), y_idx])
        self._fit_classes(X_all, y_idx, sw_all, beta=self.beta_ if n_old else None)
        return self

    def _proba(self, backend, X):
        """Probabilities in the compute namespace."""
        return normalise_label_neurons(self._label_neurons(backend, X), backend.xp)

    def predict_proba(self, X):
        """Class probabilities: the normalised label neurons.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The label neurons after the descent, clipped at 0 and renormalised
            (columns follow ``classes_``).
        """
        X, backend = validate_fitted_input(self, X, "predict_proba")
        return backend.to_output(self._proba(backend, X))

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``log`` of the normalised label neurons, in float64 (so that
            float32 probabilities one ulp apart keep their order); ``-inf``
            where a class's label neuron ends at (or is clipped to) zero.
        """
        X, backend = validate_fitted_input(self, X, "predict_log_proba")
        xp = backend.xp
        # float64: logarithms of float32 probabilities one ulp apart would tie
        proba = xp.astype(self._proba(backend, X), xp.float64)
        positive = proba > 0
        safe = xp.where(positive, proba, xp.ones_like(proba))
        log_proba = xp.where(positive, xp.log(safe), -math.inf)
        return backend.to_output(log_proba)

    def decision_function(self, X):
        """Compute the scores of the label read-out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Binary problems: ``p(classes_[1]) - p(classes_[0])`` in [-1, 1]
            (positive means ``classes_[1]``). Otherwise the class
            probabilities of :meth:`predict_proba`.
        """
        X, backend = validate_fitted_input(self, X, "decision_function")
        proba = self._proba(backend, X)
        if proba.shape[1] == 2:
            proba = proba[:, 1] - proba[:, 0]
        return backend.to_output(proba)

    def predict(self, X):
        """Class of the largest label neuron.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted classes (from ``classes_``).
        """
        X, backend = validate_fitted_input(self, X, "predict")
        index = backend.xp.argmax(self._proba(backend, X), axis=1)
        return decode_classes(self.classes_, index, backend)


@dask_dispatch(sharded_fit="supervised")
@fill_doc
class DenseAMRegressor(RegressorMixin, _SupervisedAM):
    """Dense Associative Memory regressor with label neurons.

    Each memory is ``[x_mu, label_scale * (y_mu - mean) / std]``: features
    followed by the standardised targets (one label neuron per output). To
    predict, the features of ``[x, 0]`` are clamped and the energy descent
    runs on the label neurons from 0 (the training mean); after ``max_iter``
    steps they are read out and un-standardised.

    With the defaults the first step gives the kernel-weighted average of the
    memories' targets,
    ``sum_mu p_mu y_mu`` with ``p_mu`` proportional to
    ``exp(-beta / 2 * (lam * ||x - x_mu||^2 + (1 - lam) * s^2 * z_mu^2))``
    (``z_mu`` the standardised target): Nadaraya-Watson kernel regression,
    times a Gaussian prior that shrinks towards the mean (the label neurons
    start at 0). Keep ``label_scale`` small to make the shrinkage weak.

    Read more in the :ref:`User Guide <classification>`.

    Parameters
    ----------
    %(separation)s
    %(similarity)s
    beta : float or "scale", default="scale"
        Inverse temperature of the energy; ``"scale"`` as in
        :class:`DenseAMClassifier` (Scott's rule in nonparametric mode, the
        separation rule on the initial memories in parametric mode),
        resolved by ``fit`` or the first ``partial_fit`` and then kept.
    %(degree)s
    %(epsilon)s
    %(lam)s
    label_scale : float, default=0.1
        Amplitude ``s`` of the label part of the memories (``s`` times the
        standardised target).
    %(label_step_size)s
    %(label_max_iter)s
    %(tol)s
    %(mode)s
    n_memories : int, float or "auto", default="auto"
        Number of memories in parametric mode: an int, or a fraction of the
        training samples (at least 1). ``"auto"``: 10 % of the samples, at
        most 1000.
    %(learning_rate)s
    %(batch_size)s
    %(max_epochs)s
    %(validation_fraction)s
    %(n_iter_no_change)s
    %(backend)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    memories_ : ndarray of shape (n_memories, n_features_in_ + n_outputs)
        The stored patterns ``[features, label_scale * standardised
        targets]``.
    memory_weights_ : ndarray of shape (n_memories,) or None
        ``sample_weight`` of the stored samples (nonparametric mode; None
        when unweighted or parametric).
    target_mean_ : ndarray of shape (n_outputs,)
        (Weighted) mean of the training targets.
    target_scale_ : ndarray of shape (n_outputs,)
        (Weighted) standard deviation of the training targets (1 where it is
        0).
    beta_ : float
        The inverse temperature used.
    step_size_ : float
        The step size used.
    n_iter_ : int
        Training epochs run (parametric mode); 1 in nonparametric mode.
    loss_curve_ : list of float
        Training loss (half mean squared error of the standardised targets)
        of every epoch (parametric mode only).
    validation_loss_curve_ : list of float or None
        Validation loss of every epoch (parametric mode only; None without a
        validation set).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DenseAMClassifier : The same model for class labels.
    sklearn.neighbors.KNeighborsRegressor : With Gaussian weights, the
        ``label_scale -> 0`` limit of one step.

    Examples
    --------
    >>> import numpy as np
    >>> from skam.supervised import DenseAMRegressor
    >>> X = np.linspace(0, 6, 60)[:, None]
    >>> reg = DenseAMRegressor(beta=200.0).fit(X, np.sin(X[:, 0]))
    >>> reg.predict([[1.5], [4.5]]).round(2)
    array([ 0.99, -0.97])
    """

    _label_kind = "regression"

    def __init__(
        self,
        *,
        separation="lse",
        similarity="sqeuclidean",
        beta="scale",
        degree=3,
        epsilon=1e-10,
        lam=0.5,
        label_scale=0.1,
        step_size=None,
        max_iter=1,
        tol=1e-6,
        mode="nonparametric",
        n_memories="auto",
        learning_rate=0.01,
        batch_size=128,
        max_epochs=100,
        validation_fraction=0.1,
        n_iter_no_change=5,
        backend="numpy",
        random_state=None,
        verbose=0,
    ):
        self.separation = separation
        self.similarity = similarity
        self.beta = beta
        self.degree = degree
        self.epsilon = epsilon
        self.lam = lam
        self.label_scale = label_scale
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.mode = mode
        self.n_memories = n_memories
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Store (or learn) memories ``[x, label_scale * standardised y]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training features (standardise them).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample: the weight of its memory in the energy
            (nonparametric), or of its loss term (parametric); also weighs
            the target mean and standard deviation.

        Returns
        -------
        self : object
            The fitted regressor.
        """
        require_y(self, y)
        X = validate_X(self, X, reset=True, method="fit")
        y = _check_y(host_y(y), multi_output=True, y_numeric=True, estimator=self)
        check_consistent_length(X, y)
        remember_namespace(self, X)
        y = np.asarray(y, dtype=np.float64)
        self._single_output = y.ndim == 1
        Y = y.reshape(y.shape[0], -1)
        sw = validate_sample_weight(sample_weight, X, backend_for(self, X))
        self._fit_targets(X, Y, sw)
        return self

    def _fit_targets(self, X, Y, sw, beta=None):
        w = _weights_on_host(sw, Y.shape[0], np.float64)
        # standardise in units of the largest |y| (no overflow for huge y)
        top = np.max(np.abs(Y), axis=0)
        top = np.where(top > 0, top, 1.0)
        mean_s = np.average(Y / top, axis=0, weights=w)
        std_s = np.sqrt(np.average((Y / top - mean_s) ** 2, axis=0, weights=w))
        mean, std = mean_s * top, np.where(std_s > 0, std_s * top, 1.0)
        host_dtype = to_numpy(X[:1, :1]).dtype
        if not (
            np.all(np.isfinite(mean.astype(host_dtype)))
            and np.all(np.isfinite(std.astype(host_dtype)))
        ):
            raise ValueError(
                f"y has values up to {float(top.max()):.3g}, beyond the range of "
                f"the {host_dtype} features; rescale y or pass float64 X."
            )
        backend = backend_for(self, X)
        self.target_mean_ = backend.from_host(mean, X.dtype)
        self.target_scale_ = backend.from_host(std, X.dtype)
        self._fit_memories(
            X, (Y / top - mean_s) * (top / std), sw, stratify=None, beta=beta
        )

    @available_if(_nonparametric)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Add samples to the memories (nonparametric mode only).

        The memories are the training samples, so this is exact:
        ``partial_fit(A)`` then ``partial_fit(B)`` gives the same model as
        ``fit`` on ``A`` and ``B`` together with ``beta=beta_`` (the target
        mean and scale are re-derived from all stored samples). As in
        :class:`~skam.DenseAM` and :class:`~skam.RandomFeatureAM`,
        ``beta="scale"`` is resolved by the first call and kept afterwards.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New training features.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their targets (as many outputs as on the first call).
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each new memory.

        Returns
        -------
        self : object
            The regressor with the new samples stored.
        """
        require_y(self, y)
        first = not hasattr(self, "memories_")
        X = validate_X(self, X, reset=first, method="partial_fit")
        y = _check_y(host_y(y), multi_output=True, y_numeric=True, estimator=self)
        check_consistent_length(X, y)
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(y.shape[0], -1)
        if first:
            remember_namespace(self, X)
            self._single_output = y.ndim == 1
        else:
            n_outputs = self.memories_.shape[1] - self.n_features_in_
            if Y.shape[1] != n_outputs:
                raise ValueError(
                    f"y has {Y.shape[1]} output(s) but the regressor was fitted "
                    f"with {n_outputs}."
                )
            # the stored targets, recovered from the standardised label part
            d = self.n_features_in_
            label_part = np.asarray(to_numpy(self.memories_[:, d:]), np.float64)
            mean = np.asarray(to_numpy(self.target_mean_), np.float64)
            scale = np.asarray(to_numpy(self.target_scale_), np.float64)
            Y = np.concatenate([mean + scale * label_part / self.label_scale, Y])
        X_all, sw_all, _ = _stored_and_new(self, X, sample_weight)
        self._fit_targets(X_all, Y, sw_all, beta=None if first else self.beta_)
        return self

    def predict(self, X):
        """Predict the targets read out from the label neurons.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            ``target_mean_ + target_scale_ * v``, with ``v`` the label
            neurons after the descent (divided by ``label_scale``).
        """
        X, backend = validate_fitted_input(self, X, "predict")
        R = self._label_neurons(backend, X)
        dtype = R.dtype
        mean = backend.to_compute(self.target_mean_, dtype)
        scale = backend.to_compute(self.target_scale_, dtype)
        y = mean[None, :] + scale[None, :] * R
        if self._single_output:
            y = y[:, 0]
        return backend.to_output(y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
