"""Mergeable partial states: kernel sums over memories, block by block.

Every reduction of the engine over memories (the log kernel sum ``log_z`` and
the descent direction that needs it) is computed in three parts:

1. :func:`block_state`: the *partial state* of one block of memories, for one
   chunk of queries (this is the only place that touches the (n, K_block)
   similarity matrix);
2. :func:`merge`: one exact, associative merge of two partial states (so any
   tree of merges over any split of the memories gives the same result up to
   rounding; an empty or zero-weight block is its identity);
3. :func:`finish`: one finishing step that turns the merged state into
   ``log_z`` and the descent direction.

The in-memory engine (:mod:`skam._energy`, :mod:`skam._descent`) runs exactly
these functions, with the whole memory as one block unless ``working_memory``
asks for more (:func:`memory_block_rows`); a distributed memory (Dask, one block
per worker) runs the same :func:`block_state` on every shard and the same
merge and finish on the result. Nothing here imports Dask.

The states
----------
``"lse"`` (:class:`LSEState`): per query, the log kernel sum of the block
``L_s = log sum_mu exp(beta S_mu + log w_mu)`` (with the squared-Euclidean
similarity in its shift-invariant form, without ``-beta/2 ||v||^2``, which the
finish adds once) and the softmax-weighted mean ``O_s`` of the pulled
coordinates of the block's memories. The merge is

``L = max(L_a, L_b) + log(exp(L_a - max) + exp(L_b - max))``,
``O = exp(L_a - L) O_a + exp(L_b - L) O_b``.

Other separations (:class:`SignedState`): the kernel sum ``sum_mu w_mu F(z_mu)``
may be negative (``"poly"`` with odd degree), so a block keeps *signed,
max-shifted* sums: ``f = (m_f, r_f)`` standing for ``r_f exp(m_f)``, and, with
one shift ``m_g``, ``sum w F'(z)`` and ``sum w F'(z) xi`` (the pulled
coordinates). The clip of the kernel sum at 0 and the ``epsilon`` are applied
once, in :func:`finish`, after the merge: clipping per block would be wrong
(a block's negative sum cancels another's positive one).
"""

import math
from dataclasses import dataclass

import numpy as np
from array_api_compat import is_numpy_namespace

from skam._chunking import rows_per_chunk
from skam._energy import (
    _cross,
    _half_sqnorm_rows,
    _log_abs_separation,
    _scaled_similarity,
)
from skam._separations import LogSumReLU, Polynomial, RectifiedPolynomial

# (n_chunk, n_block) temporaries alive at once in block_state (the logits or
# similarities, their exponential and, for the signed sums, F').
TEMPORARIES_PER_PAIR = 3

# A query chunk is not made smaller than this to fit working_memory: beyond
# that, the memories are split into blocks instead (huge K).
MIN_QUERY_ROWS = 64


@dataclass(frozen=True)
class LSEState:
    """Partial state of a log-sum-exp kernel sum over a block of memories.

    Attributes
    ----------
    log_sum : array of shape (n,)
        ``L_s``; ``-inf`` for an empty or zero-weight block.
    mean : array of shape (n, P) or None
        Softmax-weighted mean of the pulled coordinates (zeros where
        ``log_sum`` is ``-inf``); None when no direction is needed.
    """

    log_sum: object
    mean: object = None


@dataclass(frozen=True)
class SignedState:
    """Partial state of a signed kernel sum (non-exponential separations).

    ``value_sum * exp(value_shift)`` is ``sum_mu w_mu F(z_mu)`` over the block;
    ``slope_sum * exp(slope_shift)`` is ``sum_mu w_mu F'(z_mu)`` and
    ``pulled * exp(slope_shift)`` is ``sum_mu w_mu F'(z_mu) xi_mu`` (pulled
    coordinates). Shifts are ``-inf`` where the block contributes nothing.
    """

    value_shift: object
    value_sum: object
    slope_shift: object = None
    slope_sum: object = None
    pulled: object = None


# ----------------------------------------------------------------- helpers
def _finite_or_zero(x, xp):
    return xp.where(xp.isfinite(x), x, xp.zeros_like(x))


def _safe_log(r, xp):
    """``log(r)`` where ``r > 0``, ``-inf`` elsewhere (no warnings)."""
    positive = r > 0
    return xp.where(positive, xp.log(xp.where(positive, r, xp.ones_like(r))), -math.inf)


def _row_shift(log_terms, xp):
    """Row maxima: the raw one (``-inf`` on empty rows) and a finite one."""
    raw = xp.max(log_terms, axis=1)
    return raw, _finite_or_zero(raw, xp)


def _rescale(shift, new_shift, xp):
    """``exp(shift - new_shift)``, 0 where ``shift`` is ``-inf``."""
    safe = _finite_or_zero(new_shift, xp)
    empty = shift == -math.inf
    return xp.where(
        empty, xp.zeros_like(shift), xp.exp(xp.where(empty, safe, shift) - safe)
    )


# Logits in base 2 (scaled by log2(e)) for the NumPy read-out of memories with
# derived arrays: the scale rides on the GEMM's operand, and NumPy's exp2 runs
# 2.6x faster than exp in place on float32 (1.1x on float64; measured on
# (1118, 5000) blocks), one of the read-out's few passes over the block.
LOG2E = 1.0 / math.log(2.0)


