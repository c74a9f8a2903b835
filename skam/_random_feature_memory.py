"""The random-feature Dense Associative Memory :class:`RandomFeatureAM` (DrDAM)."""

import math
import warnings

import numpy as np
from array_api_compat import device as array_device
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils.validation import check_is_fitted

from skam._backend import to_numpy
from skam._bochner import RandomFeatureOracle
from skam._chunking import chunk_slices, itemsize, map_chunks
from skam._dask import dask_dispatch
from skam._descent import descend as _descend
from skam._docstrings import fill_doc
from skam._energy import half_sq_distances, prepare_memories
from skam._random_feature_base import (
    KERNEL_CONSTRAINTS,
    KernelSumClippedWarning,
    RandomFeatureMixin,
    accumulate,
    resolve_kernel_beta,
)
from skam._sampling import add_moments as _add_moments
from skam._sampling import moments_mean_std as _moments_mean_std
from skam._sampling import sample_langevin_only as _sample_langevin_only
from skam._validation import (
    DESCENT_CONSTRAINTS,
    ENERGY_CONSTRAINTS,
    backend_for,
    validate_clamp_mask,
    validate_fit_input,
    validate_fitted_input,
    validate_sample_weight,
    validate_X,
    weight_unit,
)

# Rows of the fit batch descended by the fit-time self-recall diagnostic.
_N_PROBES = 16


