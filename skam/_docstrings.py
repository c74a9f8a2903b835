"""Docstring fragments written once and shared by every estimator.

The one template system of skam: a docstring holds markers ``%(name)s``, each
on a line of its own, and :func:`fill_doc` replaces each by the snippet
``name`` below, indented like its marker. Every snippet documents one
parameter (or one Notes fragment), so the rendered parameter list follows the
order of the markers: keep them in the order of the signature. A marker
without a snippet raises at import. ``tests/test_docstrings.py`` runs
numpydoc's validation on the rendered docstrings.
"""

import re
import textwrap

_SNIPPETS = {
    "separation": """
separation : {"lse", "poly", "rectified_poly", "lsr"}, default="lse"
    Separation function ``F`` of the energy
    ``E(v) = -(1/beta) log(eps + sum_mu w_mu F(beta S(v, xi_mu)))``:
    ``"lse"`` is ``exp`` (log-sum-exp, the modern Hopfield energy),
    ``"poly"`` is ``(1 + z)**degree``, ``"rectified_poly"`` is
    ``max(1 + z, 0)**degree`` and ``"lsr"`` is ``max(1 + z, 0)``
    (log-sum-ReLU, the Epanechnikov energy, whose minima can be reached
    exactly). See :ref:`energy_convention`.
""",
    "similarity": """
similarity : {"sqeuclidean", "dot"}, default="sqeuclidean"
    Similarity ``S`` between a state and a memory: minus half the squared
    Euclidean distance, or the dot product. The dot-product energy is
    unbounded below, so its descent is projected onto the box spanned by the
    memories (per-feature minimum and maximum).
""",
    "degree": """
degree : int, default=3
    Degree of the ``"poly"`` and ``"rectified_poly"`` separations, at most
    ``2**53`` (larger integers are not exact in floating point). Computed in
    log space, so high degrees do not overflow.
""",
    "epsilon": """
epsilon : float, default=1e-10
    Added to the kernel sum of the non-exponential separations so that the
    energy stays finite where no memory's kernel reaches (outside the support
    of ``"lsr"``); ignored by ``"lse"``.
""",
    "step_size": """
step_size : float, default=1.0
    Step size of the energy descent ``v <- v - step_size * m * grad E(v)``. With
    ``"lse"`` and ``"sqeuclidean"``, ``step_size=1`` is the one-step attention
    (Ramsauer) update and any ``step_size <= 1`` never increases the energy.
    Must be below 2: the energy's curvature is at most 1, so larger steps
    diverge.
""",
    "max_iter": """
max_iter : int, default=100
    Maximum number of descent steps per query (0 returns the input).
""",
    "tol": """
tol : float, default=1e-6
    A query stops descending when the Euclidean norm of its update is at most
    ``tol``.
""",
    "backend": """
backend : {"numpy", "cupy"}, default="numpy"
    Where NumPy input is computed. ``"cupy"`` moves the work to the current
    GPU and the results back (NumPy in, NumPy out; fitted attributes stay
    NumPy so a pickled model loads anywhere). Input that already is a CuPy
    (or other array-API) array is always computed in its own namespace, and
    the outputs and fitted attributes follow it.
""",
    "random_state": """
random_state : int, RandomState instance or None, default=None
    Seed of every random draw; pass an int for reproducible results. With
    None, NumPy's global generator is used (two fits differ); draws made after
    ``fit`` come from a seed drawn at ``fit``, so repeated calls on one fitted
    model agree.
""",
    # ------------------------------------------- random-feature estimators
    "kernel": """
kernel : {"gaussian", "laplacian", "cauchy", "matern"}, default="gaussian"
    Shift-invariant kernel whose spectral density the frequencies are drawn
    from (see Notes).
""",
    "nu": """
nu : {0.5, 1.5, 2.5}, default=1.5
    Smoothness of the ``"matern"`` kernel (ignored otherwise); 0.5 is the
    exponential kernel ``exp(-|delta| / l)``.
""",
    "feature_map": """
feature_map : {"sincos", "cos", "positive"}, default="sincos"
    ``"sincos"``: ``[cos(W^T x), sin(W^T x)] / sqrt(Y)`` (2Y features, the
    lowest variance); ``"cos"``: ``sqrt(2/Y) cos(W^T x + b)`` with random
    phases ``b ~ U[0, 2 pi]`` (Y features, the map of
    :class:`~sklearn.kernel_approximation.RBFSampler`); ``"positive"``
    (``"gaussian"`` only): ``exp(+-W^T x - 2 gamma |x|^2) / sqrt(2Y)``
    (2Y features, always positive; Choromanski et al. 2021).
""",
    "orthogonal": """
orthogonal : bool, default=False
    Orthogonal random features: the directions of the frequencies are rows
    of random orthogonal blocks (lower variance at equal ``n_components``).
    Needs a rotation-invariant kernel (not ``"laplacian"``).
""",
    "kernel_notes": """
The kernels, with ``l = 1 / sqrt(2 gamma)`` the length scale of the radial
ones, and the spectral densities the frequencies are drawn from:

============  ==================================  =========================
``kernel``    ``k(x, y)``                         frequencies
============  ==================================  =========================
gaussian      ``exp(-gamma |x - y|^2)``           normal ``N(0, 2 gamma)``
laplacian     ``exp(-gamma |x - y|_1)``           Cauchy per coordinate
cauchy        ``1 / (1 + gamma |x - y|^2)``       multivariate Laplace
matern        Matern(nu) with length scale l      multivariate t (2 nu dof)
============  ==================================  =========================

``"laplacian"`` is :func:`sklearn.metrics.pairwise.laplacian_kernel`;
``"cauchy"`` is the rational quadratic kernel with ``alpha=1`` and
``"matern"`` is :class:`sklearn.gaussian_process.kernels.Matern`, both
with ``length_scale=l``; ``"matern"`` tends to ``"gaussian"`` as ``nu``
grows. The error of a kernel estimate falls like ``1/sqrt(n_components)``.
""",
    "lam": """
lam : float, default=0.5
    Weight ``lambda`` of the feature coordinates in the similarity; the
    label neurons get ``1 - lambda``. The feature kernel is
    ``exp(-beta * lam / 2 * ||x - x_mu||^2)``, so ``lam`` and ``beta``
    together set its bandwidth ``1 / sqrt(beta * lam)``; ``1 - lam``
    sets how strongly the label neurons pull the state towards memories
    whose labels agree with them (it matters from the second step on).
""",
    "label_step_size": """
step_size : float, default=None
    Step size of the descent on the label neurons. None means
    ``1 / (1 - lam)``: the first step then jumps the label neurons to the
    kernel-weighted average of the memories' labels (the softmax vote).
""",
    "label_max_iter": """
max_iter : int, default=1
    Descent steps on the label neurons (``T``). One step is a kernel
    smoother; more steps sharpen the read-out towards the memories the
    label neurons already agree with. In parametric mode the memories are
    trained through exactly these steps.
""",
    "mode": """
mode : {"nonparametric", "parametric"}, default="nonparametric"
    ``"nonparametric"``: the memories are the training samples (the model
    grows with the data). ``"parametric"``: a fixed number of memories,
    initialised by k-means and learned by minibatch Adam through the
    ``max_iter`` unrolled descent steps (any separation; needs
    ``similarity="sqeuclidean"``).
""",
    "learning_rate": """
learning_rate : float, default=0.01
    Adam step size (parametric mode).
""",
    "batch_size": """
batch_size : int, default=128
    Minibatch size (parametric mode).
""",
    "max_epochs": """
max_epochs : int, default=100
    Maximum number of passes over the training data (parametric mode).
""",
    "validation_fraction": """
validation_fraction : float or None, default=0.1
    Fraction of the training data held out (stratified for classes) to
    monitor the loss, keep the best memories and stop early. None or 0
    monitors the training loss instead (parametric mode).
""",
    "n_iter_no_change": """
n_iter_no_change : int, default=5
    Stop after this many epochs without an improvement of the monitored
    loss by at least ``1e-4`` (parametric mode).
""",
    "verbose": """
verbose : int, default=0
    Progress of the training, in the one format of skam's long fits: 0 is
    silent; 1 prints the epoch, the losses, the elapsed time and an
    estimate of the time left at most every 2 seconds, and why training
    stopped; 2 prints every epoch. With tqdm installed and a terminal
    attached, a progress bar replaces the epoch lines.
""",
}


_MARKER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.MULTILINE)


def shared_param(name, indent=4):
    """The snippet ``name``, indented by ``indent`` spaces."""
    return textwrap.indent(_SNIPPETS[name].strip("\n"), " " * indent)


def fill_doc(obj):
    """Replace the ``%(name)s`` marker lines of ``obj.__doc__`` by snippets."""

    def render(match):
        name = match.group("name")
        if name not in _SNIPPETS:
            raise KeyError(f"{obj.__qualname__}: no docstring snippet {name!r}")
        return shared_param(name, len(match.group("indent")))

    obj.__doc__ = _MARKER.sub(render, obj.__doc__)
    return obj
