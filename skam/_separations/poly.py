"""Polynomial: ``F(z) = (1 + z)^n`` (Krotov and Hopfield's polynomial energy)."""

import math

from skam._separations.base import Separation, log_power_of_base


class Polynomial(Separation):
    """``F^(k)(z) = n!/(n-k)! (1 + z)^(n-k)``, negative for odd powers below -1."""

    name = "poly"
    kernel = "polynomial kernel with the dot product"
    has_degree = True
    #: ``max(1 + z, 0)`` in place of ``1 + z`` (the rectified subclasses).
    rectified = False

    def __init__(self, degree=3):
        self.degree = int(degree)

    def log_abs(self, z, order, xp):
        n = self.degree
        coefficient = math.perm(n, order) if order <= n else 0
        return log_power_of_base(
            1.0 + z, max(n - order, 0), coefficient, xp, rectified=self.rectified
        )

    def __repr__(self):
        return f"{type(self).__name__}(degree={self.degree})"
