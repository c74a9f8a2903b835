"""Separation functions as objects: one file holds each (F, F', F'', log-space form).

A separation ``F`` turns the scaled similarity ``z = beta * S`` into a kernel
value; skam's energy is ``-(1/beta) log(eps + sum_mu w_mu F(z_mu))``
(:mod:`skam._energy`). Each object gives, in log space (so huge or tiny
``beta`` never overflows), ``log|F|``, ``log|F'|`` and ``log|F''|`` with their
signs, and names the ``beta="scale"`` rule that fits it (the rule itself lives
in one place, :func:`skam._beta.resolve_beta`). A new energy is one new
file here registered in :data:`SEPARATIONS`: the graph engine's memory synapse
(:class:`skam._graph.synapses.Memory`) takes its first and second derivatives
from these objects, so it gains the new energy's gradient, Hessian and
training derivatives at once.

Signs are None where the function is non-negative.
"""

from skam._separations.base import Separation
from skam._separations.lse import LogSumExp
from skam._separations.lsr import LogSumReLU
from skam._separations.poly import Polynomial
from skam._separations.rectified_poly import RectifiedPolynomial

SEPARATIONS = {
    "lse": LogSumExp,
    "poly": Polynomial,
    "rectified_poly": RectifiedPolynomial,
    "lsr": LogSumReLU,
}


def get_separation(name, degree=3):
    """The separation object of a name (``degree`` for the polynomial ones)."""
    if name not in SEPARATIONS:
        raise ValueError(
            f"Unknown separation {name!r}; choose one of {sorted(SEPARATIONS)}."
        )
    cls = SEPARATIONS[name]
    return cls(degree=degree) if cls.has_degree else cls()


def from_spec(spec):
    """The separation object of an :class:`~skam._energy.EnergySpec`."""
    return get_separation(spec.separation, spec.power)


__all__ = ["SEPARATIONS", "Separation", "from_spec", "get_separation"]
