"""Energies of Dense Associative Memories and their closed-form gradients.

One convention for every estimator of skam::

    E(v) = -(1/beta) * log( eps + sum_mu w_mu * F(beta * S(v, xi_mu)) )

* ``S`` is the similarity between the state ``v`` and memory ``xi_mu``:
  ``"sqeuclidean"``: ``S = -1/2 * sum_i c_i (v_i - xi_i)^2`` (the ``beta/2``
  inside the kernel), ``"dot"``: ``S = sum_i c_i v_i xi_i``; ``c`` are optional
  per-coordinate weights (the classifier's feature/label weight lambda).
* ``F`` is the separation function applied to ``z = beta * S``:

  ======================  ========================  ==============================
  ``separation``          ``F(z)``                  kernel with ``"sqeuclidean"``
  ======================  ========================  ==============================
  ``"lse"``               ``exp(z)``                Gaussian, bandwidth 1/sqrt(beta)
  ``"poly"``              ``(1 + z)^n``             polynomial kernel with ``"dot"``
  ``"rectified_poly"``    ``max(1 + z, 0)^n``       quartic (n=2), triweight (n=3)
  ``"lsr"``               ``max(1 + z, 0)``         Epanechnikov, radius sqrt(2/beta)
  ======================  ========================  ==============================

* ``w`` are optional memory weights and ``eps`` (0 for LSE) keeps the energy
  finite where the kernel sum vanishes (outside the support of LSR). Negative
  kernel sums (``"poly"`` with odd degree) are clipped at 0 before adding
  ``eps``; the clipped energy is flat there and its gradient is zero.

Everything is computed in log space (a max-shifted, sign-aware log-sum-exp), so
huge or tiny ``beta`` never overflows: the energy stays finite for LSE and,
with ``eps > 0``, for the other separations.

The gradient is ``grad E(v) = -sum_mu P_mu grad_v S(v, xi_mu)`` with
``P_mu = w_mu F'(z_mu) / (eps + sum_nu w_nu F(z_nu))``; for LSE ``P`` is the
softmax, so one step with ``step_size = 1`` is the attention update
``v <- softmax(beta S) @ Xi``.

Functions here are pure: they take arrays and an array namespace ``xp`` and work
on one chunk of queries. Chunking lives in :mod:`skam._chunking`.

``F`` is an object (:mod:`skam._separations`, one file each, reached through
:attr:`EnergySpec.function`): nothing here switches on separation names, so a
registered separation works in every function of this module.
"""

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

from skam._separations import SEPARATIONS, get_separation

SIMILARITIES = ("sqeuclidean", "dot")


@dataclass(frozen=True)
class EnergySpec:
    """A fully resolved energy: what ``F``, ``S``, ``beta`` and ``eps`` are.

    Parameters
    ----------
    separation : {"lse", "poly", "rectified_poly", "lsr"} or a registered name
    similarity : {"sqeuclidean", "dot"}
    beta : float
        Inverse temperature, > 0.
    degree : int
        Degree ``n`` of the polynomial separations (``"lsr"`` uses 1).
    epsilon : float
        Added to the kernel sum of the non-exponential separations.
    """

    separation: str = "lse"
    similarity: str = "sqeuclidean"
    beta: float = 1.0
    degree: int = 3
    epsilon: float = 1e-10

    @cached_property
    def function(self):
        """The separation object ``F`` (:mod:`skam._separations`)."""
        return get_separation(self.separation, int(self.degree))

    @property
    def is_lse(self):
        """``F = exp`` (the softmax fast paths; named for the LSE energy)."""
        return self.function.is_exponential

    @property
    def power(self):
        return self.function.power

    @property
    def log_epsilon(self):
        if self.is_lse or self.epsilon <= 0:
            return -math.inf
        return math.log(self.epsilon)


