"""Binary Dense Associative Memories: per-bit energy differences and sign dynamics.

The energy of a binary state ``s`` in ``{-1, +1}^D`` with stored patterns
``xi_mu`` (also +-1) and weights ``w_mu`` is (tutorial Eq. 2.1)::

    E(s) = -sum_mu w_mu F(m_mu),      m_mu = xi_mu . s  (the overlaps)

A neuron takes the sign that gives the lower energy with all the others
clamped (Eq. 2.2; ``sgn(0) = +1``)::

    s_i <- sgn(h_i),  h_i = sum_mu w_mu [F(b_mu + xi_mu_i) - F(b_mu - xi_mu_i)]

where ``b_mu = m_mu - xi_mu_i s_i`` leaves neuron ``i``'s own contribution out
(no self-coupling). Because ``xi_mu_i = +-1``, a pattern that agrees with the
state on neuron ``i`` contributes ``A_mu = F(m_mu) - F(m_mu - 2)`` and one that
disagrees ``-B_mu = -(F(m_mu + 2) - F(m_mu))``, so the field of *every* neuron
follows from the overlaps alone::

    h_i = s_i (sum_{mu: xi_mu_i = s_i} w_mu A_mu - sum_{mu: xi_mu_i != s_i} w_mu B_mu)

two (n, K) x (K, 2D) products per sweep. Only the sign of ``h`` matters, so
``A`` and ``B`` are computed up to a positive factor per query: powers of
``m / c`` with ``c = max |m| + 2`` for the polynomials and
``exp(beta (m - c))`` for the exponential, so nothing overflows at any ``D``,
degree or ``beta``. Asynchronous sweeps visit the neurons in a random order
and update the overlaps of the queries whose neuron flipped (a rank-one
change), so every flip sees the current state; their energy never increases.

``"quadratic"`` is the classical Hopfield network and runs on the Hebbian
couplings ``W = Xi^T diag(w) Xi / D`` with zero diagonal (a D x D matrix, the
same signs as the overlap form with ``F(x) = x^2``).

Functions here are pure: arrays in, arrays out, in the namespace ``xp``;
:func:`run_dynamics` and :func:`discrete_energy` chunk the queries with the
package's chunking helper so the (n, K) temporaries stay within
``working_memory``.
"""

import math
from dataclasses import dataclass

import numpy as np
from array_api_compat import device as array_device
from array_api_compat import is_numpy_namespace

from skam._chunking import chunk_slices, concat, itemsize, map_chunks

DISCRETE_SEPARATIONS = ("quadratic", "poly", "rectified_poly", "exp")

# (n_chunk, K) temporaries alive at once in a sweep: overlaps, A, B and the
# shifted separations they come from.
_TEMPORARIES = 5
# (n_chunk, D) arrays alive at once in a sweep (measured peak about 9 with
# tracemalloc): the prepared chunk and its working copy, the new states and
# the mask of moved rows, the fields (two (n, 2D) products and the signed
# fields of the overlap form), the rows set aside and their reassembly.
_STATE_TEMPORARIES = 10


def bytes_per_row(field, n_features, nbytes):
    """Bytes of temporaries one query needs in a sweep of ``field``."""
    return (_TEMPORARIES * field.n_columns + _STATE_TEMPORARIES * n_features) * nbytes


@dataclass(frozen=True)
class BinarySpec:
    """A resolved binary energy: separation ``F``, its degree and ``beta``."""

    separation: str = "poly"
    degree: int = 3
    beta: float = 1.0


# ---------------------------------------------------------------- fields
def _round_off(magnitude, dtype, xp):
    """Tie margin: rounding error of a sum of terms of total ``magnitude``."""
    return (64.0 * xp.finfo(dtype).eps) * magnitude


class CouplingField:
    """Field of the classical network: ``h = S @ W`` (W symmetric, zero diagonal).

    Fields are returned plus their rounding margin, so that a tie (a field
    that is zero in exact arithmetic) gives +1.
    """

    def __init__(self, coupling, xp):
        self.coupling = coupling
        self.n_columns = coupling.shape[0]
        self.margin = _round_off(xp.sum(xp.abs(coupling), axis=0), coupling.dtype, xp)
        self.nbytes = 0  # the couplings are the model's own

    def start(self, S):
        return None

    def select(self, state, keep, xp):
        return None

    def sweep(self, S, state=None):
        return S @ self.coupling + self.margin[None, :]

    def neuron(self, S, state, i, rows=None):
        if rows is not None:
            S = S[rows, :]
        return S @ self.coupling[:, i] + self.margin[i]

    def flipped(self, S, state, i, delta, changed):
        return None


