"""Training of :class:`skam.cluster.AMClustering`: ClAM's masked loss and its loop.

The model is ``T`` unrolled steps of LSE descent whose memories are the
cluster centres (:mod:`skam._training`). One minibatch of the self-supervised
loss (Saha et al. 2023, Eq. 5.23 of Krotov et al. 2025):

1. a random mask ``m`` hides some coordinates of each sample; they are
   replaced by a fill value (the feature mean, min or max);
2. ``T`` descent steps move the hidden coordinates only (the visible ones are
   clamped): ``v^(T) = f^m(x_tilde)``;
3. the loss is the squared error on the hidden coordinates,
   ``l_i = sum_j m_ij (v_ij^(T) - x_ij)^2 / d``, averaged over the batch with
   the sample weights.

Without masking (``n_masked = 0``) every coordinate moves and the loss is the
plain contraction loss ``||x - f(x)||^2 / d``. Gradients with respect to the
centres are exact (closed-form backprop of :func:`skam._training.unrolled_backward`).
Everything array-valued stays in the compute namespace ``xp``; random numbers
(batches, masks, re-seeding) are drawn on the host and moved to the device.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import gen_batches

from skam._backend import to_numpy
from skam._energy import half_sq_distances, prepare_memories
from skam._training import Adam, unrolled_backward, unrolled_forward

# A centre is "dead" (re-seeded) when it receives less than this fraction of
# its fair share ``n_epoch / K`` of softmax mass over an epoch.
_DEAD_FRACTION = 1e-3
# Points examined (at most) when drawing a new position for a dead centre.
_RESEED_POOL = 2048
# Training stops once the learning rate has decayed below this fraction of
# its initial value (ClAM stops at an absolute 1e-6, i.e. after ~200 epochs).
_STOP_FRACTION = 0.1
# Plateaus are detected on the moving average of this many epoch losses
# (ClAM: 10), which smooths out the noise of the random masks and batches.
_SMOOTHING_WINDOW = 10


def masked_loss_and_grad(
    X, V0, mask, centres, weights, xp, *, beta, step_size, n_steps, with_grad=True
):
    """Loss of one minibatch and its gradient with respect to the centres.

    Parameters
    ----------
    X : array of shape (b, d)
        The samples (targets).
    V0 : array of shape (b, d)
        The masked samples (hidden coordinates replaced by the fill value);
        ``X`` itself when ``mask`` is None.
    mask : bool array of shape (b, d) or (1, d), or None
        True on the hidden coordinates: they evolve and are scored. None
        means no masking (every coordinate evolves and is scored).
    centres : array of shape (K, d)
        The memories.
    weights : array of shape (b,) or None
        Sample weights (None = ones).
    xp : namespace
    beta, step_size : float
        Inverse temperature and step size.
    n_steps : int
        Number of unrolled steps ``T``.
    with_grad : bool, default=True
        Also run the backward pass.

    Returns
    -------
    sample_losses : array of shape (b,)
        ``l_i = sum_j m_ij (v_ij^(T) - x_ij)^2 / d`` (unweighted).
    grad : array of shape (K, d) or None
        Gradient of ``L = sum_i w_i l_i / b`` with respect to ``centres``.
    mass : array of shape (K,)
        Softmax weight each centre received at the last step, summed over
        the batch (to detect centres that attract nothing).
    """
    b, d = X.shape
    tape = unrolled_forward(
        V0,
        centres,
        xp,
        beta=beta,
        step_size=step_size,
        n_steps=n_steps,
        update_mask=mask,
    )
    diff = tape.states[-1] - X
    if mask is not None:
        diff = diff * xp.astype(mask, diff.dtype)
    sample_losses = xp.sum(diff * diff, axis=1) / d
    mass = xp.sum(tape.weights[-1], axis=0) if n_steps > 0 else None
    if not with_grad:
        return sample_losses, None, mass
    scale = 2.0 / (d * b)
    grad_out = diff * scale if weights is None else diff * (weights[:, None] * scale)
    grad, _, _ = unrolled_backward(tape, centres, grad_out, xp, beta=beta)
    return sample_losses, grad, mass


def draw_masks(rng, n_rows, n_features, n_masked, *, shared=False):
    """Host boolean masks with ``n_masked`` hidden coordinates per row.

    Coordinates are drawn without replacement. ``shared=True`` draws one row
    used by the whole batch (ClAM's every-``mask_cycle``-th epoch).
    """
    rows = 1 if shared else n_rows
    keys = rng.random_sample((rows, n_features))
    hidden = np.argsort(keys, axis=1)[:, :n_masked]
    mask = np.zeros((rows, n_features), dtype=bool)
    np.put_along_axis(mask, hidden, True, axis=1)
    return mask


@dataclass
class TrainingSetup:
    """Everything a restart needs besides its initial centres."""

    xp: object
    device: object
    beta: float
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


@dataclass
class RestartResult:
    """The final centres of one restart and how training went."""

    centres: object
    loss_curve: list = field(default_factory=list)
    n_epochs: int = 0
    n_reseeded: int = 0


def _to_device(host_array, setup):
    return setup.xp.asarray(host_array, device=setup.device)


def _masked_input(Xb, mask, fill, xp):
    if mask is None:
        return Xb
    return xp.where(mask, fill[None, :], Xb)


def train_restart(X, weights, centres, rng, setup):
    """Minibatch Adam on the masked loss from ``centres`` (one restart).

    Parameters
    ----------
    X : array of shape (n, d)
        Training data (compute namespace).
    weights : array of shape (n,) or None
        Sample weights normalised to mean one (None = unweighted).
    centres : array of shape (K, d)
        Initial centres.
    rng : numpy.random.RandomState
        Host generator for batches, masks and re-seeding.
    setup : TrainingSetup

    Returns
    -------
    result : RestartResult
        The centres at the end of training.

    Notes
    -----
    Schedule (ClAM's, made robust to the noise of the masks): from epoch 10
    on, the moving average of the last 10 epoch losses is tracked; after
    ``patience`` epochs in a row without a new best average (by a relative
    ``tol``) the learning rate is multiplied by ``lr_decay``. Training stops
    when the learning rate has decayed below a tenth of its initial value
    (early stopping), or after ``max_epochs`` epochs. The centres at the end
    are kept: ClAM keeps those of the epoch with the lowest loss, but an
    epoch's loss is measured while the centres move, and with the decayed
    learning rate the last centres are the most precise. Each epoch visits
    ``epoch_size`` samples (all of them, shuffled, when ``epoch_size >= n``;
    a fresh random subset otherwise).
    """
    xp = setup.xp
    n, d = X.shape
    K = centres.shape[0]
    opt = Adam([centres], xp, learning_rate=setup.learning_rate)
    schedule = _Plateau(setup)
    result = RestartResult(centres=centres)
    for epoch in range(setup.max_epochs):
        shared = setup.mask_cycle > 0 and (epoch + 1) % setup.mask_cycle == 0
        order = rng.permutation(n)[: setup.epoch_size]
        total = xp.zeros((), dtype=X.dtype, device=setup.device)
        mass = xp.zeros((K,), dtype=X.dtype, device=setup.device)
        for batch in gen_batches(order.shape[0], setup.batch_size):
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
            losses, grad, batch_mass = masked_loss_and_grad(
                Xb,
                V0,
                mask,
                opt.params[0],
                wb,
                xp,
                beta=setup.beta,
                step_size=setup.step_size,
                n_steps=setup.n_steps,
            )
            total = total + xp.sum(losses if wb is None else losses * wb)
            if batch_mass is not None:
                mass = mass + batch_mass
            opt.step([grad])
        epoch_loss = float(total) / order.shape[0]
        result.loss_curve.append(epoch_loss)
        result.n_epochs = epoch + 1
        dead = mass < _DEAD_FRACTION * order.shape[0] / K
        n_dead = int(xp.sum(xp.astype(dead, xp.int64)))
        if n_dead and epoch + 1 < setup.max_epochs:
            _reseed(opt, dead, X, rng, setup)
            result.n_reseeded += n_dead
        if setup.progress is not None:
            metrics = {"loss": epoch_loss, "lr": opt.learning_rate}
            if n_dead:
                metrics["reseeded"] = n_dead
            setup.progress.step(**metrics)
        opt.learning_rate = schedule.update(result.loss_curve, opt.learning_rate)
        if opt.learning_rate < _STOP_FRACTION * setup.learning_rate:
            break
    result.centres = opt.params[0]
    return result


class _Plateau:
    """ClAM's learning-rate schedule on the moving average of epoch losses."""

    def __init__(self, setup):
        self.setup = setup
        self.best = math.inf
        self.wait = 0

    def update(self, curve, learning_rate):
        """The learning rate for the next epoch."""
        if len(curve) < _SMOOTHING_WINDOW:
            return learning_rate
        average = sum(curve[-_SMOOTHING_WINDOW:]) / _SMOOTHING_WINDOW
        if average < self.best * (1.0 - self.setup.tol):
            self.wait = 0
        else:
            self.wait += 1
        self.best = min(self.best, average)
        if self.wait >= self.setup.patience:
            self.wait = 0
            return learning_rate * self.setup.lr_decay
        return learning_rate


def _reseed(opt, dead, X, rng, setup):
    """Move dead centres to points far from every centre (k-means++'s D^2 draw).

    Their Adam moments are reset, so they start afresh.
    """
    xp = setup.xp
    centres = opt.params[0]
    pool = rng.choice(X.shape[0], size=min(X.shape[0], _RESEED_POOL), replace=False)
    Xp = xp.take(X, _to_device(pool, setup), axis=0)
    memories = prepare_memories(centres, xp)
    nearest = xp.min(half_sq_distances(Xp, memories, xp), axis=1)
    prob = np.asarray(to_numpy(nearest), dtype=np.float64)
    dead_host = np.asarray(to_numpy(dead), dtype=bool)
    n_dead = int(dead_host.sum())
    if prob.sum() > 0:
        prob = prob / prob.sum()
        picks = rng.choice(prob.shape[0], size=n_dead, replace=True, p=prob)
    else:
        picks = rng.choice(prob.shape[0], size=n_dead, replace=True)
    source = np.arange(centres.shape[0])
    source[dead_host] = centres.shape[0] + np.arange(n_dead)
    stacked = xp.concat([centres, xp.take(Xp, _to_device(picks, setup), axis=0)])
    new = xp.take(stacked, _to_device(source, setup), axis=0)
    keep = _to_device(~dead_host, setup)[:, None]
    opt.params[0] = new
    opt.m[0] = xp.where(keep, opt.m[0], xp.zeros_like(opt.m[0]))
    opt.v[0] = xp.where(keep, opt.v[0], xp.zeros_like(opt.v[0]))
