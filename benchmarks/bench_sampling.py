"""Sampling benchmark: memorisation, spurious states and generalisation (chapter 4).

Part 1 (``--circle``): K = 2, 9, 100, 1000 points on the unit circle (uniform
angles, seed 9). Three samplers, 1000 samples each:

* **stored, exact score, t -> 0**: ``DenseAM(beta=1e10)`` on the K points,
  ``sample(method="anneal")`` from ``beta = 1`` (t = 1 of a diffusion with
  sigma = 1) down to t = 1e-10 (400 geometric steps): reverse diffusion with
  the exact empirical score;
* **stored, beta = 40**: ``DenseAM(beta=40)`` (the tutorial's exact-energy
  plots: its ``exp(-20 |x - xi|^2)`` is skam's beta = 40), annealed to
  beta = 40 and then descended to the minima of that energy (the zero-noise
  end of sampling);
* **learned, beta = 40**: ``DiffusionAM(n_memories=64, beta=40)`` trained by
  denoising score matching on the K points, sampled the same way.

Each sample is labelled by :mod:`skam.diagnostics`: a copy within 0.05 of a
training point and within a quarter of that point's distance to its nearest
neighbour; spurious within 0.01 of an isolated spurious minimum (descent end
points merged at 0.01, isolation: the energy rises by ``1/(4 beta)`` one
kernel width away in all of 8 random directions); novel otherwise. Energy
check: ``DenseAM(beta=40).energy`` on K = 1000 points against the closed form
``E(R) = (R^2 + 1)/2 - (1/beta) log I0(beta R) - (1/beta) log K`` of the
continuous circle (Eq. 4.13 in skam's convention).

Part 2 (``--digits``): scikit-learn's digits / 16 (64 features), K = 20, 200,
1797 images. Stored ``DenseAM(beta="scale")`` and ``DiffusionAM(n_memories=
min(K, 100))`` at the same beta, 300 samples each (anneal, then descent),
labelled with a copy threshold of infinity and the same ratio rule.

Part 3 (``--speed``): exact draws against ``KernelDensity.sample`` (the same
Gaussian-kernel draws in scikit-learn), 20 000 samples from the 1797 digits,
interleaved A B A B, medians of 5.

Writes ``benchmarks/results/sampling.md`` and ``sampling_circle.png``,
``sampling_energy.png``, ``sampling_digits.png``.

Usage::

    python benchmarks/bench_sampling.py            # all parts
    python benchmarks/bench_sampling.py --circle   # one part
    python benchmarks/bench_sampling.py --quick    # small sizes, nothing written
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.special import ive
from sklearn.datasets import load_digits
from sklearn.neighbors import KernelDensity

from skam import DenseAM, DiffusionAM
from skam.diagnostics import label_fractions, label_samples, spurious_minima

RESULTS = Path(__file__).parent / "results"
KS = (2, 9, 100, 1000)
BETA = 40.0
COPY, MERGE, RATIO = 0.05, 0.01, 0.25


def circle(K, seed=9):
    angle = np.random.RandomState(seed).uniform(0, 2 * np.pi, K)
    return np.c_[np.cos(angle), np.sin(angle)]


def bessel_energy(R, beta, K):
    """Continuous-circle energy in skam's convention (log I0 via ive)."""
    log_i0 = np.log(ive(0, beta * R)) + beta * R
    return (R**2 + 1) / 2 - log_i0 / beta - np.log(K) / beta


def sample_and_label(model, X, n, *, descend, n_steps, copy=COPY, seed=1):
    samples = model.sample(n, method="anneal", n_steps=n_steps, random_state=seed)
    if descend:
        samples = model.transform(samples)
    found = spurious_minima(
        model,
        X,
        copy_threshold=copy,
        copy_ratio=RATIO,
        merge_threshold=MERGE,
        starts=samples,
        random_state=0,
    )
    labels = label_samples(
        samples,
        X,
        copy_threshold=copy,
        copy_ratio=RATIO,
        spurious_minima=found.minima,
        spurious_threshold=MERGE,
    )
    return samples, labels, found


def part_circle(quick):
    n = 200 if quick else 1000
    rows, panels = [], {}
    for K in KS:
        X = circle(K)
        models = [
            ("stored, exact score, t -> 0", DenseAM(beta=1e10), False, 400),
            ("stored, beta = 40", DenseAM(beta=BETA), True, 200),
            (
                "learned (64 memories), beta = 40",
                DiffusionAM(n_memories=64, beta=BETA, random_state=0),
                True,
                200,
            ),
        ]
        for name, model, descend, steps in models:
            t0 = time.perf_counter()
            model.fit(X)
            fit_s = time.perf_counter() - t0
            samples, labels, found = sample_and_label(
                model, X, n, descend=descend, n_steps=steps
            )
            fr = label_fractions(labels)
            radius = np.linalg.norm(samples, axis=1)
            rows.append(
                (
                    K,
                    name,
                    fr["copy"],
                    fr["spurious"],
                    fr["novel"],
                    found.minima.shape[0],
                    float(np.median(radius)),
                    fit_s,
                )
            )
            panels[(K, name)] = (X, samples, labels, getattr(model, "memories_", None))
            print(
                f"K={K:5d} {name:34s} copy {fr['copy']:.3f} spurious "
                f"{fr['spurious']:.3f} novel {fr['novel']:.3f} "
                f"({found.minima.shape[0]} spurious minima) fit {fit_s:.1f}s",
                flush=True,
            )
    energy = energy_check()
    return rows, panels, energy


