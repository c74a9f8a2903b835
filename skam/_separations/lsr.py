"""Log-sum-ReLU: ``F(z) = max(1 + z, 0)`` (the Epanechnikov energy)."""

from skam._separations.rectified_poly import RectifiedPolynomial


class LogSumReLU(RectifiedPolynomial):
    """The rectified polynomial of degree 1: ``F' = 1`` inside the support, ``F'' = 0``."""

    name = "lsr"
    kernel = "Epanechnikov, radius sqrt(2/beta)"
    has_degree = False
    default_similarity = "sqeuclidean"
    can_overshoot = False
    constant_slope = True

    def __init__(self, degree=1):
        super().__init__(degree=1)

    def beta_rule(self, similarity="sqeuclidean"):
        return "support"

    def __repr__(self):
        return "LogSumReLU()"
