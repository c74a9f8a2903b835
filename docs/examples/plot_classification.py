"""
=======================================================
Classifying with label neurons: decision regions, beta
=======================================================

:class:`skam.DenseAMClassifier` stores memories ``[x, onehot(y)]`` and
predicts by clamping the features of a query and letting its label neurons
descend the energy. One step is a Gaussian kernel smoother (a softmax vote of
the memories); more steps sharpen it; the parametric mode learns a few
prototypes instead of storing every sample.

We compare decision regions with k-nearest neighbours and an RBF SVM on two
2-D data sets, then look at accuracy against ``beta`` on the digits. See
:ref:`classification` for the model.
"""

# %%
# Two 2-D problems
# ----------------
# Two interleaved half-moons and two noisy concentric circles, standardised.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits, make_circles, make_moons
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skam import DenseAMClassifier

datasets = {
    "moons": make_moons(300, noise=0.3, random_state=0),
    "circles": make_circles(300, noise=0.2, factor=0.5, random_state=1),
}
datasets = {
    name: (StandardScaler().fit_transform(X), y) for name, (X, y) in datasets.items()
}

# %%
# Decision regions
# ----------------
# Shading is the probability of the second class. The nonparametric DenseAM
# with ``beta="scale"`` (Scott's rule) gives smooth probabilities where the
# classes overlap; three descent steps (``max_iter=3``) push them towards 0
# or 1; the parametric model (5 learned memories per class, drawn as stars)
# gets similar regions from 10 prototypes. 5-NN and the SVM (probabilities
# calibrated by cross-validation) are the references. Training accuracy is in
# each title.
models = {
    "DenseAM, 1 step": DenseAMClassifier(),
    "DenseAM, 3 steps": DenseAMClassifier(max_iter=3),
    "DenseAM, parametric": DenseAMClassifier(
        mode="parametric", n_memories=5, random_state=0
    ),
    "5-NN": KNeighborsClassifier(5),
    "SVC (RBF)": CalibratedClassifierCV(SVC(C=10), ensemble=False),
}

CLASS_COLOURS = np.array(["#1f63e0", "#e8402a"])  # class 0 blue, class 1 red
grid = np.linspace(-2.8, 2.8, 150)
xx, yy = np.meshgrid(grid, grid)
points = np.c_[xx.ravel(), yy.ravel()]

fig, axes = plt.subplots(
    len(datasets), len(models), figsize=(3 * len(models), 6.2), sharex=True
)
for row, (data_name, (X, y)) in enumerate(datasets.items()):
    for col, (model_name, model) in enumerate(models.items()):
        model.fit(X, y)
        ax = axes[row, col]
        proba = model.predict_proba(points)[:, 1].reshape(xx.shape)
        ax.contourf(
            xx, yy, proba, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55
        )
        ax.contour(xx, yy, proba, levels=[0.5], colors="k", linewidths=0.8)
        # bright class colours with white edges stay visible on both regions
        ax.scatter(X[:, 0], X[:, 1], c=CLASS_COLOURS[y], s=9, edgecolors="w", lw=0.3)
        if "parametric" in model_name:
            memories = model.memories_[:, :2]
            owner = model.memories_[:, 2:].argmax(1)
            ax.scatter(
                memories[:, 0],
                memories[:, 1],
                c=CLASS_COLOURS[owner],
                marker="*",
                s=140,
                edgecolors="k",
                lw=0.8,
            )
        ax.set_title(f"{model_name}\n{data_name}: {model.score(X, y):.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
fig.tight_layout()

# %%
# One step is a kernel smoother
# -----------------------------
# With the default step ``step_size = 1 / (1 - lam)`` the first step returns the
# softmax-weighted vote of the memories, i.e. the distance-weighted vote of
# :class:`~sklearn.neighbors.KNeighborsClassifier` over all training samples
# with weights ``exp(-beta * lam / 2 * d**2)``:
X, y = datasets["moons"]
am = DenseAMClassifier().fit(X, y)
knn = KNeighborsClassifier(
    n_neighbors=len(X),
    weights=lambda d: np.exp(-am.beta_ * am.lam / 2 * d**2),
    algorithm="brute",
).fit(X, y)
difference = np.abs(am.predict_proba(points) - knn.predict_proba(points)).max()
print(f"beta_ = {am.beta_:.2f}; largest difference from the kNN vote: {difference:.1e}")

# %%
# Accuracy against beta
# ---------------------
# On the digits (pixels scaled to [0, 1]), 5-fold shuffled cross-validation
# of the one-step classifier for ``beta`` around the ``"scale"`` value. Large
# ``beta`` is the 1-nearest-neighbour rule (the curve flattens at its
# accuracy); small ``beta`` averages over too many neighbours. In practice,
# tune ``beta`` with :class:`~sklearn.model_selection.GridSearchCV`.
X, y = load_digits(return_X_y=True)
X = X / 16.0
cv = StratifiedKFold(5, shuffle=True, random_state=0)
beta_scale = DenseAMClassifier().fit(X, y).beta_
betas = beta_scale * 2.0 ** np.arange(-6, 5)
scores = [
    cross_val_score(DenseAMClassifier(beta=beta), X, y, cv=cv).mean() for beta in betas
]
knn1 = cross_val_score(KNeighborsClassifier(1), X, y, cv=cv).mean()
svc = cross_val_score(SVC(C=10), X, y, cv=cv).mean()

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.semilogx(betas, scores, marker="o", label="DenseAMClassifier (1 step)")
ax.axhline(knn1, color="k", ls="--", lw=1, label=f"1-NN ({knn1:.3f})")
ax.axhline(svc, color="tab:green", ls=":", lw=1, label=f"SVC C=10 ({svc:.3f})")
ax.axvline(beta_scale, color="grey", lw=0.8)
ax.annotate('beta="scale"', (beta_scale * 1.15, min(scores)), fontsize=8)
ax.set_xlabel("beta (lam = 0.5)")
ax.set_ylabel("5-fold accuracy")
ax.set_title("Digits: accuracy against beta")
ax.legend(loc="center right", fontsize=8)
fig.tight_layout()
print(f"best beta {betas[int(np.argmax(scores))]:.1f}: {max(scores):.4f}")
plt.show()
