"""
===========================================================
A memory built from layers: energy term by term, completion
===========================================================

:class:`skam.HierarchicalAM` builds an associative memory from **neuron
layers** (each with a convex Lagrangian) and **synapses** (energies of the
activations they join), HAMUX-style. Here a three-layer memory (identity
visible layer of 64 pixels, a softmax layer of 64 units, a softmax layer of 16
units, dense synapses and biases between them) is trained on masked
reconstruction of scikit-learn's 8x8 digits. We draw the graph, follow its
energy term by term while it completes occluded digits, and compare the
completions with a :class:`skam.DenseAM` that stores every training digit.
See :ref:`graphs` for the model.
"""

# %%
# Train a three-layer memory
# --------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skam import DenseAM, HierarchicalAM

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test = train_test_split(X, test_size=200, random_state=0)

layers = [
    ("visible", "identity", None),
    ("hidden", "softmax", 64),
    ("top", "softmax", 16),
]
am = HierarchicalAM(
    layers=layers, n_steps=5, max_epochs=15, learning_rate=0.01, random_state=0
)
am.fit(X_train)
print("masked-reconstruction loss per epoch:", np.round(am.loss_curve_, 4))

# %%
# The graph and its energy, term by term
# --------------------------------------
# The bottom half of each test digit is hidden (set to the mean image) and the
# top half clamped. Every part of the energy is recorded before every step:
# the layers' Legendre energies and the synapses' energies. Their sum never
# increases (the hidden layers take exact block-minimising steps, the visible
# layer a small gradient step).
occluded = X_test.copy()
known = np.zeros(64, dtype=bool)
known[:32] = True
occluded[:, ~known] = am.fill_[~known]
run = am.descend(occluded, clamp_mask=known, return_energy_trace=True)

fig, (ax_graph, ax_energy) = plt.subplots(1, 2, figsize=(11, 4))
positions = {"visible": 0.0, "hidden": 1.0, "top": 2.0}
for name, size in [("visible", 64), ("hidden", 64), ("top", 16)]:
    ax_graph.add_patch(
        plt.Rectangle(
            (positions[name] - 0.3, -0.25), 0.6, 0.5, color="tab:blue", alpha=0.25
        )
    )
    ax_graph.text(
        positions[name], 0.0, f"{name}\n{size} units", ha="center", va="center"
    )
for a, b in [("visible", "hidden"), ("hidden", "top")]:
    ax_graph.annotate(
        "",
        xy=(positions[b] - 0.3, 0),
        xytext=(positions[a] + 0.3, 0),
        arrowprops=dict(arrowstyle="<->", color="tab:red"),
    )
    ax_graph.text(
        (positions[a] + positions[b]) / 2, 0.12, "dense", ha="center", color="tab:red"
    )
for name in ("hidden", "top"):
    ax_graph.text(positions[name], -0.4, "+ bias", ha="center", color="tab:green")
ax_graph.set_xlim(-0.5, 2.5)
ax_graph.set_ylim(-0.6, 0.6)
ax_graph.axis("off")
ax_graph.set_title("layers (convex Lagrangians) and synapses")

steps = np.arange(run.energy_trace.shape[0])
for name, trace in run.energy_terms_trace.items():
    ax_energy.plot(steps, trace.mean(axis=1), marker=".", label=name)
ax_energy.plot(steps, run.energy_trace.mean(axis=1), "k-", lw=2, label="total")
ax_energy.set_xlabel("step")
ax_energy.set_ylabel("mean energy over 200 test digits")
ax_energy.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax_energy.set_title("the total energy never increases")
fig.tight_layout()
print("largest one-step energy change:", np.diff(run.energy_trace, axis=0).max())

# %%
# Completing occluded digits
# --------------------------
# The same completions against a DenseAM that stores all training digits.
dense = DenseAM().fit(X_train)
completed = {
    "HierarchicalAM": run.states,
    "DenseAM": dense.transform(occluded, clamp_mask=known),
}
for name, Z in completed.items():
    mse = np.mean((Z[:, ~known] - X_test[:, ~known]) ** 2)
    print(f"{name}: pixel MSE on the hidden half {mse:.4f}")
print(f"mean image: {np.mean((occluded[:, ~known] - X_test[:, ~known]) ** 2):.4f}")

rows = [("original", X_test), ("occluded", occluded)] + list(completed.items())
fig, axes = plt.subplots(len(rows), 8, figsize=(8, 4.5))
for r, (name, Z) in enumerate(rows):
    for c in range(8):
        axes[r, c].imshow(Z[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(name, fontsize=8)
fig.tight_layout()
plt.show()
