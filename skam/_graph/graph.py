"""An energy graph: named neuron layers plus named hypersynapses.

``E(x) = sum_layers [x_l . g_l - L_l(x_l)] + sum_synapses E_s(g)`` with
``g_l = dL_l/dx_l``. The gradient that drives every layer is
``dE/dg_l = x_l + sum_{s touching l} dE_s/dg_l`` (the Legendre term of a
layer has gradient ``x_l`` with respect to its activation). A layer with
``legendre = False`` (the Energy Transformer's tokens) has no Legendre term:
``dE/dg_l = sum_s dE_s/dg_l``.

States, activations and gradients are dicts ``layer name -> array (n, d_l)``.
"""

from skam._graph.lagrangians import make_lagrangian


class EnergyGraph:
    """Layers and synapses, with the total energy and its closed-form derivatives.

    Parameters
    ----------
    layers : dict of str -> Lagrangian (or a name accepted by ``make_lagrangian``)
    synapses : dict of str -> synapse
        Each synapse names the layers it connects in ``synapse.layers``.
    sizes : dict of str -> int or None
        Width of every layer (used to size chunks and to build states).
    """

    def __init__(self, layers, synapses, sizes=None):
        self.layers = {name: make_lagrangian(lag) for name, lag in layers.items()}
        self.synapses = dict(synapses)
        self.sizes = dict(sizes or {})
        overlap = set(self.layers) & set(self.synapses)
        if overlap:
            raise ValueError(f"Layer and synapse names must differ: {sorted(overlap)}.")
        for name, syn in self.synapses.items():
            unknown = [layer for layer in syn.layers if layer not in self.layers]
            if unknown:
                raise ValueError(f"Synapse {name!r} connects unknown layers {unknown}.")

    # ---------------------------------------------------------------- values
    def activations(self, x, xp):
        """``g_l = dL_l/dx_l`` for every layer."""
        return {name: lag.activation(x[name], xp) for name, lag in self.layers.items()}

    def energy_terms(self, x, xp, g=None):
        """Energy of every part, a dict ``part name -> (n,)`` (layers, then synapses)."""
        g = self.activations(x, xp) if g is None else g
        out = {
            name: lag.energy(x[name], xp, g[name]) for name, lag in self.layers.items()
        }
        for name, syn in self.synapses.items():
            out[name] = syn.energy(g, xp)
        return out

    def energy(self, x, xp, g=None):
        """Total energy of every query, shape (n,)."""
        terms = list(self.energy_terms(x, xp, g).values())
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def synapse_grads(self, g, xp, layers=None):
        """``sum_s dE_s/dg_l`` for every layer (zeros where no synapse acts).

        ``layers`` (a collection of names) limits the work to those layers:
        synapses that touch none of them are skipped.
        """
        wanted = set(self.layers) if layers is None else set(layers)
        out = {}
        for syn in self.synapses.values():
            if not wanted.intersection(syn.layers):
                continue
            if getattr(syn, "grad_accepts_only", False):
                grads = syn.grad(g, xp, only=wanted)
            else:
                grads = syn.grad(g, xp)
            for name, grad in grads.items():
                if name in wanted:
                    out[name] = grad if name not in out else out[name] + grad
        for name in wanted:
            if name not in out:
                out[name] = xp.zeros_like(g[name])
        return out

    def grad_g(self, x, xp, g=None):
        """``dE/dg_l = x_l + sum_s dE_s/dg_l``: what drives each layer."""
        g = self.activations(x, xp) if g is None else g
        syn = self.synapse_grads(g, xp)
        return {
            name: x[name] + syn[name] if getattr(lag, "legendre", True) else syn[name]
            for name, lag in self.layers.items()
        }

    def grad_x(self, x, xp):
        """``dE/dx_l = H_l(x_l) dE/dg_l`` (chain rule through the activation)."""
        g = self.activations(x, xp)
        dg = self.grad_g(x, xp, g)
        return {
            name: lag.hvp(x[name], dg[name], xp) for name, lag in self.layers.items()
        }

    def grad_vjp(self, g, cot, xp):
        """Hessian of the synapse energies times ``cot``, and parameter derivatives.

        Returns ``(dict layer -> sum_s d<cot, dE_s/dg>/dg_l, dict (synapse,
        param) -> d<cot, dE_s/dg>/dparam)``.
        """
        layer_out, param_out = {}, {}
        for sname, syn in self.synapses.items():
            d_layers, d_params = syn.grad_vjp(g, cot, xp)
            for name, value in d_layers.items():
                layer_out[name] = (
                    value if name not in layer_out else layer_out[name] + value
                )
            for pname, value in d_params.items():
                param_out[(sname, pname)] = value
        return layer_out, param_out

    # ----------------------------------------------------------- parameters
    def params(self):
        """All trainable parameters, a dict ``(synapse, param) -> array``."""
        return {
            (sname, pname): value
            for sname, syn in self.synapses.items()
            for pname, value in syn.params.items()
        }

    def with_params(self, params):
        """A copy of the graph with some parameters (``(synapse, param)`` keys) replaced."""
        synapses = dict(self.synapses)
        for (sname, pname), value in params.items():
            synapses[sname] = synapses[sname].with_params({pname: value})
        return EnergyGraph(self.layers, synapses, self.sizes)

    def bytes_per_row(self, itemsize, sizes=None):
        """Bytes of temporaries per query of one descent step (all terms)."""
        sizes = {**self.sizes, **(sizes or {})}
        total = sum(
            lag.bytes_per_row(sizes[name], itemsize)
            for name, lag in self.layers.items()
        )
        for syn in self.synapses.values():
            total += syn.bytes_per_row(sizes, itemsize)
        return total
