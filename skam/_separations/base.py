"""The interface of a separation function (see :mod:`skam._separations`)."""

import math


class Separation:
    """``F`` with its first two derivatives in log space, and what it implies.

    Subclasses define ``name``, ``kernel`` (what ``F`` gives),
    ``log_abs(z, order, xp)`` and :meth:`beta_rule`; the class attributes
    below say which of the engine's special cases apply, so no estimator
    switches on separation names.
    """

    name = ""
    kernel = ""
    #: The separation takes a ``degree`` (the estimators' ``degree`` parameter).
    has_degree = False
    #: ``F = exp``: the kernel sum needs no epsilon, is never negative, and
    #: the gradient weights are a softmax (the LSE fast paths).
    is_exponential = False
    #: The similarity of ``similarity="auto"``.
    default_similarity = "sqeuclidean"
    #: ``"gaussian"``, ``"compact"`` (``max(1 - beta/2 r^2, 0)^power``) or None:
    #: the normalisable kernel of the squared-Euclidean energy (sampling,
    #: normalised log-densities); None where ``exp(-beta E)`` is no density.
    kernel_family = None
    #: The plain descent step can raise the energy (descent guards it).
    can_overshoot = False
    #: ``F'`` is constant on the support of each memory: the mean-shift
    #: iteration reaches its fixed point exactly (the LSR fixed point), and
    #: a state retrieves a memory only inside its support, radius^2 ``2/beta``.
    constant_slope = False

    @property
    def power(self):
        """Exponent ``n`` of ``(1 + z)^n`` (1 where there is no degree)."""
        return 1

    def beta_rule(self, similarity="sqeuclidean"):
        """Name of the ``beta="scale"`` rule of :func:`skam._beta.resolve_beta`."""
        raise NotImplementedError

    def log_abs(self, z, order, xp):
        """``log|F^(order)(z)|`` (order 0, 1 or 2) and its sign (None: >= 0)."""
        raise NotImplementedError

    def log_abs_value_and_slope(self, z, xp):
        """``(log|F|, sign F, log|F'|, sign F')`` in one call (engines may fuse)."""
        log_f, sign_f = self.log_abs(z, 0, xp)
        log_df, sign_df = self.log_abs(z, 1, xp)
        return log_f, sign_f, log_df, sign_df

    def log_kernel_integral(self, beta, n_features):
        """``log`` of the integral of ``F(beta S(x, xi))`` over ``x`` (sqeuclidean).

        Only decaying kernels are integrable (``kernel_family`` not None);
        the others return None.
        """
        d = float(n_features)
        if self.kernel_family == "gaussian":
            return 0.5 * d * math.log(2.0 * math.pi / beta)
        if self.kernel_family == "compact":
            n = self.power
            return (
                0.5 * d * math.log(math.pi)
                + 0.5 * d * math.log(2.0 / beta)
                + math.lgamma(n + 1.0)
                - math.lgamma(n + 1.0 + 0.5 * d)
            )
        return None

    def value(self, z, order, xp):
        """``F^(order)(z)`` itself (for tests and small arrays)."""
        log_abs, sign = self.log_abs(z, order, xp)
        out = xp.exp(log_abs)
        return out if sign is None else out * sign

    def __repr__(self):
        return f"{type(self).__name__}()"
