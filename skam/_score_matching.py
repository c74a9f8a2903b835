"""Denoising score matching of Dense AM memories (training of :class:`skam.DiffusionAM`).

The model is the LSE energy of ``K`` learned memories ``Xi``. At noise level
``beta_t = 1 / (sigma^2 t)`` its score is ``s(x) = -beta_t grad E_beta_t(x)
= beta_t (m(x) - x)`` with the attention read-out ``m(x) = softmax(-beta_t/2
|x - xi|^2) @ Xi``, i.e. one LSE descent step of size 1. The denoising score
matching loss of a clean point ``x0`` noised to ``x = x0 + z / sqrt(beta_t)``,
with the usual weight ``lambda(t) = sigma^2 t``::

    lambda(t) |s(x) + sqrt(beta_t) z|^2 = beta_t |m(x) - x0|^2

is the squared error of one attention step that denoises ``x`` (the same
identity turns the tutorial's ``(score * std + z)^2`` into this form). Its
gradient with respect to ``Xi`` is the closed-form backprop of
:func:`skam._training.unrolled_backward` through that single step. Noise
levels are ``n_levels`` values geometric between ``beta_min`` and ``beta``;
each minibatch is split evenly across them. The loss is divided by ``beta``
so that its scale does not depend on it.

Random numbers (batches, levels, noise) are drawn on the host and moved to
the compute namespace.
"""

import math

import numpy as np
from sklearn.utils import gen_batches

from skam._training import Adam, unrolled_backward, unrolled_forward


def dsm_loss_and_grad(X0, noise, Xi, xp, *, beta_t, beta, with_grad=True):
    """Loss ``sum_i beta_t |m(x_i) - x0_i|^2 / beta`` of a batch and ``dL/dXi``."""
    V0 = X0 + noise * (1.0 / math.sqrt(beta_t))
    tape = unrolled_forward(V0, Xi, xp, beta=beta_t, step_size=1.0, n_steps=1)
    resid = tape.states[-1] - X0
    scale = float(beta_t) / float(beta)
    loss = scale * float(xp.sum(resid * resid))
    if not with_grad:
        return loss, None
    grad, _, _ = unrolled_backward(tape, Xi, (2.0 * scale) * resid, xp, beta=beta_t)
    return loss, grad


def fit_memories(
    X,
    Xi0,
    xp,
    *,
    beta,
    beta_min,
    n_levels,
    learning_rate,
    max_epochs,
    batch_size,
    rng,
    progress=None,
):
    """Minibatch Adam on the DSM loss; returns (memories, epoch losses).

    ``X`` (n, D) and ``Xi0`` (K, D) live in ``xp``; ``rng`` is a NumPy
    ``RandomState``; ``progress`` (a :class:`skam._progress.Progress`)
    reports every epoch.
    """
    n = X.shape[0]
    dev = _device(X)
    levels = np.geomspace(beta_min, beta, n_levels)
    opt = Adam([Xi0], xp, learning_rate=learning_rate)
    Xi = Xi0
    losses = []
    for _ in range(max_epochs):
        order = rng.permutation(n)
        total = 0.0
        for sl in gen_batches(n, batch_size):
            rows = order[sl]
            level_of = rng.randint(n_levels, size=rows.shape[0])
            z = rng.standard_normal((rows.shape[0], X.shape[1]))
            grad = xp.zeros_like(Xi)
            for j in np.unique(level_of):
                pick = rows[level_of == j]
                Xb = xp.take(X, xp.asarray(pick, device=dev), axis=0)
                zb = xp.asarray(z[level_of == j], dtype=X.dtype, device=dev)
                loss, g = dsm_loss_and_grad(
                    Xb, zb, Xi, xp, beta_t=float(levels[j]), beta=beta
                )
                total += loss
                grad = grad + g * (1.0 / rows.shape[0])
            (Xi,) = opt.step([grad])
        losses.append(total / n)
        if progress is not None:
            progress.step(loss=losses[-1])
    if progress is not None:
        progress.close()
    return Xi, losses


def _device(array):
    from array_api_compat import device

    return device(array)