class OverlapField:
    """Field of a Dense AM from the overlaps with the stored patterns.

    With ``A = F(m) - F(m - 2)`` and ``B = F(m + 2) - F(m)`` (the change of
    ``F`` when a neuron agreeing, resp. disagreeing, with a pattern flips),
    the field of neuron ``i`` is ``sum_{xi_i = s_i} A - sum_{xi_i != s_i} B``
    times ``s_i``: two products with the 0/1 matrices ``U = [xi = +1]`` and
    ``L = [xi = -1]``. Each pattern contributes ``A`` or ``B``, never a
    difference of the two, so a dominant pattern does not wash out the
    others (``exp`` with a large ``beta``).

    Parameters
    ----------
    patterns : array of shape (K, D)
        Stored +-1 patterns.
    weights : array of shape (K,) or None
        Non-negative memory weights.
    spec : BinarySpec
    xp : namespace
    """

    def __init__(self, patterns, weights, spec, xp):
        K, D = patterns.shape
        self.patterns_t = patterns.T  # a view: the overlaps are S @ Xi^T
        self.n_features = D
        # [U | L], (K, 2D): the one copy of the memories the field needs
        if is_numpy_namespace(xp):
            self.split = np.empty((K, 2 * D), dtype=patterns.dtype)
            np.greater(patterns, 0, out=self.split[:, :D])
            np.less_equal(patterns, 0, out=self.split[:, D:])
        else:
            upper = xp.astype(patterns > 0, patterns.dtype)
            self.split = xp.concat([upper, 1.0 - upper], axis=1)
        self.weights = weights
        self.spec = spec
        self.xp = xp
        self.n_columns = patterns.shape[0]
        self._numpy = is_numpy_namespace(xp)
        # F is non-decreasing (so A, B >= 0) except for even-degree "poly"
        self._signed = spec.separation == "poly" and int(spec.degree) % 2 == 0
        self._eps = 64.0 * float(xp.finfo(patterns.dtype).eps)
        log_w = None
        if weights is not None and spec.separation == "exp":
            positive = weights > 0
            safe = xp.where(positive, weights, xp.ones_like(weights))
            log_w = xp.where(positive, xp.log(safe), -math.inf)
        self.log_weights = log_w

    def terms(self, M):
        """``A`` and ``B`` (n, K) of the overlaps ``M``, up to a factor per row."""
        xp, spec = self.xp, self.spec
        if spec.separation == "exp":
            # F(m + 2) - F(m) = exp(beta m) (e^{2 beta} - 1), and A = B e^{-2 beta}:
            # the common factor (1 - e^{-2 beta}) is dropped.
            logits = spec.beta * M
            if self.log_weights is not None:
                logits = logits + self.log_weights[None, :]
            top = xp.max(logits, axis=1, keepdims=True)
            top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
            B = xp.exp(logits - top)
            A = xp.exp(logits - (top + 2.0 * spec.beta))
        else:
            scale = xp.max(xp.abs(M), axis=1, keepdims=True) + 2.0
            up, mid, down = (
                _power((M + shift) / scale, spec, xp) for shift in (2.0, 0.0, -2.0)
            )
            A, B = mid - down, up - mid
            if self.weights is not None:
                A, B = A * self.weights[None, :], B * self.weights[None, :]
        return A, B

    def start(self, S):
        M = S @ self.patterns_t
        return [M, *self.terms(M)]

    def select(self, state, keep, xp):
        return [xp.take(part, keep, axis=0) for part in state]

    def _field(self, A, B, right, s):
        """Field from the products with ``[U | L]`` (or one neuron's columns).

        The tie margin is the rounding error of the two sums, ``eps`` times
        the sum of the magnitudes of their terms (a free by-product when all
        terms are non-negative).
        """
        xp = self.xp
        a, b = A @ right, B @ right
        if self._signed:
            a_abs, b_abs = xp.abs(A) @ right, xp.abs(B) @ right
        else:
            a_abs, b_abs = a, b
        half = right.shape[-1] // 2
        u, lo = slice(None, half), slice(half, None)
        plus = a[:, u] - b[:, lo] + self._eps * (a_abs[:, u] + b_abs[:, lo])
        minus = b[:, u] - a[:, lo] + self._eps * (b_abs[:, u] + a_abs[:, lo])
        return xp.where(s > 0, plus, minus)

    def sweep(self, S, state=None):
        """Fields of all neurons plus their tie margins, (n, D): two GEMMs."""
        A, B = self.terms(S @ self.patterns_t) if state is None else state[1:]
        return self._field(A, B, self.split, S)

    def neuron(self, S, state, i, rows=None):
        _, A, B = state
        if rows is not None:  # NumPy only: a few rows
            A, B, S = A[rows, :], B[rows, :], S[rows, :]
        D = self.n_features
        columns = self.xp.stack([self.split[:, i], self.split[:, D + i]], axis=1)
        return self._field(A, B, columns, S[:, i : i + 1])[:, 0]

    @property
    def nbytes(self):
        """Bytes of the field's own arrays (held for the whole call)."""
        return self.split.shape[0] * self.split.shape[1] * itemsize(self.split)

    def flipped(self, S, state, i, delta, changed):
        """Rank-one update of the overlaps of the rows whose neuron ``i`` flipped."""
        xp = self.xp
        M, A, B = state
        column = self.patterns_t[i, :]
        if self._numpy:
            rows = np.flatnonzero(changed)
            M[rows, :] += delta[rows, None] * column[None, :]
            A[rows, :], B[rows, :] = self.terms(M[rows, :])
            return state
        M = M + delta[:, None] * column[None, :]
        A_new, B_new = self.terms(M)
        A = xp.where(changed[:, None], A_new, A)
        B = xp.where(changed[:, None], B_new, B)
        return [M, A, B]