def energy_check():
    X = circle(1000)
    am = DenseAM(beta=BETA).fit(X)
    R = np.linspace(0.3, 1.6, 131)
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    grid = np.stack([np.outer(R, np.cos(theta)), np.outer(R, np.sin(theta))], axis=-1)
    E = am.energy(grid.reshape(-1, 2)).reshape(R.size, theta.size)
    closed = bessel_energy(R, BETA, 1000)
    learned = DiffusionAM(n_memories=64, beta=BETA, random_state=0).fit(X)
    E_learned = learned.energy(grid.reshape(-1, 2)).reshape(R.size, theta.size)
    # DiffusionAM's 64 equal memories stand for 1000 points: shift by log(1000/64)
    E_learned = E_learned - np.log(1000 / 64) / BETA
    return R, E, closed, E_learned


def part_digits(quick):
    data = load_digits().data / 16.0
    Ks = (20, 200) if quick else (20, 200, data.shape[0])
    n = 100 if quick else 300
    rows, shown = [], {}
    for K in Ks:
        X = data[np.random.RandomState(0).permutation(data.shape[0])[:K]]
        stored = DenseAM(beta="scale").fit(X)
        beta = stored.beta_
        learned = DiffusionAM(
            n_memories=min(K, 100),
            beta=beta,
            max_epochs=50 if quick else 200,
            random_state=0,
        ).fit(X)
        for name, model in (("stored", stored), (f"learned ({min(K, 100)})", learned)):
            samples, labels, found = sample_and_label(
                model, X, n, descend=True, n_steps=200, copy=np.inf
            )
            fr = label_fractions(labels)
            rows.append(
                (
                    K,
                    name,
                    beta,
                    fr["copy"],
                    fr["spurious"],
                    fr["novel"],
                    found.minima.shape[0],
                )
            )
            shown[(K, name)] = (X, samples)
            print(
                f"digits K={K:5d} {name:14s} beta {beta:.2f} copy {fr['copy']:.3f} "
                f"spurious {fr['spurious']:.3f} novel {fr['novel']:.3f}",
                flush=True,
            )
    return rows, shown


def part_speed(quick):
    X = load_digits().data / 16.0
    beta = 20.0
    am = DenseAM(beta=beta, max_iter=0).fit(X)
    kde = KernelDensity(bandwidth=1 / np.sqrt(beta)).fit(X)
    n = 2000 if quick else 20000
    ours, theirs = [], []
    for rep in range(5):
        t0 = time.perf_counter()
        am.sample(n, random_state=rep)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kde.sample(n, random_state=rep)
        theirs.append(time.perf_counter() - t0)
    return float(np.median(ours)), float(np.median(theirs)), n


