"""Auto-associative memories: :class:`DenseAM` and :class:`HopfieldNetwork`."""

import math
from dataclasses import replace
from numbers import Integral

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from skam._backend import to_numpy
from skam._chunking import chunk_slices, concat, itemsize, map_chunks
from skam._dask import dask_dispatch
from skam._descent import descend as _descend
from skam._docstrings import fill_doc
from skam._energy import (
    energy_from_log_z,
    half_sq_distances,
    log_density_normaliser,
    log_kernel_sum,
    lsr_support_radius_sq,
    prepare_memories,
)
from skam._partial import MIN_QUERY_ROWS
from skam._sampling import sample_stored as _sample_stored
from skam._validation import (
    BACKEND_CONSTRAINT,
    DESCENT_CONSTRAINTS,
    ENERGY_CONSTRAINTS,
    backend_for,
    make_spec,
    remember_namespace,
    resolve_beta,
    scale_rule,
    validate_clamp_mask,
    validate_sample_weight,
    validate_X,
)

# Memories checked by the fit-time self-recall diagnostic (evenly spaced).
_N_SELF_RECALL = 256


def _evenly_spaced(n, at_most):
    return np.unique(np.linspace(0, n - 1, min(n, at_most)).astype(np.intp))


@dask_dispatch(sharded_fit="dense_am")
@fill_doc
class DenseAM(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
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
    %(similarity)s
    beta : float or "scale", default="scale"
        Inverse temperature: the kernel bandwidth is ``1/sqrt(beta)`` in data
        units. Larger values give sharper, more separated basins (``beta ->
        inf`` is nearest-pattern lookup). ``"scale"`` derives it from the
        stored patterns, with ``r2`` the median squared distance between a
        memory and its nearest other memory: ``4 * log(K) / r2`` for
        ``"lse"`` (every stored pattern is close to a fixed point),
        ``2 / r2`` for ``"lsr"`` and ``"rectified_poly"`` (each support
        reaches the nearest neighbour) and ``1 / max ||xi||^2`` for
        ``"poly"`` with ``"dot"``.
    %(degree)s
    %(epsilon)s
    %(step_size)s
    %(max_iter)s
    %(tol)s
    %(backend)s

    Attributes
    ----------
    memories_ : ndarray of shape (n_memories, n_features)
        The stored patterns (the training samples).
    memory_weights_ : ndarray of shape (n_memories,) or None
        ``sample_weight`` given to ``fit``/``partial_fit`` (None when unweighted).
    beta_ : float
        The inverse temperature used (``beta`` resolved).
    n_iter_ : int
        Descent steps taken by the fit-time self-recall check (the largest
        over the checked memories). Use :meth:`descend` for per-query counts.
    self_recall_ : float
        Fraction of stored patterns (at most 256, evenly spaced) that descend
        back to themselves: a capacity diagnostic for the chosen ``beta``.
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
        **DESCENT_CONSTRAINTS,
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        separation="lse",
        similarity="sqeuclidean",
        beta="scale",
        degree=3,
        epsilon=1e-10,
        step_size=1.0,
        max_iter=100,
        tol=1e-6,
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
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        backend = backend_for(self, X)
        self.memories_ = X
        self.memory_weights_ = validate_sample_weight(sample_weight, X, backend)
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
        else:
            xp = array_namespace(self.memories_)
            old_w = self.memory_weights_
            if old_w is not None or sw is not None:
                old_w = _ones(xp, self.memories_) if old_w is None else old_w
                sw = _ones(xp, X) if sw is None else sw
                self.memory_weights_ = xp.concat(
                    [old_w, xp.astype(sw, old_w.dtype)], axis=0
                )
            self.memories_ = xp.concat(
                [self.memories_, xp.astype(X, self.memories_.dtype)], axis=0
            )
        self._finish_storing()
        return self

    def _finish_storing(self):
        rule = scale_rule(self.separation, self.similarity)
        self.beta_ = resolve_beta(self.beta, self.memories_, rule=rule)
        rows = _distinct_rows(self.memories_, self.memory_weights_)
        xp_in = array_namespace(self.memories_)
        self._distinct_rows = xp_in.asarray(rows, device=_dev(self.memories_))
        idx = _evenly_spaced(self.memories_.shape[0], _N_SELF_RECALL)
        idx = xp_in.asarray(idx, device=_dev(self.memories_))
        backend = backend_for(self, self.memories_)
        xp = backend.xp
        probe = backend.to_compute(xp_in.take(self.memories_, idx, axis=0))
        result = self._descend(backend, probe, None, return_trace=False)
        reached = self._reached(backend, result.states)
        patterns = backend.to_compute(self.memories_, probe.dtype)
        target = xp.take(patterns, xp.maximum(reached, 0), axis=0)
        same = xp.logical_and(reached >= 0, xp.all(target == probe, axis=1))
        self.self_recall_ = float(xp.mean(xp.astype(same, xp.float64)))
        self.n_iter_ = max(1, int(xp.max(result.n_iter)))

    # ------------------------------------------------------------------ engine
    def _memories(self, backend, dtype):
        """Memories in the compute namespace and dtype (no caching)."""
        xp = backend.xp
        patterns = backend.to_compute(self.memories_, dtype)
        weights = backend.to_compute(self.memory_weights_, dtype)
        return prepare_memories(patterns, xp, weights=weights)

    def _spec(self):
        return make_spec(self, self.beta_)

    def _box(self, memories, backend):
        if self.similarity != "dot":
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
            memories,
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
        )

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
        for sl in chunk_slices(states.shape[0], 2 * K * itemsize(states)):
            half_sq = half_sq_distances(states[sl, :], memories, xp)
            nearest = xp.argmin(half_sq, axis=1)
            d1 = xp.min(half_sq, axis=1)
            if K > 1:
                cols = xp.arange(K, device=_dev(half_sq))[None, :]
                others = xp.where(cols == nearest[:, None], xp.inf, half_sq)
                ok = 4.0 * d1 <= xp.min(others, axis=1)
            else:
                ok = xp.ones_like(d1, dtype=xp.bool)
            if self.separation == "lsr":
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
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="descend")
        backend = backend_for(self, X)
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
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="transform")
        backend = backend_for(self, X)
        states = self._descend(backend, X, clamp_mask, return_trace=False).states
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
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="predict")
        backend = backend_for(self, X)
        states = self._descend(backend, X, clamp_mask, return_trace=False).states
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
        energy = map_chunks(
            lambda sl: energy_from_log_z(
                log_kernel_sum(Xc[sl, :], memories, spec, xp, need_weights=False)[0],
                spec,
            ),
            Xc.shape[0],
            3 * memories.n_memories * itemsize(Xc),
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
        per_row = 3 * memories.n_memories * itemsize(Xc)
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
            Seed of the draws.

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


def _ones(xp, like):
    return xp.ones((like.shape[0],), dtype=like.dtype, device=_dev(like))


def _dev(array):
    return array_device(array)


def _distinct_rows(memories, weights):
    """Host int64 array: first row of each distinct pattern of positive weight."""
    host = to_numpy(memories)
    keep = np.arange(host.shape[0])
    if weights is not None:
        keep = np.flatnonzero(to_numpy(weights) > 0)
    _, first = np.unique(host[keep], axis=0, return_index=True)
    return keep[np.sort(first)].astype(np.int64)


@dask_dispatch(sharded_fit="hopfield")
@fill_doc
class HopfieldNetwork(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Classical binary Hopfield network with Hebbian weights.

    ``fit`` sets the couplings ``W = (1/D) sum_mu w_mu xi_mu xi_mu^T`` with a
    zero diagonal (the Hebbian rule); ``transform`` runs sign updates
    ``s_i <- sgn(sum_j W_ij s_j)`` (``sgn(0) = +1``) until no neuron changes.
    It is the quadratic special case of :class:`DenseAM` (``F(x) = x^2/2``
    with the dot-product similarity) and can store about ``0.14 D`` random
    patterns; beyond that, and on correlated data, recall breaks down.

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
    n_iter_ : int
        Sweeps taken by the fit-time self-recall check (the largest over the
        checked patterns).
    self_recall_ : float
        Fraction of stored patterns (at most 256, evenly spaced) that are
        fixed points of the dynamics.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DenseAM : Dense Associative Memory, with far larger capacity.

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
        "update": [StrOptions({"async", "sync"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Set the Hebbian couplings of the patterns in ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns (binarised: ``> 0`` is +1).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each pattern in the Hebbian sum.

        Returns
        -------
        self : object
            The fitted network.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        xp = array_namespace(X)
        self.memories_ = _binarize(X, xp)
        sw = validate_sample_weight(sample_weight, X, backend_for(self, X))
        self.coupling_ = _hebbian(self.memories_, sw, xp)
        self._self_recall()
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Add the patterns of ``X`` to the Hebbian couplings.

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
            The network with the new patterns stored.
        """
        if not hasattr(self, "coupling_"):
            return self.fit(X, sample_weight=sample_weight)
        X = validate_X(self, X, reset=False, method="partial_fit")
        xp = array_namespace(X)
        new = xp.astype(_binarize(X, xp), self.memories_.dtype)
        sw = validate_sample_weight(sample_weight, X, backend_for(self, X))
        self.coupling_ = self.coupling_ + xp.astype(
            _hebbian(new, sw, xp), self.coupling_.dtype
        )
        self.memories_ = xp.concat([self.memories_, new], axis=0)
        self._self_recall()
        return self

    def _self_recall(self):
        xp_in = array_namespace(self.memories_)
        idx = _evenly_spaced(self.memories_.shape[0], _N_SELF_RECALL)
        probe = xp_in.take(
            self.memories_, xp_in.asarray(idx, device=_dev(self.memories_)), axis=0
        )
        backend = backend_for(self, probe)
        xp = backend.xp
        probe = backend.to_compute(probe)
        states, n_sweeps = self._recall(backend, probe)
        stable = xp.all(states == probe, axis=1)
        self.self_recall_ = float(xp.mean(xp.astype(stable, xp.float64)))
        self.n_iter_ = max(1, n_sweeps)

    def _recall(self, backend, S):
        """Sign dynamics from binary states S (compute namespace)."""
        xp = backend.xp
        W = backend.to_compute(self.coupling_, S.dtype)
        D = W.shape[0]
        rng = check_random_state(self.random_state)
        one = xp.ones_like(S)
        sweeps = 0
        while sweeps < self.max_iter:
            sweeps += 1
            if self.update == "sync":
                S_new = xp.where(S @ W >= 0, one, -one)
            else:
                S_new = xp.asarray(S, copy=True)  # updated neuron by neuron
                for i in rng.permutation(D).tolist():
                    field = S_new @ W[:, i]
                    S_new[:, i] = xp.where(field >= 0, one[:, 0], -one[:, 0])
            changed = bool(xp.any(S_new != S))
            S = S_new
            if not changed:
                break
        return S, sweeps

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
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="transform")
        backend = backend_for(self, X)
        S = _binarize(backend.to_compute(X), backend.xp)
        return backend.to_output(self._recall(backend, S)[0])

    def predict(self, X):
        """Index of the stored pattern each query recalls exactly (-1 if none).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        index : ndarray of shape (n_samples,), dtype=int64
            Row of ``memories_`` equal to the recalled state, or -1 (spurious
            or inverted states).
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="predict")
        backend = backend_for(self, X)
        xp = backend.xp
        S, _ = self._recall(backend, _binarize(backend.to_compute(X), xp))
        patterns = backend.to_compute(self.memories_, S.dtype)
        D = S.shape[1]
        out = []
        for sl in chunk_slices(S.shape[0], patterns.shape[0] * itemsize(S)):
            overlap = S[sl, :] @ patterns.T
            exact = overlap >= D - 0.5
            found = xp.any(exact, axis=1)
            out.append(
                xp.where(found, xp.argmax(xp.astype(exact, xp.int8), axis=1), -1)
            )
        return backend.to_output(concat(out, xp))

    def energy(self, X):
        """Energy ``-1/2 s^T W s`` of each (binarised) row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
            Lower is more memory-like.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="energy")
        return self._energy(X)

    def _energy(self, X):
        backend = backend_for(self, X)
        xp = backend.xp
        S = _binarize(backend.to_compute(X), xp)
        W = backend.to_compute(self.coupling_, S.dtype)
        return backend.to_output(-0.5 * xp.sum((S @ W) * S, axis=1))

    def score_samples(self, X):
        """Score each (binarised) row of ``X`` by minus its energy.

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


def _binarize(X, xp):
    one = xp.ones_like(X)
    return xp.where(X > 0, one, -one)


def _hebbian(patterns, weights, xp):
    """``(1/D) sum_mu w_mu xi_mu xi_mu^T`` with the diagonal set to zero."""
    D = patterns.shape[1]
    weighted = patterns if weights is None else patterns * weights[:, None]
    W = (weighted.T @ patterns) / D
    eye = xp.eye(D, dtype=W.dtype, device=_dev(W))
    return W * (1.0 - eye)
