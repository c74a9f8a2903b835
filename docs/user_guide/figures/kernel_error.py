"""Top figure of the random-features page: kernel error against the feature count."""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skam import BochnerFeatures

X = load_digits().data[:300] / 16.0
sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
Ys = np.array([32, 64, 128, 256, 512, 1024, 2048, 4096])
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for beta, colour in [(0.05, "#1f77b4"), (0.2, "#2ca02c"), (0.5, "#d62728")]:
    exact = np.exp(-beta / 2 * sq)
    errors = []
    for Y in Ys:
        runs = []
        for seed in range(3):
            phi = BochnerFeatures(n_components=Y, gamma=beta / 2, random_state=seed)
            F = phi.fit_transform(X)
            runs.append(np.sqrt(np.mean((F @ F.T - exact) ** 2)))
        errors.append(np.mean(runs))
    errors = np.array(errors)
    slope = np.polyfit(np.log(Ys), np.log(errors), 1)[0]
    ax.loglog(Ys, errors, "o-", color=colour,
              label=f"beta = {beta:g} (fitted slope {slope:.2f})")  # fmt: skip
ref = errors[0] * np.sqrt(Ys[0] / Ys)
ax.loglog(Ys, ref, "--", color="gray", label="1/sqrt(Y)")
ax.set_xlabel("number of random frequencies Y")
ax.set_ylabel("RMS error of the kernel matrix")
ax.set_title("Random features approximate the Gaussian kernel as 1/sqrt(Y)")
ax.legend(fontsize=8)
