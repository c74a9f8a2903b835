"""Parametric label-neuron memories: initialisation and minibatch training.

The model is the prediction itself: ``T = max_iter`` steps of clamped
descent (LSE, or the mean-shift steps of any other separation) on the label neurons from their uninformative start, read out. Its
memories ``[features, label part]`` are learned by minimising a loss of the
read-out (cross-entropy for classes, squared error for targets; paper
eq. 5.18) with minibatch Adam. The gradients through the ``T`` unrolled steps
come from :func:`skam._training.unrolled_backward`; this module adds the
loss, the read-out and the parametrisation of the label parts:

* classes: the label part of a memory is ``label_scale * softmax(theta)``,
  a point of the scaled probability simplex, so that the label neurons, a
  convex combination of such points when ``step_size * (1 - lam) <= 1``, stay a
  probability vector (the read-out is then exact, no clipping);
* targets: the label part is ``label_scale * u`` with ``u`` free.

Memories are initialised by k-means (per class for classifiers) on the host:
like other random draws, the initialisation runs in NumPy and is moved to the
compute device.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import gen_batches

from skam._energy import log_softmax
from skam._progress import Progress, convergence_message
from skam._supervised_base import LabelCode, coordinate_weights, label_update_mask
from skam._training import Adam, unrolled_backward, unrolled_forward

# An epoch improves the monitored loss when it lowers it by more than this.
IMPROVEMENT_TOL = 1e-4
# n_memories="auto": this fraction of the rows (of each class for
# classifiers), at most AUTO_MAX_PER_CLASS memories per class (classifiers)
# or AUTO_MAX_MEMORIES in all (regressors). A training epoch costs
# O(n_rows * n_memories), so a fraction alone makes it grow as n_rows**2.
AUTO_FRACTION = 0.1
AUTO_MAX_PER_CLASS = 100
AUTO_MAX_MEMORIES = 1000
# k-means runs on a random subset of at most max(KMEANS_MIN_ROWS,
# KMEANS_ROWS_PER_CENTRE * n_clusters) rows: its cost grows as
# n_rows * n_clusters, and the centres only start the training.
KMEANS_ROWS_PER_CENTRE = 20
KMEANS_MIN_ROWS = 2000
# Floor of a probability inside the logarithm of the cross-entropy.
_TINY = 1e-12


# ------------------------------------------------------------------ losses
def cross_entropy(R, onehot, w, xp):
    """Weighted mean of ``-log p_y`` with ``p`` the clipped, renormalised
    label neurons ``R``; returns the loss and ``dloss/dR`` (the clip's
    derivative is 0 where a neuron is negative)."""
    positive = R > 0
    clipped = xp.where(positive, R, xp.zeros_like(R))
    total = xp.sum(clipped, axis=1, keepdims=True)
    total = xp.maximum(total, _TINY)
    r_true = xp.maximum(xp.sum(clipped * onehot, axis=1, keepdims=True), _TINY)
    per_sample = xp.log(total[:, 0]) - xp.log(r_true[:, 0])
    scale = w / xp.sum(w)
    loss = float(xp.sum(scale * per_sample))
    dR = (1.0 / total - onehot / r_true) * xp.astype(positive, R.dtype)
    return loss, dR * scale[:, None]


def squared_error(R, targets, w, xp):
    """Weighted mean over samples of ``1/2 * mean_j (R_j - t_j)^2``."""
    diff = R - targets
    scale = w / (xp.sum(w) * R.shape[1])
    loss = 0.5 * float(xp.sum(scale[:, None] * diff * diff))
    return loss, diff * scale[:, None]


# --------------------------------------------------------------- the model
@dataclass
class LabelNeuronModel:
    """The forward map of a label-neuron AM and its gradients.

    Parameters
    ----------
    code : LabelCode
        The label neurons' code, start and read-out (shared with ``predict``).
    n_features : int
    lam, beta, step_size : float
    n_steps : int
        Unrolled descent steps ``T``.
    xp : namespace
    dtype, device
        Of the compute arrays.
    """

    code: LabelCode
    n_features: int
    lam: float
    beta: float
    step_size: float
    n_steps: int
    xp: object
    dtype: object
    device: object
    #: The energy (None: LSE); non-LSE energies train through the graph engine.
    spec: object = None

    @property
    def kind(self):
        return self.code.kind

    @property
    def label_scale(self):
        return self.code.label_scale

    def __post_init__(self):
        xp, d, k = self.xp, self.n_features, self.code.n_labels
        self.coord_weights = coordinate_weights(
            d, k, self.lam, xp, self.dtype, self.device
        )
        self.update_mask = label_update_mask(d, k, xp, self.device)

    def label_part(self, L):
        xp = self.xp
        if self.kind == "regression":
            return self.label_scale * L
        return self.label_scale * xp.exp(log_softmax(L, xp))

    def patterns(self, F, L):
        """Memories ``[F, label part]``, shape (K, n_features + n_labels)."""
        return self.xp.concat([F, self.label_part(L)], axis=1)

    def forward(self, patterns, Xb):
        """Tape of the ``T`` steps; ``readout(tape)`` gives the label neurons."""
        return unrolled_forward(
            self.code.start_states(Xb, self.xp),
            patterns,
            self.xp,
            beta=self.beta,
            step_size=self.step_size,
            n_steps=self.n_steps,
            update_mask=self.update_mask,
            coord_weights=self.coord_weights,
            spec=self.spec,
            pull_from=self.n_features,  # features are clamped
        )

    def readout(self, tape):
        return self.code.readout(tape.states[-1])

    def loss(self, R, targets, w):
        if self.kind == "regression":
            return squared_error(R, targets, w, self.xp)
        return cross_entropy(R, targets, w, self.xp)

    def loss_and_gradients(self, F, L, Xb, targets, w):
        """Loss of a batch and its gradients for ``F`` and ``L``."""
        xp = self.xp
        patterns = self.patterns(F, L)
        tape = self.forward(patterns, Xb)
        loss, dR = self.loss(self.readout(tape), targets, w)
        frozen = xp.zeros(
            (Xb.shape[0], self.n_features), dtype=self.dtype, device=self.device
        )
        grad_out = xp.concat([frozen, dR / self.label_scale], axis=1)
        grad_patterns, _, _ = unrolled_backward(
            tape,
            patterns,
            grad_out,
            xp,
            beta=self.beta,
            coord_weights=self.coord_weights,
        )
        d = self.n_features
        gF = grad_patterns[:, :d]
        g_label = grad_patterns[:, d:] * self.label_scale
        if self.kind == "regression":
            return loss, gF, g_label
        q = self.label_part(L) / self.label_scale
        gL = q * (g_label - xp.sum(q * g_label, axis=1, keepdims=True))
        return loss, gF, gL

    def mean_loss(self, F, L, X, targets, w, batch_size):
        """Loss over a whole set, by batches (forward only)."""
        xp = self.xp
        patterns = self.patterns(F, L)
        total, n = 0.0, X.shape[0]
        w_sum = float(xp.sum(w))
        for sl in gen_batches(n, batch_size):
            R = self.readout(self.forward(patterns, X[sl, :]))
            loss, _ = self.loss(R, targets[sl, :], w[sl])
            total += loss * float(xp.sum(w[sl])) / w_sum
        return total


# ---------------------------------------------------------- initialisation
def kmeans_memories(X, n_clusters, sample_weight, rng):
    """Cluster centres of ``X`` (host arrays), or ``X`` itself when small.

    k-means runs on at most ``max(KMEANS_MIN_ROWS, KMEANS_ROWS_PER_CENTRE *
    n_clusters)`` rows, drawn at random without replacement when ``X`` has
    more.
    """
    n_clusters = max(1, min(int(n_clusters), _count_distinct(X)))
    if n_clusters == X.shape[0]:
        return X.copy()
    limit = max(KMEANS_MIN_ROWS, KMEANS_ROWS_PER_CENTRE * n_clusters)
    if X.shape[0] > limit:
        rows = np.sort(rng.choice(X.shape[0], size=limit, replace=False))
        X, sample_weight = X[rows], sample_weight[rows]
        n_clusters = min(n_clusters, _count_distinct(X))
    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(X, sample_weight=sample_weight)
    return km.cluster_centers_.astype(X.dtype, copy=False)


def _count_distinct(X):
    """Number of distinct rows of ``X`` (hashing the rows' bytes: no sort).

    ``X + 0.0`` turns ``-0.0`` into ``0.0``, so equal rows have equal bytes.
    """
    rows = np.ascontiguousarray(X + 0.0)
    return len({row.tobytes() for row in rows})


def memories_per_class(X, y_idx, w, n_classes, n_memories, rng):
    """Per-class k-means centres (host) and their class index."""
    feats, owners = [], []
    for c in range(n_classes):
        rows = (y_idx == c) & (w > 0)
        if not rows.any():
            continue
        count = _count(n_memories, int(rows.sum()), AUTO_MAX_PER_CLASS)
        centres = kmeans_memories(X[rows], count, w[rows], rng)
        feats.append(centres)
        owners.append(np.full(centres.shape[0], c))
    return np.concatenate(feats), np.concatenate(owners)


def regression_memories(X, Z, w, n_memories, rng):
    """k-means centres of the features (host) and the weighted mean of the
    standardised targets ``Z`` of the samples closest to each centre."""
    from sklearn.metrics import pairwise_distances_argmin

    rows = w > 0
    X, Z, w = X[rows], Z[rows], w[rows]
    F = kmeans_memories(X, _count(n_memories, X.shape[0], AUTO_MAX_MEMORIES), w, rng)
    owner = pairwise_distances_argmin(X, F)
    U = np.zeros((F.shape[0], Z.shape[1]))
    for c in range(F.shape[0]):
        members = owner == c
        if members.any():
            U[c] = np.average(Z[members], axis=0, weights=w[members])
    return F, U


def _count(n_memories, n_rows, auto_max):
    """Memories for ``n_rows`` samples: an int, a fraction of them, or
    ``"auto"`` (``AUTO_FRACTION`` of them, at most ``auto_max``)."""
    if isinstance(n_memories, str):  # "auto"
        return min(_count(AUTO_FRACTION, n_rows, auto_max), auto_max)
    if isinstance(n_memories, float) or isinstance(n_memories, np.floating):
        return max(1, int(round(n_memories * n_rows)))
    return int(n_memories)


def class_label_logits(owners, n_classes, confidence=0.99):
    """Logits whose softmax puts ``confidence`` on each memory's class."""
    rest = (1.0 - confidence) / max(n_classes - 1, 1)
    L = np.full((owners.size, n_classes), np.log(rest))
    L[np.arange(owners.size), owners] = np.log(confidence)
    if n_classes == 1:
        L[:] = 0.0
    return L


# ----------------------------------------------------------------- training
def _copy(a, xp):
    return xp.asarray(a, copy=True)


@dataclass
class TrainedMemories:
    """Trained feature parts ``F`` and label parts ``L`` of the memories, and how training went."""

    F: object
    L: object
    loss_curve: list
    validation_loss_curve: list
    n_epochs: int


def split_validation(n, fraction, stratify, rng):
    """Train and validation row indices (host); no validation when too few."""
    idx = np.arange(n)
    if not fraction or int(np.floor(fraction * n)) < 1 or n < 4:
        return idx, None
    if n - int(np.ceil(fraction * n)) < 1:
        raise ValueError(
            f"validation_fraction={fraction} leaves no training sample out of "
            f"{n}; use a smaller validation_fraction (or None)."
        )
    if stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        n_val = int(np.ceil(fraction * n))
        if counts.min() < 2 or n_val < counts.size or n - n_val < counts.size:
            stratify = None
    train, val = train_test_split(
        idx, test_size=fraction, stratify=stratify, random_state=rng
    )
    return np.sort(train), np.sort(val)


def train(
    model,
    F0,
    L0,
    X,
    targets,
    w,
    *,
    train_rows,
    val_rows,
    learning_rate,
    batch_size,
    max_epochs,
    n_iter_no_change,
    rng,
    verbose,
    name,
):
    """Minibatch Adam with early stopping; returns the best parameters.

    ``X``, ``targets`` (one-hot or standardised, (n, n_labels)) and ``w``
    live in the compute namespace; ``train_rows``/``val_rows`` are host
    index arrays. The monitored loss is the validation loss when there is a
    validation set, else the training loss of the epoch; the parameters with
    the lowest monitored loss are returned, and training stops after
    ``n_iter_no_change`` epochs without an improvement of ``IMPROVEMENT_TOL``.
    """
    xp, dev = model.xp, model.device

    def rows(index):
        return xp.asarray(index, device=dev)

    Xt, Tt, wt = (xp.take(a, rows(train_rows), axis=0) for a in (X, targets, w))
    if val_rows is not None:
        Xv, Tv, wv = (xp.take(a, rows(val_rows), axis=0) for a in (X, targets, w))
    # in place: ``best`` below keeps copies
    opt = Adam([F0, L0], xp, learning_rate=learning_rate, in_place=True)
    best = (float("inf"), F0, L0)
    best_epoch = 0
    losses, val_losses, stale, epoch = [], [], 0, 0
    n = Xt.shape[0]
    which = "validation" if val_rows is not None else "training"
    progress = Progress(name, max_epochs, verbose)
    for epoch in range(1, max_epochs + 1):
        order = rows(rng.permutation(n))
        epoch_loss = 0.0
        for sl in gen_batches(n, batch_size):
            batch = order[sl]
            Xb, Tb, wb = (xp.take(a, batch, axis=0) for a in (Xt, Tt, wt))
            F, L = opt.params
            loss, gF, gL = model.loss_and_gradients(F, L, Xb, Tb, wb)
            epoch_loss += loss * float(xp.sum(wb))
            opt.step([gF, gL])
        losses.append(epoch_loss / float(xp.sum(wt)))
        F, L = opt.params
        finite = bool(xp.all(xp.isfinite(F))) and bool(xp.all(xp.isfinite(L)))
        if not (finite and math.isfinite(losses[-1])):
            if best[0] == float("inf"):
                raise ValueError(
                    f"{name}: training diverged (non-finite loss in epoch "
                    f"{epoch}); lower learning_rate={learning_rate:g}."
                )
            warnings.warn(
                f"{name}: training diverged in epoch {epoch} (non-finite loss); "
                "the best memories so far are kept. Lower learning_rate.",
                ConvergenceWarning,
                stacklevel=3,
            )
            break
        monitored = losses[-1]
        if val_rows is not None:
            monitored = model.mean_loss(F, L, Xv, Tv, wv, max(batch_size, 1024))
            val_losses.append(monitored)
        if monitored < best[0] - IMPROVEMENT_TOL:
            best, stale, best_epoch = (monitored, _copy(F, xp), _copy(L, xp)), 0, epoch
        else:
            stale += 1
        metrics = {"loss": losses[-1]}
        if val_rows is not None:
            metrics["val_loss"] = monitored
        progress.step(**metrics)
        if stale >= n_iter_no_change:
            progress.close(
                f"stopped early at epoch {epoch}: no {which}-loss improvement "
                f"for {n_iter_no_change} epochs; kept epoch {best_epoch} "
                f"({which} loss {best[0]:.4g})"
            )
            break
    else:
        progress.close(
            f"max_epochs={max_epochs} reached; kept epoch {best_epoch} "
            f"({which} loss {best[0]:.4g})"
        )
        warnings.warn(
            convergence_message(
                name, max_epochs, n_iter_no_change, which, best_epoch, best[0],
                monitored,
            ),
            ConvergenceWarning,
            stacklevel=3,
        )  # fmt: skip
    if best[0] == float("inf"):  # no finite loss at all: keep the last state
        best = (losses[-1], *opt.params)
    return TrainedMemories(
        F=best[1],
        L=best[2],
        loss_curve=losses,
        validation_loss_curve=val_losses if val_rows is not None else None,
        n_epochs=epoch,
    )