def exp_shifted(logits, xp, *, clamp=None, base2=False):
    """``exp`` of max-shifted logits (all <= 0), without the subnormal slow path.

    ``exp`` of arguments whose result is subnormal or zero (below about -708
    in float64, -87 in float32) runs 10-100x slower on common CPUs, and sharp
    softmaxes are full of them. When a chunk has such arguments, they are
    floored at -700 (float64) or -87 (float32) first: a weight below
    ``1e-304`` (``1e-37``) of the largest one in its row, zero-weight memories
    included, becomes that tiny value instead of 0, far below the rounding
    error of the row sum (>= 1). ``clamp``: None checks the chunk (one
    reduction); True floors without checking; False skips the floor (the
    caller has a bound that the logits are above it, :func:`lse_block`). (A
    block whose row is all ``-inf``, zero weights only, is handled by the
    caller: its state is the merge identity.)

    ``logits`` is the caller's scratch array: with NumPy it is overwritten
    (``out=``), which saves a second (n, K) array and the page faults of
    filling a fresh one (about 20% of a one-step retrieval at d = 784, about
    half of it at d = 64). Other namespaces have no ``out=`` and allocate.
    ``base2``: the logits are in base 2 (``LOG2E`` times the natural ones,
    NumPy only): ``exp2`` of them, the floor scaled alike.
    """
    floor = exp_floor(logits.dtype, xp) * (LOG2E if base2 else 1.0)
    in_place = is_numpy_namespace(xp)
    if clamp is None:
        low = logits.min() if in_place else xp.min(logits)
        clamp = bool(low < floor)
    if clamp:
        if in_place:
            logits = xp.maximum(logits, floor, out=logits)
        else:
            logits = xp.maximum(logits, floor)
    if base2:
        return np.exp2(logits, out=logits)
    return xp.exp(logits, out=logits) if in_place else xp.exp(logits)


def exp_floor(dtype, xp):
    """The floor of :func:`exp_shifted`: -87 in float32, -700 in float64."""
    return -87.0 if dtype == xp.float32 else -700.0


# ------------------------------------------------------------- block states
def lse_logits(V, block, spec, xp, pull_from=0, shift=None, scale=1.0):
    """``beta S + log w`` of LSE, shift-invariant form for squared Euclidean.

    The softmax does not depend on ``1/2 ||v||^2``, so the logits are
    ``beta * (v.xi - 1/2 ||xi||^2) + log w``: one GEMM on ``beta * v`` and one
    bias vector; :func:`finish` adds ``-beta/2 ||v||^2`` to ``log_z`` only.
    Memories that serve many calls (``block.derived``) fold the bias, and a
    per-query ``shift`` (n,) to subtract, into the GEMM instead
    (:func:`_folded_logits`; ``pull_from``: the coordinates before it are the
    only ones that may differ between queries, see there; ``scale``: the
    logits times it, e.g. ``LOG2E``, folded likewise).
    """
    if block.derived is not None:
        return _folded_logits(V, block, spec, xp, pull_from, shift, scale)
    logits = _cross(V, block, spec.beta)
    bias = _lse_bias(block, spec)
    if bias is not None:
        logits += bias[None, :]
    if shift is not None:
        logits -= shift[:, None]
    if scale != 1.0:
        logits *= scale
    return logits


def _lse_bias(memories, spec):
    """``-beta/2 ||xi||^2 + log w`` per memory (None when it is 0)."""
    bias = None
    if spec.similarity == "sqeuclidean":
        bias = (-spec.beta) * memories.half_sqnorms
    if memories.log_weights is not None:
        bias = memories.log_weights if bias is None else bias + memories.log_weights
    return bias


def _with_ones(M, xp):
    """``[M, 1]``: one more column of ones, (K, P + 1)."""
    ones = xp.ones((M.shape[0], 1), dtype=M.dtype, device=_device(M))
    return xp.concat([M, ones], axis=1)


def _lse_operand(block, spec, xp, pull_from=0, tail=None):
    """``[bias | xi | 1]`` of the memories, (K, D + 2), built once per energy.

    The one derived copy of the memories that both products of the LSE
    read-out use: the logits' GEMM reads ``[bias | xi]`` (and the ones
    column when it also subtracts a per-query shift), the pulled product
    ``[xi[:, pull_from:] | 1]`` (the ones give the row sums). With a uniform
    ``tail`` (see :func:`_folded_logits`) it is ``[bias' | xi[:, :pull_from]
    | 1]``, the tail's part of the similarity in ``bias'`` (one slot),
    column-major: the GEMM of :func:`_folded_logits` reads its leading
    columns transposed, a C-contiguous (width, K) array then (150 x 6
    float32 logits: 3.8 vs 5.7 µs; MNIST-sized: the same or faster).
    """

    def build(memories):
        bias = _lse_bias(memories, spec)
        head = memories.patterns
        if tail is not None:
            cw = memories.coord_weights
            values = xp.asarray(tail, dtype=head.dtype, device=_device(head))
            if cw is not None:
                values = values * cw[pull_from:]
            extra = spec.beta * (head[:, pull_from:] @ values)
            bias = extra if bias is None else bias + extra
            head = head[:, :pull_from]
        if bias is None:
            bias = xp.zeros((head.shape[0],), dtype=head.dtype, device=_device(head))
        operand = _with_ones(xp.concat([bias[:, None], head], axis=1), xp)
        if tail is not None:  # NumPy only: column-major, for the logits' GEMM
            operand = np.asfortranarray(operand)
        return operand

    if tail is None:
        return block.derived.get(("lse_operand", spec.beta, spec.similarity), build)
    key = ("lse_operand_tail", spec.beta, spec.similarity, pull_from)
    return block.derived.get(key, build, tail)


