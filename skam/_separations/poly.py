"""Polynomial: ``F(z) = (1 + z)^n`` (Krotov and Hopfield's polynomial energy)."""

import math

from skam._separations.base import Separation


class Polynomial(Separation):
    """``F^(k)(z) = n!/(n-k)! (1 + z)^(n-k)``, negative for odd powers below -1."""

    name = "poly"
    kernel = "polynomial kernel with the dot product"
    has_degree = True
    default_similarity = "dot"
    can_overshoot = True
    #: ``max(1 + z, 0)`` in place of ``1 + z`` (the rectified subclasses).
    rectified = False

    def __init__(self, degree=3):
        self.degree = int(degree)

    @property
    def power(self):
        return self.degree

    def beta_rule(self, similarity="sqeuclidean"):
        return "overlap" if similarity == "dot" else "support"

    def _shared(self, z, xp):
        """``1 + z``, where its log is taken, ``log|1 + z|`` and the sign (once)."""
        base = 1.0 + z
        if self.rectified:
            mask = base > 0
            log_base = xp.log(xp.where(mask, base, xp.ones_like(base)))
            return mask, log_base, None
        mask = base != 0
        log_base = xp.log(xp.where(mask, xp.abs(base), xp.ones_like(base)))
        sign = None
        if self.power % 2 or self.power > 1:  # some order has an odd power
            sign = 1.0 - 2.0 * xp.astype(base < 0, base.dtype)
        return mask, log_base, sign

    def _order(self, shared, order, xp):
        mask, log_base, sign = shared
        n = self.power
        if order > n:
            return xp.full_like(log_base, -math.inf), None
        power, log_c = n - order, math.log(math.perm(n, order))
        if power == 0:
            value = (
                xp.zeros_like(log_base) + log_c if log_c else xp.zeros_like(log_base)
            )
            if self.rectified:
                value = xp.where(mask, value, -math.inf)
            return value, None
        scaled = log_base if power == 1 else power * log_base
        value = xp.where(mask, log_c + scaled if log_c else scaled, -math.inf)
        return value, (sign if power % 2 else None)

    def log_abs(self, z, order, xp):
        return self._order(self._shared(z, xp), order, xp)

    def log_abs_value_and_slope(self, z, xp):
        shared = self._shared(z, xp)  # one log and one sign for both orders
        return (*self._order(shared, 0, xp), *self._order(shared, 1, xp))

    def __repr__(self):
        return f"{type(self).__name__}(degree={self.degree})"
