"""Top figure of the classification page: decision regions and the role of beta."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from sklearn.datasets import make_moons
from sklearn.preprocessing import StandardScaler

from skam import DenseAMClassifier

X, y = make_moons(n_samples=200, noise=0.25, random_state=0)
X = StandardScaler().fit_transform(X)
xs = np.linspace(-2.6, 2.6, 200)
grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
light = ListedColormap(["#a6c8ff", "#ffb3a6"])
dark = np.array(["#1f5fbf", "#c8321e"])

fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), sharey=True)
for ax, beta in zip(axes, [0.5, 8.0, 200.0], strict=True):
    clf = DenseAMClassifier(beta=beta).fit(X, y)
    proba = clf.predict_proba(grid)[:, 1].reshape(xs.size, xs.size)
    ax.contourf(xs, xs, proba, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45)
    ax.contour(xs, xs, proba, levels=[0.5], colors="black", linewidths=1.2)
    ax.scatter(X[:, 0], X[:, 1], c=dark[y], s=14, edgecolors="white", linewidths=0.5)
    ax.set_title(f"beta = {beta:g}: accuracy {clf.score(X, y):.2f} (train)")
    ax.set_xlabel("feature 1")
    ax.set_aspect("equal")
axes[0].set_ylabel("feature 2")
fig.suptitle(
    "DenseAMClassifier on two moons: p(class 1) (colour), boundary (black)",
    fontsize=11,
)
