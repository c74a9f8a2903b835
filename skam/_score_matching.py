"""Denoising score matching of a Dense AM (training of :class:`skam.DiffusionAM`).

The model is a Gaussian mixture of ``K`` learned memories ``Xi`` with one
shared, learned bandwidth ``h`` (variance ``q = h^2`` per coordinate). Noised
to level ``beta_t = 1 / (sigma^2 t)`` (noise variance ``1/beta_t``) it is
again such a mixture, of variance ``q + 1/beta_t``: exactly the Boltzmann
density of the LSE Dense AM on ``Xi`` at the *effective* inverse temperature

    b_t = 1 / (q + 1/beta_t) = beta_t * rho_t,   rho_t = 1 / (1 + beta_t q).

So the diffusion of the model is a Dense AM whose temperature saturates:
``b_t -> 1/q`` as ``t -> 0``. This is the capacity limit. With ``q = 0`` it
is the exact empirical score of stored memories, which always memorises;
with ``q > 0`` the model's energy at ``t -> 0`` is smooth at the scale ``h``.

Its score is ``s(x) = b_t (m(x) - x)`` with the attention read-out ``m(x) =
softmax(-b_t/2 |x - xi|^2) @ Xi``. The denoising score matching loss of a
clean point ``x0`` noised to ``x = x0 + z / sqrt(beta_t)``, with the usual
weight ``lambda(t) = sigma^2 t``, is::

    lambda(t) |s(x) + sqrt(beta_t) z|^2 = beta_t |D(x) - x0|^2,
    D(x) = x - rho_t (x - m(x)).

``D`` is Tweedie's posterior mean ``E[x0 | x]`` of the mixture, and it is
one LSE descent step of size ``rho_t`` at inverse temperature ``b_t``. The
gradient with respect to ``Xi`` is the closed-form backprop of
:func:`skam._training.unrolled_backward` through that step. The gradient
with respect to ``q`` adds the step size's and the temperature's parts. The
bandwidth is learned as ``h = |p|``, so that Adam moves it in data units like
the memories.

Noise levels are ``n_levels`` values geometric between ``beta_min`` and
``beta``; each minibatch is split evenly across them. The loss is divided by
``beta`` so that its scale does not depend on it. Random numbers (batches,
levels, noise) are drawn on the host and moved to the compute namespace.
"""

import math

import numpy as np
from array_api_compat import device as _device

from skam._training import Adam, unrolled_backward, unrolled_forward


