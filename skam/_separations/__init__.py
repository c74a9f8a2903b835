"""Separation functions as objects: one file holds each (F, F', F'', log-space form).

A separation ``F`` turns the scaled similarity ``z = beta * S`` into a kernel
value; skam's energy is ``-(1/beta) log(eps + sum_mu w_mu F(z_mu))``
(:mod:`skam._energy`). Each object gives, in log space (so huge or tiny
``beta`` never overflows), ``log|F|``, ``log|F'|`` and ``log|F''|`` with their
signs, names the ``beta="scale"`` rule that fits it (the rules themselves
live in one place, :func:`skam._beta.resolve_beta`), and says which of the
engine's special cases apply (:class:`~skam._separations.base.Separation`:
exponential fast path, default similarity, normalisable kernel, overshoot
guard, constant slope).

Every estimator reaches ``F`` through :attr:`skam._energy.EnergySpec.function`
only (energies, gradients, descent, the graph's memory synapse, training,
sampling, beta rules), so a new energy is one new file here registered with
:func:`register_separation`: every estimator's ``separation`` parameter then
accepts its name.

Signs are None where the function is non-negative.
"""

from skam._separations.base import Separation
from skam._separations.lse import LogSumExp
from skam._separations.lsr import LogSumReLU
from skam._separations.poly import Polynomial
from skam._separations.rectified_poly import RectifiedPolynomial

#: name -> class, in the order of the documentation.
SEPARATIONS = {}
#: The names of :data:`SEPARATIONS`, one live set: the estimators' parameter
#: constraints hold it, so a registered separation is accepted at once.
SEPARATION_NAMES = set()


def register_separation(cls):
    """Add a :class:`Separation` subclass under ``cls.name``; returns ``cls``."""
    if not (isinstance(cls, type) and issubclass(cls, Separation)) or not cls.name:
        raise TypeError(f"{cls!r} is not a named Separation subclass.")
    SEPARATIONS[cls.name] = cls
    SEPARATION_NAMES.add(cls.name)
    return cls


def unregister_separation(name):
    """Remove a registered separation (tests of toy separations)."""
    SEPARATIONS.pop(name, None)
    SEPARATION_NAMES.discard(name)


for _cls in (LogSumExp, Polynomial, RectifiedPolynomial, LogSumReLU):
    register_separation(_cls)


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
    return spec.function


__all__ = [
    "SEPARATIONS",
    "SEPARATION_NAMES",
    "Separation",
    "from_spec",
    "get_separation",
    "register_separation",
    "unregister_separation",
]
