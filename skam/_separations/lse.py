"""Log-sum-exp: ``F(z) = exp(z)`` (the modern Hopfield energy, Gaussian kernel)."""

from skam._separations.base import Separation


class LogSumExp(Separation):
    """``F = F' = F'' = exp``: every log-derivative is ``z`` itself."""

    name = "lse"
    kernel = "Gaussian, bandwidth 1/sqrt(beta)"
    is_exponential = True
    kernel_family = "gaussian"

    def beta_rule(self, similarity="sqeuclidean"):
        return "separation"

    def log_abs(self, z, order, xp):
        return z, None