def dsm_loss_and_grad(
    X0, noise, Xi, xp, *, beta_t, beta, bandwidth=0.0, with_grad=True
):
    """DSM loss of a batch and its gradients with respect to ``Xi`` and ``h``.

    Returns ``(loss, dL/dXi, dL/dh)``: ``loss = sum_i beta_t |D(x_i) -
    x0_i|^2 / beta`` (gradients None unless ``with_grad``).
    """
    q = float(bandwidth) ** 2
    rho = 1.0 / (1.0 + beta_t * q)
    b = beta_t * rho
    V0 = X0 + noise * (1.0 / math.sqrt(beta_t))
    tape = unrolled_forward(V0, Xi, xp, beta=b, step_size=rho, n_steps=1)
    resid = tape.states[-1] - X0
    scale = float(beta_t) / float(beta)
    loss = scale * float(xp.sum(resid * resid))
    if not with_grad:
        return loss, None, None
    g = (2.0 * scale) * resid
    grad, _, _ = unrolled_backward(tape, Xi, g, xp, beta=b)
    # dL/drho: D = v - rho (v - m); dL/db through the logits -b/2 |v - xi|^2
    P = tape.weights[0]
    pulled = P @ Xi
    d_rho = float(xp.sum(g * (pulled - V0)))
    u = rho * g
    A = P * (u @ Xi.T - xp.sum(u * pulled, axis=1, keepdims=True))
    # rows of A sum to 0, so the |v|^2 part of |v - xi|^2 drops out
    sq_xi = xp.sum(Xi * Xi, axis=1)
    d_b = -0.5 * float(xp.sum(xp.sum(A, axis=0) * sq_xi) - 2 * xp.sum((A @ Xi) * V0))
    d_q = d_rho * (-beta_t * rho * rho) + d_b * (-b * b)
    return loss, grad, 2.0 * float(bandwidth) * d_q


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
    bandwidth0=0.0,
    learn_bandwidth=True,
    overlap=False,
    progress=None,
):
    """Minibatch Adam on the DSM loss; returns (memories, bandwidth, epoch losses).

    ``X`` (n, D) and ``Xi0`` (K, D) live in ``xp``; ``rng`` is a NumPy
    ``RandomState``. The bandwidth stays at ``bandwidth0`` unless
    ``learn_bandwidth``; ``progress`` (a :class:`skam._progress.Progress`)
    reports every epoch.
    """
    n = X.shape[0]
    dev = _device(X)
    levels = np.geomspace(beta_min, beta, n_levels)
    p = xp.asarray([float(bandwidth0)], dtype=X.dtype, device=dev)
    opt = Adam([Xi0, p], xp, learning_rate=learning_rate)
    Xi = Xi0
    losses = []
    n_batches = -(-n // batch_size)
    total_steps, done = max_epochs * n_batches, 0
    for _ in range(max_epochs):
        order = rng.permutation(n)
        if n < batch_size:  # fill the batch with repeated rows, fresh noise
            order = np.resize(order, batch_size)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            # cosine decay of the step size to 0 over training
            opt.learning_rate = (
                learning_rate * 0.5 * (1 + math.cos(math.pi * done / total_steps))
            )
            done += 1
            level_of = rng.randint(n_levels, size=rows.shape[0])
            z = rng.standard_normal((rows.shape[0], X.shape[1]))
            grad = xp.zeros_like(Xi)
            grad_h = 0.0
            h = abs(float(p[0]))
            for j in np.unique(level_of):
                pick = rows[level_of == j]
                Xb = xp.take(X, xp.asarray(pick, device=dev), axis=0)
                zb = xp.asarray(z[level_of == j], dtype=X.dtype, device=dev)
                loss, g, gh = dsm_loss_and_grad(
                    Xb, zb, Xi, xp, beta_t=float(levels[j]), beta=beta, bandwidth=h
                )
                total += loss
                grad = grad + g * (1.0 / rows.shape[0])
                grad_h += gh / rows.shape[0]
            if not learn_bandwidth:
                grad_h = 0.0
            # h = |p|: dL/dp = sign(p) dL/dh
            grad_p = -grad_h if float(p[0]) < 0 else grad_h
            Xi, p = opt.step([grad, xp.asarray([grad_p], dtype=X.dtype, device=dev)])
            if overlap:
                floor = 0.5 * median_spacing(Xi)
                if abs(float(p[0])) < floor:
                    p = xp.asarray([floor], dtype=X.dtype, device=dev)
                    opt.params[1] = p
        losses.append(total / order.shape[0])
        if not math.isfinite(losses[-1]):
            _overflowed("loss", len(losses), X, beta_min, xp)
        if progress is not None:
            progress.step(loss=losses[-1])
    if not bool(xp.all(xp.isfinite(Xi))):
        _overflowed("memories", len(losses), X, beta_min, xp)
    if progress is not None:
        progress.close()
    return Xi, abs(float(p[0])), losses


def median_spacing(Xi):
    """Median distance from each memory to its nearest other memory (host)."""
    from skam._backend import to_numpy

    A = to_numpy(Xi).astype(np.float64)
    if A.shape[0] < 2:
        return 0.0
    sq = np.sum(A * A, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2 * A @ A.T
    np.fill_diagonal(d2, np.inf)
    return float(np.sqrt(max(np.median(np.min(d2, axis=1)), 0.0)))


def _overflowed(what, epoch, X, beta_min, xp):
    raise ValueError(
        f"The denoising score-matching {what} is not finite (epoch {epoch}): "
        f"X spans scales (largest |X| = {float(xp.max(xp.abs(X))):.3g}) whose "
        f"squared distances at beta_min={beta_min:.3g} overflow {X.dtype}. "
        "Rescale X (e.g. with StandardScaler) or pass a larger beta_min."
    )
