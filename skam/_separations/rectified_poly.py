"""Rectified polynomial: ``F(z) = max(1 + z, 0)^n`` (quartic, triweight kernels)."""

import math

from skam._separations.base import Separation, log_power_of_base


class RectifiedPolynomial(Separation):
    """``F^(k)(z) = n!/(n-k)! max(1 + z, 0)^(n-k)``, zero outside the support."""

    name = "rectified_poly"
    kernel = "compact: quartic (n=2), triweight (n=3)"
    has_degree = True

    def __init__(self, degree=3):
        self.degree = int(degree)

    def log_abs(self, z, order, xp):
        n = self.degree
        coefficient = math.perm(n, order) if order <= n else 0
        return log_power_of_base(
            1.0 + z, max(n - order, 0), coefficient, xp, rectified=True
        )

    def __repr__(self):
        return f"RectifiedPolynomial(degree={self.degree})"
