"""
=======================================================
Completing occluded digits with an Energy Transformer
=======================================================

Train a small :class:`skam.EnergyTransformer` on scikit-learn's 8x8 digits:
every image is cut into 16 patches of 2x2 pixels (the tokens), half of the
patches of each training image are masked, and the model learns to fill them
in by descending its energy for 12 steps. Then hide half of the patches of
unseen digits, watch the completion along the descent and the energy going
down, and use the model as an imputer in a scikit-learn pipeline.

See :ref:`energy_transformer` for the energy and its gradient.
"""

# %%
# Train on random patch masks
# ---------------------------
# ``fit`` masks ``mask_fraction`` of the patches of every image, descends
# ``n_steps`` steps and minimises the squared error on the masked pixels by
# backpropagation through the steps (Adam). A small model and eight epochs keep
# this example fast, at a constant learning rate (the default cosine schedule,
# which warms up and decays to zero, pays off over longer fits: see the user
# guide); ``max_time`` would bound the training in seconds.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.impute import KNNImputer, SimpleImputer

from skam import EnergyTransformer

digits = load_digits()
X = digits.data / 16.0
X_train, X_test = X[:1500], X[1500:]

et = EnergyTransformer(
    image_shape=(8, 8),
    patch_shape=(2, 2),
    token_dim=16,
    n_heads=2,
    head_dim=8,
    n_memories=64,
    learning_rate=1e-2,
    learning_rate_schedule="constant",
    batch_size=64,
    max_epochs=8,
    random_state=0,
)
start = time.perf_counter()
et.fit(X_train)
print(
    f"{et.n_iter_} epochs in {time.perf_counter() - start:.1f} s, "
    f"loss {et.loss_curve_[0]:.4f} -> {et.loss_curve_[-1]:.4f}"
)

# %%
# Hide half of the patches
# ------------------------
# Missing pixels are NaN; a patch with a missing pixel is replaced by the
# learned MASK token and its token moves during the descent, while the
# visible tokens stay clamped.
rng = np.random.RandomState(1)
hidden_tokens = np.zeros((len(X_test), 16), dtype=bool)
for i in range(len(X_test)):
    hidden_tokens[i, rng.choice(16, 8, replace=False)] = True
hidden = np.repeat(np.repeat(hidden_tokens.reshape(-1, 4, 4), 2, 1), 2, 2)
hidden = hidden.reshape(len(X_test), 64)
X_occluded = np.where(hidden, np.nan, X_test)

result = et.descend(X_occluded, n_steps=24, return_images=True)
steps = [0, 1, 2, 4, 8, 12, 24]
fig, axes = plt.subplots(5, len(steps) + 2, figsize=(1.2 * (len(steps) + 2), 6.5))
for r in range(5):
    row = [("original", X_test[r]), ("occluded", np.nan_to_num(X_occluded[r], nan=0.5))]
    row += [(f"step {t}", result.images_trace[t, r]) for t in steps]
    for c, (title, image) in enumerate(row):
        axes[r, c].imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if r == 0:
            axes[r, c].set_title(title, fontsize=8)
fig.suptitle("Completion along the descent (grey = hidden)")
fig.tight_layout()

# %%
# The energy goes down at every step
# ----------------------------------
# The gradient of the attention energy is an attention block and that of the
# memory energy a ReLU MLP; the layer norm's Jacobian is positive
# semi-definite, so small steps never raise the energy. The model was trained
# for 12 steps: the energy keeps falling after that, the completion need not
# improve.
errors = [np.mean((im[hidden] - X_test[hidden]) ** 2) for im in result.images_trace]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.plot(result.energy_trace[:, :50], color="C0", alpha=0.3, lw=0.8)
ax1.plot(result.energy_trace.mean(axis=1), color="k", lw=2, label="mean")
ax1.set_xlabel("step")
ax1.set_ylabel("energy")
ax1.legend()
ax2.plot(errors, color="C1")
ax2.axvline(et.n_steps, color="gray", ls=":", label="trained depth")
ax2.set_xlabel("step")
ax2.set_ylabel("masked-pixel MSE")
ax2.legend()
fig.tight_layout()
rises = np.sum(np.diff(result.energy_trace, axis=0) > 1e-9)
print(f"one-step energy increases: {rises}")

# %%
# An imputer among imputers
# -------------------------
# ``transform`` fills the NaN pixels and returns the observed ones unchanged,
# like scikit-learn's imputers, so it drops into a pipeline.
for name, model in [
    ("mean fill", SimpleImputer().fit(X_train)),
    ("KNNImputer", KNNImputer().fit(X_train)),
    ("EnergyTransformer", et),
]:
    completed = model.transform(X_occluded)
    error = np.mean((completed[hidden] - X_test[hidden]) ** 2)
    print(f"{name:18s} masked-pixel MSE {error:.4f}")
