"""Top figure of the energy page: one LSE energy at two beta, and descent."""

import matplotlib.pyplot as plt
import numpy as np

from skam import DenseAM

memories = np.array([[-1.5, -0.6], [-0.4, 0.9], [0.6, -0.9], [1.6, 0.5], [0.2, 0.0]])
xs = np.linspace(-3, 3, 161)
grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
starts = np.random.RandomState(3).uniform(-2.6, 2.6, size=(14, 2))

fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2), sharey=True)
for ax, beta in zip(axes, [1.0, 8.0], strict=True):
    am = DenseAM(beta=beta, step_size=0.25, max_iter=1, tol=0.0).fit(memories)
    energy = am.energy(grid).reshape(xs.size, xs.size)
    filled = ax.contourf(xs, xs, energy, levels=30, cmap="viridis")
    ax.contour(xs, xs, energy, levels=15, colors="white", linewidths=0.4, alpha=0.5)
    state = starts.copy()
    path = [state]
    for _ in range(40):
        state = am.transform(state)
        path.append(state)
    path = np.stack(path)
    for i in range(starts.shape[0]):
        ax.plot(path[:, i, 0], path[:, i, 1], color="white", lw=1.1)
        ax.plot(*path[0, i], "o", color="white", ms=3)
    ax.plot(*memories.T, "*", color="#ff5a36", ms=14, mec="black", mew=0.6,
            label="stored patterns")  # fmt: skip
    ax.set_title(
        f"beta = {beta:g}: {'few wide basins' if beta < 2 else 'a basin per memory'}"
    )
    ax.set_xlabel("$v_1$")
    ax.set_aspect("equal")
    fig.colorbar(filled, ax=ax, shrink=0.8, label="energy E(v)")
axes[0].set_ylabel("$v_2$")
axes[0].legend(loc="lower left", fontsize=8)
fig.suptitle("Energy landscapes of one LSE memory and descent paths from random starts")
