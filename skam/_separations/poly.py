"""Polynomial: ``F(z) = (1 + z)^n`` (Krotov and Hopfield's polynomial energy)."""

import math

from skam._separations.base import Separation, log_power_of_base


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

    def _log_base(self, z, xp):
        base = 1.0 + z
        keep = base > 0 if self.rectified else base != 0
        magnitude = base if self.rectified else xp.abs(base)
        return base, xp.log(xp.where(keep, magnitude, xp.ones_like(base)))

    def _order(self, base, log_base, order, xp):
        n = self.power
        coefficient = math.perm(n, order) if order <= n else 0
        return log_power_of_base(
            base,
            max(n - order, 0),
            coefficient,
            xp,
            rectified=self.rectified,
            log_base=log_base,
        )

    def log_abs(self, z, order, xp):
        base, log_base = self._log_base(z, xp)
        return self._order(base, log_base, order, xp)

    def log_abs_value_and_slope(self, z, xp):
        base, log_base = self._log_base(z, xp)  # one log for both orders
        return (
            *self._order(base, log_base, 0, xp),
            *self._order(base, log_base, 1, xp),
        )

    def __repr__(self):
        return f"{type(self).__name__}(degree={self.degree})"
