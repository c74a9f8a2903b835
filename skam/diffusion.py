"""A Dense AM with few memories learned by denoising score matching."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval

from skam._backend import to_numpy
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._progress import Progress
from skam._sampling import broad_beta
from skam._score_matching import fit_memories
from skam._validation import (
    BACKEND_CONSTRAINT,
    DESCENT_CONSTRAINTS,
    backend_for,
    remember_namespace,
    validate_X,
)
from skam.memory import DenseAM


def _never(estimator):
    return False


def _initial_memories(X, n_memories, beta, rng):
    """k-means centres of X (every row, then jittered copies, if too few)."""
    n = X.shape[0]
    if n_memories <= n:
        seed = rng.randint(np.iinfo(np.int32).max)
        return KMeans(n_memories, n_init=1, random_state=seed).fit(X).cluster_centers_
    extra = X[rng.choice(n, size=n_memories - n)]
    extra = extra + rng.standard_normal(extra.shape) * (0.1 / np.sqrt(beta))
    return np.vstack([X, extra])


@dask_dispatch()
@fill_doc
class DiffusionAM(DenseAM):
    """Dense AM whose few memories are learned by denoising score matching.

    A diffusion model whose score is the exact score of a Dense AM: at noise
    level ``beta_t`` (``1 / (sigma^2 t)``) the model's score is
    ``-beta_t grad E_beta_t(x; Xi)`` for the log-sum-exp energy of
    ``n_memories`` *learned* memories ``Xi``. ``fit`` trains ``Xi`` by
    denoising score matching over noise levels from ``beta_min`` to
    ``beta`` (the loss is the squared error of one attention step that
    denoises a noisy training point, back-propagated in closed form). The
    fitted model is a :class:`DenseAM` on the learned memories: it has the
    same ``energy``, ``transform``, ``descend`` and ``sample`` methods.

    Capacity-limited, it cannot store more than ``n_memories`` patterns:
    with fewer training points than memories, DSM puts memories on the
    training points and sampling copies them (memorisation); with many
    more, the memories spread over the data and, once they are closer than
    the kernel width ``1/sqrt(beta)``, their kernels merge into a continuous
    low-energy manifold whose samples are new points (generalisation).

    Read more in the :ref:`User Guide <sampling>`.

    Parameters
    ----------
    n_memories : int, default=64
        Number of learned memories.
    beta : float, default=1.0
        Inverse temperature of the finest noise level and of the fitted
        energy (kernel width ``1/sqrt(beta)`` in data units).
    beta_min : float, default=None
        Coarsest noise level; None uses ``min(beta, 1 / total variance of
        X)`` (noise as wide as the data).
    n_levels : int, default=8
        Number of noise levels, geometric from ``beta_min`` to ``beta``.
    learning_rate : float, default=1e-3
        Adam step size, in data units.
    max_epochs : int, default=200
        Passes over the training data.
    batch_size : int, default=256
        Minibatch size.
    %(step_size)s
    %(max_iter)s
    %(tol)s
    %(verbose)s
    %(random_state)s
    %(backend)s

    Attributes
    ----------
    memories_ : ndarray of shape (n_memories, n_features)
        The learned memories.
    memory_weights_ : None
        Memories are equally weighted.
    beta_ : float
        The inverse temperature of the fitted energy (``beta``).
    beta_min_ : float
        The coarsest noise level used.
    loss_curve_ : list of float
        Mean DSM loss per training point, epoch by epoch.
    n_iter_ : int
        Training epochs run (``len(loss_curve_)``). Whether the learned
        memories are fixed points: :func:`skam.capacity.recall_fraction`.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DenseAM : Stores every training point (its samples copy them).

    Notes
    -----
    The DSM loss at level ``beta_t``, with the usual weight ``sigma^2 t``, is
    ``beta_t |m(x0 + z/sqrt(beta_t)) - x0|^2`` with ``m`` the attention
    read-out of the memories (see :mod:`skam._score_matching`). Memories are
    initialised at the k-means centres of the training data (when
    ``n_memories`` exceeds the number of rows: every row, then copies of
    random rows jittered by a tenth of the kernel width).

    References
    ----------
    .. [1] B. Pham, G. Raya, M. Negri, M. J. Zaki, L. Ambrogioni, D. Krotov,
       "Memorization to Generalization: Emergence of Diffusion Models from
       Associative Memory", arXiv:2505.21777, 2025.
    .. [2] P. Vincent, "A Connection Between Score Matching and Denoising
       Autoencoders", Neural Computation 23, 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import DiffusionAM
    >>> rng = np.random.RandomState(0)
    >>> angle = rng.uniform(0, 2 * np.pi, 500)
    >>> circle = np.c_[np.cos(angle), np.sin(angle)]
    >>> am = DiffusionAM(n_memories=32, beta=50.0, max_epochs=30,
    ...                  random_state=0).fit(circle)
    >>> am.memories_.shape
    (32, 2)
    >>> radius = np.linalg.norm(am.memories_, axis=1)
    >>> bool(np.all(np.abs(radius - 1) < 0.1))   # the memories cover the circle
    True
    """

    separation = "lse"
    similarity = "sqeuclidean"
    degree = 3
    epsilon = 0.0

    _parameter_constraints: dict = {
        "n_memories": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "beta_min": [None, Interval(Real, 0, None, closed="neither")],
        "n_levels": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        **DESCENT_CONSTRAINTS,
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "backend": BACKEND_CONSTRAINT,
    }

    def __init__(
        self,
        *,
        n_memories=64,
        beta=1.0,
        beta_min=None,
        n_levels=8,
        learning_rate=1e-3,
        max_epochs=200,
        batch_size=256,
        step_size=1.0,
        max_iter=100,
        tol=1e-6,
        verbose=0,
        random_state=None,
        backend="numpy",
    ):
        self.n_memories = n_memories
        self.beta = beta
        self.beta_min = beta_min
        self.n_levels = n_levels
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.step_size = step_size
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn ``n_memories`` memories of ``X`` by denoising score matching.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted memory.
        """
        X = validate_X(self, X, reset=True, method="fit")
        remember_namespace(self, X)
        backend = backend_for(self, X)
        xp = backend.xp
        rng = check_random_state(self.random_state)
        host = to_numpy(X).astype(np.float64)
        beta = float(self.beta)
        beta_min = broad_beta(host, beta) if self.beta_min is None else self.beta_min
        beta_min = min(float(beta_min), beta)
        init = _initial_memories(host, self.n_memories, beta, rng)
        Xc = backend.to_compute(X)
        Xi0 = xp.asarray(init, dtype=Xc.dtype, device=backend.device)
        Xi, losses = fit_memories(
            Xc,
            Xi0,
            xp,
            beta=beta,
            beta_min=beta_min,
            n_levels=self.n_levels,
            learning_rate=self.learning_rate,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            rng=rng,
            progress=Progress(
                type(self).__name__, self.max_epochs, self.verbose, upper_bound=False
            ),
        )
        self.memories_ = backend.to_output(Xi)
        self.memory_weights_ = None
        self.beta_min_ = beta_min
        self.loss_curve_ = losses
        self._resolve_beta()
        self.n_iter_ = max(1, len(losses))
        self._finish_storing()
        return self

    # learned memories are not appended: no partial_fit
    partial_fit = available_if(_never)(DenseAM.partial_fit)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