# At most this many pulled coordinates equal in every query of a chunk are
# folded into the bias (see _folded_logits).
MAX_UNIFORM_TAIL = 64


def _uniform_tail(V, pull_from, xp):
    """Coordinates ``pull_from:`` as a tuple when every row of V has the same.

    None when they differ, when there are none or too many, and outside
    NumPy.
    """
    width = V.shape[1] - pull_from
    if not pull_from or width > MAX_UNIFORM_TAIL or not is_numpy_namespace(xp):
        return None
    tail = V[:, pull_from:]
    if not bool((tail == tail[0]).all()):
        return None
    return tuple(tail[0].tolist())


def _folded_logits(V, block, spec, xp, pull_from=0, shift=None, scale=1.0):
    """The logits of :func:`lse_logits` in one GEMM: ``[1, beta c v, -s] @ [bias, xi, 1].T``.

    The per-memory bias is one more column of the memories (built once,
    :func:`_lse_operand`), so the GEMM writes the logits and no pass over
    the (n, K) block adds it; a per-query ``shift`` ``s`` rides on the ones
    column. When the pulled coordinates (``pull_from:``) hold the same
    values in every query (the label neurons at their start: the first step
    of a supervised prediction), their part of the similarity is one number
    per memory, folded into the bias as well, and the GEMM runs on the other
    coordinates only.
    """
    tail = _uniform_tail(V, pull_from, xp)
    operand = _lse_operand(block, spec, xp, pull_from, tail)

    def build_factor(memories):  # a tuple: the same for every block
        cw = memories.coord_weights
        return (scale * spec.beta if cw is None else (scale * spec.beta) * cw,)

    (factor,) = block.derived.get(("lse_factor", spec.beta, scale), build_factor)
    if tail is not None:
        V = V[:, :pull_from]
        if not isinstance(factor, float):
            factor = factor[:pull_from]
    n, D = V.shape
    width = D + 1 if shift is None else D + 2
    if is_numpy_namespace(xp):
        A = np.empty((n, width), dtype=V.dtype)
        A[:, 0] = scale
        np.multiply(V, factor, out=A[:, 1 : D + 1])
        if shift is not None:
            np.multiply(shift, -scale, out=A[:, D + 1])
    else:
        ones = xp.full((n, 1), scale, dtype=V.dtype, device=_device(V))
        parts = [ones, V * factor]
        if shift is not None:
            parts.append((-scale) * shift[:, None])
        A = xp.concat(parts, axis=1)
    return A @ operand[:, :width].T


# Below this many (n, K) elements a chunk checks its shifted logits against the
# floor of exp_shifted directly (one reduction of a small block is cheaper
# than the bound's few (n, D) array calls).
BOUND_MIN_ELEMENTS = 2**16


def _above_floor(V, block, spec, xp):
    """Whether every shifted logit of this chunk is above ``exp_floor``, by a bound.

    ``l_mu - max_nu l_nu >= -beta/2 ||v - xi_mu||^2 - (max log w - min log w)``
    and ``||v - xi_mu|| <= ||v - c|| + R`` (``c`` the centroid of the memories,
    ``R`` their largest distance to it; the dot product: the logits span at
    most ``2 beta ||v|| R``): an O(n D) bound that spares the O(n K) check
    or the floor when it holds. Returns None (check the block) for small
    chunks and memories without derived arrays.
    """
    if block.derived is None or V.shape[0] * block.n_memories < BOUND_MIN_ELEMENTS:
        return None

    def build(memories):
        patterns, cw = memories.patterns, memories.coord_weights
        centre = xp.mean(patterns, axis=0)
        diff = patterns - centre
        sq = diff * diff if cw is None else cw * diff * diff
        radius = math.sqrt(float(xp.max(xp.sum(sq, axis=1))))
        spread = top = 0.0
        lw = memories.log_weights
        if lw is not None:
            top = float(xp.max(lw))
            spread = top - float(xp.min(lw))  # inf with zero weights
        return centre, radius, spread, top

    centre, radius, spread, _ = block.derived.get(("lse_bound",), build)
    cw = block.coord_weights
    diff = V - centre if spec.similarity == "sqeuclidean" else V * 1.0  # a copy
    if is_numpy_namespace(xp):  # in place: no second (n, D) array
        diff = np.multiply(diff, diff, out=diff)
    else:
        diff = diff * diff
    sq = xp.sum(diff, axis=1) if cw is None else diff @ cw
    reach = math.sqrt(max(float(xp.max(sq)), 0.0))
    if spec.similarity == "sqeuclidean":
        span = 0.5 * spec.beta * (reach + radius) ** 2
    else:
        span = 2.0 * spec.beta * reach * radius
    return span + spread < -exp_floor(V.dtype, xp) - 1.0