@dask_dispatch(dask_fit="random_features")
@fill_doc
class RandomFeatureAM(
    OneToOneFeatureMixin, TransformerMixin, RandomFeatureMixin, BaseEstimator
):
    """Random-feature Dense Associative Memory (DrDAM): memories summed into T.

    The log-sum-exp energy of :class:`skam.DenseAM` is a kernel sum,
    ``E(v) = -(1/beta) log sum_mu k(v, xi_mu)`` with the Gaussian kernel
    ``k = exp(-beta/2 |v - xi|^2)``. With random features
    ``k(v, xi) ~= <phi(v), phi(xi)>`` (:class:`BochnerFeatures` with
    ``gamma = beta / 2``) the sum becomes ``<phi(v), T>`` with the
    *distributed memory* ``T = sum_mu w_mu phi(xi_mu)``: ``fit`` builds ``T``
    (in chunks) and forgets the patterns, so the model size and the cost of
    a retrieval step do not depend on the number of stored patterns.
    ``transform`` runs the same clamped energy descent as ``DenseAM`` on

    ``E(v) = -(1/beta) log max(<phi(v), T>, epsilon)``

    with its closed-form gradient. Other shift-invariant kernels give other
    energies (``kernel``).

    Read more in the :ref:`User Guide <random_features>`.

    Parameters
    ----------
    %(kernel)s
    %(nu)s
    %(feature_map)s
    n_components : int, default=4096
        Number of random frequencies ``Y``; kernel errors fall like
        ``sqrt(n_features / Y)``. Large ``beta`` needs large ``Y``.
    beta : float or "scale", default=1.0
        Inverse temperature, as in :class:`skam.DenseAM`: the Gaussian kernel
        is ``exp(-beta/2 |v - xi|^2)``, i.e. ``gamma = beta / 2`` for every
        ``kernel``. ``"scale"`` uses ``2 / (n_features * X.var())`` on the
        data of the first ``fit``. Random features degrade quickly as ``beta``
        grows (see the User Guide).
    %(orthogonal)s
    epsilon : float, default=1e-10
        Clipping threshold of the kernel-sum estimate of the trigonometric
        maps: where ``<phi(v), T> <= epsilon`` the energy is
        ``-(1/beta) log(epsilon)``, the gradient is zero (the query does not
        move) and a :class:`KernelSumClippedWarning` reports how many queries
        were clipped. ``"positive"`` features are computed in log space and
        never clipped.
    step_size : float, default=0.1
        Step size of the descent ``v <- v - step_size * m * grad E(v)``. Smaller
        steps keep the approximate trajectory closer to the exact one.
    %(max_iter)s
    %(tol)s
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    distributed_memory_ : ndarray of shape (n_features_out,)
        ``T = sum_mu w_mu phi(xi_mu)`` (2Y entries for ``"sincos"`` and
        ``"positive"``, Y for ``"cos"``).
    n_stored_ : int
        Number of patterns summed into ``T`` (rows of all ``fit`` and
        ``partial_fit`` calls since the last ``fit``).
    random_weights_ : ndarray of shape (n_features, n_components)
        Random frequencies ``W``.
    random_offset_ : ndarray of shape (n_components,) or None
        Random phases of the ``"cos"`` map.
    center_ : ndarray of shape (n_features,) or None
        Shift applied before the ``"positive"`` map (mean of the first
        ``fit`` data).
    beta_ : float
        The inverse temperature used.
    n_iter_ : int
        Descent steps of the fit-time self-recall check (largest over the
        probes).
    self_recall_ : float
        Fraction of probed patterns (at most 16 rows of the last ``fit`` or
        ``partial_fit`` batch) whose retrieved state is at most half as far
        from the pattern as from any other row of that batch, and whose
        kernel-sum estimate is not clipped: a diagnostic of ``beta`` and
        ``n_components``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    skam.DenseAM : The exact model (stores the patterns).
    BochnerFeatures : The random feature maps.

    Notes
    -----
    The model keeps ``T`` and the random frequencies: ``O(Y n_features)``
    numbers however many patterns are stored, against ``O(K n_features)``
    for ``DenseAM``; a step costs ``O(n_features Y)`` instead of
    ``O(n_features K)``. ``partial_fit`` adds patterns by summation (and
    :meth:`forget` subtracts them). Approximation errors grow with
    ``beta``, with the distance of a query from the stored patterns and with
    the number of steps; see Hoover et al. (2024).

    %(kernel_notes)s

    References
    ----------
    .. [1] B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov, "Dense
       Associative Memory Through the Lens of Random Features", NeurIPS 2024.
    .. [2] A. Rahimi, B. Recht, "Random Features for Large-Scale Kernel
       Machines", NeurIPS 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from skam.random_features import RandomFeatureAM
    >>> rng = np.random.RandomState(0)
    >>> patterns = np.sign(rng.randn(5, 16))
    >>> am = RandomFeatureAM(beta=0.5, random_state=0).fit(patterns)
    >>> am.distributed_memory_.shape        # 2Y numbers, however many patterns
    (8192,)
    >>> noisy = patterns.copy()
    >>> noisy[:, :3] *= -1                      # flip 3 of 16 bits
    >>> bool((np.sign(am.transform(noisy)) == patterns).all())
    True
    """

    _parameter_constraints: dict = {
        **KERNEL_CONSTRAINTS,
        "beta": ENERGY_CONSTRAINTS["beta"],
        "epsilon": ENERGY_CONSTRAINTS["epsilon"],
        **DESCENT_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        kernel="gaussian",
        nu=1.5,
        feature_map="sincos",
        n_components=4096,
        beta=1.0,
        orthogonal=False,
        epsilon=1e-10,
        step_size=0.1,
        max_iter=100,
        tol=1e-6,
        random_state=None,
        backend="numpy",
    ):
        self.kernel = kernel
        self.nu = nu
        self.feature_map = feature_map
        self.n_components = n_components
        self.beta = beta
        self.orthogonal = orthogonal
        self.epsilon = epsilon
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Draw the frequencies and sum the patterns of ``X`` into ``T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to store (not kept).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each pattern in ``T``. Only relative weights matter:
            the weights of this and every later call are divided by the mean
            weight of this call, so ``T`` is that of repeated patterns up to
            one constant factor (which shifts the energy by a constant and
            leaves every retrieval unchanged).

        Returns
        -------
        self : object
            The fitted memory.
        """
        X, backend = validate_fit_input(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        self.beta_ = resolve_kernel_beta(self.beta, X, sw)
        self._draw(X, backend, self.beta_ / 2.0, sw)
        self.distributed_memory_ = None
        self.n_stored_ = 0
        self._weight_unit = weight_unit(sw)
        self._stored_weight = 0.0
        self._pattern_moments = None  # for the starts of ``sample``
        self._store(X, sw, backend, sign=1.0)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Add the patterns of ``X`` to the distributed memory (``T += phi``).

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
            The memory with the new patterns added.
        """
        if not hasattr(self, "distributed_memory_"):
            return self.fit(X, sample_weight=sample_weight)
        X = validate_X(self, X, reset=False, method="partial_fit")
        backend = backend_for(self, X)
        sw = validate_sample_weight(sample_weight, X, backend)
        self._store(X, sw, backend, sign=1.0)
        return self

    def forget(self, X, sample_weight=None):
        """Remove patterns stored earlier (``T -= phi``).

        Only patterns that were stored (with the same weights) should be
        removed: ``T`` is a sum, so forgetting is exact up to rounding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Patterns to remove.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights they were stored with.

        Returns
        -------
        self : object
            The memory without these patterns.
        """
        X, backend = validate_fitted_input(self, X, "forget")
        sw = validate_sample_weight(sample_weight, X, backend)
        if X.shape[0] > self.n_stored_:
            raise ValueError(
                f"forget: X has {X.shape[0]} patterns but only {self.n_stored_} are "
                "stored; only patterns stored earlier can be forgotten."
            )
        stored = getattr(self, "_stored_weight", None)
        removed = self._batch_weight(X, sw)
        if stored is not None and removed > stored * (1 + 1e-9):
            raise ValueError(
                f"forget: sample_weight removes a total weight of {removed:.6g} "
                f"but only {stored:.6g} is stored (in units of the first fit's "
                "mean weight); forget patterns with the weights they were stored "
                "with."
            )
        self._store(X, sw, backend, sign=-1.0)
        return self

    def _batch_weight(self, X, sw):
        """Total weight of a batch, in units of the first fit's mean weight."""
        if sw is None:
            return float(X.shape[0]) / getattr(self, "_weight_unit", 1.0)
        return float(np.sum(to_numpy(sw), dtype=np.float64)) / getattr(
            self, "_weight_unit", 1.0
        )

    def _store(self, X, sw, backend, *, sign):
        """Add ``sign * sum_mu w_mu phi(x_mu)`` to T (``sw`` validated).

        Weights are divided by the mean weight of the first fit (see
        :func:`~skam._validation.weight_unit`): only relative weights matter.
        """
        xp = backend.xp
        if hasattr(self, "_stored_weight"):
            self._stored_weight += sign * self._batch_weight(X, sw)
        sw = backend.to_compute(sw)
        if sw is not None:
            sw = sw / getattr(self, "_weight_unit", 1.0)
        Xc = backend.to_compute(X)
        dtype = Xc.dtype if self.distributed_memory_ is None else None
        W, b, center = self._frequencies(backend, Xc.dtype)
        T_new = accumulate(
            self._centered(Xc, center),
            sw,
            None,
            1,
            W,
            b,
            feature_map=self.feature_map,
            gamma=self.beta_ / 2.0,
            xp=xp,
        )[0, :]
        if sign < 0:
            T_new = -T_new
        if self.distributed_memory_ is None:
            T = T_new
        else:
            old = backend.to_compute(self.distributed_memory_)
            T = old + xp.astype(T_new, old.dtype)
            dtype = old.dtype
        self.distributed_memory_ = backend.to_output(xp.astype(T, dtype))
        self.n_stored_ = int(self.n_stored_ + sign * X.shape[0])
        self._pattern_moments = _add_moments(self._pattern_moments, X, sw, sign)
        if sign > 0:
            self._self_recall(backend, Xc)

    # ------------------------------------------------------------------ engine
    def _oracle(self, backend, dtype):
        W, b, _ = self._frequencies(backend, dtype)
        T = backend.to_compute(self.distributed_memory_, dtype)
        return RandomFeatureOracle(
            W,
            b,
            T,
            feature_map=self.feature_map,
            gamma=self.beta_ / 2.0,
            beta=self.beta_,
            epsilon=float(self.epsilon),
            xp=backend.xp,
        )

    def _descend(self, backend, Xc, mask, *, return_trace=False):
        """Descent of compute-namespace states; returns (result, clipped mask)."""
        xp = backend.xp
        oracle = self._oracle(backend, Xc.dtype)
        _, _, center = self._frequencies(backend, Xc.dtype)
        V0 = self._centered(Xc, center)
        result = _descend(
            V0,
            oracle,
            None,
            xp,
            clamp_mask=mask,
            step_size=self.step_size,
            max_iter=self.max_iter,
            tol=self.tol,
            return_trace=return_trace,
            compute_energy=True,
        )
        if center is not None:
            # add the displacement back: clamped coordinates stay bit-exact
            result.states = Xc + (result.states - V0)
        return result, self._clipped(result.energy, xp)

    def _clipped(self, energy, xp):
        """Queries whose energy is the clipping ceiling ``-(1/beta) log eps``."""
        if self.feature_map == "positive":
            return xp.zeros(energy.shape, dtype=xp.bool, device=array_device(energy))
        # the same operations as the oracle, so a clipped energy equals it exactly
        log_eps = math.log(self.epsilon) if self.epsilon > 0 else -math.inf
        ceiling = xp.full_like(energy, log_eps) * (-1.0 / self.beta_)
        return energy >= ceiling

    def _warn_clipped(self, clipped, xp, method, stacklevel=3):
        n_clipped = int(xp.sum(xp.astype(clipped, xp.int64)))
        if n_clipped:
            warnings.warn(
                f"{type(self).__name__}.{method}(): the random-feature estimate of "
                f"the kernel sum was <= epsilon={self.epsilon:g} for {n_clipped} of "
                f"{clipped.shape[0]} queries; their energy is capped at "
                "-(1/beta) log(epsilon), where the gradient is zero (a descending "
                "query stops there). Increase n_components, lower beta, or use "
                "feature_map='positive'.",
                KernelSumClippedWarning,
                stacklevel=stacklevel,
            )

    def _self_recall(self, backend, Xc, *, probes=None, nearest_other=None):
        """Fit-time diagnostic on at most 16 evenly spaced rows of the batch.

        ``probes`` and ``nearest_other(states, probes)`` replace the rows of
        ``Xc`` and the pass over them (a sharded fit passes both).
        """
        xp = backend.xp
        if probes is None:
            idx = probe_rows(Xc.shape[0])
            probes = xp.take(Xc, xp.asarray(idx, device=array_device(Xc)), axis=0)
        result, clipped = self._descend(backend, probes, None)
        self.n_iter_ = max(1, int(xp.max(result.n_iter)))
        states = result.states
        own = xp.sum((states - probes) ** 2, axis=1)
        if nearest_other is None:
            nearest_other = _nearest_other_sq_distance(states, probes, Xc, xp)
        else:
            nearest_other = nearest_other(states, probes)
        # a probe stuck where the estimate is clipped is not an attractor
        recalled = xp.logical_and(4.0 * own <= nearest_other, xp.logical_not(clipped))
        self.self_recall_ = float(xp.mean(xp.astype(recalled, xp.float64)))

    # ------------------------------------------------------------- public API
    def transform(self, X, clamp_mask=None):
        """Retrieve: descend the random-feature energy from each query.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries (corrupted or partial patterns).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate: it keeps its value from ``X``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            Retrieved states, in the dtype of ``X``.
        """
        X, backend = validate_fitted_input(self, X, "transform")
        Xc = backend.to_compute(X)
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        result, clipped = self._descend(backend, Xc, mask)
        # one more frame: transform is wrapped by set_output
        self._warn_clipped(clipped, backend.xp, "transform", stacklevel=4)
        return backend.to_output(result.states)

    def descend(self, X, clamp_mask=None, *, return_energy_trace=False):
        """Run the descent and report, query by query, how it went.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Initial states.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate.
        return_energy_trace : bool, default=False
            Also return the energy of every query before every step.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``states``, ``n_iter``, ``converged``, ``energy`` (of the final
            states), ``clipped`` (final kernel-sum estimate ``<= epsilon``)
            and, if asked, ``energy_trace`` (n_steps + 1, n_samples).
        """
        from sklearn.utils import Bunch

        X, backend = validate_fitted_input(self, X, "descend")
        Xc = backend.to_compute(X)
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        r, clipped = self._descend(backend, Xc, mask, return_trace=return_energy_trace)
        self._warn_clipped(clipped, backend.xp, "descend")
        out = Bunch(
            states=backend.to_output(r.states),
            n_iter=backend.to_output(r.n_iter),
            converged=backend.to_output(r.converged),
            energy=backend.to_output(r.energy),
            clipped=backend.to_output(clipped),
        )
        if return_energy_trace:
            out.energy_trace = backend.to_output(r.energy_trace)
        return out

    def energy(self, X):
        """Random-feature energy ``-(1/beta) log max(<phi(x), T>, epsilon)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            States.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
            Lower is more memory-like; approximates :meth:`skam.DenseAM.energy`.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="energy")
        return self._energy(X, "energy")

    def _energy(self, X, method):
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        oracle = self._oracle(backend, Xc.dtype)
        _, _, center = self._frequencies(backend, Xc.dtype)
        V = self._centered(Xc, center)
        energy = map_chunks(
            lambda sl: oracle.energy(V[sl, :]),
            V.shape[0],
            oracle.temporaries * oracle.n_columns * itemsize(V),
            xp,
        )
        self._warn_clipped(self._clipped(energy, xp), xp, method)
        return backend.to_output(energy)

    def score_samples(self, X):
        """Score each state by minus its energy (log kernel-sum estimate / beta).

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
        return -self._energy(X, "score_samples")

    def sample(
        self,
        n_samples=1,
        *,
        method="langevin",
        X=None,
        clamp_mask=None,
        n_steps=200,
        step_size=0.1,
        metropolis=True,
        return_trajectory=False,
        random_state=None,
        chunks=None,
    ):
        """Draw samples from ``p(v) ~ exp(-beta E(v))`` by Langevin dynamics.

        ``v <- v - step_size grad E(v) + sqrt(2 step_size / beta) z`` on the
        random-feature energy, with a Metropolis accept/reject step by
        default (MALA). The patterns are not stored, so there is no exact
        sampler, and the frequencies are drawn for one ``beta``, so there is
        no annealing (see :meth:`skam.DenseAM.sample`). Where the kernel-sum
        estimate is clipped (trigonometric maps) the energy is flat: start
        near the stored patterns (the default) or use
        ``feature_map="positive"``.

        Read more in the :ref:`User Guide <sampling>`.

        Parameters
        ----------
        n_samples : int or None, default=1
            Number of samples (None: the number of rows of ``X``).
        method : {"langevin"}, default="langevin"
            The only sampler of a memory without stored patterns.
        X : array-like of shape (n_samples, n_features), default=None
            Starting states (and the values of the clamped coordinates).
            None draws them from a Gaussian with the per-feature mean and
            standard deviation of the stored patterns (tracked by ``fit``,
            ``partial_fit`` and ``forget``).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped coordinate: it keeps its value from ``X``.
        n_steps : int, default=200
            Langevin steps.
        step_size : float, default=0.1
            Langevin step in energy units.
        metropolis : bool, default=True
            Accept or reject each move (MALA); False is the unadjusted
            algorithm, biased by O(step_size).
        return_trajectory : bool, default=False
            Also return every state.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws (the frequencies keep ``self.random_state``);
            with None, NumPy's global generator is used, so two calls differ.
        chunks : int or None, default=None
            Dask: draw ``n_samples`` rows in blocks of ``chunks`` rows on the
            workers and return a lazy dask array (as does a dask ``X``); see
            :ref:`dask`. None returns NumPy for NumPy input.

        Returns
        -------
        samples : ndarray of shape (n_samples, n_features)
            In the dtype of the distributed memory.
        trajectory : ndarray of shape (n_steps + 1, n_samples, n_features)
            Only with ``return_trajectory=True``.

        See Also
        --------
        skam.DenseAM.sample : Exact, Langevin and annealed sampling of stored
            patterns.

        Examples
        --------
        >>> import numpy as np
        >>> from skam import RandomFeatureAM
        >>> patterns = np.array([[0.0, 0.0], [3.0, 3.0]])
        >>> am = RandomFeatureAM(beta=4.0, random_state=0).fit(patterns)
        >>> samples = am.sample(200, n_steps=100, random_state=0)
        >>> nearest = np.linalg.norm(samples[:, None] - patterns, axis=2).min(axis=1)
        >>> bool(np.median(nearest) < 1.0)       # samples gather at the memories
        True
        """
        check_is_fitted(self)
        if X is not None:
            X = validate_X(self, X, reset=False, method="sample")
        backend = backend_for(self, self.distributed_memory_)
        dtype = backend.to_compute(self.distributed_memory_).dtype
        _, _, center = self._frequencies(backend, dtype)
        mean, std = _moments_mean_std(self._pattern_moments)
        samples, trajectory = _sample_langevin_only(
            self._oracle(backend, dtype),
            backend,
            beta=self.beta_,
            n_features=self.n_features_in_,
            start_mean=mean,
            start_std=std,
            center=center,
            dtype=dtype,
            n_samples=n_samples,
            method=method,
            X=X,
            clamp_mask=clamp_mask,
            n_steps=n_steps,
            step_size=step_size,
            metropolis=metropolis,
            return_trajectory=return_trajectory,
            random_state=random_state,
            reason="a random-feature memory keeps no patterns (no exact draws) "
            "and its frequencies are drawn for one beta (no annealing).",
        )
        if return_trajectory:
            return backend.to_output(samples), backend.to_output(trajectory)
        return backend.to_output(samples)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        return tags


def probe_rows(n):
    """Rows of the self-recall diagnostic: at most 16, evenly spaced."""
    return np.unique(np.linspace(0, n - 1, min(n, _N_PROBES)).astype(np.intp))


def _nearest_other_sq_distance(states, probes, X, xp):
    """Squared distance from each state to the nearest row of X unequal to its probe."""
    best = xp.full((states.shape[0],), math.inf, dtype=X.dtype, device=array_device(X))
    state_mem = prepare_memories(states, xp)
    probe_mem = prepare_memories(probes, xp)
    for sl in chunk_slices(X.shape[0], 2 * states.shape[0] * itemsize(X)):
        block = X[sl, :]
        d_state = 2.0 * half_sq_distances(block, state_mem, xp)  # (chunk, n_probes)
        same = half_sq_distances(block, probe_mem, xp) <= 0.0
        d_state = xp.where(same, math.inf, d_state)
        best = xp.minimum(best, xp.min(d_state, axis=0))
    return best
