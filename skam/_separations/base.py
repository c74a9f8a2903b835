"""The interface of a separation function (see :mod:`skam._separations`)."""

import math


class Separation:
    """``F`` with its first two derivatives in log space.

    Subclasses define ``name``, ``kernel`` (what ``F`` gives) and
    ``log_abs(z, order, xp)``; :meth:`beta_rule` names the ``beta="scale"``
    rule that fits the energy (kept in one place, the beta module).
    """

    name = ""
    kernel = ""
    has_degree = False
    #: ``F = exp``: the kernel sum needs no epsilon and is never negative.
    is_exponential = False

    def beta_rule(self, similarity="sqeuclidean"):
        """Name of the ``beta="scale"`` rule of :func:`skam._validation.resolve_beta`."""
        from skam._validation import scale_rule

        return scale_rule(self.name, similarity)

    def log_abs(self, z, order, xp):
        """``log|F^(order)(z)|`` (order 0, 1 or 2) and its sign (None: >= 0)."""
        raise NotImplementedError

    def value(self, z, order, xp):
        """``F^(order)(z)`` itself (for tests and small arrays)."""
        log_abs, sign = self.log_abs(z, order, xp)
        out = xp.exp(log_abs)
        return out if sign is None else out * sign

    def __repr__(self):
        return f"{type(self).__name__}()"


def log_power_of_base(base, power, coefficient, xp, *, rectified):
    """``log|c * base^power|`` and its sign, ``-inf`` where it vanishes.

    ``rectified`` uses ``max(base, 0)``; otherwise odd powers of negative
    bases are negative.
    """
    if coefficient == 0:
        return xp.full_like(base, -math.inf), None
    log_c = math.log(coefficient)
    if rectified:
        inside = base > 0
        if power == 0:
            return xp.where(inside, xp.zeros_like(base) + log_c, -math.inf), None
        log_base = xp.log(xp.where(inside, base, xp.ones_like(base)))
        return xp.where(inside, log_c + power * log_base, -math.inf), None
    if power == 0:
        return xp.zeros_like(base) + log_c, None
    nonzero = base != 0
    log_base = xp.log(xp.where(nonzero, xp.abs(base), xp.ones_like(base)))
    value = xp.where(nonzero, log_c + power * log_base, -math.inf)
    sign = None
    if power % 2:
        sign = 1.0 - 2.0 * xp.astype(base < 0, base.dtype)
    return value, sign
