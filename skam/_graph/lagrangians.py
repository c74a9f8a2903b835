"""Neuron layers: convex Lagrangians with closed-form activations and Hessians.

A neuron layer holds a state ``x`` of shape (n, d) (one row per query; tokens
are flattened into ``d``) and a convex Lagrangian ``L(x)``, one value per row.
Its activation is ``g = dL/dx`` and its energy the Legendre transform
``E_layer = sum(x * g) - L(x)``, whose gradient with respect to ``g`` is ``x``.
``hvp(x, v)`` is the Hessian of ``L`` times ``v``, i.e. the Jacobian of the
activation applied to ``v`` (positive semi-definite because ``L`` is convex):
the only non-linear piece backpropagation through the dynamics needs.

Every method takes the array namespace ``xp`` and works row by row, so the
layers run on NumPy, CuPy or array-api-strict alike.

==================  =========================================  ============================
class               ``L(x)`` (per row)                         activation ``g``
==================  =========================================  ============================
``Identity(s)``     ``s/2 * sum x^2``                          ``s * x``
``Softmax(beta)``   ``1/beta * logsumexp(beta * x)``           ``softmax(beta * x)``
``RePU(n)``         ``1/n * sum max(x, 0)^n``                  ``max(x, 0)^(n-1)``
``ReLU()``          ``RePU(2)``                                ``max(x, 0)``
``Exp(beta)``       ``1/beta * sum exp(beta * x)``             ``exp(beta * x)``
``Tanh(beta)``      ``1/beta * sum log cosh(beta * x)``        ``tanh(beta * x)``
``Sigmoid(beta)``   ``1/beta * sum log(1 + exp(beta * x))``    ``sigmoid(beta * x)``
``LayerNorm(γ, δ)`` ``d * γ * std(x) + δ . x``                 ``γ (x - mean) / std + δ``
``SphericalNorm``   ``γ * ||x|| + δ . x``                      ``γ x / ||x|| + δ``
==================  =========================================  ============================

``std`` and ``||x||`` carry a small ``eps`` under the square root, so the
normalising layers are smooth at 0.
"""

import math

from array_api_compat import device as _device


def _row_sum(a, xp):
    return xp.sum(a, axis=1)


def _row_dot(a, b, xp):
    return xp.sum(a * b, axis=1, keepdims=True)


def _row_mean(a, xp):
    """Row means (n, 1) as a product with a constant vector.

    NumPy reduces the short rows of token layers (d = 16..768) along axis 1
    an order of magnitude slower than this matrix-vector product.
    """
    w = xp.full((a.shape[1], 1), 1.0 / a.shape[1], dtype=a.dtype, device=_device(a))
    return a @ w


def _softplus(y, xp):
    """``log(1 + exp(y))`` without overflow."""
    return xp.maximum(y, 0.0 * y) + xp.log1p(xp.exp(-xp.abs(y)))


class Lagrangian:
    """Base class of neuron layers (see the module docstring)."""

    #: Parameters of the layer, as keyword arguments of its constructor.
    _param_names = ()

    def get_params(self, deep=False):
        """The constructor's arguments (so that ``clone`` can copy the layer)."""
        return {name: getattr(self, name) for name in self._param_names}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self):
        return hash((type(self).__name__, tuple(self.get_params().items())))

    def lagrangian(self, x, xp):
        """``L(x)`` of every row, shape (n,)."""
        raise NotImplementedError

    def activation(self, x, xp):
        """``g = dL/dx``, shape (n, d)."""
        raise NotImplementedError

    def hvp(self, x, v, xp):
        """Hessian of ``L`` at ``x`` times ``v`` (= Jacobian of ``g`` times ``v``)."""
        raise NotImplementedError

    def energy(self, x, xp, g=None):
        """Legendre energy ``sum(x * g) - L(x)`` of every row, shape (n,)."""
        if g is None:
            g = self.activation(x, xp)
        return _row_sum(x * g, xp) - self.lagrangian(x, xp)

    def bytes_per_row(self, d, itemsize):
        """Bytes of temporaries per query (a couple of (d,) arrays)."""
        return 2 * d * itemsize


