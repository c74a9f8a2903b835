"""Top figure of the clustering page: clusters, centres and their basins."""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

from skam import AMClustering

X, _ = make_blobs(n_samples=600, centers=5, cluster_std=[0.6, 0.9, 0.7, 1.1, 0.5],
                  random_state=2)  # fmt: skip
am = AMClustering(n_clusters=5, random_state=0).fit(X)
lo, hi = X.min(axis=0) - 1, X.max(axis=0) + 1
gx, gy = np.linspace(lo[0], hi[0], 220), np.linspace(lo[1], hi[1], 220)
grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
basin = am.predict(grid).reshape(gy.size, gx.size)

fig, ax = plt.subplots(figsize=(6.4, 4.6))
colours = plt.get_cmap("tab10").colors[:5]
ax.contourf(gx, gy, basin, levels=np.arange(6) - 0.5, colors=colours, alpha=0.18)
ax.contour(gx, gy, basin, levels=np.arange(5) + 0.5, colors="gray", linewidths=0.6)
ax.scatter(X[:, 0], X[:, 1], c=np.array(colours)[am.labels_], s=10)
ax.plot(*am.cluster_centers_.T, "X", color="black", ms=11, mec="white",
        label="centres = memories")  # fmt: skip
ax.set_title("AMClustering: each point goes to the basin it descends into")
ax.set_xlabel("$x_1$")
ax.set_ylabel("$x_2$")
ax.legend(loc="best", fontsize=8)