def _power(x, spec, xp):
    n = int(spec.degree)
    if spec.separation == "rectified_poly":
        x = xp.maximum(x, 0.0)
    return x**n


# -------------------------------------------------------------- dynamics
def run_dynamics(
    S0, field, xp, *, update, max_iter, seed, chunk_size=None, prepare=None, finish=None
):
    """Sign dynamics from the +-1 states ``S0`` until no neuron changes.

    Parameters
    ----------
    S0 : array of shape (n, D)
        Initial states (compute namespace and dtype): +-1, or anything
        ``prepare`` turns into +-1 states.
    field : CouplingField or OverlapField
    xp : namespace
    update : {"async", "sync"}
    max_iter : int
        Maximum number of sweeps.
    seed : int
        Seed of the neuron order of the asynchronous sweeps; every chunk uses
        the same orders, so results do not depend on the chunk size.
    chunk_size : int or None
        Queries per chunk; None sizes chunks from ``working_memory``
        (:func:`bytes_per_row`).
    prepare : callable or None
        Applied to each chunk of ``S0`` first (the binarisation), so that no
        whole-size copy of the queries is made.
    finish : callable or None
        ``finish(states, n_iter, converged)`` -> one array per chunk (what
        the caller keeps, e.g. the recalled pattern's index); the results
        fill one output array.

    Returns
    -------
    states, n_iter, converged : arrays of shape (n, D), (n,), (n,)
        Final states, sweeps taken by each query (the last one changes
        nothing when it converged), whether it reached a fixed point; or,
        with ``finish``, its results concatenated over the chunks.
    """
    per_row = bytes_per_row(field, S0.shape[1], itemsize(S0))

    def run(sl):
        S = S0[sl, :] if prepare is None else prepare(S0[sl, :])
        return _run_chunk(S, field, xp, update, max_iter, seed)

    sizes = {"chunk_size": chunk_size, "reserved_bytes": field.nbytes}
    if finish is not None:
        return map_chunks(
            lambda sl: finish(*run(sl)), S0.shape[0], per_row, xp, **sizes
        )
    parts = [run(sl) for sl in chunk_slices(S0.shape[0], per_row, **sizes)]
    return tuple(concat([p[k] for p in parts], xp) for k in range(3))


