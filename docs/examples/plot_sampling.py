"""
======================================================
Sampling a Dense AM: memorisation and generalisation
======================================================

The energy of a diffusion model trained on ``K`` points is a Dense AM energy
with a time-varying inverse temperature ``beta_t = 1/(sigma^2 t)``, so
reverse diffusion with the exact score is annealed descent plus noise on a
:class:`skam.DenseAM` (chapter 4 of the tutorial "Modern Methods in
Associative Memory"). This example samples points on a circle three ways,
labels every sample with :mod:`skam.diagnostics` as a *copy* of a training
point, a *spurious* state or a *novel* point, and checks that the novel ones
lie on the circle; then it fills in the hidden half of digit images by
conditional sampling.

See :ref:`sampling` for the theory.
"""

# %%
# Nine and a thousand points on a circle
# --------------------------------------
# ``method="anneal"`` is reverse diffusion from ``beta = 1`` (t = 1). With
# ``beta = 1e10`` (t -> 0) the exact score of stored memories copies the
# training points, however many there are. At a fixed ``beta = 40`` the
# stored memories give "novel" samples, but only because they are blurred
# off the circle (the median radial error is printed in each title).
# :class:`skam.DiffusionAM` learns 64 memories and a bandwidth by denoising
# score matching: with nine points it copies them; with a thousand it cannot,
# and its samples are new points on the circle.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skam import DenseAM, DiffusionAM
from skam.diagnostics import label_fractions, label_samples, spurious_minima


def circle(K, seed=9):
    angle = np.random.RandomState(seed).uniform(0, 2 * np.pi, K)
    return np.c_[np.cos(angle), np.sin(angle)]


def labelled_samples(model, X):
    samples = model.sample(400, method="anneal", random_state=1)
    minima = spurious_minima(
        model,
        X,
        copy_threshold=0.05,
        merge_threshold=0.01,
        starts=samples,
        random_state=0,
    ).minima
    labels = label_samples(
        samples,
        X,
        copy_threshold=0.05,
        spurious_minima=minima,
        spurious_threshold=0.05,
    )
    return samples, labels


colours = {"copy": "tab:red", "spurious": "tab:orange", "novel": "tab:blue"}
rows = [
    ("stored, t -> 0", lambda: DenseAM(beta=1e10)),
    ("stored, beta = 40", lambda: DenseAM(beta=40.0)),
    (
        "learned (64 memories)",
        lambda: DiffusionAM(
            n_memories=64, bandwidth="overlap", max_epochs=100, random_state=0
        ),
    ),
]
fig, axes = plt.subplots(2, 3, figsize=(9, 6.3))
t = np.linspace(0, 2 * np.pi, 200)
for j, (name, make) in enumerate(rows):
    for i, K in enumerate((9, 1000)):
        X = circle(K)
        samples, labels = labelled_samples(make().fit(X), X)
        radial = np.median(np.abs(np.linalg.norm(samples, axis=1) - 1))
        ax = axes[i, j]
        ax.plot(np.cos(t), np.sin(t), color="0.85")
        for lab, colour in colours.items():
            pick = labels == lab
            ax.scatter(*samples[pick].T, s=6, color=colour, label=lab)
        ax.scatter(*X.T, marker="*", s=60 if K < 100 else 2, color="k")
        fr = label_fractions(labels)
        ax.set_title(
            f"{name}, K = {K}\ncopy {fr['copy']:.2f} spurious "
            f"{fr['spurious']:.2f} novel {fr['novel']:.2f}\n"
            f"radial error {radial:.3f}",
            fontsize=8,
        )
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
axes[0, 0].legend(fontsize=7, loc="center")
fig.tight_layout()

# %%
# Inpainting by conditional sampling
# ----------------------------------
# With ``clamp_mask`` the visible pixels are fixed and the hidden ones are
# drawn from the exact conditional density of the stored digits: each memory
# is reweighted by how well it matches the visible half, then the kernel's
# noise is added to its hidden half.
digits = load_digits().data / 16.0
train, test = digits[:1500], digits[1500:1506]
am = DenseAM(beta="scale").fit(train)
hidden = np.zeros(64, dtype=bool)
hidden[32:] = True  # the bottom half is sampled
queries = test.copy()
queries[:, hidden] = 0.0
filled = am.sample(None, X=queries, clamp_mask=~hidden, random_state=0)

fig, axes = plt.subplots(3, 6, figsize=(7, 3.6))
for c in range(6):
    for r, (img, title) in enumerate(
        ((test[c], "truth"), (queries[c], "visible"), (filled[c], "sampled"))
    ):
        axes[r, c].imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if c == 0:
            axes[r, c].set_ylabel(title, fontsize=8)
fig.tight_layout()
plt.show()
