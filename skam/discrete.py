"""Binary Dense Associative Memories: :class:`DiscreteDenseAM` and :class:`HopfieldNetwork`."""

from numbers import Integral, Real

from array_api_compat import array_namespace
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from skam._chunking import chunk_slices, concat, itemsize, map_chunks
from skam._dask import dask_dispatch
from skam._discrete import (
    DISCRETE_SEPARATIONS,
    BinarySpec,
    CouplingField,
    OverlapField,
    discrete_energy,
    hebbian_coupling,
    run_dynamics,
)
from skam._docstrings import fill_doc
from skam._validation import (
    BACKEND_CONSTRAINT,
    append_sample_weight,
    backend_for,
    fit_seed,
    remember_namespace,
    validate_fitted_input,
    validate_sample_weight,
    validate_X,
)

_UPDATE_CONSTRAINT = [StrOptions({"async", "sync"})]
_MAX_ITER_CONSTRAINT = [Interval(Integral, 1, None, closed="left")]


@fill_doc
class DiscreteDenseAM(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Discrete (binary) Dense Associative Memory with one-bit-at-a-time updates.

    ``fit`` stores binary patterns ``xi_mu``; ``transform`` runs the sign
    dynamics of the energy ``E(s) = -sum_mu w_mu F(xi_mu . s)`` from each
    query: a neuron takes the sign of lower energy with all other neurons
    clamped,
    ``s_i <- sgn(sum_mu w_mu [F(b_mu + xi_mu_i) - F(b_mu - xi_mu_i)])`` with
    ``b_mu`` the overlap without neuron ``i`` (Krotov and Hopfield, 2016;
    ``sgn(0) = +1``), until no neuron changes. With a fast-growing ``F`` it
    stores far more random patterns than the classical Hopfield network:
    about ``D^(n-1) / (2 (2n-3)!! log D)`` for ``F(x) = x^n`` and
    exponentially many in ``D`` for ``F(x) = exp(beta x)`` (see
    :mod:`skam.capacity`).

    Inputs are binarised: entries ``> 0`` become +1 and the others -1, so
    ``{0, 1}`` and ``{-1, +1}`` data both work; outputs are ``+-1``.

    Read more in the :ref:`User Guide <capacity>`.

    Parameters
    ----------
    separation : {"poly", "rectified_poly", "exp", "quadratic"}, default="poly"
        Separation function ``F`` of the overlap ``x = xi_mu . s``:
        ``"poly"`` is ``x^n / n``, ``"rectified_poly"`` is
        ``max(x, 0)^n / n`` (no inverted retrievals), ``"exp"`` is
        ``exp(beta x)`` (the energy is then reported as
        ``-(1/beta) log sum_mu w_mu exp(beta x)``, same minima, no overflow)
        and ``"quadratic"`` is the classical Hopfield network (Hebbian
        couplings, ``n = 2``). Polynomial energies are reported with
        ``F(x) = (D/n) (x/D)^n``, the same dynamics.
    degree : int, default=3
        Degree ``n`` of ``"poly"`` and ``"rectified_poly"``.
    beta : float, default=1.0
        Inverse temperature of ``"exp"`` (on raw overlaps, which range over
        ``[-D, D]``); ignored by the other separations.
    update : {"async", "sync"}, default="async"
        ``"async"`` updates one neuron at a time, in a random order each sweep
        (the energy never increases, so it always stops at a fixed point);
        ``"sync"`` updates all neurons at once from the same state (one
        matrix product per sweep, but it can end in a 2-cycle).
    max_iter : int, default=100
        Maximum number of sweeps over all neurons.
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    memories_ : ndarray of shape (n_memories, n_features)
        The stored patterns, binarised to ``+-1``.
    memory_weights_ : ndarray of shape (n_memories,) or None
        ``sample_weight`` given to ``fit``/``partial_fit`` (None when unweighted).
    coupling_ : ndarray of shape (n_features, n_features)
        Hebbian weights ``W`` with zero diagonal (``separation="quadratic"``
        only).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    HopfieldNetwork : The quadratic case, with the classical parameters only.
    DenseAM : Continuous Dense AM (energy descent on real-valued states).
    skam.capacity.capacity_curve : Measure how many patterns it stores.

    Notes
    -----
    Each sweep computes the field of every neuron from the overlaps with one
    (n, K) x (K, D) matrix product; asynchronous sweeps update the overlaps of
    a query by a rank-one step when one of its neurons flips. Queries are
    processed in chunks whose temporaries fit ``working_memory``. Fitting
    only stores the patterns (and, for ``"quadratic"``, the D x D couplings):
    it runs no dynamics. Use :func:`skam.capacity.recall_fraction` to check
    which stored patterns are fixed points.

    References
    ----------
    .. [1] D. Krotov and J. J. Hopfield, "Dense Associative Memory for Pattern
       Recognition", NeurIPS 2016.
    .. [2] M. Demircigil, J. Heusel, M. Loewe, S. Upgang, F. Vermet, "On a
       model of associative memory with huge storage capacity", J. Stat.
       Phys. 168, 2017.
    .. [3] D. Krotov, B. Hoover, P. Ram, B. Pham, "Modern Methods in
       Associative Memory", arXiv:2507.06211, 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import DiscreteDenseAM
    >>> from skam.datasets import flip_bits
    >>> rng = np.random.RandomState(0)
    >>> patterns = np.sign(rng.randn(100, 100))  # 7x what Hopfield holds
    >>> am = DiscreteDenseAM(degree=3, random_state=0).fit(patterns)
    >>> noisy = flip_bits(patterns, 0.1, random_state=0)
    >>> float(np.mean(np.all(am.transform(noisy) == patterns, axis=1)))
    1.0
    >>> am.predict(noisy[:4])
    array([0, 1, 2, 3])
    """

    _parameter_constraints: dict = {
        "separation": [StrOptions(set(DISCRETE_SEPARATIONS))],
        "degree": [Interval(Integral, 2, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "update": _UPDATE_CONSTRAINT,
        "max_iter": _MAX_ITER_CONSTRAINT,
        "random_state": ["random_state"],
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        separation="poly",
        degree=3,
        beta=1.0,
        update="async",
        max_iter=100,
        random_state=None,
        backend="numpy",
    ):
        self.separation = separation
        self.degree = degree
        self.beta = beta
        self.update = update
        self.max_iter = max_iter
        self.random_state = random_state
        self.backend = backend

    # ---------------------------------------------------------------- storing
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Store the (binarised) patterns of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns (binarised: ``> 0`` is +1).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight ``w_mu`` of each pattern in the energy (an integer weight
            acts like a repeated pattern).

        Returns
        -------
        self : object
            The fitted memory.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        xp = array_namespace(X)
        self.memories_ = _binarize(X, xp)
        self.memory_weights_ = validate_sample_weight(
            sample_weight, X, backend_for(self, X)
        )
        _check_weight_total(self.memory_weights_, X.shape[1])
        if self._separation() == "quadratic":
            self.coupling_ = hebbian_coupling(self.memories_, self.memory_weights_, xp)
        self._update_seed = fit_seed(self.random_state)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Add the (binarised) patterns of ``X`` to the stored ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to add.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the new patterns.

        Returns
        -------
        self : object
            The memory with the new patterns stored.
        """
        if not hasattr(self, "memories_"):
            return self.fit(X, sample_weight=sample_weight)
        X = validate_X(self, X, reset=False, method="partial_fit")
        xp = array_namespace(X)
        new = xp.astype(_binarize(X, xp), self.memories_.dtype)
        sw = validate_sample_weight(sample_weight, X, backend_for(self, X))
        weights = append_sample_weight(
            self.memories_, self.memory_weights_, new, sw, xp
        )
        _check_weight_total(weights, X.shape[1])  # before anything changes
        self.memory_weights_ = weights
        if self._separation() == "quadratic":
            self.coupling_ = self.coupling_ + xp.astype(
                hebbian_coupling(new, sw, xp), self.coupling_.dtype
            )
        self.memories_ = xp.concat([self.memories_, new], axis=0)
        return self

    # ----------------------------------------------------------------- engine
    def _separation(self):
        return self.separation

    def _spec(self):
        return BinarySpec(
            separation=self._separation(),
            degree=int(getattr(self, "degree", 2)),
            beta=float(getattr(self, "beta", 1.0)),
        )

    def _compute_arrays(self, backend, dtype):
        if self._separation() == "quadratic":  # the couplings say it all
            return None, None, backend.to_compute(self.coupling_, dtype)
        patterns = backend.to_compute(self.memories_, dtype)
        weights = backend.to_compute(self.memory_weights_, dtype)
        return patterns, weights, None

    def _field(self, backend, dtype):
        xp = backend.xp
        patterns, weights, coupling = self._compute_arrays(backend, dtype)
        if coupling is not None:
            return CouplingField(coupling, xp)
        return OverlapField(patterns, weights, self._spec(), xp)

    def _run(self, backend, X, finish=None):
        """Dynamics from validated X; (states, n_iter, converged), compute ns.

        Queries are binarised chunk by chunk; ``finish`` (see
        :func:`skam._discrete.run_dynamics`) keeps one array per chunk.
        """
        xp = backend.xp
        Xc = backend.to_compute(X)
        # drawn once at fit (fit_seed): repeated calls on one model agree, also
        # with random_state=None; a model without one (sharded fit) draws here
        seed = getattr(self, "_update_seed", None)
        if seed is None:
            seed = fit_seed(self.random_state)
        return run_dynamics(
            Xc,
            self._field(backend, Xc.dtype),
            xp,
            update=self.update,
            max_iter=self.max_iter,
            seed=seed,
            prepare=lambda block: _binarize(block, xp),
            finish=finish,
        )

    def _energy_of_states(self, backend, S, prepare=None):
        """Energy of each row of ``S`` (``prepare``: applied to each chunk)."""
        xp = backend.xp
        patterns, weights, coupling = self._compute_arrays(backend, S.dtype)
        columns = S.shape[1] if coupling is not None else patterns.shape[0]

        def chunk(sl):
            block = S[sl, :] if prepare is None else prepare(S[sl, :])
            return discrete_energy(
                block, patterns, weights, self._spec(), xp, coupling=coupling
            )

        # the (n, K) overlaps and their separations, or S @ W and its product
        per_row = (3 * columns + 2 * S.shape[1]) * itemsize(S)
        return map_chunks(chunk, S.shape[0], per_row, xp)

    def _reached(self, backend, S):
        """Row of the stored pattern equal to each state, -1 where none."""
        xp = backend.xp
        patterns = backend.to_compute(self.memories_, S.dtype)
        usable = None
        if self.memory_weights_ is not None:
            usable = backend.to_compute(self.memory_weights_, S.dtype) > 0
        D = S.shape[1]
        out = []
        for sl in chunk_slices(S.shape[0], 2 * patterns.shape[0] * itemsize(S)):
            exact = (S[sl, :] @ patterns.T) >= D - 0.5
            if usable is not None:
                exact = xp.logical_and(exact, usable[None, :])
            found = xp.any(exact, axis=1)
            first = xp.argmax(xp.astype(exact, xp.int8), axis=1)
            out.append(xp.where(found, first, -1))
        return concat(out, xp)

    # ------------------------------------------------------------- public API
    def descend(self, X):
        """Run the dynamics and report how it went, query by query.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Initial states (binarised).

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``states`` (n_samples, n_features) of ``+-1``, ``n_iter``
            (n_samples,) sweeps taken (the last changes nothing when it
            converged), ``converged`` (n_samples,) and ``energy`` (n_samples,)
            of the final states.
        """
        X, backend = validate_fitted_input(self, X, "descend")
        S, n_iter, converged = self._run(backend, X)
        return Bunch(
            states=backend.to_output(S),
            n_iter=backend.to_output(n_iter),
            converged=backend.to_output(converged),
            energy=backend.to_output(self._energy_of_states(backend, S)),
        )

    def transform(self, X):
        """Recall: run the sign dynamics from each (binarised) query.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            Final ``+-1`` states, in the floating dtype of ``X``.
        """
        X, backend = validate_fitted_input(self, X, "transform")
        return backend.to_output(self._run(backend, X, finish=lambda S, *_: S))

    def predict(self, X):
        """Index of the stored pattern each query recalls exactly (-1 if none).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        index : ndarray of shape (n_samples,), dtype=int64
            First row of ``memories_`` (of positive weight) equal to the
            recalled state, or -1 (spurious or inverted states).
        """
        X, backend = validate_fitted_input(self, X, "predict")
        index = self._run(backend, X, finish=lambda S, *_: self._reached(backend, S))
        return backend.to_output(index)

    def energy(self, X):
        """Energy of each (binarised) row of ``X``; lower is more memory-like.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
            ``-sum_mu w_mu F(xi_mu . s)`` (see ``separation`` for the
            normalisation of each ``F``).
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="energy")
        return self._energy(X)

    def _energy(self, X):
        backend = backend_for(self, X)
        xp = backend.xp
        energy = self._energy_of_states(
            backend, backend.to_compute(X), prepare=lambda block: _binarize(block, xp)
        )
        return backend.to_output(energy)

    def score_samples(self, X):
        """Score each (binarised) state by minus its energy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Higher is more memory-like.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="score_samples")
        return -self._energy(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


@dask_dispatch(sharded_fit="hopfield")
@fill_doc
class HopfieldNetwork(DiscreteDenseAM):
    """Classical binary Hopfield network with Hebbian weights.

    ``fit`` sets the couplings ``W = (1/D) sum_mu w_mu xi_mu xi_mu^T`` with a
    zero diagonal (the Hebbian rule); ``transform`` runs sign updates
    ``s_i <- sgn(sum_j W_ij s_j)`` (``sgn(0) = +1``) until no neuron changes.
    It is :class:`DiscreteDenseAM` with ``separation="quadratic"`` (``F(x) =
    x^2/2``) and stores about ``0.14 D`` random patterns; beyond that, and on
    correlated data, recall breaks down.

    Inputs are binarised: entries ``> 0`` become +1 and the others -1, so
    ``{0, 1}`` and ``{-1, +1}`` data both work; outputs are ``+-1``.

    Read more in the :ref:`User Guide <hopfield>`.

    Parameters
    ----------
    update : {"async", "sync"}, default="async"
        ``"async"`` updates one neuron at a time, in a random order each
        sweep (the energy never increases, so it always stops at a fixed
        point); ``"sync"`` updates all neurons at once (faster, but can end in
        a 2-cycle).
    max_iter : int, default=100
        Maximum number of sweeps over all neurons.
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    coupling_ : ndarray of shape (n_features, n_features)
        Hebbian weights ``W`` with zero diagonal.
    memories_ : ndarray of shape (n_memories, n_features)
        The stored patterns, binarised to ``+-1``.
    memory_weights_ : ndarray of shape (n_memories,) or None
        ``sample_weight`` given to ``fit``/``partial_fit`` (None when unweighted).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DiscreteDenseAM : The dense binary family (polynomial and exponential F).
    DenseAM : Dense Associative Memory on continuous states.

    Notes
    -----
    The energy ``E(s) = -1/2 s^T W s`` is symmetric, ``E(-s) = E(s)``, so a
    very noisy query can retrieve the inverted pattern.

    References
    ----------
    .. [1] J. J. Hopfield, "Neural networks and physical systems with emergent
       collective computational abilities", PNAS 79, 1982.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import HopfieldNetwork
    >>> rng = np.random.RandomState(0)
    >>> patterns = np.sign(rng.randn(3, 100))
    >>> net = HopfieldNetwork(random_state=0).fit(patterns)
    >>> noisy = patterns.copy()
    >>> noisy[:, :10] *= -1                     # flip 10 of 100 bits
    >>> bool((net.transform(noisy) == patterns).all())
    True
    >>> net.predict(noisy)
    array([0, 1, 2])
    """

    _parameter_constraints: dict = {
        "update": _UPDATE_CONSTRAINT,
        "max_iter": _MAX_ITER_CONSTRAINT,
        "random_state": ["random_state"],
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self, *, update="async", max_iter=100, random_state=None, backend="numpy"
    ):
        self.update = update
        self.max_iter = max_iter
        self.random_state = random_state
        self.backend = backend

    def _separation(self):
        return "quadratic"


def _check_weight_total(weights, n_features):
    """Raise if the energy's bound, ``n_features * sum(w)``, overflows.

    Every energy of a binary memory is at most ``n_features * sum(w)`` in
    magnitude; only relative weights matter for the dynamics.
    """
    if weights is None:
        return
    xp = array_namespace(weights)
    total = float(xp.sum(weights))
    limit = float(xp.finfo(weights.dtype).max) / (4.0 * n_features)
    if not total <= limit:
        raise ValueError(
            f"sample_weight sums to {total:.3g}: the energy (up to n_features * "
            f"sum(sample_weight)) overflows {weights.dtype} above {limit:.3g}. "
            "Rescale sample_weight: only relative weights change the dynamics."
        )


def _binarize(X, xp):
    one = xp.ones_like(X)
    return xp.where(X > 0, one, -one)
