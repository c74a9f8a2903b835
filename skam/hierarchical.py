"""Memories built from layers and synapses: :class:`HierarchicalAM` and its classifier.

The estimators hold an energy graph (:mod:`skam._graph`) given by two plain
parameters, ``layers`` and ``synapses``, and learn its synapses by
backpropagation through ``n_steps`` unrolled steps of its own dynamics, the
same loop that runs at prediction time.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import Bunch, check_random_state, gen_batches
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from skam._backend import to_numpy
from skam._chunking import itemsize, map_chunks
from skam._dask import dask_dispatch
from skam._docstrings import fill_doc
from skam._energy import log_softmax
from skam._graph.dynamics import descend_graph
from skam._graph.graph import EnergyGraph
from skam._graph.lagrangians import Softmax
from skam._graph.specs import initial_graph, parse_layers, parse_synapses
from skam._graph.training import GraphTrainer
from skam._progress import Progress
from skam._targets import (
    decode_classes,
    encode_classes,
    require_y,
    validate_class_labels,
)
from skam._validation import (
    BACKEND_CONSTRAINT,
    backend_for,
    remember_namespace,
    validate_clamp_mask,
    validate_fit_input,
    validate_fitted_input,
    validate_X,
)

LABELS = "labels"

_CONSTRAINTS = {
    "layers": [list, tuple, None],
    "synapses": [list, tuple, None],
    "n_steps": [Interval(Integral, 1, None, closed="left")],
    "step_size": [Interval(Real, 0, None, closed="neither")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 0, None, closed="left")],
    "backend": BACKEND_CONSTRAINT,
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def _graph_on(graph, backend, dtype):
    """The graph with its parameters moved to the compute namespace and dtype."""
    params = {k: backend.to_compute(v, dtype) for k, v in graph.params().items()}
    return graph.with_params(params)


def _graph_out(graph, backend):
    params = {k: backend.to_output(v) for k, v in graph.params().items()}
    return graph.with_params(params)


class _HierarchicalBase(BaseEstimator):
    """What both estimators share: the graph, its schedule and its training."""

    _visible_step = True

    def _parsed(self, n_features, extra=()):
        layers = parse_layers(self.layers, n_features)
        layers = layers + list(extra)
        names = [name for name, *_ in layers]
        synapses = parse_synapses(self.synapses, names)
        return layers, synapses

    def _schedule(self, graph):
        """Hidden layers (step 1: exact block minimisation) in order, then visible."""
        names = list(graph.layers)
        visible, hidden = names[0], names[1:]
        schedule = [(name,) for name in hidden]
        step = dict.fromkeys(hidden, 1.0)
        if self._visible_step:
            schedule.append((visible,))
            step[visible] = float(self.step_size)
        return schedule, step

    def _start(self, graph, Xc, xp, *, broadcast=False):
        """Initial states: ``Xc`` on the visible layer, zeros elsewhere.

        ``broadcast`` gives the zeros as read-only views of one row (the
        descent never writes into its initial states), so inference holds no
        (n, width) array per hidden layer.
        """
        names = list(graph.layers)
        x0 = {names[0]: Xc}
        n = Xc.shape[0]
        for name in names[1:]:
            shape = (1 if broadcast else n, graph.sizes[name])
            x0[name] = xp.zeros(shape, dtype=Xc.dtype, device=_dev(Xc))
            if broadcast:
                x0[name] = xp.broadcast_to(x0[name], (n, graph.sizes[name]))
        return x0

    def _run(self, backend, Xc, clamp, **kwargs):
        graph = _graph_on(self.graph_, backend, Xc.dtype)
        schedule, step = self._schedule(graph)
        return graph, descend_graph(
            graph,
            self._start(graph, Xc, backend.xp, broadcast=True),
            backend.xp,
            step_size=step,
            schedule=schedule,
            clamp=clamp,
            max_iter=int(self.n_steps),
            tol=0.0,
            **kwargs,
        )

    def _train(self, backend, Xc, graph0, batch_loss, rng):
        """Minibatch Adam; ``batch_loss(rows, states?)`` builds x0, clamp, loss."""
        xp = backend.xp
        graph = _graph_on(graph0, backend, Xc.dtype)
        schedule, step = self._schedule(graph)
        trainer = GraphTrainer(
            graph,
            xp,
            learning_rate=float(self.learning_rate),
            dynamics={
                "step_size": step,
                "schedule": schedule,
                "max_iter": int(self.n_steps),
            },
        )
        n = Xc.shape[0]
        batch = int(min(self.batch_size, n))
        self.loss_curve_ = []
        progress = Progress(
            type(self).__name__, int(self.max_epochs), self.verbose, upper_bound=False
        )
        for _ in range(int(self.max_epochs)):
            order = rng.permutation(n)
            losses = []
            for sl in gen_batches(n, batch):
                x0, clamp, loss_fn = batch_loss(trainer.graph, order[sl], rng)
                losses.append(trainer.step(x0, clamp, loss_fn))
            self.loss_curve_.append(float(np.mean(losses)))
            progress.step(loss=self.loss_curve_[-1])
        progress.close()
        self.n_iter_ = int(self.max_epochs)
        return trainer.graph

    def _layer_names(self):
        return list(self.graph_.layers)

    def hidden_activations(self, X, layer=None):
        """Activations of a hidden layer once the dynamics settle on ``X``.

        The visible layer is clamped to ``X``; after ``n_steps`` steps the
        activations ``g = dL/dx`` of ``layer`` are returned: learned
        features for a downstream model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.
        layer : str, default=None
            Name of the layer (default: the last hidden layer of ``layers``).

        Returns
        -------
        G : ndarray of shape (n_samples, layer_size)
            The activations, in the dtype of ``X``.
        """
        check_is_fitted(self)
        X = validate_X(self, X, reset=False, method="hidden_activations")
        names = self._layer_names()
        hidden = [n for n in names[1:] if n != LABELS]
        layer = hidden[-1] if layer is None else layer
        if layer not in names[1:]:
            raise ValueError(
                f"layer must be one of the hidden layers {names[1:]}, got {layer!r}."
            )
        backend = backend_for(self, X)
        Xc = backend.to_compute(X)
        xp = backend.xp
        graph = _graph_on(self.graph_, backend, Xc.dtype)

        def activations(sl):  # chunk by chunk: no (n, width) state besides G
            _, out = self._run(
                backend,
                Xc[sl, :],
                {names[0]: True},
                compute_energy=False,
                keep=(layer,),
            )
            return graph.layers[layer].activation(out.states[layer], xp)

        per_row = graph.bytes_per_row(itemsize(Xc)) + graph.sizes[layer] * itemsize(Xc)
        return backend.to_output(map_chunks(activations, Xc.shape[0], per_row, xp))

    def _settled(self, X, method, **kwargs):
        X, backend = validate_fitted_input(self, X, method)
        Xc = backend.to_compute(X)
        graph, out = self._run(backend, Xc, {self._layer_names()[0]: True}, **kwargs)
        return backend, graph, out

    def energy(self, X):
        """Total energy once the hidden layers settle with the visible layer at ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Visible states.

        Returns
        -------
        energy : ndarray of shape (n_samples,)
        """
        backend, _, out = self._settled(X, "energy", keep=())
        return backend.to_output(out.energy)

    def energy_terms(self, X):
        """Energy of every layer and synapse, at the same state as :meth:`energy`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Visible states.

        Returns
        -------
        terms : :class:`~sklearn.utils.Bunch`
            One (n_samples,) array per layer name and per synapse name; they
            sum to :meth:`energy`.
        """
        backend, graph, out = self._settled(X, "energy_terms", compute_energy=False)
        terms = graph.energy_terms(out.states, backend.xp)
        return Bunch(**{k: backend.to_output(v) for k, v in terms.items()})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


def _dev(array):
    from array_api_compat import device

    return device(array)


@dask_dispatch()
@fill_doc
class HierarchicalAM(OneToOneFeatureMixin, TransformerMixin, _HierarchicalBase):
    """A memory built from layers of neurons and synapses, fitted on masked reconstruction.

    The model is an energy graph in the sense of HAMUX (Hoover et al.): every
    layer ``l`` has a convex Lagrangian ``L_l`` (its activations are
    ``g_l = dL_l/dx_l`` and its energy ``x_l . g_l - L_l``), every synapse is
    an energy of the activations it joins (dense ``-g_a^T W g_b``, bias
    ``-b . g``, or a whole Dense AM ``memory``), and the total energy is their
    sum. The first layer is visible (it holds the data); the dynamics update
    each hidden layer in turn with the exact minimiser of its block of the
    energy and then take a step of ``step_size`` on the visible layer, so the
    energy never increases. ``fit`` hides random coordinates of each training
    sample (random pixels for half of a batch, a random contiguous window
    for the other half), runs ``n_steps`` steps with the visible coordinates
    clamped, and trains every synapse by Adam on the squared error of the
    hidden coordinates, backpropagating through the unrolled steps in closed
    form. With the default two layers (identity visible, softmax hidden) and
    no training the model is a :class:`DenseAM` whose memories are 64
    training samples.

    Read more in the :ref:`User Guide <graphs>`.

    Parameters
    ----------
    layers : list of (name, lagrangian, size), default=None
        The neuron layers, visible first (``size`` None = number of
        features). ``lagrangian`` is one of ``"identity"``, ``"softmax"``,
        ``"relu"``, ``"repu"``, ``"exp"``, ``"tanh"``, ``"sigmoid"``,
        ``"layernorm"``, ``"spherical_norm"``, a ``(name, kwargs)`` pair such
        as ``("softmax", {"beta": 2.0})``, or a Lagrangian object. A plain
        ``"softmax"`` fed by the visible layer gets ``beta = log(K) / r2``
        from its ``K`` starting memories (a quarter of DenseAM's
        ``beta="scale"`` rule, so that the prototypes blend and train). None means
        ``[("visible", "identity", None), ("hidden", "softmax", 64)]``.
    synapses : list of tuples, default=None
        ``("dense", a, b)``, ``("bias", a)`` or ``("memory", "visible",
        {"n_memories": K, "separation": ..., "beta": ...})`` (a Dense AM of
        any separation on the visible layer, its memories trained too). None
        means a chain: dense synapses between consecutive layers and a bias on
        every hidden layer.
    n_steps : int, default=5
        Steps of the dynamics, in training and at prediction (the model is
        trained for this horizon).
    step_size : float, default=0.5
        Step of the visible layer (the hidden layers take exact steps).
    mask_prob : float, default=0.5
        Fraction of the coordinates hidden in each training sample.
    learning_rate : float, default=0.01
        Adam's learning rate.
    batch_size : int, default=64
        Samples per minibatch.
    max_epochs : int, default=10
        Passes over the training data (0 keeps the starting graph).
    backend : {"numpy", "cupy"}, default="numpy"
        Where NumPy input is computed.
    random_state : int, RandomState instance or None, default=None
        Seeds the starting memories, the masks and the batches; pass an int for
        reproducible fits. With None, NumPy's global generator is used (two
        fits differ); inference draws nothing, so repeated calls agree.
    %(verbose)s

    Attributes
    ----------
    graph_ : EnergyGraph
        The fitted graph (its parameters as NumPy arrays for NumPy input).
    fill_ : ndarray of shape (n_features,)
        Mean of the training data (the start of hidden coordinates in training).
    loss_curve_ : list of float
        Mean masked reconstruction loss of every epoch.
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit`` (string column names only).

    See Also
    --------
    DenseAM : The two-layer case with the hidden layer integrated out.
    HierarchicalAMClassifier : The same graph with a label layer.

    References
    ----------
    .. [1] D. Krotov, B. Hoover, P. Ram, B. Pham, "Modern Methods in
       Associative Memory", arXiv:2507.06211, 2025, chapter 3.
    .. [2] B. Hoover, D. H. Chau, H. Strobelt, D. Krotov, "A Universal
       Abstraction for Hierarchical Hopfield Networks", NeurIPS 2022 workshop.

    Examples
    --------
    >>> import numpy as np
    >>> from skam import HierarchicalAM
    >>> rng = np.random.RandomState(0)
    >>> X = np.repeat(rng.randn(4, 10), 25, axis=0) + 0.05 * rng.randn(100, 10)
    >>> am = HierarchicalAM(
    ...     layers=[("visible", "identity", None), ("hidden", "softmax", 16)],
    ...     max_epochs=5, random_state=0,
    ... ).fit(X)
    >>> occluded = X[:5].copy()
    >>> mask = np.zeros(10, dtype=bool)
    >>> mask[:5] = True                          # first half is known
    >>> occluded[:, 5:] = am.fill_[5:]
    >>> completed = am.transform(occluded, clamp_mask=mask)
    >>> err_before = np.abs(occluded[:, 5:] - X[:5, 5:]).mean()
    >>> bool(np.abs(completed[:, 5:] - X[:5, 5:]).mean() < 0.2 * err_before)
    True
    >>> sorted(am.energy_terms(X[:2]))
    ['bias_hidden', 'dense_visible_hidden', 'hidden', 'visible']
    """

    _parameter_constraints: dict = {
        **_CONSTRAINTS,
        "mask_prob": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        layers=None,
        synapses=None,
        *,
        n_steps=5,
        step_size=0.5,
        mask_prob=0.5,
        learning_rate=0.01,
        batch_size=64,
        max_epochs=10,
        backend="numpy",
        random_state=None,
        verbose=0,
    ):
        self.layers = layers
        self.synapses = synapses
        self.n_steps = n_steps
        self.step_size = step_size
        self.mask_prob = mask_prob
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the graph and train it on masked reconstruction.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted memory.
        """
        X, backend = validate_fit_input(self, X)
        xp = backend.xp
        Xc = backend.to_compute(X)
        Xh = np.asarray(to_numpy(X), dtype=np.float64)
        rng = check_random_state(self.random_state)
        n, d = Xh.shape
        layers, synapses = self._parsed(d)
        graph0 = initial_graph(layers, synapses, Xh, rng, dtype=_host_dtype(Xc))
        fill = Xh.mean(axis=0)
        self.fill_ = fill.astype(Xh.dtype if X.dtype == np.float64 else np.float32)
        fill_c = backend.to_compute(np.asarray(fill), Xc.dtype)
        n_masked = min(d - 1, int(round(self.mask_prob * d)))
        visible = layers[0][0]

        def batch_loss(graph, rows, rng):
            mask_h = _draw_masks(rows.size, d, n_masked, rng)
            mask = xp.asarray(mask_h, device=_dev(Xc))
            Xb = xp.take(Xc, xp.asarray(rows, device=_dev(Xc)), axis=0)
            x0 = self._start(graph, xp.where(mask, fill_c[None, :], Xb), xp)
            total = max(1, int(mask_h.sum()))
            weight = xp.astype(mask, Xc.dtype) / total

            def loss_fn(states):
                diff = (states[visible] - Xb) * weight
                loss = float(xp.sum(diff * (states[visible] - Xb)))
                return loss, {visible: 2.0 * diff}

            return x0, {visible: xp.logical_not(mask)}, loss_fn

        graph = self._train(backend, Xc, graph0, batch_loss, rng)
        self.graph_ = _graph_out(graph, backend)
        return self

    def transform(self, X, clamp_mask=None):
        """Complete: run the dynamics from ``X`` and return the visible states.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries; unknown coordinates hold a starting value (e.g. ``fill_``).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a known coordinate: it keeps its value from ``X``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            The visible layer after ``n_steps`` steps, in the dtype of ``X``.
        """
        return self.descend(X, clamp_mask).states

    def descend(self, X, clamp_mask=None, *, return_energy_trace=False):
        """Run the dynamics and report the energy, in total and part by part.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Initial visible states (the hidden layers start at 0).
        clamp_mask : array-like of bool, shape (n_features,) or (n_samples, n_features), default=None
            True marks a clamped visible coordinate.
        return_energy_trace : bool, default=False
            Also return the energies before every step and after the last.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``states`` (n_samples, n_features), ``energy`` (n_samples,) and, if
            asked, ``energy_trace`` (n_steps + 1, n_samples) and
            ``energy_terms_trace`` (a dict of such arrays, one per part).
        """
        X, backend = validate_fitted_input(self, X, "descend")
        Xc = backend.to_compute(X)
        mask = validate_clamp_mask(clamp_mask, Xc, backend)
        visible = self._layer_names()[0]
        _, out = self._run(
            backend,
            Xc,
            None if mask is None else {visible: mask},
            return_trace=return_energy_trace,
            return_term_trace=return_energy_trace,
            keep=(visible,),
        )
        result = Bunch(
            states=backend.to_output(out.states[visible]),
            energy=backend.to_output(out.energy),
        )
        if return_energy_trace:
            result.energy_trace = backend.to_output(out.energy_trace)
            result.energy_terms_trace = {
                k: backend.to_output(v) for k, v in out.term_trace.items()
            }
        return result


