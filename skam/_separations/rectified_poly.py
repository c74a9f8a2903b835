"""Rectified polynomial: ``F(z) = max(1 + z, 0)^n`` (quartic, triweight kernels)."""

from skam._separations.poly import Polynomial


class RectifiedPolynomial(Polynomial):
    """``F^(k)(z) = n!/(n-k)! max(1 + z, 0)^(n-k)``, zero outside the support."""

    name = "rectified_poly"
    kernel = "compact: quartic (n=2), triweight (n=3)"
    rectified = True
    kernel_family = "compact"
