"""The Energy Transformer (Hoover et al., 2023) as a scikit-learn image imputer.

Images are cut into patches; each patch is a token. The tokens descend one
energy, an attention energy plus a Hopfield (memory) energy of their
layer-normed activations, and the descent completes the masked patches. The
terms live in :mod:`skam._graph` (``attention``, ``token_memory``,
``tokenwise`` over the engine's layer norm, ``token_embedding``); descent
and closed-form backprop are the energy-graph engine's
(:mod:`skam._graph.et_unrolled` builds the graph).
"""

import json
import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from skam._backend import to_numpy
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._graph import et_unrolled
from skam._graph.et_unrolled import ETConfig
from skam._graph.token_embedding import Patcher
from skam._progress import Progress, convergence_message
from skam._training import Adam
from skam._validation import (
    BACKEND_CONSTRAINT,
    backend_for,
    validate_clamp_mask,
    validate_fit_input,
    validate_X,
)

__all__ = ["EnergyTransformer"]

# The arrays of a model, in the order Adam sees them.
_PARAM_NAMES = (
    "W_enc",
    "b_enc",
    "mask_token",
    "cls_token",
    "pos",
    "Wq",
    "Wk",
    "Xi",
    "gamma",
    "delta",
    "W_dec",
    "b_dec",
)

# The published checkpoint's array names -> skam's (see ``load_published``).
_PUBLISHED_KEYS = (
    "Wq",
    "Wk",
    "Xi",
    "Wenc",
    "Benc",
    "Wdec",
    "Bdec",
    "POS_embed",
    "CLS_token",
    "MASK_token",
    "LNORM_gamma",
    "LNORM_bias",
)

# The weight matrices that ``weight_decay`` shrinks (not biases, codes, norms).
_DECAYED = frozenset({"W_enc", "Wq", "Wk", "Xi", "W_dec"})

_FORMAT = "skam.EnergyTransformer/1"


def _shape_constraint(value):
    return value is None or (
        isinstance(value, tuple | list)
        and all(isinstance(v, Integral) and not isinstance(v, bool) for v in value)
    )