@dataclass(frozen=True)
class Memories:
    """Stored patterns moved to the compute namespace, with cached norms.

    ``patterns`` has shape (K, D). ``log_weights`` is None or (K,).
    ``coord_weights`` is None or (D,). ``half_sqnorms`` is
    ``1/2 * sum_i c_i xi_i^2`` of each memory, shape (K,). ``derived`` is
    None or a :class:`DerivedArrays` of memories that serve many calls (an
    estimator's prepared memories): operands the engine builds once from
    them (e.g. the folded ones of :func:`skam._partial.lse_block`).
    """

    patterns: object
    log_weights: object
    coord_weights: object
    half_sqnorms: object
    derived: object = field(default=None, compare=False, repr=False)

    @property
    def n_memories(self):
        return self.patterns.shape[0]

    def block(self, rows):
        """The memories of ``rows`` (a slice) as :class:`Memories`."""
        return Memories(
            self.patterns[rows, :],
            None if self.log_weights is None else self.log_weights[rows],
            self.coord_weights,
            None if self.half_sqnorms is None else self.half_sqnorms[rows],
            None if self.derived is None else self.derived.block(rows),
        )


class DerivedArrays:
    """Arrays derived from a fixed set of memories, each built once, on first use.

    An entry is built from the full memories (``build(memories)``) and kept;
    it is an array whose first axis runs over the memories, or a tuple of
    scalars valid for every block of them (bounds). The view of a block
    (:meth:`Memories.block`) builds entries on the full memories and returns
    its rows of them, so every block and every call shares one copy.

    ``order`` (a permutation of the memories, or None) arranges every entry:
    the entries are built from the memories taken in that order (a copy
    alive during the build only), so the engine reads them, and the blocks
    of them, in that order (a classifier's memories class by class, see
    :func:`skam._partial.pulled_sums`); the memories themselves keep theirs.
    Results that reduce over the memories do not depend on it; an (n, K)
    array of per-memory weights would come out in that order (see
    :func:`log_kernel_sum`).
    """

    def __init__(self, parent=None, rows=None, order=None, xp=None):
        self.memories = None  # the full memories, set by prepare_memories
        self._parent, self._rows, self._entries = parent, rows, {}
        self.order, self._xp = order, xp

    def _arranged(self):
        memories = self.memories
        if self.order is None:
            return memories
        take = self._xp.take
        return Memories(
            take(memories.patterns, self.order, axis=0),
            None
            if memories.log_weights is None
            else take(memories.log_weights, self.order),
            memories.coord_weights,
            take(memories.half_sqnorms, self.order),
        )

    def get(self, key, build, version=None):
        """The entry ``key``, built by ``build(full_memories)`` if absent.

        ``version``: what the entry also depends on, for entries with one
        slot (rebuilt, not added, when it changes).
        """
        if self._parent is not None:
            value = self._parent.get(key, build, version)
            return value if isinstance(value, tuple) else value[self._rows, ...]
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            entry = self._entries[key] = (version, build(self._arranged()))
        return entry[1]

    @property
    def arranged(self):
        """Whether the entries follow an ``order`` of their own."""
        root = self if self._parent is None else self._parent
        return root.order is not None

    @property
    def rows(self):
        """The rows of the full memories this view holds (a slice)."""
        return slice(None) if self._rows is None else self._rows

    def block(self, rows):
        """The view of the memories' rows ``rows`` (a slice, step 1)."""
        if self._parent is None:
            start, stop, _ = rows.indices(self.memories.n_memories)
            return DerivedArrays(self, slice(start, stop))
        inner = range(self._rows.start, self._rows.stop)[rows]  # compose
        return DerivedArrays(self._parent, slice(inner.start, inner.stop))


def prepare_memories(
    patterns, xp, *, weights=None, coord_weights=None, reuse=False, order=None
):
    """Build :class:`Memories` (log weights, weighted half squared norms).

    All arrays must already live in ``xp`` with the compute dtype. ``reuse``:
    the memories will serve many calls (an estimator's cache), so operands
    derived from them are built once and kept (:class:`DerivedArrays`, in
    ``order`` if given); otherwise (memories rebuilt per call or per batch)
    nothing is derived.
    """
    if coord_weights is None:
        half_sqnorms = 0.5 * xp.sum(patterns * patterns, axis=1)
    else:
        # one temporary and a matrix-vector product (half the passes of
        # sum(c * X * X): it runs per minibatch in parametric training)
        half_sqnorms = 0.5 * ((patterns * patterns) @ coord_weights)
    log_weights = None
    if weights is not None:
        positive = weights > 0
        safe = xp.where(positive, weights, xp.ones_like(weights))
        log_weights = xp.where(positive, xp.log(safe), -math.inf)
    if not reuse:
        return Memories(patterns, log_weights, coord_weights, half_sqnorms)
    memories = Memories(
        patterns,
        log_weights,
        coord_weights,
        half_sqnorms,
        DerivedArrays(order=order, xp=xp),
    )
    memories.derived.memories = memories
    return memories


