"""A Dense AM with few memories learned by denoising score matching."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions

from skam._backend import to_numpy
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._progress import Progress
from skam._sampling import broad_beta
from skam._score_matching import fit_memories
from skam._validation import (
    BACKEND_CONSTRAINT,
    DESCENT_CONSTRAINTS,
    check_beta_range,
    validate_fit_input,
)
from skam.memory import DenseAM


def _never(estimator):
    return False


def _initial_memories(X, n_memories, beta, rng):
    """k-means centres of X (every row, then jittered copies, if too few).

    Also returns the root mean squared distance per coordinate of the rows to
    their centre (0 when every row is a centre): the initial bandwidth.
    """
    n, D = X.shape
    if n_memories <= n:
        seed = rng.randint(np.iinfo(np.int32).max)
        km = KMeans(n_memories, n_init=1, random_state=seed).fit(X)
        return km.cluster_centers_, float(np.sqrt(km.inertia_ / (n * D)))
    extra = X[rng.choice(n, size=n_memories - n)]
    extra = extra + rng.standard_normal(extra.shape) * (0.1 / np.sqrt(beta))
    return np.vstack([X, extra]), 0.0


@dask_dispatch()
@fill_doc
class DiffusionAM(DenseAM):
    """Dense AM whose memories and bandwidth are learned by denoising score matching.

    A diffusion model whose score is the exact score of a Dense AM: the model
    is a Gaussian mixture of ``n_memories`` learned memories ``Xi`` with one
    learned bandwidth ``h``, and at noise level ``beta_t`` (``1 / (sigma^2
    t)``) its score is ``-b_t grad E_b_t(x; Xi)``, the log-sum-exp energy of
    the memories at the effective inverse temperature ``b_t = 1 / (h^2 +
    1/beta_t)``. ``fit`` trains ``Xi`` and ``h`` by denoising score matching
    over noise levels from ``beta_min`` to ``beta`` (the loss is the squared
    error of one attention step that denoises a noisy training point,
    back-propagated in closed form). The fitted model is a :class:`DenseAM`
    on the learned memories at ``beta_ = b_t`` of the finest level: it has
    the same ``energy``, ``score``, ``transform``, ``descend`` and ``sample``
    methods, and ``sample(method="anneal")`` is its reverse diffusion.

    The model is capacity-limited twice: it has ``n_memories`` memories, and
    its temperature saturates at ``1/h^2`` however small the noise. With at
    most ``n_memories`` training points DSM puts memories on the points and
    shrinks ``h`` towards 0: the model becomes the exact empirical score and
    sampling copies the training points (memorisation). With many more
    points, the memories spread over the data and ``h`` grows until their
    kernels merge into a continuous low-energy manifold whose samples are new
    points near it (generalisation).

    Read more in the :ref:`User Guide <sampling>`.

    Parameters
    ----------
    n_memories : int, default=64
        Number of learned memories.
    beta : float, default=None
        Finest noise level ``1 / (sigma^2 t_min)`` of training (noise
        standard deviation ``1/sqrt(beta)`` in data units). None uses ``1e5 /
        total variance of X`` (the tutorial's ``t_min = 1e-5`` of a diffusion
        whose coarsest noise is as wide as the data).
    beta_min : float, default=None
        Coarsest noise level; None uses ``min(beta, 1 / total variance of
        X)`` (noise as wide as the data).
    n_levels : int, default=12
        Number of noise levels, geometric from ``beta_min`` to ``beta``.
    bandwidth : "learn" or float, default="learn"
        Standard deviation ``h`` of the mixture's kernels (as in
        :class:`~sklearn.neighbors.KernelDensity`). ``"learn"`` trains it
        with the memories, from the k-means spread of the data; a float
        keeps it fixed (0 gives the exact score of the learned memories,
        capacity-limited by ``n_memories`` alone).
    learning_rate : float, default=1e-3
        Adam step size, in data units (of the memories and of ``h``).
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
    bandwidth_ : float
        The learned (or given) bandwidth ``h``.
    beta_ : float
        The inverse temperature of the fitted energy, ``1 / (h^2 + 1/beta)``:
        the model at the finest noise level.
    beta_max_ : float
        The finest noise level used (``beta`` or its default).
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
    DenseAM : Stores every training point (its reverse diffusion copies them).
    skam.diagnostics.sample_quality : Whether samples are near unseen data.

    Notes
    -----
    The noised model is a mixture of variance ``h^2 + 1/beta_t``, so its
    score at level ``beta_t`` is that of a Dense AM at ``b_t = beta_t /
    (1 + beta_t h^2)``. The DSM loss at that level, with the usual weight
    ``sigma^2 t``, is ``beta_t |D(x0 + z/sqrt(beta_t)) - x0|^2`` with
    Tweedie's denoiser ``D(x) = x - rho (x - m(x))``, ``rho = b_t /
    beta_t`` and ``m`` the attention read-out of the memories at ``b_t``
    (see :mod:`skam._score_matching`). Memories are initialised at the
    k-means centres of the training data (when ``n_memories`` exceeds the
    number of rows: every row, then copies of random rows jittered by a
    tenth of the finest noise), the bandwidth at the root mean squared
    distance per coordinate of the rows to their centre, and at least at the
    finest noise ``1/sqrt(beta)``.

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
    >>> am = DiffusionAM(n_memories=32, max_epochs=30, random_state=0).fit(circle)
    >>> am.memories_.shape
    (32, 2)
    >>> radius = np.linalg.norm(am.memories_, axis=1)
    >>> bool(np.all(np.abs(radius - 1) < 0.1))   # the memories cover the circle
    True
    >>> bool(0.02 < am.bandwidth_ < 0.2)  # kernels as wide as the memories' spacing
    True
    >>> samples = am.sample(200, method="anneal", random_state=0)
    >>> bool(np.median(np.abs(np.linalg.norm(samples, axis=1) - 1)) < 0.1)
    True
    """

    separation = "lse"
    similarity = "sqeuclidean"
    degree = 3
    epsilon = 0.0

    _parameter_constraints: dict = {
        "n_memories": [Interval(Integral, 1, None, closed="left")],
        "beta": [None, Interval(Real, 0, None, closed="neither")],
        "beta_min": [None, Interval(Real, 0, None, closed="neither")],
        "n_levels": [Interval(Integral, 1, None, closed="left")],
        "bandwidth": [
            StrOptions({"learn", "overlap"}),
            Interval(Real, 0, None, closed="left"),
        ],
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
        beta=None,
        beta_min=None,
        n_levels=12,
        bandwidth="learn",
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
        self.bandwidth = bandwidth
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
        """Learn the memories and bandwidth of ``X`` by denoising score matching.

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
        X, backend = validate_fit_input(self, X)
        xp = backend.xp
        rng = check_random_state(self.random_state)
        host = to_numpy(X).astype(np.float64)
        broad = broad_beta(host, np.inf)
        if not np.isfinite(broad):  # constant data: any finite scale
            broad = 1.0
        beta = 1e5 * broad if self.beta is None else float(self.beta)
        beta_min = broad if self.beta_min is None else float(self.beta_min)
        beta_min = min(beta_min, beta)
        init, spread = _initial_memories(host, self.n_memories, beta, rng)
        learn = self.bandwidth in ("learn", "overlap")
        h0 = max(spread, 1 / np.sqrt(beta)) if learn else float(self.bandwidth)
        Xc = backend.to_compute(X)
        Xi0 = xp.asarray(init, dtype=Xc.dtype, device=backend.device)
        Xi, h, losses = fit_memories(
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
            bandwidth0=h0,
            learn_bandwidth=learn,
            overlap=self.bandwidth == "overlap",
            progress=Progress(
                type(self).__name__, self.max_epochs, self.verbose, upper_bound=False
            ),
        )
        self.memories_ = backend.to_output(Xi)
        self.memory_weights_ = None
        self.bandwidth_ = float(h)
        self.beta_max_ = beta
        self.beta_min_ = beta_min
        self.beta_ = 1.0 / (h * h + 1.0 / beta)
        check_beta_range(self.beta_, self.memories_)
        self.loss_curve_ = losses
        self.n_iter_ = max(1, len(losses))
        self._finish_storing()
        return self

    # learned memories are not appended: no partial_fit
    partial_fit = available_if(_never)(DenseAM.partial_fit)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