# Memories whose pulled coordinates come in at most this many runs of equal
# rows (and at most one run per RUN_MIN_LENGTH memories on average) sum the
# softmax run by run in pulled_sums.
MAX_RUNS = 256
RUN_MIN_LENGTH = 8
# ... unless the runs are short: the product costs about K x (P + 1)
# multiply-adds per query, the run sums about this many per run (NumPy's
# reduceat: ~20 ns a segment; measured: n = K = 150 with 3 runs, product 3 µs,
# run sums 9 µs; K = 898 with 10 runs, P + 1 = 11, the run sums faster from 1
# query on).
RUN_COST = 400


def pulled_sums(T, block, spec, pull_from, xp):
    """``T @ xi[:, pull_from:]`` and the row sums of ``T``: ``(sums (n, P), r (n,))``.

    ``T`` (n, K_b) holds the block's unnormalised softmax. The product with
    the K x (P + 1) pulled coordinates and a column of ones (columns of
    :func:`_lse_operand`) gives the row sums without a pass of their own
    (one column more measured faster than the sum at d = 64 too). The
    product runs far below GEMM speed
    when ``P`` is small (the label neurons of a classifier). When the pulled
    rows come in few runs of equal rows (a classifier's one-hot label parts,
    stored class by class), the columns of ``T`` are summed run by run
    instead (``np.add.reduceat``, one read of ``T``) and the (n, runs) sums
    multiplied by the runs' rows, unless the runs are short (``RUN_COST``).
    Needs ``block.derived``.
    """
    derived = block.derived

    def build_runs(memories):
        pulled = memories.patterns[:, pull_from:]
        K = pulled.shape[0]
        if not is_numpy_namespace(xp) or K < 2:
            return None, None, None
        change = np.any(pulled[1:] != pulled[:-1], axis=1)
        n_runs = 1 + int(np.count_nonzero(change))
        if n_runs > MAX_RUNS or n_runs * RUN_MIN_LENGTH > K:
            return None, None, None
        starts = np.concatenate([[0], np.flatnonzero(change) + 1])
        run_of = np.concatenate([[0], np.cumsum(change)])  # run of each memory
        return _with_ones(pulled[starts], xp), run_of, starts

    run_rows, run_of, starts = derived.get(("pulled_runs", pull_from), build_runs)
    if run_rows is not None:
        if derived.rows != slice(None):  # a block: its own runs
            run_of = run_of[derived.rows]
            change = np.flatnonzero(run_of[1:] != run_of[:-1]) + 1
            starts = np.concatenate([[0], change])
            run_rows = run_rows[int(run_of[0]) : int(run_of[-1]) + 1]
        if T.shape[1] * run_rows.shape[1] >= RUN_COST * len(starts):
            sums = np.add.reduceat(T, starts, axis=1) @ run_rows
        else:  # short runs: ``[xi[:, pull_from:] | 1]`` (K x (P + 1)) is faster
            key = ("pulled_ones", pull_from)
            ones = derived.get(key, lambda m: _with_ones(m.patterns[:, pull_from:], xp))
            sums = T @ ones
    else:
        sums = T @ _lse_operand(block, spec, xp)[:, 1 + pull_from :]
    return sums[:, :-1], sums[:, -1]


def _upper_shift(V, block, spec, xp):
    """``s = beta/2 ||v||_c^2 + max log w`` per query: no logit of V exceeds it.

    The shift-invariant logits are ``-beta/2 ||v - xi||^2 + beta/2 ||v||^2 +
    log w``. Where :func:`_above_floor` holds, every ``l - s`` is above the
    floor of :func:`exp_shifted` (its bound is on ``l - s``), so ``exp(l - s)``
    is a normal float with full precision for every memory: ``s`` replaces
    the row maximum, rides on the logits' GEMM, and the row maximum and the
    shift (two passes over the (n, K) block) are not needed.
    """
    top = block.derived.get(("lse_bound",), None)[3]
    sq = V * V
    cw = block.coord_weights
    sq = xp.sum(sq, axis=1) if cw is None else sq @ cw
    return (0.5 * spec.beta) * sq + top


# NumPy's row maximum of many short rows is slower than the row argmax and a
# gather (150 x 150: 8.8 vs 4.7 µs; 1000 x 1000: 204 vs 172 µs); of few or
# long rows it is faster (1 x 150, 256 x 5000).
ARGMAX_MIN_ROWS = 64
ARGMAX_MAX_LENGTH = 1024


def _row_max(logits):
    """``logits.max(axis=1)`` of a C-contiguous NumPy (n, K) array, the same values."""
    n, K = logits.shape
    if n < ARGMAX_MIN_ROWS or K > ARGMAX_MAX_LENGTH or not logits.flags.c_contiguous:
        return logits.max(axis=1)
    index = logits.argmax(axis=1)
    index += np.arange(0, n * K, K)  # flat positions (a NaN's, if any)
    return logits.ravel()[index]