def _draw_masks(n, d, n_masked, rng):
    """Boolean (n, d) masks: random coordinates (first half) or a window."""
    mask = np.zeros((n, d), dtype=bool)
    if n_masked <= 0:
        return mask
    for i in range(n):
        if i % 2 == 0:
            mask[i, rng.choice(d, size=n_masked, replace=False)] = True
        else:
            start = rng.randint(0, d - n_masked + 1)
            mask[i, start : start + n_masked] = True
    return mask


@dask_dispatch()
@fill_doc
class HierarchicalAMClassifier(ClassifierMixin, _HierarchicalBase):
    """A layered memory with a label layer, trained to complete the label.

    The graph of :class:`HierarchicalAM` plus a layer ``"labels"`` (softmax,
    one unit per class) joined to the last hidden layer by a dense synapse
    and given a bias (when ``synapses`` is None). To predict, the visible
    layer is clamped to the features and the hidden and label layers settle
    for ``n_steps`` steps (exact block updates, so the energy never
    increases); the label activations are the class probabilities. ``fit``
    trains every synapse by Adam on the cross-entropy of those probabilities,
    backpropagating through the unrolled steps.

    Read more in the :ref:`User Guide <graphs>`.

    Parameters
    ----------
    layers : list of (name, lagrangian, size), default=None
        As in :class:`HierarchicalAM` (the label layer is added).
    synapses : list of tuples, default=None
        As in :class:`HierarchicalAM`; explicit lists may use the layer name
        ``"labels"``. None means a chain ending at the label layer.
    n_steps : int, default=3
        Steps of the dynamics.
    step_size : float, default=0.5
        Unused by the classifier's dynamics (the visible layer is clamped);
        kept so that both estimators share their parameters.
    learning_rate : float, default=0.03
        Adam's learning rate.
    batch_size : int, default=64
        Samples per minibatch.
    max_epochs : int, default=20
        Passes over the training data.
    backend : {"numpy", "cupy"}, default="numpy"
        Where NumPy input is computed.
    random_state : int, RandomState instance or None, default=None
        Seeds the starting memories and the batches; pass an int for
        reproducible fits. With None, NumPy's global generator is used (two
        fits differ); inference draws nothing, so repeated calls agree.
    %(verbose)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    graph_ : EnergyGraph
    loss_curve_ : list of float
        Mean training cross-entropy of every epoch.
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)

    See Also
    --------
    DenseAMClassifier : Label neurons on a single memory layer.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skam import HierarchicalAMClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = HierarchicalAMClassifier(max_epochs=20, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9)
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict = dict(_CONSTRAINTS)
    _visible_step = False

    def __init__(
        self,
        layers=None,
        synapses=None,
        *,
        n_steps=3,
        step_size=0.5,
        learning_rate=0.03,
        batch_size=64,
        max_epochs=20,
        backend="numpy",
        random_state=None,
        verbose=0,
    ):
        self.layers = layers
        self.synapses = synapses
        self.n_steps = n_steps
        self.step_size = step_size
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Build the graph with a label layer and train it on the labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        require_y(self, y)
        X = validate_X(self, X, reset=True, method="fit")
        y = validate_class_labels(self, y, X)
        remember_namespace(self, X)
        backend = backend_for(self, X)
        self.classes_, y_idx = encode_classes(y, backend)
        xp = backend.xp
        Xc = backend.to_compute(X)
        Xh = np.asarray(to_numpy(X), dtype=np.float64)
        rng = check_random_state(self.random_state)
        C = self.classes_.shape[0]
        extra = [(LABELS, Softmax(beta=1.0), C, "softmax")]
        layers, synapses = self._parsed(Xh.shape[1], extra)
        graph0 = initial_graph(layers, synapses, Xh, rng, dtype=_host_dtype(Xc))
        onehot = (y_idx[:, None] == np.arange(C)[None, :]).astype(np.float64)
        Y = backend.to_compute(onehot, Xc.dtype)
        visible = layers[0][0]

        def batch_loss(graph, rows, rng):
            idx = xp.asarray(rows, device=_dev(Xc))
            Xb, Yb = xp.take(Xc, idx, axis=0), xp.take(Y, idx, axis=0)
            x0 = self._start(graph, Xb, xp)
            b = rows.size

            def loss_fn(states):
                x = states[LABELS]
                log_p = log_softmax(x, xp)
                loss = -float(xp.sum(Yb * log_p)) / b
                return loss, {LABELS: (xp.exp(log_p) - Yb) / b}

            return x0, {visible: True}, loss_fn

        graph = self._train(backend, Xc, graph0, batch_loss, rng)
        self.graph_ = _graph_out(graph, backend)
        return self

    def _proba(self, X, method):
        backend, graph, out = self._settled(
            X, method, compute_energy=False, keep=(LABELS,)
        )
        xp = backend.xp
        return backend, xp.exp(log_softmax(out.states[LABELS], xp))

    def predict_proba(self, X):
        """Class probabilities: the label layer's activations after settling.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Class probabilities, columns in the order of ``classes_``.
        """
        backend, proba = self._proba(X, "predict_proba")
        return backend.to_output(proba)

    def predict(self, X):
        """Class with the largest label activation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Queries.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted classes (values of ``classes_``).
        """
        backend, proba = self._proba(X, "predict")
        idx = backend.xp.argmax(proba, axis=1)
        return decode_classes(self.classes_, idx, backend)


__all__ = ["EnergyGraph", "HierarchicalAM", "HierarchicalAMClassifier"]


def _host_dtype(Xc):
    """The NumPy dtype matching the compute dtype of ``Xc`` (float32 or float64)."""
    return np.float32 if itemsize(Xc) == 4 else np.float64
