"""Label neurons: what :class:`~skam.DenseAMClassifier` and
:class:`~skam.DenseAMRegressor` share.

A supervised Dense AM stores memories ``z_mu = [x_mu, label_scale * t_mu]``
(features, then the *label neurons*: a one-hot class code or standardised
targets). Prediction clamps the features of ``[x, t0]`` and runs the engine's
energy descent (:func:`skam._descent.descend`) on the label neurons only,
starting from the uninformative ``t0``; the label neurons are then read out.
The similarity weighs the feature coordinates by ``lam`` and the label
coordinates by ``1 - lam`` (the engine's ``coord_weights``).
"""

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from array_api_compat import device as array_device
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions

from skam._beta import resolve_beta
from skam._chunking import itemsize, rows_per_chunk
from skam._descent import TEMPORARIES_PER_COLUMN, descend, step_from
from skam._energy import (
    descent_direction,
    energy_from_log_z,
    log_kernel_sum,
    log_z_and_direction,
    prepare_memories,
)
from skam._partial import MIN_QUERY_ROWS
from skam._prepared import PreparedCacheMixin, cached
from skam._separations import get_separation
from skam._validation import (
    BACKEND_CONSTRAINT,
    ENERGY_CONSTRAINTS,
    NON_NEGATIVE,
    POSITIVE,
    make_spec,
)