class Identity(Lagrangian):
    """``L = scale/2 * ||x||^2``: ``g = scale * x``; the visible layer of DenseAM."""

    _param_names = ("scale",)

    def __init__(self, scale=1.0):
        self.scale = scale

    def lagrangian(self, x, xp):
        return (0.5 * self.scale) * _row_sum(x * x, xp)

    def activation(self, x, xp):
        return x if self.scale == 1.0 else self.scale * x

    def hvp(self, x, v, xp):
        return v if self.scale == 1.0 else self.scale * v

    def energy(self, x, xp, g=None):
        return (0.5 * self.scale) * _row_sum(x * x, xp)


class Softmax(Lagrangian):
    """``L = 1/beta * logsumexp(beta * x)``: ``g = softmax(beta * x)``."""

    _param_names = ("beta",)

    def __init__(self, beta=1.0):
        self.beta = beta

    def _shifted(self, x, xp):
        z = self.beta * x
        return z - xp.max(z, axis=1, keepdims=True)

    def lagrangian(self, x, xp):
        z = self.beta * x
        top = xp.max(z, axis=1, keepdims=True)
        lse = top[:, 0] + xp.log(_row_sum(xp.exp(z - top), xp))
        return lse / self.beta

    def activation(self, x, xp):
        e = xp.exp(self._shifted(x, xp))
        return e / xp.sum(e, axis=1, keepdims=True)

    def hvp(self, x, v, xp):
        p = self.activation(x, xp)
        return self.beta * p * (v - _row_dot(p, v, xp))

    def energy(self, x, xp, g=None):
        # x.p - lse(beta x)/beta = (1/beta) sum p log p (log p from the shift)
        z = self._shifted(x, xp)
        log_p = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
        p = xp.exp(log_p)
        return _row_sum(p * log_p, xp) / self.beta


class RePU(Lagrangian):
    """Rectified power ``L = 1/n * sum max(x, 0)^n`` (n >= 2): ``g = max(x, 0)^(n-1)``."""

    _param_names = ("degree",)

    def __init__(self, degree=3):
        self.degree = degree

    def lagrangian(self, x, xp):
        r = xp.maximum(x, 0.0 * x)
        return _row_sum(r**self.degree, xp) / self.degree

    def activation(self, x, xp):
        r = xp.maximum(x, 0.0 * x)
        return r if self.degree == 2 else r ** (self.degree - 1)

    def hvp(self, x, v, xp):
        if self.degree == 2:
            return xp.where(x > 0, v, 0.0 * v)
        r = xp.maximum(x, 0.0 * x)
        return (self.degree - 1) * r ** (self.degree - 2) * v


class ReLU(RePU):
    """``L = 1/2 * sum max(x, 0)^2``: ``g = max(x, 0)`` (``RePU(2)``)."""

    _param_names = ()

    def __init__(self):
        super().__init__(degree=2)


class Exp(Lagrangian):
    """``L = 1/beta * sum exp(beta * x)``: ``g = exp(beta * x)``."""

    _param_names = ("beta",)

    def __init__(self, beta=1.0):
        self.beta = beta

    def lagrangian(self, x, xp):
        return _row_sum(xp.exp(self.beta * x), xp) / self.beta

    def activation(self, x, xp):
        return xp.exp(self.beta * x)

    def hvp(self, x, v, xp):
        return self.beta * xp.exp(self.beta * x) * v


class Tanh(Lagrangian):
    """``L = 1/beta * sum log cosh(beta * x)``: ``g = tanh(beta * x)``."""

    _param_names = ("beta",)

    def __init__(self, beta=1.0):
        self.beta = beta

    def lagrangian(self, x, xp):
        a = xp.abs(self.beta * x)
        log_cosh = a + xp.log1p(xp.exp(-2.0 * a)) - math.log(2.0)
        return _row_sum(log_cosh, xp) / self.beta

    def activation(self, x, xp):
        return xp.tanh(self.beta * x)

    def hvp(self, x, v, xp):
        t = xp.tanh(self.beta * x)
        return self.beta * (1.0 - t * t) * v


class Sigmoid(Lagrangian):
    """``L = 1/beta * sum log(1 + exp(beta * x))``: ``g = sigmoid(beta * x)``."""

    _param_names = ("beta",)

    def __init__(self, beta=1.0):
        self.beta = beta

    def lagrangian(self, x, xp):
        return _row_sum(_softplus(self.beta * x, xp), xp) / self.beta

    def activation(self, x, xp):
        z = self.beta * x
        # 1 / (1 + exp(-z)) written so that neither branch overflows
        e = xp.exp(-xp.abs(z))
        return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def hvp(self, x, v, xp):
        s = self.activation(x, xp)
        return self.beta * s * (1.0 - s) * v