def _run_chunk(S, field, xp, update, max_iter, seed):
    n, D = S.shape
    dev = array_device(S)
    rng = np.random.RandomState(seed)
    S = xp.asarray(S, copy=True)
    one = xp.ones((n,), dtype=S.dtype, device=dev)
    rows = xp.arange(n, device=dev)
    n_iter = xp.zeros((n,), dtype=xp.int64, device=dev)
    active = xp.ones((n,), dtype=xp.bool, device=dev)
    state = field.start(S) if update == "async" else None
    finished = []
    for _ in range(max_iter):
        if update == "sync":
            S_new = xp.where(field.sweep(S) >= 0, one[:, None], -one[:, None])
            moved = xp.any(S_new != S, axis=1)
            S = S_new
        else:
            moved, state = _async_sweep(S, state, field, xp, rng.permutation(D), one)
        n_iter = n_iter + xp.astype(active, xp.int64)
        active = xp.logical_and(active, moved)
        n_active = int(xp.sum(xp.astype(active, xp.int64)))
        if n_active == 0:
            break
        if S.shape[0] - n_active >= max(1, S.shape[0] // 8):
            keep, stop = xp.nonzero(active)[0], xp.nonzero(xp.logical_not(active))[0]
            finished.append(
                (xp.take(S, stop, axis=0), xp.take(rows, stop), xp.take(n_iter, stop))
            )
            S, rows = xp.take(S, keep, axis=0), xp.take(rows, keep)
            n_iter, active = xp.take(n_iter, keep), xp.take(active, keep)
            one = xp.take(one, keep)
            if state is not None:
                state = field.select(state, keep, xp)
    if not finished:
        return S, n_iter, xp.logical_not(active)
    order = xp.argsort(xp.concat([p[1] for p in finished] + [rows]))
    S = xp.take(xp.concat([p[0] for p in finished] + [S], axis=0), order, axis=0)
    n_iter = xp.take(xp.concat([p[2] for p in finished] + [n_iter]), order)
    converged = xp.concat(
        [xp.ones_like(p[1], dtype=xp.bool) for p in finished] + [xp.logical_not(active)]
    )
    return S, n_iter, xp.take(converged, order)


def _async_sweep(S, state, field, xp, order, one):
    """One asynchronous sweep, in place on ``S`` (and ``state``); rows moved.

    The fields of all neurons are computed once, by one matrix product, at
    the start of the sweep; a query's row is recomputed neuron by neuron only
    after one of its neurons has flipped (it is then *stale*).
    """
    numpy = is_numpy_namespace(xp)
    H = field.sweep(S, state)
    moved = xp.zeros((S.shape[0],), dtype=xp.bool, device=array_device(S))
    for i in order.tolist():
        h = H[:, i]
        if bool(xp.any(moved)):
            if numpy:
                rows = np.flatnonzero(moved)
                h = np.array(h, copy=True)
                h[rows] = field.neuron(S, state, i, rows)
            else:
                h = xp.where(moved, field.neuron(S, state, i), h)
        old = S[:, i]
        new = xp.where(h >= 0, one, -one)
        changed = new != old
        if bool(xp.any(changed)):
            delta = new - old  # before S changes: ``old`` may be a view
            S[:, i] = new
            state = field.flipped(S, state, i, delta, changed)
            moved = xp.logical_or(moved, changed)
    return moved, state


# ---------------------------------------------------------------- energy
def discrete_energy(S, patterns, weights, spec, xp, *, coupling=None):
    """``E(s) = -sum_mu w_mu F(xi_mu . s)`` of each row of ``S``, shape (n,).

    ``F`` is normalised so the energy stays within ``D sum(w) / n`` for any
    degree (no overflow): ``F(x) = (D / n) (x / D)^n`` for ``"poly"`` (and
    ``max(x, 0)`` in place of ``x`` for ``"rectified_poly"``), the tutorial's
    ``x^n / n`` times the constant ``D^(1-n)``. ``"quadratic"`` is the
    classical ``-1/2 s^T W s`` with the zero-diagonal Hebbian ``W``, and
    ``"exp"`` is ``-(1/beta) log sum_mu w_mu exp(beta xi_mu . s)`` (computed
    in log space).
    """
    if coupling is not None:
        return -0.5 * xp.sum((S @ coupling) * S, axis=1)
    D = S.shape[1]
    parts = []
    # the overlaps, their scaled copy and its power (or the logits, shifted, exp)
    for sl in chunk_slices(S.shape[0], 3 * patterns.shape[0] * itemsize(S)):
        M = S[sl, :] @ patterns.T
        if spec.separation == "exp":
            logits = spec.beta * M
            if weights is not None:
                positive = weights > 0
                safe = xp.where(positive, weights, xp.ones_like(weights))
                logits = logits + xp.where(positive, xp.log(safe), -math.inf)[None, :]
            top = xp.max(logits, axis=1, keepdims=True)
            log_z = top[:, 0] + xp.log(xp.sum(xp.exp(logits - top), axis=1))
            parts.append(log_z * (-1.0 / spec.beta))
            continue
        F = _power(M / D, spec, xp)
        if weights is not None:
            F = F * weights[None, :]
        parts.append(xp.sum(F, axis=1) * (-D / int(spec.degree)))
    return concat(parts, xp)


def hebbian_coupling(patterns, weights, xp):
    """``(1/D) sum_mu w_mu xi_mu xi_mu^T`` with the diagonal set to zero."""
    D = patterns.shape[1]
    weighted = patterns if weights is None else patterns * weights[:, None]
    W = (weighted.T @ patterns) / D
    eye = xp.eye(D, dtype=W.dtype, device=array_device(W))
    return W * (1.0 - eye)
