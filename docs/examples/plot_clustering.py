"""
=====================================================
Clustering by contraction: AMClustering beside KMeans
=====================================================

:class:`skam.cluster.AMClustering` (ClAM) makes the cluster centres the
memories of a Dense Associative Memory: energy descent pulls every point
towards a centre, and the centres are learned by gradient descent through that
contraction. We cluster three 2-D data sets with it and with
:class:`~sklearn.cluster.KMeans`, watch the points contract, and draw the basins
of attraction on a grid for two values of ``beta``. See :ref:`clustering`.
"""

# %%
# Three 2-D data sets
# -------------------
# Blobs of different spreads, stretched (anisotropic) blobs, and two half
# moons; all standardised.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from skam.cluster import AMClustering
from skam.memory import DenseAM

X_blobs, y_blobs = make_blobs(
    n_samples=500, centers=4, cluster_std=[0.6, 1.0, 1.4, 0.8], random_state=2
)
X_aniso, y_aniso = make_blobs(n_samples=500, centers=3, random_state=170)
X_aniso = X_aniso @ np.array([[0.6, -0.64], [-0.41, 0.85]])
X_moons, y_moons = make_moons(n_samples=400, noise=0.08, random_state=0)
datasets = {
    "blobs": (X_blobs, y_blobs),
    "anisotropic": (X_aniso, y_aniso),
    "moons": (X_moons, y_moons),
}
datasets = {
    name: (StandardScaler().fit_transform(X), y) for name, (X, y) in datasets.items()
}

# %%
# AMClustering beside KMeans
# --------------------------
# The same number of clusters as the reference labels; crosses mark the
# centres. With the default ``beta`` the basins are close to Voronoi cells, so
# the two methods mostly agree: both are k-means objectives, one solved by
# Lloyd's iterations, the other by gradient descent through the memory.
fig, axes = plt.subplots(2, 3, figsize=(11, 7), sharex="col", sharey="col")
models = {}
for col, (name, (X, y)) in enumerate(datasets.items()):
    k = np.unique(y).size
    am = AMClustering(k, random_state=0).fit(X)
    km = KMeans(k, n_init=10, random_state=0).fit(X)
    models[name] = am
    for row, (label, model) in enumerate((("AMClustering", am), ("KMeans", km))):
        ax = axes[row, col]
        ax.scatter(X[:, 0], X[:, 1], c=model.labels_, s=8, cmap="tab10")
        centres = model.cluster_centers_
        ax.scatter(centres[:, 0], centres[:, 1], marker="x", s=80, c="k")
        ari = adjusted_rand_score(y, model.labels_)
        ax.set_title(f"{label} on {name}: ARI {ari:.2f}", fontsize=9)
fig.tight_layout()

# %%
# The contraction
# ---------------
# :meth:`~skam.cluster.AMClustering.contract` returns where each point lands
# after ``n_steps`` descent steps of size ``step_size`` (``step_size * n_steps = 1``):
# every point moves about two thirds of the way to its centre, and the cluster
# of a point is the centre nearest to where it lands. The loss that trains the
# centres is the squared length of these arrows (on hidden coordinates, when
# there are enough features to hide some).
X, _ = datasets["blobs"]
am = models["blobs"]
landed = am.contract(X)
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.quiver(
    X[:, 0],
    X[:, 1],
    landed[:, 0] - X[:, 0],
    landed[:, 1] - X[:, 1],
    am.labels_,
    angles="xy",
    scale_units="xy",
    scale=1,
    width=0.003,
    cmap="tab10",
)
ax.scatter(*am.cluster_centers_.T, marker="x", s=80, c="k")
ax.set_title(f"Contraction: beta_ = {am.beta_:.1f}, {am.n_steps_} steps")
fig.tight_layout()

# %%
# Basins of attraction and beta
# -----------------------------
# Colour each point of a grid by the centre nearest to where it descends, and
# draw the Voronoi cells of the centres in black. Left: the fitted model
# (``predict``, ``beta_`` from ``beta="scale"``, i.e. ``32 / r2`` with ``r2`` the
# median squared distance between neighbouring initial centres): the basins are
# the Voronoi cells. Middle and right: the same four centres as memories of a
# :class:`skam.DenseAM` with a smaller ``beta``, descended to convergence. At a
# quarter of it the kernels overlap and the basin boundaries bend; at an eighth
# the minima of the energy merge, and points of different clusters flow to
# the same place (all clusters collapse at smaller ``beta``).
grid = np.linspace(-2.6, 2.6, 160)
xx, yy = np.meshgrid(grid, grid)
points = np.column_stack([xx.ravel(), yy.ravel()])
centres = am.cluster_centers_
voronoi = np.argmin(am.transform(points), axis=1).reshape(xx.shape)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
for ax, factor in zip(axes, (1.0, 1 / 4, 1 / 8), strict=True):
    beta = am.beta_ * factor
    if factor == 1.0:
        basins = am.predict(points)
        title = f"fitted: beta_ = {beta:.1f}, {am.n_steps_} steps"
    else:
        memory = DenseAM(beta=beta, step_size=0.1, max_iter=1000, tol=1e-7)
        landed = memory.fit(centres).transform(points)
        basins = np.argmin(((landed[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        n_minima = np.unique(np.round(landed, 1), axis=0).shape[0]
        title = f"beta = {beta:.2f}: {n_minima} end points"
    basins = basins.reshape(xx.shape)
    ax.imshow(
        basins,
        extent=(grid[0], grid[-1], grid[0], grid[-1]),
        origin="lower",
        cmap="tab10",
        vmin=0,
        vmax=9,
        alpha=0.45,
    )
    ax.contour(xx, yy, voronoi, levels=np.arange(0.5, 4), colors="k", linewidths=0.8)
    ax.scatter(X[:, 0], X[:, 1], s=3, c="k", alpha=0.4)
    ax.scatter(*centres.T, marker="x", s=80, c="w")
    agree = np.mean(basins == voronoi)
    ax.set_title(f"{title}\nbasins = Voronoi cells on {agree:.0%} of the grid")
fig.tight_layout()

# %%
# Training curve
# --------------
# Minibatch Adam on the loss, all restarts in one batched array. A plateau
# is ``patience`` epochs without a relative improvement of ``tol`` in the
# loss of a fixed monitor set; the learning rate is then multiplied by
# ``lr_decay``, and a restart stops once it is below 0.9 of its initial
# value (at the first plateau, by default), or once the descent basins of
# the monitor set have not changed for ``patience`` epochs. Each curve is
# divided by its first epoch's loss. With the default start (Lloyd-refined
# k-means++, solid) the centres begin almost where k-means puts them:
# training lowers the loss by a few per cent at most and stops after one or
# two epochs. From random data
# points (``init="random"``, dashed, with a patient schedule: ``patience=5``,
# ``tol=1e-3``) the same training does the whole job.
fig, ax = plt.subplots(figsize=(6, 3.8))
for colour, (name, model) in zip(["C0", "C1", "C2"], models.items(), strict=True):
    X, _ = datasets[name]
    scratch = AMClustering(
        model.n_clusters, init="random", patience=5, tol=1e-3, random_state=0
    )
    scratch.fit(X)
    for fitted, style, how in ((model, "-", "default"), (scratch, "--", "random")):
        curve = np.asarray(fitted.loss_curve_)
        ax.plot(
            np.arange(1, curve.size + 1),
            curve / curve[0],
            style,
            color=colour,
            label=f"{name}, {how} start ({fitted.n_iter_} epochs)",
        )
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss / loss of epoch 1")
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()
