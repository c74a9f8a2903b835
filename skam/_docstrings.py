"""Parameter documentation written once and shared by every estimator.

Class docstrings hold placeholders such as ``{energy_params}``-free markers of
the form ``%(name)s`` on a line of their own; :func:`fill_doc` replaces them
with the snippets below (already indented for a class docstring).
"""

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
}


def shared_param(name, indent=4):
    """The documentation of a shared parameter, indented for a docstring."""
    return textwrap.indent(_SNIPPETS[name].strip("\n"), " " * indent)


def fill_doc(obj):
    """Replace ``%(name)s`` markers in ``obj.__doc__`` by shared snippets."""
    doc = obj.__doc__
    for name in _SNIPPETS:
        marker = f"    %({name})s"
        if marker in doc:
            doc = doc.replace(marker, shared_param(name))
    obj.__doc__ = doc
    return obj
