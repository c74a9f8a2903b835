"""Auto-associative memories: :class:`DenseAM` (continuous states).

The binary family, :class:`~skam.DiscreteDenseAM` and
:class:`~skam.HopfieldNetwork`, lives in :mod:`skam.discrete` (re-exported here).
"""

import math
from dataclasses import replace

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from skam._backend import to_numpy
from skam._beta import resolve_beta, rule_for
from skam._binary_relaxation import SelfCouplingFreeOracle
from skam._chunking import chunk_slices, concat, itemsize, map_chunks
from skam._dask import dask_dispatch
from skam._descent import KernelSumOracle, step_from
from skam._descent import descend as _descend
from skam._docstrings import fill_doc
from skam._energy import (
    SIMILARITIES,
    energy_from_log_z,
    half_sq_distances,
    kernel_sum_temporaries,
    log_density_normaliser,
    log_kernel_sum,
    lsr_support_radius_sq,
    prepare_memories,
)
from skam._partial import MIN_QUERY_ROWS
from skam._prepared import PreparedCacheMixin, cached
from skam._sampling import sample_stored as _sample_stored
from skam._separations import get_separation
from skam._validation import (
    BACKEND_CONSTRAINT,
    DESCENT_CONSTRAINTS,
    ENERGY_CONSTRAINTS,
    append_sample_weight,
    backend_for,
    check_beta_range,
    check_query_range,
    make_spec,
    remember_namespace,
    validate_clamp_mask,
    validate_fit_input,
    validate_fitted_input,
    validate_sample_weight,
    validate_X,
)
from skam.discrete import DiscreteDenseAM, HopfieldNetwork  # re-exported

__all__ = ["DenseAM", "DiscreteDenseAM", "HopfieldNetwork"]