def lse_block(V, block, spec, xp, *, pull_from=0, need_mean=True):
    """LSE state of one block and its unnormalised softmax ``T`` (and sums).

    Returns ``(state, T, r)``: ``T / r[:, None]`` is the block's softmax
    (``T`` and ``r`` may share a per-row factor).

    Plain memories: after the GEMM, the (n, K) block is passed over by the
    bias, the row maximum, the shift, the floor of :func:`exp_shifted` and
    ``exp``, in place, and read by the row sum and the product with the
    pulled coordinates. Memories with derived arrays (built once per fit):
    the bias is folded into the GEMM, and so is the shift where the floor
    bound holds (:func:`_above_floor`, :func:`_upper_shift`; else the row
    maximum and the shift, the floor only where the bound fails); the
    logits are in base 2 (``exp2``, NumPy); the row sums come from the
    pulled product (:func:`pulled_sums`). What is left is the GEMM, one
    ``exp2`` pass and the pulled product where the bound holds.
    """
    numpy = is_numpy_namespace(xp)  # ndarray methods: a few µs less per call
    base2 = numpy and block.derived is not None  # exp2 of base-2 logits
    scale = LOG2E if base2 else 1.0
    above = _above_floor(V, block, spec, xp)
    if above and spec.similarity == "sqeuclidean":
        # a bound on the row maxima, subtracted by the GEMM (_upper_shift)
        row_max = _upper_shift(V, block, spec, xp)
        logits = lse_logits(V, block, spec, xp, pull_from, row_max, scale)
        T = exp_shifted(logits, xp, clamp=False, base2=base2)
        finite = True
    else:
        logits = lse_logits(V, block, spec, xp, pull_from, scale=scale)
        raw_max = _row_max(logits) if numpy else xp.max(logits, axis=1)
        # rows of -inf only (a block of zero-weight memories) are the exception
        if numpy:  # one call (a sum that overflows only takes the general way)
            finite = math.isfinite(float(raw_max.sum()))
        else:
            finite = bool(xp.all(xp.isfinite(raw_max)))
        row_max = raw_max if finite else _finite_or_zero(raw_max, xp)
        logits -= row_max[:, None]
        T = exp_shifted(
            logits, xp, clamp=None if above is None else not above, base2=base2
        )
        if base2:  # back to natural units
            row_max = row_max * (1.0 / LOG2E)
            if not finite:
                raw_max = raw_max * (1.0 / LOG2E)
    mean = None
    if need_mean and block.derived is not None:
        sums, r = pulled_sums(T, block, spec, pull_from, xp)
        mean = sums / r[:, None]
    else:
        r = T.sum(axis=1) if numpy else xp.sum(T, axis=1)
        if need_mean:
            mean = (T @ block.patterns[:, pull_from:]) / r[:, None]
    if finite:
        return LSEState(row_max + xp.log(r), mean), T, r
    empty = raw_max == -math.inf  # zero-weight block: exactly the identity
    log_sum = xp.where(empty, -math.inf, row_max + xp.log(r))
    if mean is not None and bool(xp.any(empty)):
        mean = xp.where(empty[:, None], xp.zeros_like(mean), mean)
    return LSEState(log_sum, mean), T, r


# The separations whose signed block is built from ``log|1 + z|`` directly,
# in place (others, e.g. registered ones, go through the generic log-space
# form of their object, which holds about 7 arrays: GENERIC_TEMPORARIES).
_POWER_TYPES = (Polynomial, RectifiedPolynomial, LogSumReLU)
GENERIC_TEMPORARIES = 8


def _is_power(spec):
    return type(spec.function) in _POWER_TYPES


def block_temporaries(spec):
    """(n_chunk, n_block) arrays :func:`block_state` holds at once, at most.

    Measured with tracemalloc (NumPy): LSE 1.1 (2.0 with the normalised
    weights of :func:`skam._energy.log_kernel_sum`), the power separations
    2.2; namespaces without ``out=`` allocate one transient more. The
    generic form of other separations peaks at about 7.
    """
    if spec.is_lse or _is_power(spec):
        return TEMPORARIES_PER_PAIR
    return GENERIC_TEMPORARIES


def signed_terms(V, block, spec, xp):
    """``log|w F(z)|``, sign, ``log|w F'(z)|``, sign for one block, (n, K_b).

    The generic form (five or more (n, K_b) arrays at once); the engine's
    states use the leaner :func:`signed_block` for the power separations.
    """
    z = _scaled_similarity(V, block, spec, xp)
    log_f, sign_f, log_df, sign_df = _log_abs_separation(z, spec, xp)
    if block.log_weights is not None:
        log_f = log_f + block.log_weights[None, :]
        log_df = log_df + block.log_weights[None, :]
    return log_f, sign_f, log_df, sign_df


def _signed_sum(log_terms, sign, xp):
    raw_max, shift = _row_shift(log_terms, xp)
    T = xp.exp(log_terms - shift[:, None])
    if sign is not None:
        T = T * sign
    return xp.where(raw_max == -math.inf, -math.inf, shift), T