@dask_dispatch()
@fill_doc
class EnergyTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Energy Transformer: complete occluded images by energy descent on patches.

    Each image (a row of ``X``) is cut into patches of ``patch_shape`` pixels;
    each patch is linearly embedded as a token of ``token_dim`` numbers, a
    learned position code is added, and patches that are missing become a
    learned MASK token. The tokens ``x`` then descend the energy of their
    layer-normed activations ``g = LN(x)``::

        E(g) = -(1/beta) sum_h sum_C log sum_{B != C} exp(beta K_hB . Q_hC)
               - 1/2 sum_B sum_mu relu(xi_mu . g_B)^2
        x <- x - step_size * m * dE/dg

    for ``n_steps`` steps (``m`` is zero on the visible tokens when
    ``clamp_visible``), and the layer-normed tokens are decoded back to
    pixels. The gradient of the first term is a multi-head attention and that
    of the second a ReLU MLP with tied weights: one step is a transformer
    block, and the energy never increases along the descent for small enough
    steps. ``fit`` trains every weight by the ET recipe: mask random patches,
    descend ``n_steps`` steps, and minimise the mean squared error on the
    masked pixels, by backpropagation through the steps (closed form, no
    autodiff framework) and Adam.

    ``transform`` is an imputer: missing pixels (NaN, or False in
    ``clamp_mask``) are filled, observed pixels are returned unchanged. A
    patch with any missing pixel is masked as a whole.

    Read more in the :ref:`User Guide <energy_transformer>`.

    Parameters
    ----------
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(channels, height, width)``; a row of ``X``
        is the image flattened in C order. None reads each row as a
        one-pixel-high image ``(1, n_features)``.
    patch_shape : tuple of int, default=None
        ``(patch_height, patch_width)``, dividing the image. None uses
        one-pixel patches.
    token_dim : int, default=64
        Width ``D`` of a token.
    n_heads : int, default=4
        Number of attention heads ``H``.
    head_dim : int, default=16
        Dimension ``Y`` of the queries and keys of each head.
    n_memories : int, default=256
        Number of memories ``M`` of the Hopfield energy (the hidden width of
        the tied MLP).
    beta : float, default=None
        Inverse temperature of the attention; None uses ``1/sqrt(head_dim)``.
    step_size : float, default=0.1
        Step of the descent on the tokens.
    n_steps : int, default=12
        Number of descent steps, in training and in ``transform``.
    self_attention : bool, default=False
        Whether a token attends to itself (the published ImageNet model does).
    clamp_visible : bool, default=True
        Keep the visible tokens fixed during the descent (only masked tokens
        and the CLS token move). False lets every token move, as the published
        model was trained.
    cls_token : bool, default=False
        Prepend a learned CLS token to the patch tokens of every image. It is
        never clamped and never decoded: a free token that every patch attends
        to and that can gather the whole image (the published model has one).
    learning_rate : float, default=1e-3
        Peak Adam learning rate.
    learning_rate_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"`` warms the learning rate up linearly over the first 5 %
        of the training and then decays it along a half cosine to zero at
        its end; the end is ``max_epochs`` or ``max_time``, whichever comes
        first (the progress is the larger of the two fractions, so a time
        budget gets a full schedule). ``"constant"`` keeps it fixed.
    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW): after every Adam step the weight
        matrices ``W_enc``, ``Wq``, ``Wk``, ``Xi`` and ``W_dec`` shrink by the
        factor ``1 - lr * weight_decay``, ``lr`` being the scheduled learning
        rate of that step. It regularises models that are large for their
        training set; the losses reported are the masked-pixel errors alone.
    batch_size : int, default=64
        Images per minibatch.
    max_epochs : int, default=20
        Passes over the training images.
    mask_fraction : float, default=0.5
        Fraction of the patches masked in each training image (at least one).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the images (with fixed masks),
        keep the weights with the lowest validation loss and stop after
        ``n_iter_no_change`` epochs without an improvement of ``tol``.
    validation_fraction : float, default=0.1
        Share of the images held out when ``early_stopping``.
    n_iter_no_change : int, default=5
        Patience of the early stopping, in epochs.
    tol : float, default=1e-4
        Smallest relative improvement of the validation loss that counts.
    max_time : float, default=None
        Stop training after this many seconds of wall-clock time (checked
        after every minibatch); None trains for ``max_epochs``.
    %(verbose)s
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    weights_ : dict of str to ndarray
        The learned arrays: ``W_enc`` (Z, D), ``b_enc`` (D,), ``mask_token``
        (D,), ``pos`` (N, D), ``Wq`` and ``Wk`` (H, Y, D), ``Xi`` (M, D),
        ``gamma`` (), ``delta`` (D,), ``W_dec`` (D, Z), ``b_dec`` (Z,), and
        ``cls_token`` (D,) for a model with a CLS token (N then counts it).
    image_shape_ : tuple of int
        ``(channels, height, width)``.
    patch_shape_ : tuple of int
        ``(patch_height, patch_width)``.
    n_tokens_ : int
        Tokens per image (patches, plus one for a CLS token).
    beta_ : float
        The attention's inverse temperature.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Mean training loss of every epoch.
    validation_scores_ : list of float or None
        Validation loss of every epoch (with ``early_stopping``).
    best_loss_ : float
        Lowest validation loss (``early_stopping``) or last training loss.
    n_features_in_ : int
        Number of pixels per image seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DenseAM : Clamped descent on the pixels of stored images.
    sklearn.impute.KNNImputer : Imputation by the nearest complete images.

    Notes
    -----
    The energy excludes the layer norm's own Legendre term (the tutorial's
    rule: the descent has no leak ``-x``); because the layer norm's Jacobian
    is positive semi-definite, ``dE/dt <= 0`` in continuous time, and Euler
    steps of ``step_size <= 0.1`` do not increase it on trained models.
    Trained for ``n_steps`` steps, the model completes images best at that
    depth: the energy keeps falling beyond it but the completion need not
    improve.

    References
    ----------
    .. [1] B. Hoover, Y. Liang, B. Pham, R. Panda, H. Strobelt, D. H. Chau,
       M. J. Zaki, D. Krotov, "Energy Transformer", NeurIPS 2023.
    .. [2] D. Krotov, B. Hoover, P. Ram, B. Pham, "Modern Methods in
       Associative Memory", arXiv:2507.06211, 2025, section 3.5.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skam import EnergyTransformer
    >>> X = load_digits().data / 16
    >>> et = EnergyTransformer(image_shape=(8, 8), patch_shape=(2, 2),
    ...                        token_dim=16, n_memories=32, max_epochs=2,
    ...                        random_state=0).fit(X)
    >>> occluded = X[:3].copy()
    >>> occluded[:, 32:] = np.nan                  # the bottom half is missing
    >>> completed = et.transform(occluded)
    >>> completed.shape, bool(np.isfinite(completed).all())
    ((3, 64), True)
    >>> bool(np.allclose(completed[:, :32], X[:3, :32]))   # visible pixels kept
    True
    """

    _parameter_constraints: dict = {
        "image_shape": [None, tuple, list],
        "patch_shape": [None, tuple, list],
        "token_dim": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "head_dim": [Interval(Integral, 1, None, closed="left")],
        "n_memories": [Interval(Integral, 1, None, closed="left")],
        "beta": [None, Interval(Real, 0, None, closed="neither")],
        "step_size": [Interval(Real, 0, None, closed="neither")],
        "n_steps": [Interval(Integral, 0, None, closed="left")],
        "self_attention": ["boolean"],
        "clamp_visible": ["boolean"],
        "cls_token": ["boolean"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_schedule": [StrOptions({"cosine", "constant"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "mask_fraction": [Interval(Real, 0, 1, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_time": [None, Interval(Real, 0, None, closed="neither")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        image_shape=None,
        patch_shape=None,
        token_dim=64,
        n_heads=4,
        head_dim=16,
        n_memories=256,
        beta=None,
        step_size=0.1,
        n_steps=12,
        self_attention=False,
        clamp_visible=True,
        cls_token=False,
        learning_rate=1e-3,
        learning_rate_schedule="cosine",
        weight_decay=0.0,
        batch_size=64,
        max_epochs=20,
        mask_fraction=0.5,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        max_time=None,
        verbose=0,
        random_state=None,
        backend="numpy",
    ):
        self.image_shape = image_shape
        self.patch_shape = patch_shape
        self.token_dim = token_dim
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.n_memories = n_memories
        self.beta = beta
        self.step_size = step_size
        self.n_steps = n_steps
        self.self_attention = self_attention
        self.clamp_visible = clamp_visible
        self.cls_token = cls_token
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.mask_fraction = mask_fraction
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.max_time = max_time
        self.verbose = verbose
        self.random_state = random_state
        self.backend = backend

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the weights on randomly masked patches of the images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images, one per row; NaN marks a missing pixel (its patch is
            always masked and it is left out of the loss).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The trained model.
        """
        X, backend = validate_fit_input(self, X, ensure_all_finite="allow-nan")
        xp = backend.xp
        Xc = backend.to_compute(X)
        self.image_shape_, self.patch_shape_ = _resolve_shapes(
            self.image_shape, self.patch_shape, X.shape[1]
        )
        patcher = Patcher(self.image_shape_, self.patch_shape_)
        self.n_tokens_ = patcher.n_patches + int(self.cls_token)
        self.beta_ = (
            1.0 / math.sqrt(self.head_dim) if self.beta is None else float(self.beta)
        )
        rng = check_random_state(self.random_state)
        known = xp.logical_not(xp.isnan(Xc))
        patches, observed = _patches_and_observed(Xc, known, patcher, xp)
        params = self._init_params(patcher, patches, observed, rng, xp, Xc.dtype)
        # The minibatch GEMMs are small ((batch * n_tokens) x token_dim): on the
        # shared 2-core machine one of them took 24 ms with two OpenBLAS
        # threads and 0.08 ms with one, so training runs single-threaded, as
        # scikit-learn's KMeans does.
        with threadpool_limits(limits=1 if backend.is_numpy else None, user_api="blas"):
            params = self._train(params, patches, observed, patcher, rng, xp)
        self.weights_ = {k: backend.to_output(v) for k, v in params.items()}
        return self

    def _init_params(self, patcher, patches, observed, rng, xp, dtype):
        D, Z, N = self.token_dim, patcher.patch_size, self.n_tokens_
        H, Y, M = self.n_heads, self.head_dim, self.n_memories
        dev = _device(patches)
        count = float(xp.sum(xp.astype(observed, dtype)))
        mean = float(xp.sum(patches)) / count if count > 0 else 0.0

        def normal(shape, scale):
            return xp.asarray(
                rng.normal(0.0, scale, size=shape), dtype=dtype, device=dev
            )

        params = {
            "W_enc": normal((Z, D), 1.0 / math.sqrt(Z)),
            "b_enc": xp.zeros((D,), dtype=dtype, device=dev),
            "mask_token": normal((D,), 1.0),
            "pos": normal((N, D), 1.0),
            "Wq": normal((H, Y, D), 1.0 / math.sqrt(D)),
            "Wk": normal((H, Y, D), 1.0 / math.sqrt(D)),
            "Xi": normal((M, D), 1.0 / math.sqrt(D)),
            "gamma": xp.asarray(1.0, dtype=dtype, device=dev),
            "delta": xp.zeros((D,), dtype=dtype, device=dev),
            "W_dec": normal((D, Z), 0.01 / math.sqrt(D)),
            "b_dec": xp.full((Z,), mean, dtype=dtype, device=dev),
        }
        if self.cls_token:
            params["cls_token"] = normal((D,), 1.0)
        return params

    def _config(self, n_tokens=None):
        return ETConfig(
            n_tokens=self.n_tokens_ if n_tokens is None else n_tokens,
            dim=int(self.weights_["Wq"].shape[2])
            if hasattr(self, "weights_")
            else self.token_dim,
            beta=self.beta_,
            self_attention=bool(self.self_attention),
            step_size=float(self.step_size),
            n_steps=int(self.n_steps),
        )

    def _n_masked(self, n_patches):
        return min(n_patches, max(1, round(self.mask_fraction * n_patches)))

    def _draw_masks(self, missing_tokens, n_patches, rng, xp):
        """Random token masks (n, n_patches), plus every token with a hole."""
        n = missing_tokens.shape[0]
        k = self._n_masked(n_patches)
        order = np.argsort(rng.random_sample((n, n_patches)), axis=1)[:, :k]
        mask = np.zeros((n, n_patches), dtype=bool)
        np.put_along_axis(mask, order, True, axis=1)
        mask = xp.asarray(mask, device=_device(missing_tokens))
        return xp.logical_or(mask, missing_tokens)

    def _loss_and_grads(
        self, params, config, patches, observed, token_mask, xp, *, need_grads=True
    ):
        graph = et_unrolled.build_graph(params, config, memo=need_grads)
        result = et_unrolled.forward(
            params,
            config,
            patches,
            token_mask,
            xp,
            clamp_visible=self.clamp_visible,
            record=need_grads,
            graph=graph,
        )
        x_T = result.states[et_unrolled.LAYER]
        out = et_unrolled.decode(params, config, x_T, patches.shape[1], xp, graph)
        weight = xp.astype(
            xp.logical_and(observed, token_mask[:, :, None]), patches.dtype
        )
        count = float(xp.sum(weight))
        if count == 0:
            return None, None
        resid = (out - patches) * weight
        loss = float(xp.sum(resid * resid)) / count
        if not need_grads:
            return loss, None
        grads = et_unrolled.backward(
            params,
            config,
            patches,
            token_mask,
            result,
            (2.0 / count) * resid,
            xp,
            graph,
        )
        return loss, grads

    def _train(self, params, patches, observed, patcher, rng, xp):
        n = patches.shape[0]
        D = self.token_dim
        config = ETConfig(
            n_tokens=self.n_tokens_,
            dim=D,
            beta=self.beta_,
            self_attention=bool(self.self_attention),
            step_size=float(self.step_size),
            n_steps=int(self.n_steps),
        )
        missing = xp.logical_not(xp.all(observed, axis=2))
        idx = np.arange(n)
        val_idx = None
        if self.early_stopping and n >= 2:
            perm = rng.permutation(n)
            n_val = min(n - 1, max(1, round(self.validation_fraction * n)))
            val_idx, idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            val_take = xp.asarray(val_idx, device=_device(patches))
            val = (
                xp.take(patches, val_take, axis=0),
                xp.take(observed, val_take, axis=0),
            )
            val_mask = self._draw_masks(
                xp.take(missing, val_take, axis=0), patcher.n_patches, rng, xp
            )
        names = [k for k in _PARAM_NAMES if k in params]
        adam = Adam([params[k] for k in names], xp, learning_rate=self.learning_rate)
        batch = min(self.batch_size, len(idx))
        self.loss_curve_, self.validation_scores_ = (
            [],
            [] if val_idx is not None else None,
        )
        best, best_params, stall, best_epoch = np.inf, params, 0, 0
        start, cpu_start = self._clock(), time.process_time()
        out_of_time = False
        self.n_iter_ = 0
        n_updates = self.max_epochs * math.ceil(len(idx) / batch)
        done = 0
        report = Progress(
            type(self).__name__,
            self.max_epochs,
            self.verbose,
            upper_bound=bool(self.early_stopping) or self.max_time is not None,
            clock=self._clock,
        )
        for epoch in range(self.max_epochs):
            order = rng.permutation(idx)
            total, seen = 0.0, 0
            for lo in range(0, len(order), batch):
                progress = done / n_updates
                if self.max_time is not None:
                    progress = max(progress, (self._clock() - start) / self.max_time)
                adam.learning_rate = self.learning_rate * self._schedule(progress)
                done += 1
                take = xp.asarray(order[lo : lo + batch], device=_device(patches))
                P = xp.take(patches, take, axis=0)
                obs = xp.take(observed, take, axis=0)
                mask = self._draw_masks(
                    xp.take(missing, take, axis=0), patcher.n_patches, rng, xp
                )
                loss, grads = self._loss_and_grads(params, config, P, obs, mask, xp)
                if loss is None:
                    continue
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        "The training loss became non-finite; lower learning_rate "
                        "or step_size."
                    )
                new = adam.step([grads[k] for k in names])
                if self.weight_decay > 0:
                    shrink = 1.0 - adam.learning_rate * self.weight_decay
                    new = [
                        shrink * p if k in _DECAYED else p
                        for k, p in zip(names, new, strict=True)
                    ]
                    adam.params = new
                params = dict(zip(names, new, strict=True))
                total += loss * P.shape[0]
                seen += P.shape[0]
                if self.max_time is not None and (
                    self._clock() - start > self.max_time
                ):
                    out_of_time = True
                    break
            self.n_iter_ = epoch + 1
            train_loss = total / max(seen, 1)
            self.loss_curve_.append(train_loss)
            metrics = {"loss": train_loss}
            if val_idx is not None:
                val_loss, _ = self._loss_and_grads(
                    params, config, *val, val_mask, xp, need_grads=False
                )
                val_loss = np.inf if val_loss is None else val_loss
                self.validation_scores_.append(val_loss)
                metrics["val_loss"] = val_loss
                stall = 0 if val_loss < best * (1 - self.tol) else stall + 1
                if val_loss < best:
                    best, best_params, best_epoch = val_loss, params, epoch + 1
            else:
                best, best_params, best_epoch = train_loss, params, epoch + 1
            metrics["lr"] = adam.learning_rate
            metrics["cpu_s"] = round(time.process_time() - cpu_start, 1)
            report.step(**metrics)
            if out_of_time or (val_idx is not None and stall >= self.n_iter_no_change):
                break
        self.best_loss_ = float(best)
        self._report_end(report, out_of_time, stall, best_epoch)
        return best_params

    def _report_end(self, progress, out_of_time, stall, best_epoch):
        """Last progress line and, when the budget ran out, a ConvergenceWarning."""
        which = "validation" if self.validation_scores_ is not None else "training"
        kept = f"kept epoch {best_epoch} ({which} loss {self.best_loss_:.4g})"
        if out_of_time:
            progress.close(
                f"max_time={self.max_time:g} s reached in epoch {self.n_iter_}; {kept}"
            )
            warnings.warn(
                f"{type(self).__name__}: training stopped by max_time="
                f"{self.max_time:g} s in epoch {self.n_iter_} of max_epochs="
                f"{self.max_epochs} (that epoch only partly trained); the weights "
                f"of epoch {best_epoch} are kept ({which} loss "
                f"{self.best_loss_:.4g}). Increase max_time to train longer.",
                ConvergenceWarning,
                stacklevel=4,
            )
        elif which == "training":
            progress.close(f"max_epochs={self.max_epochs} reached; {kept}")
        elif stall >= self.n_iter_no_change:
            progress.close(
                f"stopped early at epoch {self.n_iter_}: no validation-loss "
                f"improvement for {self.n_iter_no_change} epochs; {kept}"
            )
        else:
            progress.close(f"max_epochs={self.max_epochs} reached; {kept}")
            warnings.warn(
                convergence_message(
                    type(self).__name__,
                    self.max_epochs,
                    self.n_iter_no_change,
                    which,
                    best_epoch,
                    self.best_loss_,
                    self.validation_scores_[-1],
                    kept="weights",
                ),
                ConvergenceWarning,
                stacklevel=4,
            )

    # -------------------------------------------------------------- helpers
    #: The clock of ``max_time`` (a subclass may count CPU time instead).
    _clock = staticmethod(time.perf_counter)

    def _schedule(self, progress):
        """Learning-rate factor at ``progress`` in [0, 1] of the training."""
        if self.learning_rate_schedule == "constant":
            return 1.0
        warmup = 0.05
        if progress < warmup:
            return (progress + 1e-3) / (warmup + 1e-3)
        p = min(1.0, (progress - warmup) / (1.0 - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * p))

    def _compute_params(self, backend, dtype):
        return {k: backend.to_compute(v, dtype) for k, v in self.weights_.items()}

    def _prepare(self, X, clamp_mask, method):
        """Validated input, its backend, patches, observed pixels and token mask."""
        check_is_fitted(self)
        X = validate_X(
            self, X, reset=False, method=method, ensure_all_finite="allow-nan"
        )
        backend = backend_for(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        patcher = Patcher(self.image_shape_, self.patch_shape_)
        known = xp.logical_not(xp.isnan(Xc))
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        if mask is not None:
            known = xp.logical_and(known, mask)
        patches, observed = _patches_and_observed(Xc, known, patcher, xp)
        token_mask = xp.logical_not(xp.all(observed, axis=2))
        return Bunch(
            X=Xc,
            known=known,
            backend=backend,
            xp=xp,
            patcher=patcher,
            patches=patches,
            token_mask=token_mask,
        )

    def _run(self, data, n_steps, *, trace=False, record=False):
        """The engine's descent of every image (chunked by ``working_memory``)."""
        params = self._compute_params(data.backend, data.X.dtype)
        config = self._config()
        result = et_unrolled.forward(
            params,
            config,
            data.patches,
            data.token_mask,
            data.xp,
            clamp_visible=self.clamp_visible,
            n_steps=n_steps,
            record=record,
            trace=trace,
        )
        return params, config, result

    def _complete(self, data, params, config, x):
        xp = data.xp
        decoded = et_unrolled.decode(params, config, x, data.patcher.n_patches, xp)
        image = data.patcher.unpatchify(decoded, xp)
        return xp.where(data.known, data.X, image)

    # ----------------------------------------------------------- public API
    def transform(self, X, clamp_mask=None):
        """Complete the missing pixels of each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images; NaN marks a missing pixel.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a known (clamped) pixel; False pixels are treated as
            missing whatever their value.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            The images with their missing pixels filled in (observed pixels
            unchanged), in the dtype of ``X``.
        """
        data = self._prepare(X, clamp_mask, "transform")
        xp = data.xp
        if bool(xp.all(data.known)):
            return data.backend.to_output(data.X)
        params, config, result = self._run(data, self.n_steps)
        images = self._complete(data, params, config, result.states[et_unrolled.LAYER])
        return data.backend.to_output(images)

    def descend(self, X, clamp_mask=None, *, n_steps=None, return_images=False):
        """Run the descent and report it step by step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images; NaN (or False in ``clamp_mask``) marks a missing pixel.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a known pixel, as in :meth:`transform`.
        n_steps : int, default=None
            Number of steps (None: ``self.n_steps``).
        return_images : bool, default=False
            Also return the completed images after every step.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``images`` (n_samples, n_features): the completion after the last
            step; ``tokens`` (n_samples, n_tokens, token_dim): the final
            tokens ``x``; ``energy_trace`` (n_steps + 1, n_samples): the
            energy before every step and after the last; ``token_mask``
            (n_samples, n_patches): the masked patches; and, if asked,
            ``images_trace`` (n_steps + 1, n_samples, n_features).
        """
        n_steps = self.n_steps if n_steps is None else int(n_steps)
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}.")
        data = self._prepare(X, clamp_mask, "descend")
        xp = data.xp
        params, config, result = self._run(
            data, n_steps, trace=True, record=return_images
        )
        x_T = result.states[et_unrolled.LAYER]
        shape = (x_T.shape[0], config.n_tokens, config.dim)
        out = Bunch(
            images=data.backend.to_output(self._complete(data, params, config, x_T)),
            tokens=data.backend.to_output(xp.reshape(x_T, shape)),
            energy_trace=data.backend.to_output(result.energy_trace),
            token_mask=data.backend.to_output(data.token_mask),
        )
        if return_images:
            states = [entry[1][et_unrolled.LAYER] for entry in result.tape.entries]
            out.images_trace = data.backend.to_output(
                xp.stack(
                    [self._complete(data, params, config, x) for x in [*states, x_T]],
                    axis=0,
                )
            )
        return out

    def energy(self, X, clamp_mask=None):
        """Energy of the initial tokens of each image (missing patches masked).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images; NaN (or False in ``clamp_mask``) marks a missing pixel.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a known pixel, as in :meth:`transform`.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
            ``E_att + E_mem`` at ``g = LN(x0)``.
        """
        data = self._prepare(X, clamp_mask, "energy")
        _, _, result = self._run(data, 0, trace=True)
        return data.backend.to_output(result.energy_trace[0, ...])

    def token_embeddings(self, X, clamp_mask=None, *, n_steps=None):
        """Layer-normed tokens after the descent: features of each patch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Images; NaN (or False in ``clamp_mask``) marks a missing pixel.
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a known pixel, as in :meth:`transform`.
        n_steps : int, default=None
            Steps of descent before reading the tokens (None:
            ``self.n_steps``; 0 gives the embedded input).

        Returns
        -------
        tokens : ndarray of shape (n_samples, n_tokens_, token_dim)
            ``g = LN(x)`` of every token (the CLS token first, when the model
            has one).
        """
        n_steps = self.n_steps if n_steps is None else int(n_steps)
        data = self._prepare(X, clamp_mask, "token_embeddings")
        xp = data.xp
        params, config, result = self._run(data, n_steps)
        tokens = et_unrolled.normalised_tokens(
            params, config, result.states[et_unrolled.LAYER], xp
        )
        return data.backend.to_output(tokens)

    # ------------------------------------------------------ checkpoint I/O
    def save(self, path):
        """Write the fitted weights and settings to a ``.npz`` file.

        Parameters
        ----------
        path : str or path-like
            Destination (NumPy adds ``.npz`` when missing).
        """
        check_is_fitted(self)
        meta = {
            "format": _FORMAT,
            "params": {
                k: v
                for k, v in self.get_params().items()
                if isinstance(v, bool | int | float | str | tuple | list | type(None))
            },
            "image_shape_": list(self.image_shape_),
            "patch_shape_": list(self.patch_shape_),
            "n_tokens_": int(self.n_tokens_),
            "beta_": float(self.beta_),
            "n_features_in_": int(self.n_features_in_),
            "n_iter_": int(self.n_iter_),
            "loss_curve_": [float(v) for v in self.loss_curve_],
            "validation_scores_": None
            if self.validation_scores_ is None
            else [float(v) for v in self.validation_scores_],
            "best_loss_": float(self.best_loss_),
        }
        arrays = {f"w_{k}": to_numpy(v) for k, v in self.weights_.items()}
        np.savez(path, _meta=np.asarray(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            A ``.npz`` file from :meth:`save`.

        Returns
        -------
        model : EnergyTransformer
            A fitted model (NumPy weights).
        """
        with np.load(path, allow_pickle=False) as data:
            if "_meta" not in data:
                raise ValueError(
                    f"{path} is not a file written by EnergyTransformer.save (no "
                    "'_meta' entry); use EnergyTransformer.load_published for the "
                    "published ImageNet checkpoint."
                )
            meta = json.loads(str(data["_meta"]))
            weights = {
                k[2:]: np.array(data[k]) for k in data.files if k.startswith("w_")
            }
        if meta.get("format") != _FORMAT:
            raise ValueError(f"Unknown format {meta.get('format')!r} in {path}.")
        params = meta["params"]
        for key in ("image_shape", "patch_shape"):
            if params.get(key) is not None:
                params[key] = tuple(params[key])
        model = cls(**params)._set_fitted(
            weights,
            image_shape=tuple(meta["image_shape_"]),
            patch_shape=tuple(meta["patch_shape_"]),
            beta=meta["beta_"],
            n_features=meta["n_features_in_"],
        )
        model.n_iter_ = meta.get("n_iter_", 0)
        model.loss_curve_ = meta.get("loss_curve_", [])
        model.validation_scores_ = meta.get("validation_scores_")
        model.best_loss_ = meta.get("best_loss_", float("nan"))
        return model

    @classmethod
    def load_published(cls, path, *, image_shape=None, patch_shape=None, **params):
        """Load the Energy Transformer checkpoint published with the tutorial.

        The file is the ImageNet model of Hoover et al. (2023), distributed as
        ``data/et_ckpt.npz`` of the tutorial's repository (github.com/bhoov/
        amtutorial; the same file as ``checkpoints/plaindict_ckpt.npz`` of
        bhoov/energy-transformer-jax). skam never downloads it. Its arrays:
        ``Wq``, ``Wk`` (H, Y, D), ``Xi`` (D, M), ``Wenc`` (Z, D), ``Benc``
        (D,), ``Wdec`` (D, Z), ``Bdec`` (Z,), ``POS_embed`` (1 + N, D),
        ``CLS_token``, ``MASK_token`` (D,), ``LNORM_gamma`` () and
        ``LNORM_bias`` (D,); for the published file D = 768, H = 12, Y = 64,
        M = 3072, and the tokens are the CLS token and the 196 patches of
        16 x 16 x 3 pixels of a 3 x 224 x 224 image.

        Parameters
        ----------
        path : str or path-like
            The ``.npz`` checkpoint.
        image_shape, patch_shape : tuple of int, default=None
            ``(channels, height, width)`` and ``(ph, pw)``; None infers a
            square RGB image of square patches from the array shapes.
        **params
            Other parameters of the estimator (``step_size``, ``n_steps``...).
            By default the model runs as it was trained: ``self_attention=True``,
            ``clamp_visible=False``, ``cls_token=True``, ``beta = 1/sqrt(Y)``, 12 steps of 0.1.

        Returns
        -------
        model : EnergyTransformer
            A fitted model. Rows of ``X`` are images in ``(C, H, W)`` order,
            normalised as in training (per channel, ImageNet mean and
            standard deviation).
        """
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _PUBLISHED_KEYS if k not in data.files]
            if missing:
                raise ValueError(f"{path} lacks the checkpoint arrays {missing}.")
            raw = {k: np.array(data[k]) for k in _PUBLISHED_KEYS}
        H, Y, D = raw["Wq"].shape
        n_patches = raw["POS_embed"].shape[0] - 1
        Z = raw["Wenc"].shape[0]
        if image_shape is None or patch_shape is None:
            side = math.isqrt(Z // 3)
            grid = math.isqrt(n_patches)
            if 3 * side * side != Z or grid * grid != n_patches:
                raise ValueError(
                    "Cannot infer the image layout; pass image_shape and patch_shape."
                )
            patch_shape = (side, side) if patch_shape is None else patch_shape
            image_shape = (
                (3, grid * side, grid * side) if image_shape is None else image_shape
            )
        settings = {
            "self_attention": True,
            "clamp_visible": False,
            "cls_token": True,
            "step_size": 0.1,
            "n_steps": 12,
            "token_dim": D,
            "n_heads": H,
            "head_dim": Y,
            "n_memories": raw["Xi"].shape[1],
            "image_shape": tuple(image_shape),
            "patch_shape": tuple(patch_shape),
        }
        settings.update(params)
        model = cls(**settings)
        weights = {
            "W_enc": raw["Wenc"],
            "b_enc": raw["Benc"],
            "mask_token": raw["MASK_token"],
            "cls_token": raw["CLS_token"],
            "pos": raw["POS_embed"],
            "Wq": raw["Wq"],
            "Wk": raw["Wk"],
            "Xi": np.ascontiguousarray(raw["Xi"].T),
            "gamma": np.asarray(raw["LNORM_gamma"]).reshape(()),
            "delta": raw["LNORM_bias"],
            "W_dec": raw["Wdec"],
            "b_dec": raw["Bdec"],
        }
        image_shape, patch_shape = _resolve_shapes(
            tuple(image_shape), tuple(patch_shape), int(np.prod(image_shape))
        )
        beta = model.beta if model.beta is not None else 1.0 / math.sqrt(Y)
        return model._set_fitted(
            weights,
            image_shape=image_shape,
            patch_shape=patch_shape,
            beta=beta,
            n_features=int(np.prod(image_shape)),
        )

    def _set_fitted(self, weights, *, image_shape, patch_shape, beta, n_features):
        patcher = Patcher(image_shape, patch_shape)
        extra = 1 if weights.get("cls_token") is not None else 0
        expected = {
            "W_enc": (patcher.patch_size, None),
            "pos": (patcher.n_patches + extra, None),
            "W_dec": (None, patcher.patch_size),
        }
        for key, shape in expected.items():
            got = weights[key].shape
            if any(s is not None and s != g for s, g in zip(shape, got, strict=True)):
                raise ValueError(
                    f"{key} has shape {got}, which does not fit images of shape "
                    f"{image_shape} cut into {patch_shape} patches."
                )
        self.weights_ = weights
        self.image_shape_, self.patch_shape_ = tuple(image_shape), tuple(patch_shape)
        self.n_tokens_ = patcher.n_patches + extra
        self.beta_ = float(beta)
        self.n_features_in_ = int(n_features)
        self.n_iter_, self.loss_curve_, self.validation_scores_ = 0, [], None
        self.best_loss_ = float("nan")
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.array_api_support = True
        tags.non_deterministic = False
        return tags


def _resolve_shapes(image_shape, patch_shape, n_features):
    """``(C, H, W)`` and ``(ph, pw)`` from the parameters, checked against X."""
    for name, value in (("image_shape", image_shape), ("patch_shape", patch_shape)):
        if not _shape_constraint(value) or (
            value is not None and any(v < 1 for v in value)
        ):
            raise ValueError(f"{name} must be a tuple of positive ints, got {value!r}.")
    if image_shape is None:
        image_shape = (1, 1, n_features)
    elif len(image_shape) == 2:
        image_shape = (1, *image_shape)
    elif len(image_shape) != 3:
        raise ValueError(
            "image_shape must be (height, width) or (channels, height, width), "
            f"got {image_shape!r}."
        )
    image_shape = tuple(int(v) for v in image_shape)
    if math.prod(image_shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape} has {math.prod(image_shape)} pixels but X has "
            f"{n_features} features."
        )
    patch_shape = (1, 1) if patch_shape is None else tuple(int(v) for v in patch_shape)
    if len(patch_shape) != 2:
        raise ValueError(f"patch_shape must be (height, width), got {patch_shape!r}.")
    _, H, W = image_shape
    if H % patch_shape[0] or W % patch_shape[1]:
        raise ValueError(
            f"patch_shape={patch_shape} does not divide the image ({H} x {W})."
        )
    return image_shape, patch_shape


def _patches_and_observed(Xc, known, patcher, xp):
    """Patches with missing pixels zeroed, and which of their pixels are known."""
    Xf = xp.where(known, Xc, xp.zeros_like(Xc))
    patches = patcher.patchify(Xf, xp)
    observed = patcher.patchify(xp.astype(known, Xc.dtype), xp) > 0
    return patches, observed


def _device(a):
    from array_api_compat import device

    return device(a)