@dask_dispatch(sharded_fit="dense_am")
@fill_doc
class DenseAM(
    PreparedCacheMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator
):
    """Dense Associative Memory: store patterns, retrieve them by energy descent.

    ``fit`` stores the training samples as memories ``xi_mu``. ``transform``
    moves each query downhill on the energy

    ``E(v) = -(1/beta) log(eps + sum_mu w_mu F(beta S(v, xi_mu)))``

    by ``v <- v - step_size * m * grad E(v)``, where ``m`` is zero on clamped
    coordinates, and returns the states it reaches: a corrupted pattern is
    completed or cleaned up towards the stored pattern whose basin it lies in.
    With the default log-sum-exp energy this is the modern (continuous)
    Hopfield network, whose one step at ``step_size=1`` is the attention update.

    Read more in the :ref:`User Guide <energy_convention>`.

    Parameters
    ----------
    %(separation)s
    similarity : {"auto", "sqeuclidean", "dot"}, default="auto"
        Similarity ``S`` between a state and a memory: minus half the squared
        Euclidean distance, or the dot product (the overlap of the tutorial's
        polynomial energies). ``"auto"`` is ``"dot"`` for ``"poly"`` and
        ``"rectified_poly"`` and ``"sqeuclidean"`` for ``"lse"`` and
        ``"lsr"``. The dot-product energy is unbounded below, so its descent
        is projected onto the box spanned by the memories (per-feature
        minimum and maximum).
    beta : float or "scale", default="scale"
        Inverse temperature: the kernel bandwidth is ``1/sqrt(beta)`` in data
        units. Larger values give sharper, more separated basins (``beta ->
        inf`` is nearest-pattern lookup). ``"scale"`` derives it from the
        stored patterns, with ``r2`` the median squared distance between a
        memory and its nearest other memory: ``4 * log(K) / r2`` for
        ``"lse"`` (every stored pattern is close to a fixed point),
        ``2 / r2`` for ``"lsr"`` and for the polynomials with
        ``"sqeuclidean"`` (each support reaches the nearest neighbour) and
        ``n_features / max ||xi||^2`` for the polynomials with ``"dot"`` (the
        overlap counted in bits: ``beta = 1`` for +-1 patterns, so the
        constant of ``(1 + z)^n`` does not swamp the signal). The rules depend on the stored patterns,
        not on their weights (see :mod:`skam._beta`). ``"scale"`` is
        resolved by ``fit`` or the first ``partial_fit``; later calls to
        ``partial_fit`` keep it, so adding memories never changes the energy
        of the ones stored.
    %(degree)s
    %(epsilon)s
    %(step_size)s
    %(max_iter)s
    %(tol)s
    self_coupling : "auto" or bool, default="auto"
        Whether the polynomial energies with ``"dot"`` keep the coupling of
        every neuron to itself. On binary patterns it makes every corner of
        the box a fixed point once many patterns are stored (about 1900 at
        ``D = 100`` for degree 4), so ``False`` removes it: the kernel of each
        memory becomes ``F(z) + beta^2/2 F''(z) Var(v)``, ``Var`` the variance
        of the overlap of independent two-valued neurons with mean ``v``. It
        equals ``F`` on binary states and stores what the discrete network
        stores (:mod:`skam._binary_relaxation`). ``"auto"`` removes it for
        ``"poly"`` and ``"rectified_poly"`` with ``"dot"`` when every stored
        feature takes at most two values; ``True`` always keeps it.
    %(backend)s

    Attributes
    ----------
    memories_ : ndarray of shape (n_memories, n_features)
        The stored patterns (the training samples).
    memory_weights_ : ndarray of shape (n_memories,) or None
        ``sample_weight`` given to ``fit``/``partial_fit`` (None when unweighted).
    beta_ : float
        The inverse temperature used (``beta`` resolved).
    similarity_ : str
        The similarity used (``similarity`` resolved).
    self_coupling_ : bool
        Whether the energy keeps the self-coupling (``self_coupling``
        resolved).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    HopfieldNetwork : The classical binary network that DenseAM generalises.
    sklearn.neighbors.KernelDensity : ``exp(-beta * E)`` is a kernel density.

    Notes
    -----
    The energy is an unnormalised kernel density estimate: with ``"lse"``,
    ``-beta * E(v) = log sum_mu exp(-beta/2 ||v - xi_mu||^2)``, the Gaussian
    KDE with bandwidth ``1/sqrt(beta)`` up to a constant; ``"lsr"`` is the
    Epanechnikov KDE with bandwidth ``sqrt(2/beta)``. ``"lsr"`` retrievals are
    finished by the exact fixed-point iteration of Hoover et al. (2025).

    References
    ----------
    .. [1] D. Krotov, B. Hoover, P. Ram, B. Pham, "Modern Methods in
       Associative Memory", arXiv:2507.06211, 2025.
    .. [2] H. Ramsauer et al., "Hopfield Networks is All You Need", ICLR 2021.
    .. [3] B. Hoover et al., "Dense Associative Memory with Epanechnikov
       Energy", NeurIPS 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import DenseAM
    >>> rng = np.random.RandomState(0)
    >>> patterns = np.sign(rng.randn(5, 32))
    >>> am = DenseAM(beta=1.0).fit(patterns)
    >>> noisy = patterns.copy()
    >>> noisy[:, :6] *= -1                      # flip 6 of 32 bits
    >>> recalled = np.sign(am.transform(noisy))
    >>> bool((recalled == patterns).all())
    True
    >>> am.predict(noisy)
    array([0, 1, 2, 3, 4])
    """

    _parameter_constraints: dict = {
        **ENERGY_CONSTRAINTS,
        "similarity": [StrOptions({"auto", *SIMILARITIES})],
        **DESCENT_CONSTRAINTS,
        "self_coupling": [StrOptions({"auto"}), "boolean"],
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        separation="lse",
        similarity="auto",
        beta="scale",
        degree=3,
        epsilon=1e-10,
        step_size=1.0,
        max_iter=100,
        tol=1e-6,
        self_coupling="auto",
        backend="numpy",
    ):
        self.separation = separation
        self.similarity = similarity
        self.beta = beta
        self.degree = degree
        self.epsilon = epsilon
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.self_coupling = self_coupling
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Store the samples of ``X`` as memories.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to store (binary ``+-1`` or continuous).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight ``w_mu`` of each memory in the energy (an integer weight
            acts like a repeated pattern).

        Returns
        -------
        self : object
            The fitted memory.
        """
        X, backend = validate_fit_input(self, X)
        self.memories_ = X
        self.memory_weights_ = validate_sample_weight(sample_weight, X, backend)
        self._resolve_beta()
        self._finish_storing()
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Add the samples of ``X`` to the stored memories.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to add.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the new memories.

        Returns
        -------
        self : object
            The memory with the new patterns added.
        """
        first = not hasattr(self, "memories_")
        X = validate_X(self, X, reset=first, method="partial_fit")
        if first:
            remember_namespace(self, X)
        sw = validate_sample_weight(sample_weight, X, backend_for(self, X))
        if first:
            self.memories_, self.memory_weights_ = X, sw
            self._resolve_beta()
        else:
            xp = array_namespace(self.memories_)
            self.memory_weights_ = append_sample_weight(
                self.memories_, self.memory_weights_, X, sw, xp
            )
            self.memories_ = xp.concat(
                [self.memories_, xp.astype(X, self.memories_.dtype)], axis=0
            )
        self._finish_storing()
        return self

    def _check_query_range(self, X, top=None):
        """Queries whose energy would overflow at ``beta_`` raise (validate_X).

        ``top``: ``max |X|`` when the validation has it.
        """
        if not hasattr(self, "beta_") or not hasattr(self, "memories_"):
            return  # a sharded memory (Dask) checks nothing here
        check_query_range(self.beta_, X, self._memory_top(), top=top)

    def _memory_top(self):
        """``max |xi|`` over the memories, once per set of memories (not per call)."""
        entry = self.__dict__.get("_memory_top_cache")
        if entry is None or entry[0] is not self.memories_:
            xp = array_namespace(self.memories_)
            entry = (self.memories_, float(xp.max(xp.abs(self.memories_))))
            self._memory_top_cache = entry
        return entry[1]

    def _resolve_beta(self):
        backend = backend_for(self, self.memories_)
        self.beta_ = resolve_beta(
            self.beta,
            backend.to_compute(self.memories_),
            rule=rule_for(
                self.separation, _resolve_similarity(self.separation, self.similarity)
            ),
        )
        check_beta_range(self.beta_, self.memories_)

    def _finish_storing(self):
        self.similarity_ = _resolve_similarity(self.separation, self.similarity)
        self.self_coupling_ = _resolve_self_coupling(self, self.memories_)
        rows = _distinct_rows(self.memories_, self.memory_weights_)
        xp_in = array_namespace(self.memories_)
        self._distinct_rows = xp_in.asarray(rows, device=_dev(self.memories_))
        backend = backend_for(self, self.memories_)
        self._memories(backend, backend.to_compute(self.memories_).dtype)
        self._memory_top()  # at fit: calls leave the estimator's dict unchanged

    # ------------------------------------------------------------------ engine
    def _memories(self, backend, dtype):
        """Memories in the compute namespace and dtype, prepared once.

        Built at ``fit`` and ``partial_fit`` and cached (:mod:`skam._prepared`)
        for the namespace, device and dtype of the last call.
        """

        def build():
            patterns = backend.to_compute(self.memories_, dtype)
            weights = backend.to_compute(self.memory_weights_, dtype)
            return prepare_memories(patterns, backend.xp, weights=weights, reuse=True)

        key = (id(backend.xp), backend.device, dtype)
        return cached(self, key, (self.memories_, self.memory_weights_), build)

    def _spec(self):
        return replace(make_spec(self, self.beta_), similarity=self.similarity_)

    def _oracle(self, memories, backend):
        """The energy oracle: the plain kernel sum, or the relaxation without
        self-coupling (see ``self_coupling``)."""
        if self.self_coupling_:
            return memories
        box = self._box(memories, backend)
        return SelfCouplingFreeOracle(memories, self._spec(), box, backend.xp)

    def _box(self, memories, backend):
        if self.similarity_ != "dot":
            return None
        xp = backend.xp
        return xp.min(memories.patterns, axis=0), xp.max(memories.patterns, axis=0)

    def _descend(self, backend, X, clamp_mask, *, return_trace, compute_energy=False):
        """Descent of validated X; results in the compute namespace."""
        Xc = backend.to_compute(X)
        memories = self._memories(backend, Xc.dtype)
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        return _descend(
            Xc,
            self._oracle(memories, backend),
            self._spec(),
            backend.xp,
            clamp_mask=mask,
            step_size=self.step_size,
            max_iter=self.max_iter,
            tol=self.tol,
            box=self._box(memories, backend),
            lsr_fixed_point=True,
            return_trace=return_trace,
            compute_energy=compute_energy,
            monotone=get_separation(self.separation).can_overshoot,
        )

    def _states(self, backend, X, clamp_mask):
        """The states :meth:`_descend` reaches (transform, predict).

        The default retrieval (one step, nothing clamped, the plain kernel
        sum of a separation without overshoot or fixed point, no box) is the
        engine's :func:`~skam._descent.step_from`: the same step, without
        the bookkeeping of a descent (per-query stops, update norms), which
        weighs on one-row calls.
        """
        separation = get_separation(self.separation)
        if (
            self.max_iter == 1
            and clamp_mask is None
            and self.self_coupling_
            and self.similarity_ != "dot"
            and not separation.can_overshoot
            and not separation.constant_slope
        ):
            Xc = backend.to_compute(X)
            oracle = KernelSumOracle(
                self._memories(backend, Xc.dtype), self._spec(), backend.xp
            )
            return step_from(Xc, oracle, backend.xp, start=0, step_size=self.step_size)
        return self._descend(backend, X, clamp_mask, return_trace=False).states

    def _reached(self, backend, states):
        """Index of the memory each state reached, -1 where none (compute ns).

        Only distinct patterns of positive weight compete (a repeated pattern
        is one memory); the index returned is the first row holding it.
        """
        xp = backend.xp
        rows = backend.to_compute(self._distinct_rows)
        patterns = xp.take(
            backend.to_compute(self.memories_, states.dtype), rows, axis=0
        )
        memories = prepare_memories(patterns, xp)
        K = memories.n_memories
        lsr_radius_sq = lsr_support_radius_sq(self._spec())
        out = []
        # the distances (GEMM, norms, clip), the masked copy and the mask
        for sl in chunk_slices(states.shape[0], 6 * K * itemsize(states)):
            half_sq = half_sq_distances(states[sl, :], memories, xp)
            nearest = xp.argmin(half_sq, axis=1)
            d1 = xp.min(half_sq, axis=1)
            if K > 1:
                cols = xp.arange(K, device=_dev(half_sq))[None, :]
                others = xp.where(cols == nearest[:, None], xp.inf, half_sq)
                ok = 4.0 * d1 <= xp.min(others, axis=1)
            else:
                ok = xp.ones_like(d1, dtype=xp.bool)
            if get_separation(self.separation).constant_slope:
                ok = xp.logical_and(ok, 2.0 * d1 < lsr_radius_sq)
            out.append(xp.where(ok, xp.take(rows, nearest), -1))
        return concat(out, xp)

    # ------------------------------------------------------------- public API
    def descend(self, X, clamp_mask=None, *, return_energy_trace=False):
        """Run the energy descent and report how it went, query by query.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Initial states (queries).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate: it keeps its value from ``X``.
        return_energy_trace : bool, default=False
            Also return the energy of every query before every step.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``states`` (n_samples, n_features), ``n_iter`` (n_samples,),
            ``converged`` (n_samples,), ``energy`` (n_samples,) of the final
            states and, if asked, ``energy_trace`` (n_steps + 1, n_samples).
        """
        X, backend = validate_fitted_input(self, X, "descend")
        r = self._descend(
            backend,
            X,
            clamp_mask,
            return_trace=return_energy_trace,
            compute_energy=True,
        )
        out = Bunch(
            states=backend.to_output(r.states),
            n_iter=backend.to_output(r.n_iter),
            converged=backend.to_output(r.converged),
            energy=backend.to_output(r.energy),
        )
        if return_energy_trace:
            out.energy_trace = backend.to_output(r.energy_trace)
        return out

    def transform(self, X, clamp_mask=None):
        """Retrieve: descend from each query and return the states reached.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries (corrupted or partial patterns).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate: it keeps its value from ``X``
            (e.g. the visible half of an occluded image).

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            Retrieved states, in the dtype of ``X`` (float32 stays float32).
        """
        X, backend = validate_fitted_input(self, X, "transform")
        states = self._states(backend, X, clamp_mask)
        return backend.to_output(states)

    def predict(self, X, clamp_mask=None):
        """Index of the memory each query descends to (-1 where none).

        A query reaches memory ``mu`` when its final state is at most half as
        far from ``xi_mu`` as from any other memory (and, for ``"lsr"``, inside
        the support of ``xi_mu``). Mixture and spurious states give -1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            Clamped coordinates, as in :meth:`transform`.

        Returns
        -------
        index : ndarray of shape (n_samples,), dtype=int64
            Row of ``memories_`` reached by each query, or -1.
        """
        X, backend = validate_fitted_input(self, X, "predict")
        states = self._states(backend, X, clamp_mask)
        return backend.to_output(self._reached(backend, states))

    def energy(self, X):
        """Energy ``E(v)`` of each row of ``X`` (lower is more memory-like).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
            ``-(1/beta) log(eps + sum_mu w_mu F(beta S(x, xi_mu)))``.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="energy")
        return self._energy(X)

    def _energy(self, X):
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        memories = self._memories(backend, Xc.dtype)
        spec = self._spec()
        oracle = self._oracle(memories, backend)
        if oracle is not memories:
            energy = map_chunks(
                lambda sl: oracle.energy(Xc[sl, :]),
                Xc.shape[0],
                3 * oracle.n_columns * itemsize(Xc),
                xp,
            )
            return backend.to_output(energy)
        energy = map_chunks(
            lambda sl: energy_from_log_z(
                log_kernel_sum(Xc[sl, :], memories, spec, xp, need_weights=False)[0],
                spec,
            ),
            Xc.shape[0],
            kernel_sum_temporaries(spec, need_weights=False)
            * memories.n_memories
            * itemsize(Xc),
            xp,
            min_rows=MIN_QUERY_ROWS,  # huge K: the memories are split instead
        )
        return backend.to_output(energy)

    def score_samples(self, X):
        """Score each state by minus its energy.

        Minus the energy is an unnormalised log-density divided by ``beta``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        score : ndarray of shape (n_samples,)
            Minus the energy (higher is more memory-like).
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="score_samples")
        return -self._energy(X)

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` under the normalised kernel density.

        ``exp(-beta * E(x))`` is, up to a constant, a kernel density estimate
        with one kernel per memory. ``score`` normalises it,

        ``log p(x) = log(sum_mu w_mu F(beta S(x, xi_mu))) - log(sum_mu w_mu)
        - log Z(beta, d)``,

        with ``Z`` the integral of one kernel over ``x`` (``(2 pi /
        beta)^(d/2)`` for ``"lse"``), and returns the mean of ``log p`` over
        the rows of ``X``. This makes different ``beta`` comparable, so
        ``GridSearchCV(DenseAM(), {"beta": [...]})`` selects a bandwidth as it
        would with :class:`~sklearn.neighbors.KernelDensity` (whose ``score``
        is the *sum* over rows; the mean selects the same value on
        equal-sized folds). :meth:`score_samples` stays the unnormalised
        ``-E``, and ``epsilon`` is left out of the density.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Held-out samples.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Mean log-density; ``-inf`` when a row lies outside every support
            (``"lsr"``, ``"rectified_poly"``), as with ``KernelDensity``.

        Raises
        ------
        ValueError
            For kernels that are not integrable (``similarity="dot"`` or
            ``separation="poly"``).
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="score")
        return float(np.mean(self._log_density(X)))

    def _log_density(self, X):
        """Normalised log-density of each row of validated ``X`` (NumPy, float64)."""
        spec = replace(self._spec(), epsilon=0.0)
        log_norm = log_density_normaliser(spec, X.shape[1])
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        memories = self._memories(backend, Xc.dtype)
        per_row = (
            kernel_sum_temporaries(spec, need_weights=False)
            * memories.n_memories
            * itemsize(Xc)
        )
        log_z = [
            to_numpy(
                log_kernel_sum(Xc[sl, :], memories, spec, xp, need_weights=False)[0]
            )
            for sl in chunk_slices(Xc.shape[0], per_row)
        ]
        weights = self.memory_weights_
        if weights is None:
            mass = float(self.memories_.shape[0])
        else:
            mass = float(np.sum(to_numpy(weights), dtype=np.float64))
        return np.concatenate(log_z).astype(np.float64) - math.log(mass) - log_norm

    def sample(
        self,
        n_samples=1,
        *,
        method="exact",
        X=None,
        clamp_mask=None,
        n_steps=200,
        step_size=0.1,
        beta_start=None,
        metropolis=True,
        return_trajectory=False,
        random_state=None,
        chunks=None,
    ):
        """Draw samples from the density ``p(v) ~ exp(-beta E(v))``.

        ``exp(-beta E)`` is the kernel mixture ``sum_mu w_mu k(v, xi_mu)``
        over the stored patterns (a kernel density estimate), so sampling it
        *copies* a stored pattern up to the kernel's noise: memorisation.

        Read more in the :ref:`User Guide <sampling>`.

        Parameters
        ----------
        n_samples : int or None, default=1
            Number of samples (None: the number of rows of ``X``).
        method : {"exact", "langevin", "anneal"}, default="exact"
            ``"exact"`` draws a memory by weight and adds the kernel's noise
            (Gaussian for ``"lse"``, Epanechnikov for ``"lsr"``, the
            ``max(1 - beta/2 r^2, 0)^degree`` kernel for ``"rectified_poly"``).
            ``"langevin"`` runs ``n_steps`` of Langevin dynamics
            ``v <- v - step_size grad E + sqrt(2 step_size / beta) z`` at the
            memory's ``beta``. ``"anneal"`` (``"lse"`` only) is reverse
            diffusion with the exact score: ``beta`` rises geometrically from
            ``beta_start`` to the memory's ``beta`` in ``n_steps`` steps of
            size ``eta = 1 - beta_k / beta_(k+1)`` with noise variance
            ``eta / beta_k`` (stable for any number of steps).
        X : array-like of shape (n_samples, n_features), default=None
            Values of the clamped coordinates (with ``clamp_mask``) and, for
            ``"langevin"``, the starting states. Without it, ``"langevin"``
            and ``"anneal"`` start from exact draws at ``beta_start``.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate: it keeps its value from ``X``
            and the others are sampled given it (inpainting). ``"exact"``
            draws from the exact conditional density.
        n_steps : int, default=200
            Steps of ``"langevin"`` and ``"anneal"``.
        step_size : float, default=0.1
            Langevin step ``eta`` in energy units (``grad E`` has unit
            curvature near a memory of ``"lse"``).
        beta_start : float, default=None
            Inverse temperature of the starting draws of ``"langevin"`` and
            ``"anneal"``; None uses ``min(beta_, 1 / total variance of the
            memories)``, a kernel as wide as the data cloud. Langevin on the
            compact kernels (``"lsr"``, ``"rectified_poly"``) starts from
            exact draws at ``beta_`` instead, inside the support.
        metropolis : bool, default=True
            Accept or reject each Langevin move (MALA), which makes
            ``exp(-beta E)`` the exact stationary density; False is the
            unadjusted algorithm (biased by O(step_size), and unstable near
            the edge of a compact kernel's support, where the gradient of
            ``E`` is unbounded).
        return_trajectory : bool, default=False
            Also return every state of ``"langevin"`` / ``"anneal"``.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; pass an int for reproducible samples. With
            None, NumPy's global generator is used, so two calls differ.
        chunks : int or None, default=None
            Dask: draw ``n_samples`` rows in blocks of ``chunks`` rows on the
            workers and return a lazy dask array (as does a dask ``X``, or a
            model fitted on a dask array); see :ref:`dask`. None returns
            NumPy for NumPy input.

        Returns
        -------
        samples : ndarray of shape (n_samples, n_features)
            In the dtype of the memories.
        trajectory : ndarray of shape (n_steps + 1, n_samples, n_features)
            Only with ``return_trajectory=True`` (not for ``"exact"``).

        See Also
        --------
        sklearn.neighbors.KernelDensity.sample : The same exact draws for
            the Gaussian kernel (with ``bandwidth = 1/sqrt(beta)``).

        Examples
        --------
        >>> import numpy as np
        >>> from skam import DenseAM
        >>> memories = np.array([[0.0, 0.0], [4.0, 4.0]])
        >>> am = DenseAM(beta=100.0).fit(memories)
        >>> samples = am.sample(1000, random_state=0)
        >>> copies_second = np.linalg.norm(samples - [4.0, 4.0], axis=1) < 0.5
        >>> float(copies_second.mean().round(1))  # half copy each memory
        0.5
        >>> noise = samples[copies_second] - [4.0, 4.0]
        >>> float(noise.std().round(2))  # the kernel's width 1/sqrt(beta)
        0.1
        >>> am.sample(3, method="anneal", random_state=0).shape
        (3, 2)
        """
        check_is_fitted(self)
        if X is not None:
            X = validate_X(self, X, reset=False, method="sample")
        backend = backend_for(self, self.memories_)
        samples, trajectory = _sample_stored(
            self.memories_,
            self.memory_weights_,
            self._spec(),
            backend,
            n_samples=n_samples,
            method=method,
            X=X,
            clamp_mask=clamp_mask,
            n_steps=n_steps,
            step_size=step_size,
            beta_start=beta_start,
            metropolis=metropolis,
            return_trajectory=return_trajectory,
            random_state=random_state,
        )
        if return_trajectory:
            return backend.to_output(samples), backend.to_output(trajectory)
        return backend.to_output(samples)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def _resolve_similarity(separation, similarity):
    if similarity != "auto":
        return similarity
    return get_separation(separation).default_similarity


def _resolve_self_coupling(am, memories, two_valued=None):
    """``self_coupling_``: False only for polynomials with the dot product.

    ``two_valued`` (a function of ``memories``) replaces :func:`_two_valued`
    (the sharded fit passes its per-shard test).
    """
    polynomial = am.separation in ("poly", "rectified_poly") and am.similarity_ == "dot"
    choice = getattr(am, "self_coupling", "auto")  # subclasses may not expose it
    if choice == "auto":
        return not (polynomial and (two_valued or _two_valued)(memories))
    if not choice and not polynomial:
        raise ValueError(
            "self_coupling=False applies to separation='poly' or 'rectified_poly' "
            f"with similarity='dot'; got separation={am.separation!r}, "
            f"similarity={am.similarity_!r}."
        )
    return bool(choice)


def _two_valued(memories):
    """True when every feature of the memories takes at most two values."""
    host = to_numpy(memories)
    low, high = host.min(axis=0), host.max(axis=0)
    return bool(np.all((host == low) | (host == high)))


def _dev(array):
    return array_device(array)


def _distinct_rows(memories, weights):
    """Host int64 array: first row of each distinct pattern of positive weight.

    One pass over the rows (their bytes as dictionary keys, ``-0.0`` read as
    ``0.0``): O(n d), where ``np.unique(axis=0)`` sorts rows lexicographically.
    """
    host = to_numpy(memories)
    keep = np.arange(host.shape[0])
    if weights is not None:
        keep = np.flatnonzero(to_numpy(weights) > 0)
    first = {}
    for i in keep.tolist():
        first.setdefault((host[i] + 0.0).tobytes(), i)
    return np.fromiter(first.values(), dtype=np.int64, count=len(first))
