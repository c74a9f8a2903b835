"""
=====================================================
Retrieving corrupted digits from associative memory
=====================================================

Store 100 binarised 8x8 digits in a Dense Associative Memory
(:class:`skam.DenseAM`, log-sum-exp energy) and in a classical Hopfield network
(:class:`skam.HopfieldNetwork`), corrupt them, and let each memory retrieve
them. Two corruptions: 20% of the pixels flipped, and the bottom half of the
image hidden (set to -1), where the DenseAM clamps the visible top half and
completes the rest. Finally, watch the energy fall during the descent.

See :ref:`energy_convention` for the energy and :ref:`hopfield` for the
classical network.
"""

# %%
# Store 100 digits
# ----------------
# :func:`skam.datasets.load_binary_digits` binarises scikit-learn's digits to
# +-1 pixels (1750 unique patterns). ``DenseAM()`` uses ``beta="scale"``,
# chosen from the distances between the stored patterns;
# :func:`skam.capacity.recall_fraction` says how many stored patterns are
# fixed points.
import matplotlib.pyplot as plt
import numpy as np

from skam import DenseAM, HopfieldNetwork
from skam.capacity import recall_fraction
from skam.datasets import flip_bits, load_binary_digits, occlude

X, _ = load_binary_digits()
rng = np.random.RandomState(0)
patterns = X[rng.choice(X.shape[0], 100, replace=False)]

am = DenseAM().fit(patterns)
hopfield = HopfieldNetwork(random_state=0).fit(patterns)
print(
    f"DenseAM: beta_ = {am.beta_:.3f}, fixed points {recall_fraction(am).fixed_points:.2f}"
)
print(f"HopfieldNetwork: fixed points {recall_fraction(hopfield).fixed_points:.2f}")


def exact_recall(recalled):
    """Fraction of queries whose retrieved image equals the stored one."""
    return np.mean(np.all(np.sign(recalled) == patterns, axis=1))


def show(rows, title, n_shown=8):
    """A grid: one row per stage (stored, corrupted, retrieved ...)."""
    fig, axes = plt.subplots(
        len(rows), n_shown, figsize=(1.1 * n_shown, 1.25 * len(rows))
    )
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_shown):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()


# %%
# Bit flips
# ---------
# Flip 20% of the pixels (13 of 64) of every stored digit. The DenseAM
# descends its energy from each corrupted image; the Hopfield network runs its
# sign dynamics. With 100 correlated digits stored, far beyond what the
# Hebbian rule can hold, the Hopfield network ends in mixture states.
flipped = flip_bits(patterns, 0.2, random_state=1)
dense_flipped = am.transform(flipped)
hopfield_flipped = hopfield.transform(flipped)

nearest = patterns[np.argmax(flipped @ patterns.T, axis=1)]
print(f"nearest stored pattern (oracle): {exact_recall(nearest):.2f}")
print(f"DenseAM (LSE):                   {exact_recall(dense_flipped):.2f}")
print(f"HopfieldNetwork:                 {exact_recall(hopfield_flipped):.2f}")

show(
    {
        "stored": patterns,
        "20% flipped": flipped,
        "DenseAM": dense_flipped,
        "Hopfield": hopfield_flipped,
    },
    "Retrieval from 20% bit flips",
)

# %%
# Occluded bottom halves, with clamping
# -------------------------------------
# :func:`skam.datasets.occlude` hides the last 32 pixels and returns a
# ``clamp_mask`` that is True on the visible ones. Passed to
# :meth:`skam.DenseAM.transform`, it keeps the top half fixed while the bottom
# half descends: pattern completion. The Hopfield network cannot clamp, so it
# starts from the half-blank image.
hidden, visible = occlude(patterns)
dense_completed = am.transform(hidden, clamp_mask=visible)
hopfield_completed = hopfield.transform(hidden)

print(f"DenseAM (LSE, clamped): {exact_recall(dense_completed):.2f}")
print(f"HopfieldNetwork:        {exact_recall(hopfield_completed):.2f}")

show(
    {
        "stored": patterns,
        "occluded": hidden,
        "DenseAM": dense_completed,
        "Hopfield": hopfield_completed,
    },
    "Completing occluded digits",
)

# %%
# The energy goes down
# --------------------
# :meth:`skam.DenseAM.descend` reports per-query step counts, convergence and,
# with ``return_energy_trace=True``, the energy before every step (a query that
# stopped early repeats its final energy). With the log-sum-exp energy any step
# size ``step_size <= 1`` never increases the energy; ``step_size=1`` (the default) is
# the one-step attention update and converges in a few steps, a smaller step
# takes a longer, smoother path. The log scale shows the energy above its final
# value, which shrinks geometrically near a stored pattern.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
for ax, step_size in zip(axes, [1.0, 0.2], strict=True):
    memory = DenseAM(step_size=step_size).fit(patterns)
    result = memory.descend(flipped[:8], return_energy_trace=True)
    trace = result.energy_trace
    assert np.all(np.diff(trace, axis=0) <= 1e-9)  # never goes up
    above_final = trace - trace[-1]
    ax.semilogy(np.where(above_final > 0, above_final, np.nan), marker=".")
    ax.set_title(
        f"step_size={step_size}: {result.n_iter.mean():.1f} steps on average, "
        f"{result.converged.mean():.0%} converged",
        fontsize=9,
    )
    ax.set_xlabel("descent step")
axes[0].set_ylabel("E(v) - E(final state)")
fig.suptitle("Energy of 8 corrupted digits during retrieval")
fig.tight_layout()
plt.show()