def _log_abs_base(V, block, spec, xp):
    """``log|1 + z|`` of one block, (n, K_b), and the mask where ``1 + z < 0``.

    ``z = beta S`` is built in one GEMM output and turned into the log of the
    base in place (NumPy; other namespaces allocate one array per step and
    free the previous one). For the rectified separations the base is
    ``max(1 + z, 0)``, so ``log`` is ``-inf`` outside the support and the
    mask is None; for ``"poly"`` the mask marks the negative bases (the sign
    of odd powers).
    """
    numpy = is_numpy_namespace(xp)
    base = _cross(V, block, spec.beta)  # a fresh (n, K_b) array
    if spec.similarity == "sqeuclidean":
        # z = -beta/2 ||v - xi||^2 <= 0 (clipped against rounding)
        base -= (spec.beta * _half_sqnorm_rows(V, block, xp))[:, None]
        base -= (spec.beta * block.half_sqnorms)[None, :]
        base = xp.minimum(base, 0.0, out=base) if numpy else xp.minimum(base, 0.0)
    base += 1.0
    negative = None
    if not spec.function.rectified:
        negative = base < 0
        base = xp.abs(base, out=base) if numpy else xp.abs(base)
    else:
        base = xp.maximum(base, 0.0, out=base) if numpy else xp.maximum(base, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf: F vanishes there
        return (xp.log(base, out=base) if numpy else xp.log(base)), negative


def _power_terms(log_base, power, negative, block, spec, xp):
    """Max-shifted ``w |base|^power`` (signed where odd) and the shift, (n, K_b).

    Returns ``(shift, T)`` with ``T exp(shift)`` the terms without their
    constant coefficient; ``shift`` is ``-inf`` on rows where every term
    vanishes. One new (n, K_b) array, updated in place.
    """
    numpy = is_numpy_namespace(xp)
    if power:
        T = log_base * float(power)
    elif not spec.function.rectified:  # F' of (1 + z)^1 is 1 everywhere
        T = xp.zeros_like(log_base)
    else:  # F' of max(1 + z, 0) is 1 inside the support, 0 outside
        outside = log_base == -math.inf
        if numpy:
            T = xp.zeros_like(log_base)
            xp.copyto(T, -math.inf, where=outside)
        else:
            T = xp.where(outside, -math.inf, xp.zeros_like(log_base))
    if block.log_weights is not None:
        T += block.log_weights[None, :]
    raw_max, shift = _row_shift(T, xp)
    T -= shift[:, None]
    T = xp.exp(T, out=T) if numpy else xp.exp(T)
    if negative is not None and power % 2:
        if numpy:
            xp.negative(T, out=T, where=negative)
        else:
            T = xp.where(negative, -T, T)
    return xp.where(raw_max == -math.inf, -math.inf, shift), T


def _power_block(V, block, spec, xp, *, pull_from=0, need_slope=True, weights=False):
    """:class:`SignedState` of a power separation, and optionally its ``F'`` terms.

    ``F = (1 + z)^n`` (or its rectified form) and ``F' = n (1 + z)^(n - 1)``
    share ``log|1 + z|``: at most three (n, K_b) arrays are alive at once
    (that log, one array of terms and a transient in namespaces without
    ``out=``), plus a boolean mask for ``"poly"``. With ``weights`` it
    returns ``(state, slope_shift, G)`` where ``G exp(slope_shift)`` are the
    signed terms ``w F'(z)`` (the gradient weights before normalisation).
    """
    n = spec.power
    log_base, negative = _log_abs_base(V, block, spec, xp)
    value_shift, T = _power_terms(log_base, n, negative, block, spec, xp)
    value_sum = xp.sum(T, axis=1)
    del T
    if not (need_slope or weights):
        return SignedState(value_shift, value_sum)
    slope_shift, G = _power_terms(log_base, n - 1, negative, block, spec, xp)
    del log_base
    log_n = math.log(n)
    slope_shift = slope_shift + log_n  # -inf stays -inf
    if weights:
        return SignedState(value_shift, value_sum), slope_shift, G
    return SignedState(
        value_shift,
        value_sum,
        slope_shift,
        xp.sum(G, axis=1),
        G @ block.patterns[:, pull_from:],
    )


def signed_gradient_weights(V, memories, spec, xp):
    """``log_z`` and the gradient weights ``P`` (n, K) of a signed kernel sum.

    ``P_mu = w_mu F'(z_mu) / (eps + sum_nu w_nu F(z_nu))``, zero where the
    kernel sum was clipped; the memories are one block.
    """
    if not _is_power(spec):
        terms = signed_terms(V, memories, spec, xp)
        state = signed_block(V, memories, spec, xp, need_slope=False, terms=terms)
        log_z = finish_log_z(state, V, memories, spec, xp)
        log_df, sign_df = terms[2], terms[3]
        finite_z = xp.isfinite(log_z)
        shift = xp.where(finite_z, log_z, xp.zeros_like(log_z))
        P = xp.exp(log_df - shift[:, None])
        if sign_df is not None:
            P = P * sign_df
    else:
        state, slope_shift, P = _power_block(V, memories, spec, xp, weights=True)
        log_z = finish_log_z(state, V, memories, spec, xp)
        finite_z = xp.isfinite(log_z)
        keep = xp.logical_and(state.value_sum > 0, finite_z)
        # finite terms times a finite factor, 0 where the sum was clipped
        factor = _rescale(slope_shift, log_z, xp) * xp.astype(keep, P.dtype)
        P *= factor[:, None]
        return log_z, P
    keep = xp.logical_and(state.value_sum > 0, finite_z)
    return log_z, xp.where(keep[:, None], P, xp.zeros_like(P))


def signed_block(V, block, spec, xp, *, pull_from=0, need_slope=True, terms=None):
    """:class:`SignedState` of one block (``terms`` from :func:`signed_terms`)."""
    if terms is None and _is_power(spec):
        return _power_block(
            V, block, spec, xp, pull_from=pull_from, need_slope=need_slope
        )
    log_f, sign_f, log_df, sign_df = terms or signed_terms(V, block, spec, xp)
    value_shift, T = _signed_sum(log_f, sign_f, xp)
    value_sum = xp.sum(T, axis=1)
    if not need_slope:
        return SignedState(value_shift, value_sum)
    slope_shift, G = _signed_sum(log_df, sign_df, xp)
    return SignedState(
        value_shift,
        value_sum,
        slope_shift,
        xp.sum(G, axis=1),
        G @ block.patterns[:, pull_from:],
    )


def block_state(V, block, spec, xp, *, pull_from=0, need_direction=True):
    """Partial state of one block of memories for one chunk of queries.

    Parameters
    ----------
    V : array of shape (n, D)
        Queries.
    block : Memories
        A block of memories (:meth:`skam._energy.Memories.block`).
    spec : EnergySpec
    xp : namespace
    pull_from : int
        The direction is computed on coordinates ``pull_from:`` only (the
        label neurons of the supervised memories); 0 = all.
    need_direction : bool
        False keeps only what ``log_z`` needs.

    Returns
    -------
    state : LSEState or SignedState
    """
    if block.n_memories == 0:
        return identity_state(V, block, spec, xp, pull_from, need_direction)
    if spec.is_lse:
        return lse_block(
            V, block, spec, xp, pull_from=pull_from, need_mean=need_direction
        )[0]
    return signed_block(
        V, block, spec, xp, pull_from=pull_from, need_slope=need_direction
    )


def identity_state(V, block, spec, xp, pull_from=0, need_direction=True):
    """The state of an empty block: :func:`merge` leaves the other side as is."""
    n, width = V.shape[0], block.patterns.shape[1] - pull_from
    minus_inf = xp.full((n,), -math.inf, dtype=V.dtype, device=_device(V))
    zeros = xp.zeros((n,), dtype=V.dtype, device=_device(V))
    pulled = xp.zeros((n, width), dtype=V.dtype, device=_device(V))
    if spec.is_lse:
        return LSEState(minus_inf, pulled if need_direction else None)
    if not need_direction:
        return SignedState(minus_inf, zeros)
    return SignedState(minus_inf, zeros, minus_inf, zeros, pulled)


# -------------------------------------------------------------------- merge
def merge(a, b, xp):
    """Exact associative merge of two partial states of the same queries."""
    if isinstance(a, LSEState):
        log_sum = xp.logaddexp(a.log_sum, b.log_sum)
        if a.mean is None:
            return LSEState(log_sum)
        wa = _rescale(a.log_sum, log_sum, xp)[:, None]
        wb = _rescale(b.log_sum, log_sum, xp)[:, None]
        return LSEState(log_sum, wa * a.mean + wb * b.mean)
    value_shift, value_sum = _merge_signed(
        a.value_shift, a.value_sum, b.value_shift, b.value_sum, xp
    )
    if a.slope_shift is None:
        return SignedState(value_shift, value_sum)
    slope_shift = xp.maximum(a.slope_shift, b.slope_shift)
    sa = _rescale(a.slope_shift, slope_shift, xp)
    sb = _rescale(b.slope_shift, slope_shift, xp)
    return SignedState(
        value_shift,
        value_sum,
        slope_shift,
        sa * a.slope_sum + sb * b.slope_sum,
        sa[:, None] * a.pulled + sb[:, None] * b.pulled,
    )


def _merge_signed(shift_a, sum_a, shift_b, sum_b, xp):
    shift = xp.maximum(shift_a, shift_b)
    total = _rescale(shift_a, shift, xp) * sum_a + _rescale(shift_b, shift, xp) * sum_b
    return shift, total


def merge_all(states, xp):
    """Merge a sequence of states pairwise as a balanced tree."""
    states = list(states)
    while len(states) > 1:
        paired = [
            merge(states[i], states[i + 1], xp) for i in range(0, len(states) - 1, 2)
        ]
        if len(states) % 2:
            paired.append(states[-1])
        states = paired
    return states[0]


# ------------------------------------------------------------------- finish
def finish_log_z(state, V, memories, spec, xp):
    """``log(eps + max(kernel sum, 0))`` (LSE: the log kernel sum), shape (n,)."""
    if isinstance(state, LSEState):
        if spec.similarity == "sqeuclidean":
            return state.log_sum - spec.beta * _half_sqnorm_rows(V, memories, xp)
        return state.log_sum
    log_sum = xp.where(
        state.value_sum > 0,
        state.value_shift + _safe_log(state.value_sum, xp),
        -math.inf,
    )
    return xp.logaddexp(log_sum, xp.full_like(log_sum, spec.log_epsilon))


def finish(state, V, memories, spec, xp, *, pull_from=0):
    """``log_z`` (n,) and the descent direction on coordinates ``pull_from:``.

    The direction is ``grad E`` for LSE; for the other separations it is
    ``grad E`` divided by ``sum_mu P_mu`` where that is positive (the
    mean-shift step, see :func:`skam._energy.descent_direction`); it is zero
    where the kernel sum was clipped. ``memories`` supplies the coordinate
    weights only (any block of the memory will do).
    """
    log_z = finish_log_z(state, V, memories, spec, xp)
    return log_z, finish_direction(
        state, V, memories, spec, xp, pull_from=pull_from, log_z=log_z
    )


def finish_direction(state, V, memories, spec, xp, *, pull_from=0, log_z=None):
    """The descent direction of :func:`finish` alone (LSE needs no ``log_z``)."""
    Vp = V[:, pull_from:] if pull_from else V
    cw = memories.coord_weights
    if isinstance(state, LSEState):
        grad = Vp - state.mean if spec.similarity == "sqeuclidean" else -state.mean
    else:
        if log_z is None:
            log_z = finish_log_z(state, V, memories, spec, xp)
        keep = xp.logical_and(state.value_sum > 0, xp.isfinite(log_z))
        factor = xp.where(
            keep, _rescale(state.slope_shift, log_z, xp), xp.zeros_like(log_z)
        )
        total = state.slope_sum * factor
        pulled = state.pulled * factor[:, None]
        if spec.similarity == "sqeuclidean":
            grad = total[:, None] * Vp - pulled
        else:
            grad = -pulled
        positive = total > 0
        grad = grad / xp.where(positive, total, xp.ones_like(total))[:, None]
    if cw is not None:
        grad = grad * (cw[pull_from:] if pull_from else cw)
    return grad


# ------------------------------------------------------ blocks of memories
def memory_block_rows(n_rows, n_memories, itemsize, *, temporaries=None):
    """Memories per block for a chunk of ``n_rows`` queries (``working_memory``).

    All of them when ``n_rows x n_memories`` temporaries fit, else as many as
    fit (at least 1): :func:`skam._chunking.rows_per_chunk` on the memory axis.
    """
    temporaries = TEMPORARIES_PER_PAIR if temporaries is None else temporaries
    return rows_per_chunk(n_memories, n_rows * itemsize * temporaries, min_rows=1)


# On CPUs, the passes of the LSE read-out over a chunk's (n, K) logits (row
# maximum, shift, exp) run about twice as fast on blocks of memories that stay
# in the cache: a block aims at this many bytes of logits, unless merging the
# blocks' states costs more than it saves (pulled width above 1/32 of the
# block: d = 784 retrieval). Measured, one LSE step, n = K = 10 000, d = 64:
# 4-8 MiB blocks 5-8% faster than one block of 22 MiB, 2 MiB slower.
CPU_TILE_BYTES = 8 * 2**20
TILE_WIDTH_RATIO = 32


def cache_block_rows(n_rows, width, itemsize):
    """Memories per block for the cache, on CPUs (see ``CPU_TILE_BYTES``).

    Parameters
    ----------
    n_rows : int
        Queries in the chunk.
    width : int
        Pulled coordinates of the state (0: no direction); a block keeps at
        least ``TILE_WIDTH_RATIO * width`` memories.
    itemsize : int
        Bytes per element.
    """
    fitting = CPU_TILE_BYTES // max(1, n_rows * itemsize)
    return max(1, int(fitting), TILE_WIDTH_RATIO * int(width))


def reduce_blocks(
    V, memories, spec, xp, *, pull_from=0, need_direction=True, block_rows=None
):
    """Partial state of all memories for one chunk, block by block.

    Blocks fit ``working_memory``; on CPUs (NumPy), LSE blocks are also kept
    near ``CPU_TILE_BYTES`` per (n, K_b) array (:func:`cache_block_rows`).
    """
    K = memories.n_memories
    if block_rows is None:
        itemsize = 4 if V.dtype == xp.float32 else 8
        block_rows = memory_block_rows(
            V.shape[0], K, itemsize, temporaries=block_temporaries(spec)
        )
        if spec.is_lse and is_numpy_namespace(xp):
            width = V.shape[1] - pull_from if need_direction else 0
            block_rows = min(block_rows, cache_block_rows(V.shape[0], width, itemsize))
    if block_rows >= K:
        return block_state(
            V, memories, spec, xp, pull_from=pull_from, need_direction=need_direction
        )
    states = (
        block_state(
            V,
            memories.block(slice(start, min(start + block_rows, K))),
            spec,
            xp,
            pull_from=pull_from,
            need_direction=need_direction,
        )
        for start in range(0, K, block_rows)
    )
    merged = None
    for state in states:  # sequential: one block of temporaries at a time
        merged = state if merged is None else merge(merged, state, xp)
    return merged


def _device(array):
    from array_api_compat import device

    return device(array)
