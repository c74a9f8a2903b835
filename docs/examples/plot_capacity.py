"""
Dense storage: how many random patterns each energy holds
=========================================================

The classical Hopfield network stores about ``0.14 D`` random patterns of
``D`` bits. A Dense Associative Memory with the separation function
``F(x) = x^n`` stores about ``D^(n-1) / (2 (2n-3)!! log D)``, and one with
``F(x) = exp(x)`` exponentially many (Krotov and Hopfield, 2016; Demircigil et
al., 2017). This example measures it with :func:`skam.capacity.capacity_curve`
at ``D = 64`` and draws the fraction of stored patterns recalled exactly from
10% bit flips against the number of patterns per neuron.
"""

# %%
# Measure the curves
# ------------------
# Each estimator is cloned for every ``K``, stores the first ``K`` of a set of
# random +-1 patterns, and is queried with 40 of them, 10% of their bits
# flipped. The theory lines come from :mod:`skam.capacity`.
import matplotlib.pyplot as plt
import numpy as np

from skam import DiscreteDenseAM, HopfieldNetwork
from skam.capacity import capacity_curve, hopfield_capacity, polynomial_capacity

D = 64
models = {
    "Hopfield (quadratic)": (HopfieldNetwork(random_state=0), hopfield_capacity(D)),
    "poly n=3": (DiscreteDenseAM(degree=3, update="sync"), polynomial_capacity(D, 3)),
    "poly n=4": (
        DiscreteDenseAM(degree=4, update="sync", max_iter=30),
        polynomial_capacity(D, 4),
    ),
    "exp": (DiscreteDenseAM(separation="exp", update="sync"), None),
}
grid = np.unique(np.geomspace(2, 4000, 14).astype(int))
curves = {}
for name, (model, theory) in models.items():
    curves[name] = capacity_curve(
        model, grid, n_features=D, n_queries=40, random_state=0
    )
    print(
        f"{name:22s} K50 = {curves[name].k50:7.1f}   theory: {theory or float('nan'):7.1f}"
    )

# %%
# Plot them
# ---------
# Dotted lines: the theoretical capacities. The exponential energy recalls
# everything on this range (its theory, ``exp(D I(0.8) / 2)`` from 10% flips,
# is about ``1.3e5`` at ``D = 64``).
fig, ax = plt.subplots(figsize=(7, 4))
for (name, curve), color in zip(curves.items(), ["C0", "C1", "C2", "C3"], strict=True):
    ax.plot(grid / D, curve.recalled, "o-", ms=3, color=color, label=name)
    theory = models[name][1]
    if theory is not None:
        ax.axvline(theory / D, color=color, ls=":", lw=1)
ax.set_xscale("log")
ax.set_xlabel(f"K / D (D = {D})")
ax.set_ylabel("fraction recalled from 10% flips")
ax.legend(loc="lower left")
fig.tight_layout()
plt.show()
