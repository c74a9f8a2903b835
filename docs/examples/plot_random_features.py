"""
=======================================================
Exact and random-feature energy landscapes (DrDAM)
=======================================================

The log-sum-exp energy of a Dense Associative Memory is a kernel sum,
``E(v) = -(1/beta) log sum_mu exp(-beta/2 |v - xi_mu|^2)``. Random Fourier
features turn the sum into one dot product with a *distributed memory*
``T = sum_mu phi(xi_mu)`` (:class:`skam.RandomFeatureAM`), so the patterns need
not be kept. This example draws the exact landscape of
:class:`skam.DenseAM` next to the random-feature one for 8 memories in the
plane (the setting of the tutorial's DrDAM notebook) at three inverse
temperatures, runs the same descent on both, and measures how the energy
error falls with the number of random frequencies ``Y``.

See :ref:`random_features` for the theory and its limits.
"""

# %%
# Eight memories in the plane
# ---------------------------
# Memories uniform in ``[-5, 5]^2`` and a 60 x 60 grid of states. ``Y =
# 2^14`` frequencies give ``T`` with 32768 numbers (``"sincos"`` map).
import warnings

import matplotlib.pyplot as plt
import numpy as np

from skam import DenseAM
from skam.random_features import KernelSumClippedWarning, RandomFeatureAM

rng = np.random.RandomState(779)
memories = rng.uniform(-5, 5, size=(8, 2))
queries = rng.uniform(-5, 5, size=(3, 2))
axis = np.linspace(-6, 6, 60)
grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
Y = 2**14

# %%
# Landscapes and trajectories
# ---------------------------
# Both models descend from the same three queries with the same step size.
# At small ``beta`` the kernels are wide and the two landscapes agree; at
# ``beta = 10`` the kernels are narrow: far from every memory the estimated
# kernel sum is pure noise, often negative, and is clipped (white regions:
# the energy is capped at ``-(1/beta) log(epsilon)``, where queries cannot
# move). Minima at the memories survive, with smaller basins.
betas = [0.1, 1.0, 10.0]
fig, axes = plt.subplots(2, len(betas), figsize=(12, 7.5))
gaps = {}
for col, beta in enumerate(betas):
    params = {"beta": beta, "step_size": 0.1, "max_iter": 300, "tol": 1e-5}
    exact = DenseAM(**params).fit(memories)
    approx = RandomFeatureAM(n_components=Y, random_state=0, **params).fit(memories)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KernelSumClippedWarning)
        maps = {
            "exact (DenseAM)": (exact.energy(grid), exact.descend(queries)),
            f"random features, Y={Y}": (approx.energy(grid), approx.descend(queries)),
        }
    (E_exact, r_exact), (E_rf, r_rf) = maps.values()
    gaps[beta] = np.linalg.norm(r_exact.states - r_rf.states, axis=1)
    # one colour scale per column; clipped random-feature estimates are white
    ceiling = -np.log(approx.epsilon) / beta
    levels = np.linspace(E_exact.min(), min(np.percentile(E_exact, 95), ceiling), 30)
    for row, (name, (energy, result)) in enumerate(maps.items()):
        ax = axes[row, col]
        shown = energy if row == 0 else np.where(energy >= ceiling, np.nan, energy)
        ax.contourf(
            axis,
            axis,
            np.minimum(shown, levels[-1]).reshape(60, 60),
            levels=levels,
            cmap="viridis",
        )
        ax.scatter(*memories.T, c="red", marker="*", s=80, label="memories")
        ax.scatter(*queries.T, c="white", edgecolors="k", s=30, label="queries")
        ax.scatter(*result.states.T, c="orange", marker="x", s=50, label="retrieved")
        ax.set_title(f"{name}, beta={beta:g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
axes[0, 0].legend(fontsize=7, loc="lower left")
fig.tight_layout()

# %%
# How far apart do the retrieved states end? At ``beta = 10`` a query that
# starts where the estimate is clipped does not move at all.
for beta, gap in gaps.items():
    print(f"beta={beta:>4}: |v_exact - v_rf| = {np.round(gap, 3)}")

# %%
# Error against the number of random frequencies
# ----------------------------------------------
# Root-mean-square energy error at ``beta = 1`` over the grid points where
# the exact kernel sum exceeds ``exp(-1)`` (exact energy below 1), mean of two
# seeds, for the three feature maps. The *kernel sum* estimated by random
# features has an error falling as ``1/sqrt(Y)`` (dotted; the User Guide's
# first figure measures slope -0.5 on the kernel itself). The energy is the
# logarithm of that estimate, and the log of a noisy sum also carries a bias of
# order ``1/Y`` (plus clipped sums at the smallest ``Y``), so over this range of
# ``Y`` the trigonometric maps' energy errors fall *faster* than
# ``1/sqrt(Y)``: the fitted slopes printed below are about -0.7 to -0.9, and
# they tend to -0.5 as ``Y`` grows. The positive map fails here: its variance grows
# like ``exp(beta |x - c|^2)`` and the memories lie up to 7 units from their
# centre ``c``, so ``beta |x - c|^2`` reaches about 50 (it works for data of
# small spread, see the User Guide).
exact = DenseAM(beta=1.0).fit(memories)
E_exact = exact.energy(grid)
inside = E_exact < 1.0
sizes = 4 ** np.arange(3, 8)
fig, ax = plt.subplots(figsize=(6, 4))
curves = {}
for feature_map in ("sincos", "cos", "positive"):
    errors = []
    for n in sizes:
        rms = []
        for seed in (0, 1):
            am = RandomFeatureAM(
                feature_map=feature_map,
                n_components=int(n),
                beta=1.0,
                max_iter=1,
                random_state=seed,
            ).fit(memories)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", KernelSumClippedWarning)
                error = am.energy(grid[inside]) - E_exact[inside]
            rms.append(np.sqrt(np.mean(error**2)))
        errors.append(np.mean(rms))
    curves[feature_map] = errors
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    ax.loglog(sizes, errors, "o-", label=f"{feature_map} (slope {slope:.2f})")
    print(f"{feature_map:>8}: fitted slope {slope:.2f}")
reference = curves["sincos"][0] * np.sqrt(sizes[0] / sizes)
ax.loglog(sizes, reference, "k:", label="1/sqrt(Y)")
ax.set_xlabel("Y (random frequencies)")
ax.set_ylabel("RMS |E_RF - E_exact| (beta = 1)")
ax.legend()
fig.tight_layout()
plt.show()