def _weighted(V, memories):
    if memories.coord_weights is None:
        return V
    return V * memories.coord_weights


def _cross(V, memories, scale=1.0):
    """``scale * sum_i c_i v_i xi_i`` for every query and memory: one GEMM, (n, K).

    The scaling (``scale * c``) is applied to whichever operand is smaller,
    so it costs one pass over min(n, K) rows.
    """
    factor = scale if memories.coord_weights is None else scale * memories.coord_weights
    patterns = memories.patterns
    if V.shape[0] <= patterns.shape[0]:
        return (V * factor) @ patterns.T if _nontrivial(factor) else V @ patterns.T
    return V @ (patterns * factor).T if _nontrivial(factor) else V @ patterns.T


def _nontrivial(factor):
    return not (isinstance(factor, float | int) and factor == 1)


def _half_sqnorm_rows(V, memories, xp):
    return 0.5 * xp.sum(_weighted(V, memories) * V, axis=1)


def half_sq_distances(V, memories, xp):
    """``1/2 * sum_i c_i (v_i - xi_i)^2`` for every query and memory, (n, K).

    One GEMM (``|v|^2 - 2 v.xi + |xi|^2``), clipped at 0 against rounding.
    """
    half_sq = _half_sqnorm_rows(V, memories, xp)[:, None] - _cross(V, memories)
    return xp.maximum(half_sq + memories.half_sqnorms[None, :], 0.0)


def _scaled_similarity(V, memories, spec, xp):
    """``z = beta * S`` for every query and memory, shape (n, K)."""
    if spec.similarity == "dot":
        return _cross(V, memories, spec.beta)
    return (-spec.beta) * half_sq_distances(V, memories, xp)


def _log_abs_separation(z, spec, xp):
    """``log|F(z)|``, ``sign F(z)`` (None = positive), ``log|F'(z)|``, sign F'.

    Points where ``F`` (or ``F'``) vanishes get ``-inf``; the separation
    object computes them (:meth:`~skam._separations.base.Separation.log_abs_value_and_slope`).
    """
    return spec.function.log_abs_value_and_slope(z, xp)


def _finite_or_zero(x, xp):
    return xp.where(xp.isfinite(x), x, xp.zeros_like(x))


def log_softmax(scores, xp):
    """Row-wise ``scores - logsumexp(scores)``, max-shifted (rows of -inf allowed).

    The one small log-sum-exp of skam, for class axes (read-outs, class
    posteriors); the memory axis goes through :func:`log_kernel_sum`.
    """
    row_max = _finite_or_zero(xp.max(scores, axis=1, keepdims=True), xp)
    shifted = scores - row_max
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def log_z_and_direction(V, memories, spec, xp, *, pull_from=0):
    """``log_z`` and the descent direction in one pass (what descent needs).

    Computed from mergeable partial states (:mod:`skam._partial`): the
    memories are one block unless ``working_memory`` asks to split them. For
    LSE the softmax is never normalised as a matrix: each block costs an
    (n, D) division only. The direction is taken on coordinates
    ``pull_from:`` (see :func:`skam._partial.finish`).
    """
    from skam._partial import finish, reduce_blocks

    state = reduce_blocks(V, memories, spec, xp, pull_from=pull_from)
    return finish(state, V, memories, spec, xp, pull_from=pull_from)


def descent_direction(V, memories, spec, xp, *, pull_from=0):
    """The direction of :func:`log_z_and_direction` alone, without ``log_z``.

    What a descent step needs when the energy is not asked for (LSE then
    skips the finishing of ``log_z``).
    """
    from skam._partial import finish_direction, reduce_blocks

    state = reduce_blocks(V, memories, spec, xp, pull_from=pull_from)
    return finish_direction(state, V, memories, spec, xp, pull_from=pull_from)