class LayerNorm(Lagrangian):
    """``L = d * gamma * std(x) + delta . x``: ``g = gamma (x - mean)/std + delta``.

    ``std = sqrt(var(x) + eps)``; ``gamma`` is a scalar (the Energy
    Transformer's energy layer norm), ``delta`` a scalar or a (d,) array.
    """

    _param_names = ("gamma", "delta", "eps")

    def __init__(self, gamma=1.0, delta=0.0, eps=1e-5):
        self.gamma = gamma
        self.delta = delta
        self.eps = eps

    def _centred(self, x, xp):
        c = x - _row_mean(x, xp)
        s = xp.sqrt(_row_mean(c * c, xp) + self.eps)
        return c, s

    def lagrangian(self, x, xp):
        _, s = self._centred(x, xp)
        out = (x.shape[1] * self.gamma) * s[:, 0]
        return out + _row_sum(self.delta * x, xp)

    def activation(self, x, xp):
        c, s = self._centred(x, xp)
        return self.gamma * c / s + self.delta

    def hvp(self, x, v, xp):
        c, s = self._centred(x, xp)
        z = c / s
        pv = v - _row_mean(v, xp)
        return (self.gamma / s) * (pv - z * _row_mean(z * v, xp))

    def energy(self, x, xp, g=None):
        # x.g - L = gamma * (x.c/s - d*s) = -gamma * d * eps / s  (delta cancels)
        _, s = self._centred(x, xp)
        return (-self.gamma * x.shape[1] * self.eps) / s[:, 0]

    @property
    def params(self):
        """The arrays a training loop may learn: ``gamma`` and ``delta``."""
        return {"gamma": self.gamma, "delta": self.delta}

    def param_vjp(self, x, cot, xp):
        """``d<cot, g(x)>/d(gamma, delta)``, summed over the rows."""
        c, s = self._centred(x, xp)
        ones = xp.ones((1, cot.shape[0]), dtype=cot.dtype, device=_device(cot))
        delta = (ones @ cot)[0, :]
        if getattr(self.delta, "ndim", 0) == 0:
            delta = xp.sum(delta)
        return {"gamma": xp.sum(cot * (c / s)), "delta": delta}


class SphericalNorm(Lagrangian):
    """``L = gamma * ||x|| + delta . x``: ``g = gamma x / ||x|| + delta``.

    ``||x|| = sqrt(sum x^2 + eps)``.
    """

    _param_names = ("gamma", "delta", "eps")

    def __init__(self, gamma=1.0, delta=0.0, eps=1e-5):
        self.gamma = gamma
        self.delta = delta
        self.eps = eps

    def _norm(self, x, xp):
        return xp.sqrt(xp.sum(x * x, axis=1, keepdims=True) + self.eps)

    def lagrangian(self, x, xp):
        return self.gamma * self._norm(x, xp)[:, 0] + _row_sum(self.delta * x, xp)

    def activation(self, x, xp):
        return self.gamma * x / self._norm(x, xp) + self.delta

    def hvp(self, x, v, xp):
        r = self._norm(x, xp)
        u = x / r
        return (self.gamma / r) * (v - u * _row_dot(u, v, xp))

    def energy(self, x, xp, g=None):
        # x.g - L = gamma * (||x||^2_0 / r - r) = -gamma * eps / r
        return (-self.gamma * self.eps) / self._norm(x, xp)[:, 0]


#: Names accepted wherever a layer is given by a string.
LAGRANGIANS = {
    "identity": Identity,
    "softmax": Softmax,
    "repu": RePU,
    "relu": ReLU,
    "exp": Exp,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "layernorm": LayerNorm,
    "spherical_norm": SphericalNorm,
}


def make_lagrangian(spec):
    """A :class:`Lagrangian` from an instance, a name, or ``(name, kwargs)``."""
    if isinstance(spec, Lagrangian):
        return spec
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, tuple | list) and len(spec) == 2:
        name, kwargs = spec
    else:
        raise TypeError(
            "A layer's Lagrangian must be a name, (name, kwargs) or a Lagrangian "
            f"object, got {spec!r}."
        )
    if name not in LAGRANGIANS:
        raise ValueError(
            f"Unknown Lagrangian {name!r}; choose one of {sorted(LAGRANGIANS)}."
        )
    return LAGRANGIANS[name](**dict(kwargs))