SUPERVISED_CONSTRAINTS = {
    **ENERGY_CONSTRAINTS,
    "lam": [Interval(Real, 0, 1, closed="neither")],
    "label_scale": [POSITIVE],
    "step_size": [POSITIVE, None],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [NON_NEGATIVE],
    "mode": [StrOptions({"nonparametric", "parametric"})],
    "n_memories": [
        StrOptions({"auto"}),
        Interval(Integral, 1, None, closed="left"),
        Interval(RealNotInt, 0, 1, closed="right"),
    ],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left"), None],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "backend": BACKEND_CONSTRAINT,
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def scott_beta(X, sample_weight=None):
    """``beta * lam`` of ``beta="scale"`` in nonparametric mode: Scott's rule.

    The Gaussian kernel ``exp(-beta * lam / 2 * ||x - x_mu||^2)`` has the
    bandwidth ``h = 1 / sqrt(beta * lam)``; Scott's rule of thumb for kernel
    density estimation sets ``h = sigma * n ** (-1 / (d + 4))`` (the default
    of :class:`scipy.stats.gaussian_kde`), with ``sigma**2`` the weighted
    mean per-feature variance, ``n`` Kish's effective number of samples
    ``(sum w)**2 / sum w**2`` (only relative weights matter) and ``d`` the
    number of features. Constant data gives 1. See :mod:`skam._beta`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Training features (compute namespace).
    sample_weight : array of shape (n_samples,) or None
        Sample weights (same namespace).

    Returns
    -------
    beta_lam : float
        The inverse temperature of the feature kernel, ``1 / h**2``.
    """
    return resolve_beta("scale", X, rule="scott", sample_weight=sample_weight)


def separation_beta(X, separation="lse"):
    """``beta * lam`` of ``beta="scale"`` in parametric mode.

    DenseAM's rule of the separation on the feature parts of the initial
    memories (squared-Euclidean similarity): for LSE ``4 * log(K) / r2``,
    with ``K`` memories and ``r2`` the median squared distance from a memory
    to its nearest other memory, so that a memory's nearest rival weighs
    about ``1/K**2`` of it (every memory is close to a fixed point); for the
    compact kernels ``2 / r2`` (a memory's support reaches its nearest
    neighbour). The separation object names the rule; see :mod:`skam._beta`.

    Parameters
    ----------
    X : array of shape (n_memories, n_features)
        Feature parts of the memories.
    separation : str, default="lse"

    Returns
    -------
    beta_lam : float
    """
    rule = get_separation(separation).beta_rule("sqeuclidean")
    return resolve_beta("scale", X, rule=rule)


def coordinate_weights(n_features, n_labels, lam, xp, dtype, device):
    """``[lam] * n_features + [1 - lam] * n_labels`` (the similarity weights)."""
    return xp.concat(
        [
            xp.full((n_features,), lam, dtype=dtype, device=device),
            xp.full((n_labels,), 1.0 - lam, dtype=dtype, device=device),
        ]
    )


def label_update_mask(n_features, n_labels, xp, device):
    """True on the label neurons (the only coordinates that move)."""
    return xp.concat(
        [
            xp.zeros((n_features,), dtype=xp.bool, device=device),
            xp.ones((n_labels,), dtype=xp.bool, device=device),
        ]
    )


@dataclass(frozen=True)
class LabelCode:
    """How the label neurons encode the target: their code, start and read-out.

    The one definition shared by ``fit`` (the stored or trained label parts,
    the start of the unrolled training steps) and ``predict`` (the start of
    the descent, the read-out).

    Parameters
    ----------
    kind : {"classification", "regression"}
        ``"classification"``: a label part is ``label_scale`` times a point of
        the probability simplex (one-hot for a stored sample) and the label
        neurons start uniform, at ``label_scale / n_labels``.
        ``"regression"``: a label part is ``label_scale`` times the
        standardised targets and the label neurons start at 0 (the mean).
    n_labels : int
        Number of label neurons (classes, or outputs).
    label_scale : float
        Amplitude ``s`` of the label parts.
    """

    kind: str
    n_labels: int
    label_scale: float

    @property
    def start(self):
        """Value of every label neuron at the start of the descent."""
        if self.kind == "classification":
            return self.label_scale / self.n_labels
        return 0.0

    def encode(self, codes):
        """Label parts of memories from their codes (one-hot, standardised)."""
        return self.label_scale * codes

    def start_states(self, X, xp):
        """``[X, start]``: the features followed by the label neurons' start."""
        if type(X) is np.ndarray:  # one array filled in place: fewer calls
            V = np.empty((X.shape[0], X.shape[1] + self.n_labels), dtype=X.dtype)
            V[:, : X.shape[1]] = X
            V[:, X.shape[1] :] = self.start
            return V
        labels = xp.full(
            (X.shape[0], self.n_labels),
            self.start,
            dtype=X.dtype,
            device=array_device(X),
        )
        return xp.concat([X, labels], axis=1)

    def readout(self, states):
        """The label neurons of ``states``, divided by ``label_scale``."""
        return states[:, states.shape[1] - self.n_labels :] / self.label_scale


def normalise_label_neurons(R, xp):
    """Class probabilities from label neurons: clip at 0 and renormalise.

    Rows whose clipped sum is 0 (no evidence) become uniform.
    """
    if type(R) is np.ndarray:  # ndarray methods, and no where when every row
        clipped = np.maximum(R, 0.0)  # has evidence: a few calls less
        total = np.add.reduce(clipped, axis=1, keepdims=True)
        if float(total.min()) > 0.0:
            return np.divide(clipped, total, out=clipped)
    clipped = xp.maximum(R, 0.0)
    total = xp.sum(clipped, axis=1, keepdims=True)
    uniform = xp.ones_like(R) / R.shape[1]
    has_mass = total > 0
    return xp.where(
        has_mass, clipped / xp.where(has_mass, total, xp.ones_like(total)), uniform
    )


class LabelNeuronOracle:
    """Energy oracle of the engine for memories ``[features, label neurons]``.

    The energy and the softmax are the engine's (mergeable partial states on
    the full memories, :mod:`skam._partial`); the descent direction is
    computed on the label columns only (features are clamped), which saves a
    second (n, K, n_features) product per step. Plugged into
    :func:`skam._descent.descend` in place of the memories.
    """

    def __init__(self, memories, spec, xp, n_features):
        self.memories = memories
        self.spec = spec
        self.xp = xp
        self.n_features = n_features

    @property
    def n_columns(self):
        return self.memories.n_memories

    def energy_and_direction(self, V):
        xp, d = self.xp, self.n_features
        log_z, direction = log_z_and_direction(
            V, self.memories, self.spec, xp, pull_from=d
        )
        frozen = xp.zeros((V.shape[0], d), dtype=V.dtype, device=array_device(V))
        return energy_from_log_z(log_z, self.spec), xp.concat(
            [frozen, direction], axis=1
        )

    def energy(self, V):
        log_z, _ = log_kernel_sum(
            V, self.memories, self.spec, self.xp, need_weights=False
        )
        return energy_from_log_z(log_z, self.spec)

    def direction_from(self, V, start):
        """The descent direction on coordinates ``start:`` (>= the features)."""
        return descent_direction(V, self.memories, self.spec, self.xp, pull_from=start)

    def direction(self, V):
        xp, d = self.xp, self.n_features
        direction = self.direction_from(V, d)
        frozen = xp.zeros((V.shape[0], d), dtype=V.dtype, device=array_device(V))
        return xp.concat([frozen, direction], axis=1)


class LabelNeuronAM(PreparedCacheMixin, BaseEstimator):
    """Prediction machinery shared by the supervised estimators.

    Subclasses name their :class:`LabelCode` kind (``_label_kind``) and the
    read-out, and set in ``fit``: ``memories_`` (features then label
    neurons), ``memory_weights_``, ``beta_`` and ``step_size_``.
    """

    def _resolved_step_size(self):
        if self.step_size is None:
            return 1.0 / (1.0 - self.lam)
        step = float(self.step_size)
        if step * (1.0 - self.lam) >= 2.0:
            raise ValueError(
                f"step_size={step:g} with lam={self.lam:g}: the label neurons move "
                f"by step_size * (1 - lam) = {step * (1.0 - self.lam):g} times "
                "their gradient, and the descent diverges from 2 on; use "
                f"step_size < {2.0 / (1.0 - self.lam):g}."
            )
        return step

    def _resolved_beta(self, features, sample_weight=None, *, prototypes=False):
        """``beta`` as given, or ``"scale"`` resolved on the feature parts."""
        if not isinstance(self.beta, str):
            return float(self.beta)
        if prototypes:
            return separation_beta(features, self.separation) / self.lam
        return scott_beta(features, sample_weight) / self.lam

    def _check_parametric(self):
        if self.similarity != "sqeuclidean":
            raise ValueError(
                "mode='parametric' learns memories by backpropagation through "
                "the unrolled descent, which the dot product's box projection "
                "would make non-smooth: it needs similarity='sqeuclidean', got "
                f"similarity={self.similarity!r}."
            )

    _label_kind = None  # "classification" or "regression"

    def _label_code(self, n_labels):
        """The :class:`LabelCode` of this estimator for ``n_labels`` neurons."""
        return LabelCode(self._label_kind, int(n_labels), float(self.label_scale))

    def _prepared(self, backend, dtype):
        """:class:`PreparedLabelMemories` for this namespace and dtype, cached.

        Built at ``fit`` and ``partial_fit`` (:mod:`skam._prepared`), keyed
        on the namespace, device, dtype, ``lam`` (the coordinate weights),
        ``label_scale`` and the energy, and on the identity of ``memories_``
        and ``memory_weights_``.
        """
        key = (
            id(backend.xp),
            backend.device,
            dtype,
            float(self.lam),
            float(self.label_scale),
            make_spec(self, self.beta_),
        )
        return cached(
            self,
            key,
            (self.memories_, self.memory_weights_),
            lambda: PreparedLabelMemories.build(self, backend, dtype),
        )

    def _label_neurons(self, backend, X):
        """Descend on the label neurons from their start; returns ``v / s``.

        ``X`` is validated; the result, shape (n_samples, n_labels), lives in
        the compute namespace.
        """
        xp = backend.xp
        Xc = backend.to_compute(X)
        prep = self._prepared(backend, Xc.dtype)
        V0 = prep.code.start_states(Xc, xp)
        # the engine's chunks: in cache on CPUs, large enough for the GEMM
        rows = rows_per_chunk(
            Xc.shape[0],
            TEMPORARIES_PER_COLUMN * prep.memories.n_memories * itemsize(Xc),
            min_rows=MIN_QUERY_ROWS,  # huge K: the memories are split instead
            xp=xp,
        )
        if self.max_iter == 1 and prep.box is None:  # the default: one step
            labels = step_from(
                V0,
                prep.oracle,
                xp,
                start=V0.shape[1] - prep.code.n_labels,
                step_size=self.step_size_,
                chunk_size=rows,
            )
            return prep.code.readout(labels)
        result = descend(
            V0,
            prep.oracle,
            prep.spec,
            xp,
            clamp_mask=prep.clamp_mask,
            step_size=self.step_size_,
            max_iter=self.max_iter,
            tol=self.tol,
            box=prep.box,
            compute_energy=False,
            chunk_size=rows,
        )
        return prep.code.readout(result.states)


@dataclass(frozen=True)
class PreparedLabelMemories:
    """What every prediction of a fitted supervised model reuses.

    The memories in the compute namespace and dtype with their norms and log
    weights (:func:`skam._energy.prepare_memories`), the energy, the label
    code, the clamping mask of the features, the projection box of the
    ``"dot"`` similarity and the energy oracle.
    """

    memories: object
    spec: object
    code: LabelCode
    clamp_mask: object
    box: object
    oracle: object

    @classmethod
    def build(cls, estimator, backend, dtype):
        xp = backend.xp
        patterns = backend.to_compute(estimator.memories_, dtype)
        weights = backend.to_compute(estimator.memory_weights_, dtype)
        dev = array_device(patterns)
        d = estimator.n_features_in_
        n_labels = patterns.shape[1] - d
        code = estimator._label_code(n_labels)
        order = None
        if code.kind == "classification":
            # the engine reads the memories class by class: one-hot label parts
            # then come in runs of equal rows, which it sums run by run
            # (skam._partial.pulled_sums); the order changes no result
            order = xp.argsort(xp.argmax(patterns[:, d:], axis=1), stable=True)
        cw = coordinate_weights(d, n_labels, estimator.lam, xp, dtype, dev)
        memories = prepare_memories(
            patterns, xp, weights=weights, coord_weights=cw, reuse=True, order=order
        )
        spec = make_spec(estimator, estimator.beta_)
        box = None  # the free coordinates stay in the memories' box
        if estimator.similarity == "dot":
            box = xp.min(patterns, axis=0), xp.max(patterns, axis=0)
        return cls(
            memories=memories,
            spec=spec,
            code=code,
            clamp_mask=xp.logical_not(label_update_mask(d, n_labels, xp, dev)),
            box=box,
            oracle=LabelNeuronOracle(memories, spec, xp, d),
        )
