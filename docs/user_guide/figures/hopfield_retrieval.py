"""Top figure of the Hopfield page: corrupted digits and what each model recalls."""

import matplotlib.pyplot as plt
import numpy as np

from skam import DenseAM, HopfieldNetwork
from skam.datasets import flip_bits, load_binary_digits

X, y = load_binary_digits()
rng = np.random.RandomState(0)
stored = X[rng.choice(X.shape[0], 20, replace=False)]
show = np.arange(6)
noisy = flip_bits(stored, 0.2, random_state=1)
hopfield = np.sign(HopfieldNetwork(random_state=0).fit(stored).transform(noisy))
dense = np.sign(DenseAM().fit(stored).transform(noisy))
rows = [
    ("stored", stored),
    ("20% pixels flipped", noisy),
    ("HopfieldNetwork", hopfield),
    ("DenseAM (LSE)", dense),
]
fig, axes = plt.subplots(len(rows), show.size, figsize=(7, 5.2))
for r, (title, images) in enumerate(rows):
    for c, i in enumerate(show):
        ax = axes[r, c]
        ax.imshow(images[i].reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if c == 0:
            ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
fig.suptitle("20 digits stored; recall from corrupted copies", fontsize=11)