def write_figures(panels, energy, digits_shown):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(name for _, name in panels))
    colours = {"copy": "tab:red", "spurious": "tab:orange", "novel": "tab:blue"}
    fig, axes = plt.subplots(
        len(names), len(KS), figsize=(3.2 * len(KS), 3.3 * len(names))
    )
    t = np.linspace(0, 2 * np.pi, 200)
    for i, name in enumerate(names):
        for j, K in enumerate(KS):
            ax = axes[i, j]
            X, samples, labels, memories = panels[(K, name)]
            ax.plot(np.cos(t), np.sin(t), color="0.8", lw=1)
            ax.scatter(
                X[:, 0],
                X[:, 1],
                marker="*" if K < 100 else ".",
                s=90 if K < 100 else 2,
                facecolor="none" if K < 100 else "k",
                edgecolor="k",
                linewidth=0.8,
                zorder=2,
                label="training" if (i, j) == (0, 0) else None,
            )
            for lab, c in colours.items():
                pick = labels == lab
                ax.scatter(
                    samples[pick, 0],
                    samples[pick, 1],
                    s=10,
                    color=c,
                    alpha=0.6,
                    zorder=3,
                    label=lab if (i, j) == (0, 0) else None,
                )
            if memories is not None and name.startswith("learned"):
                ax.scatter(
                    memories[:, 0],
                    memories[:, 1],
                    marker="x",
                    s=14,
                    color="tab:green",
                    zorder=4,
                    label="learned memories" if j == 0 else None,
                )
            ax.set_aspect("equal")
            ax.set_xlim(-1.4, 1.4)
            ax.set_ylim(-1.4, 1.4)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"K = {K}")
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.legend(loc="lower center", ncol=5, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(RESULTS / "sampling_circle.png", dpi=110)
    plt.close(fig)

    R, E, closed, E_learned = energy
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.fill_between(
        R,
        E.min(axis=1),
        E.max(axis=1),
        color="tab:blue",
        alpha=0.3,
        label="stored K = 1000 (range over angles)",
    )
    ax.plot(R, E.mean(axis=1), color="tab:blue")
    ax.plot(
        R,
        E_learned.mean(axis=1),
        color="tab:green",
        ls="--",
        label="learned, 64 memories (mean over angles)",
    )
    ax.plot(R, closed, color="k", ls=":", lw=2, label="closed form (Bessel)")
    ax.set_xlabel("radius R")
    ax.set_ylabel("energy E")
    ax.set_title(f"Energy of the circle, beta = {BETA:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "sampling_energy.png", dpi=110)
    plt.close(fig)

    if digits_shown:
        K = max(k for k, _ in digits_shown)
        keys = [key for key in digits_shown if key[0] == K]
        fig, axes = plt.subplots(2 * len(keys), 10, figsize=(10, 2.2 * len(keys)))
        for r, key in enumerate(keys):
            X, samples = digits_shown[key]
            nearest = np.argmin(((samples[:10, None] - X[None]) ** 2).sum(-1), axis=1)
            for c in range(10):
                axes[2 * r, c].imshow(samples[c].reshape(8, 8), cmap="gray_r")
                axes[2 * r + 1, c].imshow(X[nearest[c]].reshape(8, 8), cmap="gray_r")
            axes[2 * r, 0].set_ylabel(f"{key[1]}\nsample", fontsize=8)
            axes[2 * r + 1, 0].set_ylabel("nearest\ntraining", fontsize=8)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"digits, K = {K}: samples and their nearest training image")
        fig.tight_layout()
        fig.savefig(RESULTS / "sampling_digits.png", dpi=110)
        plt.close(fig)


def write_table(circle_rows, energy, digits_rows, speed):
    lines = [
        "# Sampling: memorisation, spurious states and generalisation",
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}.",
        "",
    ]
    if circle_rows:
        lines += [
            "## Circle (1000 samples per row; labels of skam.diagnostics)",
            "",
            "| K | sampler | copy | spurious | novel | spurious minima | median radius | fit (s) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for K, name, c, s, nv, nmin, rad, fit_s in circle_rows:
            lines.append(
                f"| {K} | {name} | {c:.3f} | {s:.3f} | {nv:.3f} | {nmin} | {rad:.3f} | {fit_s:.1f} |"
            )
        R, E, closed, E_learned = energy
        band = (R > 0.7) & (R < 1.3)
        lines += [
            "",
            f"Energy at K = 1000, beta = {BETA:g}, 0.7 < R < 1.3: largest gap between "
            f"the angle-averaged energy and the closed form "
            f"{np.max(np.abs(E.mean(axis=1) - closed)[band]):.4f} (stored), "
            f"{np.max(np.abs(E_learned.mean(axis=1) - closed)[band]):.4f} (learned); "
            f"spread over angles {np.max((E.max(axis=1) - E.min(axis=1))[band]):.4f} "
            f"(stored), {np.max((E_learned.max(axis=1) - E_learned.min(axis=1))[band]):.4f} "
            f"(learned); thermal energy 1/beta = {1 / BETA:.4f}.",
            "",
        ]
    if digits_rows:
        lines += [
            "## Digits / 16 (300 samples per row, annealed then descended)",
            "",
            "| K | memory | beta | copy | spurious | novel | spurious minima |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for K, name, beta, c, s, nv, nmin in digits_rows:
            lines.append(
                f"| {K} | {name} | {beta:.2f} | {c:.3f} | {s:.3f} | {nv:.3f} | {nmin} |"
            )
        lines.append("")
    if speed:
        ours, theirs, n = speed
        lines += [
            "## Exact draws against KernelDensity.sample",
            "",
            f"{n} Gaussian-kernel draws from the 1797 digits: DenseAM.sample "
            f"{ours * 1e3:.1f} ms, KernelDensity.sample {theirs * 1e3:.1f} ms "
            f"(ratio {ours / theirs:.2f}; medians of 5, interleaved).",
            "",
        ]
    (RESULTS / "sampling.md").write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--circle", action="store_true")
    parser.add_argument("--digits", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    everything = not (args.circle or args.digits or args.speed)
    print(f"load average {os.getloadavg()[0]:.1f}")
    circle_rows, panels, energy = (
        part_circle(args.quick) if (everything or args.circle) else ([], {}, None)
    )
    digits_rows, shown = (
        part_digits(args.quick) if (everything or args.digits) else ([], {})
    )
    speed = part_speed(args.quick) if (everything or args.speed) else None
    if speed:
        print(f"exact draws {speed[0]:.4f}s vs KernelDensity.sample {speed[1]:.4f}s")
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    write_table(circle_rows, energy, digits_rows, speed)
    if panels:
        write_figures(panels, energy, shown)


if __name__ == "__main__":
    main()