def log_kernel_sum(V, memories, spec, xp, *, need_weights=True):
    """Core of the engine, on one chunk of queries.

    Returns
    -------
    log_z : array of shape (n,)
        ``log(eps + max(sum_mu w_mu F(beta S_mu), 0))``; the energy is
        ``-log_z / beta``.
    P : array of shape (n, K) or None
        Gradient weights ``P_mu`` (None when ``need_weights`` is False).
        Without them ``log_z`` comes from partial states merged over blocks
        of memories (:mod:`skam._partial`); with them the memories are one
        block (P is an (n, K) matrix anyway).
    """
    from skam._partial import (
        finish_log_z,
        lse_block,
        reduce_blocks,
        signed_gradient_weights,
    )

    if not need_weights:
        state = reduce_blocks(V, memories, spec, xp, need_direction=False)
        return finish_log_z(state, V, memories, spec, xp), None
    if spec.is_lse:
        if memories.derived is not None and memories.derived.arranged:
            memories = replace(memories, derived=None)  # P in the memories' order
        state, T, r = lse_block(V, memories, spec, xp, need_mean=False)
        return finish_log_z(state, V, memories, spec, xp), T / r[:, None]
    return signed_gradient_weights(V, memories, spec, xp)


def kernel_sum_temporaries(spec, *, need_weights=True):
    """How many (n, K) arrays :func:`log_kernel_sum` holds at once, at most.

    Chunked callers size their chunks with it (``temporaries * K * itemsize``
    bytes per query); it is the partial state's own count
    (:func:`skam._partial.block_temporaries`), measured with tracemalloc:
    LSE holds its logits, their exponential in place and (with the weights)
    the normalised softmax, peak 2.0; the power separations hold
    ``log|1 + z|``, one array of terms updated in place and (with the
    weights) nothing more, peak 2.2 (NumPy; namespaces without ``out=``
    allocate one transient more).
    """
    from skam._partial import block_temporaries

    return block_temporaries(spec)


def energy_from_log_z(log_z, spec):
    """``E = -log_z / beta``."""
    return log_z * (-1.0 / spec.beta)


def gradient_from_weights(V, P, memories, spec, xp):
    """``grad E = -sum_mu P_mu grad_v S_mu`` (closed form), shape (n, D)."""
    pulled = P @ memories.patterns
    if spec.similarity == "dot":
        grad = -pulled
    elif spec.is_lse:
        grad = V - pulled  # the softmax weights sum to one
    else:
        grad = xp.sum(P, axis=1, keepdims=True) * V - pulled
    if memories.coord_weights is not None:
        grad = grad * memories.coord_weights
    return grad


def energy_and_gradient(V, memories, spec, xp):
    """Energy (n,) and gradient (n, D) of one chunk of queries."""
    log_z, P = log_kernel_sum(V, memories, spec, xp)
    return energy_from_log_z(log_z, spec), gradient_from_weights(
        V, P, memories, spec, xp
    )


def lsr_support_radius_sq(spec):
    """Squared radius ``2/beta`` of one memory's support (``"lsr"`` only)."""
    return 2.0 / spec.beta


def log_density_normaliser(spec, n_features):
    """``log`` of the integral of one kernel ``F(beta S(x, xi))`` over ``x``.

    With it ``sum_mu w_mu F(beta S(x, xi_mu)) / (sum_mu w_mu * exp(result))``
    is a probability density in ``x`` (a kernel density estimate). Only
    squared-Euclidean kernels that decay are integrable: ``"lse"`` (Gaussian,
    ``(2 pi / beta)^(d/2)``) and the compactly supported ``"rectified_poly"``
    and ``"lsr"`` (``(1 - r^2 / h^2)_+^n`` with ``h^2 = 2 / beta``, integral
    ``pi^(d/2) h^d Gamma(n + 1) / Gamma(n + 1 + d/2)``). ``epsilon`` adds mass
    everywhere and is left out. Raises ValueError for the others.
    """
    log_integral = None
    if spec.similarity == "sqeuclidean":
        log_integral = spec.function.log_kernel_integral(spec.beta, n_features)
    if log_integral is None:
        integrable = sorted(
            name for name in SEPARATIONS if get_separation(name).kernel_family
        )
        raise ValueError(
            "a normalised log-density exists only for similarity='sqeuclidean' "
            f"with separation in {integrable} (the kernel must decay to be "
            f"integrable); got separation={spec.separation!r}, "
            f"similarity={spec.similarity!r}. Use score_samples (minus the "
            "energy) to rank states instead."
        )
    return log_integral
