"""Training of :class:`skam.cluster.AMClustering`: ClAM's masked loss and its loop.

The model is ``T`` unrolled steps of LSE descent whose memories are the
cluster centres (the recursion of :mod:`skam._training`, with the
squared-Euclidean similarity). One minibatch of the self-supervised loss
(Saha et al. 2023, Eq. 5.23 of Krotov et al. 2025):

1. a random mask ``m`` hides some coordinates of each sample; they are
   replaced by a fill value (the feature mean, min or max);
2. ``T`` descent steps move the hidden coordinates only (the visible ones are
   clamped): ``v^(T) = f^m(x_tilde)``;
3. the loss is the squared error on the hidden coordinates,
   ``l_i = sum_j m_ij (v_ij^(T) - x_ij)^2 / d``, averaged over the batch with
   the sample weights.

Without masking (``n_masked = 0``) every coordinate moves and the loss is the
plain contraction loss ``||x - f(x)||^2 / d``.

Speed: every restart (and every candidate ``beta`` of a selection) is one
slice of a leading axis ``R``: centres of shape ``(R, K, d)``, states of shape
``(R, b, d)``. One minibatch is then a fixed handful of batched GEMMs and
element-wise operations per unrolled step, whatever ``R``, and the forward
and backward passes are fused (:func:`batched_loss_and_grad`: the forward
keeps only the softmax weights and pulled means the backward needs; the
closed-form backward of :func:`skam._training.unrolled_backward`, written for
the batched shapes, with the ``-beta * sum(A) * C`` term summed once over the
steps). The same batched descent contracts the evaluation set for the basin
polish of all restarts at once (:func:`polish`). Random numbers (batches,
masks, re-seeding) are drawn on the host and moved to the device.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from array_api_compat import device as _device
from array_api_compat import is_numpy_array
from sklearn.utils import gen_batches

from skam._backend import to_numpy
from skam._chunking import chunk_slices, itemsize
from skam._training import Adam

# A centre is "dead" (re-seeded) when it receives less than this fraction of
# its fair share ``n_epoch / K`` of softmax mass over an epoch.
_DEAD_FRACTION = 1e-3
# Points examined (at most) when drawing a new position for a dead centre.
_RESEED_POOL = 2048
# A restart stops once its learning rate has decayed below this fraction of
# its initial value: at the first plateau with the default lr_decay=0.8.
_STOP_FRACTION = 0.9
# Plateaus are detected on the loss of at most this many fixed samples with
# fixed masks (the monitor), evaluated after each epoch: unlike the epoch
# loss it has no noise from the random masks and batches, so that a plateau
# is seen after ``patience`` epochs.
_MONITOR_ROWS = 512
# Softmax logits below the largest by more than 80 (float32: 40) are raised
# to that floor before the exponential (see _softmax_mean).
_LOGIT_FLOOR = -80.0
_LOGIT_FLOOR_32 = -40.0
# The polish rounds stop descending a row after one step when one centre
# has at least 1 - _SETTLED of its softmax weight (for every restart).
_SETTLED = 1e-6


def _mT(a, xp):
    return xp.permute_dims(a, (0, 2, 1))


# Layout: the batched arrays are feature-major, ``V^T`` of shape (R, d, b) and
# softmax weights ``P^T`` of shape (R, K, b), so that every reduction (over
# the K centres or the d features) runs over a middle axis: NumPy then adds
# whole rows at once instead of looping over short inner rows (50x faster
# for K = 10).


def _exp_(a, xp):
    """``exp(a)``, in place for NumPy (``a`` is a temporary)."""
    if is_numpy_array(a):
        return np.exp(a, out=a)
    return xp.exp(a)


def _clip_low_(a, low, xp):
    """``max(a, low)``, in place for NumPy (``a`` is a temporary)."""
    if is_numpy_array(a):
        return np.maximum(a, low, out=a)
    return xp.clip(a, min=low)


def _softmax_mean(VT, C_beta, half_beta_sq, CT, xp):
    """``P^T`` (R, K, b) of the LSE step at ``V^T`` and the pulled means ``(P C)^T``.

    The (R, K, b) temporaries are updated in place (a fresh product each
    step): allocating each of them anew costs more than the arithmetic.
    Logits more than 80 (float32: 40) below a row's largest are raised to
    that floor before the exponential: their weights (below ``exp(-80)``,
    float32 ``exp(-40)``, of the largest) change by less than the rounding
    of the sum, and no weight, nor its product with a gradient in the
    backward pass, is a subnormal number (arithmetic on those is many times
    slower).
    """
    P = C_beta @ VT
    P -= half_beta_sq
    P -= xp.max(P, axis=-2, keepdims=True)
    floor = _LOGIT_FLOOR_32 if P.dtype == xp.float32 else _LOGIT_FLOOR
    P = _exp_(_clip_low_(P, floor, xp), xp)
    P /= xp.sum(P, axis=-2, keepdims=True)
    return P, CT @ P


def _prepared(C, beta, xp):
    """``beta * C``, ``beta/2 ||c||^2`` (R, K, 1) and ``C^T`` for the batched steps."""
    return C * beta, (0.5 * beta) * xp.sum(C * C, axis=-1)[..., None], _mT(C, xp)


def _beta_array(beta, C, xp):
    """``beta`` (a float or one per restart) as an ``(R, 1, 1)`` array."""
    host = np.broadcast_to(np.asarray(beta, dtype=np.float64), (C.shape[0],))
    return xp.asarray(np.reshape(host, (-1, 1, 1)), dtype=C.dtype, device=_device(C))


def _step_scale(step_size, mask, dtype, xp):
    """``a^T``: the step size on the free coordinates, shape (d, b) or (d, 1)."""
    if mask is None:
        return step_size
    return step_size * xp.astype(xp.permute_dims(mask, (1, 0)), dtype)


def batched_descent(X, C, beta, xp, *, step_size, n_steps):
    """``n_steps`` of unclamped LSE descent from the rows ``X`` for every restart.

    Parameters
    ----------
    X : array of shape (b, d)
        Initial states, shared by the restarts.
    C : array of shape (R, K, d)
        The centres of each restart.
    beta : float or array of shape (R, 1, 1)
        Inverse temperature (one per restart).
    xp : namespace
    step_size : float
    n_steps : int

    Returns
    -------
    VT : array of shape (R, d, b)
        The states after ``n_steps`` steps, feature-major.
    """
    C_beta, hb, CT = _prepared(C, beta, xp)
    VT = xp.permute_dims(X, (1, 0))
    for _ in range(n_steps):
        _, MT = _softmax_mean(VT, C_beta, hb, CT, xp)
        VT = VT + step_size * (MT - VT)
    if VT.ndim == 2:  # n_steps == 0
        VT = xp.broadcast_to(VT[None, ...], (C.shape[0],) + tuple(VT.shape))
    return VT


def batched_loss_and_grad(
    X, V0, mask, C, weights, xp, *, beta, step_size, n_steps, with_grad=True
):
    """Loss of one minibatch for every restart and its gradient (fused).

    Parameters
    ----------
    X : array of shape (b, d)
        The samples (targets), shared by the restarts.
    V0 : array of shape (b, d)
        The masked samples (hidden coordinates replaced by the fill value);
        ``X`` itself when ``mask`` is None.
    mask : bool array of shape (b, d) or (1, d), or None
        True on the hidden coordinates: they evolve and are scored. None
        means no masking (every coordinate evolves and is scored).
    C : array of shape (R, K, d)
        The centres of each restart.
    weights : array of shape (b,) or None
        Sample weights (None = ones).
    xp : namespace
    beta : float or array of shape (R, 1, 1)
        Inverse temperature (one per restart).
    step_size : float
    n_steps : int
        Number of unrolled steps ``T``.
    with_grad : bool, default=True
        Also run the backward pass.

    Returns
    -------
    sample_losses : array of shape (R, b)
        ``l_i = sum_j m_ij (v_ij^(T) - x_ij)^2 / d`` (unweighted).
    grad : array of shape (R, K, d) or None
        Gradient of ``L_r = sum_i w_i l_ri / b`` with respect to ``C[r]``.
    mass : array of shape (R, K) or None
        Softmax weight each centre received at the last step, summed over
        the batch (to detect centres that attract nothing); None when
        ``n_steps`` is 0.

    Notes
    -----
    Per step the forward keeps ``P^T`` and ``(P C)^T``; the backward is, with
    ``g = dL/dv^(t+1)`` and ``u = a g`` (``a`` the step on free coordinates)::

        A = P * (u C^T - sum(u * P C, axis=features))
        dL/dv^(t) = (1 - a) g - beta (v * sum(A, axis=centres) - A C)
        dL/dC += P^T u + beta A^T v - beta sum(A, axis=samples) C
    """
    b, d = X.shape
    C_beta, hb, CT = _prepared(C, beta, xp)
    aT = _step_scale(step_size, mask, C.dtype, xp)
    XT = xp.permute_dims(X, (1, 0))
    VT = xp.permute_dims(V0, (1, 0))
    states, Ps, Ms = [VT], [], []
    for _ in range(n_steps):
        P, MT = _softmax_mean(VT, C_beta, hb, CT, xp)
        VT = VT + aT * (MT - VT)
        states.append(VT)
        Ps.append(P)
        Ms.append(MT)
    if VT.ndim == 2:  # n_steps == 0
        VT = xp.broadcast_to(VT[None, ...], (C.shape[0], d, b))
    diff = VT - XT
    if mask is not None:
        diff = diff * xp.astype(xp.permute_dims(mask, (1, 0)), C.dtype)
    sample_losses = xp.sum(diff * diff, axis=-2) / d
    mass = xp.sum(Ps[-1], axis=-1) if n_steps > 0 else None
    if not with_grad:
        return sample_losses, None, mass
    scale = 2.0 / (d * b)
    g = diff * scale if weights is None else diff * (weights * scale)
    grad = xp.zeros_like(C)
    A_cols = xp.zeros_like(C[..., :1])
    keep = 1.0 - aT
    for t in range(n_steps - 1, -1, -1):
        VT, P, MT = states[t], Ps[t], Ms[t]
        u = aT * g
        A = C @ u  # then, in place: P * (u C^T - sum(u * P C))
        A -= xp.sum(u * MT, axis=-2, keepdims=True)
        A *= P
        V = V0 if t == 0 else _mT(VT, xp)
        grad += P @ _mT(u, xp)
        pull = A @ V
        pull *= beta
        grad += pull
        A_cols += xp.sum(A, axis=-1, keepdims=True)
        if t > 0:
            back = CT @ A  # beta (A C - v sum(A)) in place
            back -= VT * xp.sum(A, axis=-2, keepdims=True)
            back *= beta
            g = keep * g
            g += back
    grad -= beta * (A_cols * C)
    return sample_losses, grad, mass


def masked_loss_and_grad(
    X, V0, mask, centres, weights, xp, *, beta, step_size, n_steps, with_grad=True
):
    """Loss of one minibatch and its gradient for one set of centres.

    :func:`batched_loss_and_grad` with a single restart: ``centres`` has
    shape ``(K, d)``, the losses ``(b,)``, the gradient ``(K, d)`` and the
    mass ``(K,)``.
    """
    losses, grad, mass = batched_loss_and_grad(
        X,
        V0,
        mask,
        centres[None, ...],
        weights,
        xp,
        beta=float(beta),
        step_size=step_size,
        n_steps=n_steps,
        with_grad=with_grad,
    )
    return (
        losses[0, ...],
        None if grad is None else grad[0, ...],
        None if mass is None else mass[0, ...],
    )


def draw_masks(rng, n_rows, n_features, n_masked, *, shared=False):
    """Host boolean masks with ``n_masked`` hidden coordinates per row.

    Coordinates are drawn without replacement. ``shared=True`` draws one row
    used by the whole batch (ClAM's every-``mask_cycle``-th epoch).
    """
    rows = 1 if shared else n_rows
    keys = rng.random_sample((rows, n_features))
    # the n_masked smallest keys of each row (a partition: the same set as
    # a full sort, at a fraction of its cost)
    mask = np.zeros((rows, n_features), dtype=bool)
    if n_masked > 0:
        hidden = np.argpartition(keys, n_masked - 1, axis=1)[:, :n_masked]
        np.put_along_axis(mask, hidden, True, axis=1)
    return mask


@dataclass
class TrainingSetup:
    """Everything the training needs besides the initial centres."""

    xp: object
    device: object
    beta: object  # float, or one float per restart (host array of shape (R,))
    step_size: float
    n_steps: int
    learning_rate: float
    batch_size: int
    max_epochs: int
    epoch_size: int
    n_masked: int
    fill: object  # (d,) fill values of hidden coordinates
    mask_cycle: int
    lr_decay: float
    patience: int
    tol: float
    progress: object = None  # skam._progress.Progress of the whole fit, or None
    reseed_last: bool = False  # also re-seed dead centres after the last epoch


@dataclass
class TrainingResult:
    """The final centres of all restarts and how training went."""

    centres: object  # (R, K, d)
    loss_curves: list = field(default_factory=list)  # one list per restart
    n_epochs: list = field(default_factory=list)  # epochs run, per restart
    n_reseeded: list = field(default_factory=list)  # per restart
    optimizer: tuple = None  # Adam's (m, v, t) at the end, to continue from


def _to_device(host_array, setup):
    return setup.xp.asarray(host_array, device=setup.device)


def _masked_input(Xb, mask, fill, xp):
    if mask is None:
        return Xb
    return xp.where(mask, fill[None, :], Xb)


def train(X, weights, centres, rng, setup, optimizer=None):
    """Minibatch Adam on the masked loss, all restarts at once.

    Parameters
    ----------
    X : array of shape (n, d)
        Training data (compute namespace).
    weights : array of shape (n,) or None
        Sample weights normalised to mean one (None = unweighted).
    centres : array of shape (R, K, d)
        Initial centres of each restart.
    rng : numpy.random.RandomState
        Host generator for batches, masks and re-seeding.
    setup : TrainingSetup
    optimizer : tuple (m, v, t) or None, default=None
        Adam's moments and step count to continue from (``partial_fit``);
        None starts afresh.

    Returns
    -------
    result : TrainingResult
        The centres at the end of training.

    Notes
    -----
    Schedule (ClAM's, made robust to the noise of the masks), per restart:
    from epoch 3 on, the moving average of the last 3 epoch losses is
    tracked; after ``patience`` epochs in a row without a new best average
    (by a relative ``tol``) the restart's learning rate is multiplied by
    ``lr_decay``. A restart stops (its learning rate is set to 0; the
    batched arrays keep their shape) when its learning rate has decayed
    below 0.6 of its initial value (early stopping on a loss plateau), and
    training stops when every restart has, or after ``max_epochs`` epochs.
    The centres at the end are kept. Each epoch visits ``epoch_size``
    samples (all of them, shuffled, when ``epoch_size >= n``; a fresh random
    subset otherwise), the same minibatches and masks for every restart.
    """
    xp = setup.xp
    n, d = X.shape
    R, K, _ = centres.shape
    beta = _beta_array(setup.beta, centres, xp)
    rates = np.full(R, setup.learning_rate)
    running = np.ones(R, dtype=bool)
    opt = Adam([centres], xp, learning_rate=_rates(rates, centres, xp))
    if optimizer is not None:
        opt.m[0], opt.v[0], opt.t = optimizer
    schedules = [_Plateau(setup) for _ in range(R)]
    monitor = _Monitor(X, weights, rng, setup) if setup.max_epochs > 1 else None
    if monitor is not None:
        basins = monitor.basins(centres, beta)
        unchanged = np.zeros(R, dtype=int)
    result = TrainingResult(
        centres=centres,
        loss_curves=[[] for _ in range(R)],
        n_epochs=[0] * R,
        n_reseeded=[0] * R,
    )
    if setup.max_epochs == 0:
        result.optimizer = (opt.m[0], opt.v[0], opt.t)
        return result
    for epoch in range(setup.max_epochs):
        shared = setup.mask_cycle > 0 and (epoch + 1) % setup.mask_cycle == 0
        order = rng.permutation(n)[: setup.epoch_size]
        total = xp.zeros((R,), dtype=X.dtype, device=setup.device)
        mass = xp.zeros((R, K), dtype=X.dtype, device=setup.device)
        for batch in gen_batches(order.shape[0], setup.batch_size):
            if order.shape[0] == n and setup.batch_size >= n:
                Xb, wb = X, weights  # one full batch: the order does not matter
            else:
                idx = _to_device(order[batch], setup)
                Xb = xp.take(X, idx, axis=0)
                wb = None if weights is None else xp.take(weights, idx, axis=0)
            mask = None
            if setup.n_masked > 0:
                mask = _to_device(
                    draw_masks(rng, Xb.shape[0], d, setup.n_masked, shared=shared),
                    setup,
                )
            V0 = _masked_input(Xb, mask, setup.fill, xp)
            losses, grad, batch_mass = batched_loss_and_grad(
                Xb,
                V0,
                mask,
                opt.params[0],
                wb,
                xp,
                beta=beta,
                step_size=setup.step_size,
                n_steps=setup.n_steps,
            )
            total = total + xp.sum(losses if wb is None else losses * wb, axis=-1)
            if batch_mass is not None:
                mass = mass + batch_mass
            opt.step([grad])
        epoch_loss = np.asarray(to_numpy(total), dtype=np.float64) / order.shape[0]
        dead = mass < _DEAD_FRACTION * order.shape[0] / K
        dead_host = np.asarray(to_numpy(dead), dtype=bool) & running[:, None]
        n_dead = dead_host.sum(axis=1)
        for r in np.flatnonzero(running):
            result.loss_curves[r].append(float(epoch_loss[r]))
            result.n_epochs[r] = epoch + 1
        last = epoch + 1 == setup.max_epochs
        if n_dead.any() and (setup.reseed_last or not last):
            _reseed(opt, dead_host, X, rng, setup)
            for r in np.flatnonzero(n_dead):
                result.n_reseeded[r] += int(n_dead[r])
        if setup.progress is not None:
            live = epoch_loss[running]
            metrics = {"loss": float(live.min()), "lr": float(rates[running].max())}
            if n_dead.any():
                metrics["reseeded"] = int(n_dead.sum())
            setup.progress.step(**metrics)
        if last:
            break
        # the clustering of the monitored samples no longer changes: stop
        new_basins = monitor.basins(opt.params[0], beta)
        unchanged = np.where(np.all(new_basins == basins, axis=1), unchanged + 1, 0)
        basins = new_basins
        settled = running & (unchanged >= setup.patience)
        running &= ~settled
        rates[settled] = 0.0
        if running.any():  # the loss plateau (ClAM's schedule)
            watched = monitor.losses(opt.params[0], beta)
        for r in np.flatnonzero(running):
            rates[r] = schedules[r].update(float(watched[r]), rates[r])
            if rates[r] < _STOP_FRACTION * setup.learning_rate:
                running[r] = False
                rates[r] = 0.0
        if not running.any():
            break
        opt.learning_rate = _rates(rates, centres, xp)
    result.centres = opt.params[0]
    result.optimizer = (opt.m[0], opt.v[0], opt.t)
    return result


def _rates(rates, centres, xp):
    return xp.asarray(
        np.reshape(rates, (-1, 1, 1)), dtype=centres.dtype, device=_device(centres)
    )


class _Monitor:
    """The masked loss of fixed samples with fixed masks, one value per restart."""

    def __init__(self, X, weights, rng, setup):
        xp = setup.xp
        n, d = X.shape
        rows = min(n, _MONITOR_ROWS)
        if rows < n:
            idx = _to_device(np.sort(rng.choice(n, size=rows, replace=False)), setup)
            X = xp.take(X, idx, axis=0)
            weights = None if weights is None else xp.take(weights, idx, axis=0)
        self.mask = None
        if setup.n_masked > 0:
            self.mask = _to_device(draw_masks(rng, rows, d, setup.n_masked), setup)
        self.X, self.weights, self.setup = X, weights, setup
        self.V0 = _masked_input(X, self.mask, setup.fill, xp)

    def basins(self, centres, beta):
        """Host basin labels (R, rows) of the monitored samples (screened)."""
        setup = self.setup
        labels = basin_labels(
            self.X,
            centres,
            beta,
            setup.xp,
            step_size=setup.step_size,
            n_steps=setup.n_steps,
            screen=True,
        )
        return np.asarray(to_numpy(labels))

    def losses(self, centres, beta):
        setup, w = self.setup, self.weights
        losses, _, _ = batched_loss_and_grad(
            self.X,
            self.V0,
            self.mask,
            centres,
            w,
            setup.xp,
            beta=beta,
            step_size=setup.step_size,
            n_steps=setup.n_steps,
            with_grad=False,
        )
        total = setup.xp.sum(losses if w is None else losses * w, axis=-1)
        return np.asarray(to_numpy(total), dtype=np.float64) / self.X.shape[0]


class _Plateau:
    """ClAM's learning-rate schedule, on the monitored loss."""

    def __init__(self, setup):
        self.setup = setup
        self.best = math.inf
        self.wait = 0

    def update(self, loss, learning_rate):
        """The learning rate for the next epoch."""
        if loss < self.best * (1.0 - self.setup.tol):
            self.wait = 0
        else:
            self.wait += 1
        self.best = min(self.best, loss)
        if self.wait >= self.setup.patience:
            self.wait = 0
            return learning_rate * self.setup.lr_decay
        return learning_rate


def _reseed(opt, dead, X, rng, setup):
    """Move dead centres to points far from every centre (k-means++'s D^2 draw).

    ``dead`` is a host boolean array of shape (R, K). Their Adam moments are
    reset, so they start afresh.
    """
    xp = setup.xp
    centres = opt.params[0]
    R, K, _ = centres.shape
    pool = rng.choice(X.shape[0], size=min(X.shape[0], _RESEED_POOL), replace=False)
    Xp = xp.take(X, _to_device(pool, setup), axis=0)
    nearest = to_numpy(xp.min(sq_distances(Xp, centres, xp), axis=-2))
    nearest = np.asarray(nearest, dtype=np.float64)
    # row of each new centre in [all centres (R * K rows); drawn points]
    source = np.arange(R * K).reshape(R, K)
    picks_all = []
    for r in np.flatnonzero(dead.any(axis=1)):
        prob = np.maximum(nearest[r], 0.0)
        n_dead = int(dead[r].sum())
        p = prob / prob.sum() if prob.sum() > 0 else None
        picks = rng.choice(prob.shape[0], size=n_dead, replace=True, p=p)
        source[r, dead[r]] = R * K + len(picks_all) + np.arange(n_dead)
        picks_all.extend(picks.tolist())
    drawn = xp.take(
        Xp, _to_device(np.asarray(picks_all, dtype=np.int64), setup), axis=0
    )
    stacked = xp.concat([xp.reshape(centres, (R * K, -1)), drawn])
    new = xp.take(stacked, _to_device(source.ravel(), setup), axis=0)
    keep = _to_device(~dead, setup)[:, :, None]
    opt.params[0] = xp.reshape(new, centres.shape)
    opt.m[0] = xp.where(keep, opt.m[0], xp.zeros_like(opt.m[0]))
    opt.v[0] = xp.where(keep, opt.v[0], xp.zeros_like(opt.v[0]))


def sq_distances(X, C, xp):
    """Squared distances (R, K, n) of the rows ``X`` (n, d) to the centres ``C``."""
    sq_x = xp.sum(X * X, axis=-1)
    sq_c = xp.sum(C * C, axis=-1)[..., None]
    return xp.clip(sq_x - 2.0 * (C @ xp.permute_dims(X, (1, 0))) + sq_c, min=0.0)


def basin_labels(X, C, beta, xp, *, step_size, n_steps, screen=False):
    """Cluster of each row for every restart: nearest centre of its contraction.

    ``X`` (n, d), ``C`` (R, K, d); returns int64 labels of shape (R, n),
    computed in row chunks that fit ``working_memory``.

    ``screen=True`` (the polish rounds, not the labels a fit returns) stops
    descending a row after the first step when, for every restart, one
    centre has at least ``1 - _SETTLED`` of its softmax weight: the row goes
    to that centre (its nearest), the rest are descended in full.
    """
    R, K, d = C.shape
    half_sq_c = 0.5 * xp.sum(C * C, axis=-1)[..., None]
    parts = []
    for sl in chunk_slices(X.shape[0], R * (3 * K + 3 * d) * itemsize(C)):
        if screen and n_steps > 1:
            parts.append(
                _screened_labels(X[sl, :], C, beta, half_sq_c, xp, step_size, n_steps)
            )
            continue
        VT = batched_descent(
            X[sl, :], C, beta, xp, step_size=step_size, n_steps=n_steps
        )
        parts.append(_nearest(VT, C, half_sq_c, xp))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)


def _nearest(VT, C, half_sq_c, xp):
    """Nearest centre (R, b) of the states ``V^T`` (R, d, b)."""
    # the nearest centre minimises ||c||^2 / 2 - c.v
    return xp.astype(xp.argmin(half_sq_c - C @ VT, axis=-2), xp.int64)


def _screened_labels(X, C, beta, half_sq_c, xp, step_size, n_steps):
    """:func:`basin_labels` of one chunk, settled rows stopped after one step."""
    C_beta, hb, CT = _prepared(C, beta, xp)
    VT = xp.permute_dims(X, (1, 0))
    P, MT = _softmax_mean(VT, C_beta, hb, CT, xp)
    settled = xp.all(xp.max(P, axis=-2) >= 1.0 - _SETTLED, axis=0)  # (b,)
    first = xp.astype(xp.argmax(P, axis=-2), xp.int64)
    open_rows = np.flatnonzero(~np.asarray(to_numpy(settled), dtype=bool))
    if open_rows.size == 0:
        return first
    dev = _device(X)
    idx = xp.asarray(open_rows, device=dev)
    VT = xp.take(VT + step_size * (MT - VT), idx, axis=-1)
    for _ in range(n_steps - 1):
        _, MT = _softmax_mean(VT, C_beta, hb, CT, xp)
        VT = VT + step_size * (MT - VT)
    done = np.flatnonzero(np.asarray(to_numpy(settled), dtype=bool))
    # the labels in the order [settled rows, open rows], then back in place
    order = np.concatenate([done, open_rows])
    inverse = xp.asarray(np.argsort(order), device=dev)
    stacked = xp.concat(
        [
            xp.take(first, xp.asarray(done, device=dev), axis=-1),
            _nearest(VT, C, half_sq_c, xp),
        ],
        axis=-1,
    )
    return xp.take(stacked, inverse, axis=-1)


def batched_basin_means(X, labels, weights, C, xp):
    """(Weighted) mean of the rows of each basin, per restart; empty ones keep ``C``."""
    R, K, d = C.shape
    ks = xp.reshape(xp.arange(K, dtype=labels.dtype, device=_device(labels)), (K, 1))
    sums = xp.zeros_like(C)
    counts = xp.zeros((R, K, 1), dtype=C.dtype, device=_device(C))
    for sl in chunk_slices(X.shape[0], R * K * itemsize(C)):
        onehot = xp.astype(labels[:, None, sl] == ks, C.dtype)  # (R, K, b)
        if weights is not None:
            onehot = onehot * weights[sl]
        sums = sums + onehot @ X[sl, :]
        counts = counts + xp.sum(onehot, axis=-1, keepdims=True)
    filled = counts > 0
    safe = xp.where(filled, counts, xp.ones_like(counts))
    return xp.where(filled, sums / safe, C)


def polish(X, weights, C, beta, xp, *, step_size, n_steps, rounds, tol=0.0):
    """Fixed-point polish of every restart: centres move to their basin means.

    At most ``rounds`` rounds of "assign each row to its descent basin, move
    each centre to the mean of its basin", until every restart has
    converged: its basins no longer change, or its centres moved by at most
    ``tol`` (the sum of their squared shifts, KMeans's rule). The rounds
    assign with ``screen=True`` (:func:`basin_labels`); the labels returned
    are the exact basins of the returned centres. Returns the centres
    (R, K, d) and the basin labels (R, n) of those centres.
    """
    beta = _beta_array(beta, C, xp)
    kw = dict(step_size=step_size, n_steps=n_steps)
    labels = basin_labels(X, C, beta, xp, screen=True, **kw)
    for _ in range(rounds):
        new_C = batched_basin_means(X, labels, weights, C, xp)
        shift = xp.sum((new_C - C) ** 2, axis=(-2, -1))
        C = new_C
        new_labels = basin_labels(X, C, beta, xp, screen=True, **kw)
        moving = xp.any(new_labels != labels, axis=-1) & (shift > tol)
        labels = new_labels
        if not bool(xp.any(moving)):
            break
    return C, basin_labels(X, C, beta, xp, **kw)


def polish_tolerance(X, tol, xp):
    """KMeans's tolerance: ``tol`` times the mean per-feature variance of ``X``."""
    return float(tol) * float(xp.mean(xp.var(X, axis=0)))
