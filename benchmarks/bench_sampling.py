"""Sampling benchmark: memorisation, spurious states and generalisation (chapter 4).

Part 1 (``--circle``): K = 2, 9, 100, 1000 training points on the unit circle
(uniform angles, seed 9) and 1000 held-out points (seed 123). Five samplers,
1000 samples each, all by reverse diffusion (``sample(method="anneal")``,
400 geometric steps from ``beta = 1``, i.e. t = 1 of a diffusion with
sigma = 1), the raw end points (no descent afterwards):

* **stored, exact score, t -> 0**: ``DenseAM(beta=1e10)`` on the K points:
  reverse diffusion with the exact empirical score down to t = 1e-10;
* **stored, beta = 40**: ``DenseAM(beta=40)`` (the tutorial's exact-energy
  plots: its ``exp(-20 |x - xi|^2)`` is skam's beta = 40), a kernel density
  estimate at a fixed temperature;
* **learned, DSM bandwidth**: ``DiffusionAM(n_memories=64)``: 64 memories and
  one bandwidth learned by denoising score matching down to t = 1e-5; its
  reverse diffusion ends at its own ``beta_ = 1/(h^2 + 1e-5)``;
* **learned, overlap**: the same with ``bandwidth="overlap"`` (the
  bandwidth is kept at least half the median spacing of the memories, so
  that neighbouring wells merge);
* **stored, learned beta**: ``DenseAM`` on the K points at the ``beta_`` the
  overlap model learned (the same temperature, every point stored).

Labels (:mod:`skam.diagnostics`): a copy is within 0.05 of a training point
and within a quarter of that point's distance to its nearest neighbour;
spurious within 0.05 of an isolated spurious minimum (descent from the
samples, end points merged at 0.01, isolation: the energy rises by
``1/(4 beta)`` one kernel width away in all of 8 random directions); novel
otherwise. Quality: the median radial error ``| |x| - 1 |`` (on the circle or
not), the nearest-neighbour distance ratios of
:func:`skam.diagnostics.sample_quality` against the held-out points, and the
held-out log-likelihood ``score``. Energy check: ``DenseAM(beta=40).energy``
on K = 1000 points, and the overlap model's energy at its ``beta_``, against
the closed form ``E(R) = (R^2 + 1)/2 - (1/beta) log I0(beta R) - (1/beta)
log K`` of the continuous circle (Eq. 4.13 in skam's convention).

Part 2 (``--digits``): scikit-learn's digits / 16 (64 features), K = 20, 200,
1297 training images and the other 500 held out. Stored at t -> 0, stored at
``beta="scale"``, learned ``DiffusionAM(n_memories=min(K, 100))`` (bandwidth
by DSM) and stored at the learned beta; 300 samples each by reverse
diffusion, labelled with a copy threshold of infinity and the same ratio
rule (spurious within a quarter of the median nearest-neighbour distance of
the training images of a spurious minimum).

Part 3 (``--speed``): exact draws against ``KernelDensity.sample`` (the same
Gaussian-kernel draws in scikit-learn), 20 000 samples from the 1797 digits,
interleaved A B A B, medians of 5.

Writes ``benchmarks/results/sampling.md`` and ``sampling_circle.png``,
``sampling_energy.png``, ``sampling_digits.png``. Prints the load average
and the process CPU time.

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
from sklearn.neighbors import KernelDensity, NearestNeighbors

from skam import DenseAM, DiffusionAM
from skam.diagnostics import (
    label_fractions,
    label_samples,
    sample_quality,
    spurious_minima,
)

RESULTS = Path(__file__).parent / "results"
KS = (2, 9, 100, 1000)
BETA = 40.0
COPY, MERGE, RATIO = 0.05, 0.01, 0.25
N_MEMORIES = 64
QUALITY = (
    "train_distance_ratio",
    "test_distance_ratio",
    "coverage_ratio",
    "log_likelihood",
)
STEPS = 400


def circle(K, seed=9):
    angle = np.random.RandomState(seed).uniform(0, 2 * np.pi, K)
    return np.c_[np.cos(angle), np.sin(angle)]


def bessel_energy(R, beta, K):
    """Continuous-circle energy in skam's convention (log I0 via ive)."""
    log_i0 = np.log(ive(0, beta * R)) + beta * R
    return (R**2 + 1) / 2 - log_i0 / beta - np.log(K) / beta


def sample_and_label(model, X, X_test, n, *, copy, spurious, seed=1):
    """Reverse-diffusion samples, their labels and their quality."""
    samples = model.sample(n, method="anneal", n_steps=STEPS, random_state=seed)
    found = spurious_minima(
        model,
        X,
        copy_threshold=copy,
        copy_ratio=RATIO,
        merge_threshold=min(MERGE, spurious),
        starts=samples,
        random_state=0,
    )
    labels = label_samples(
        samples,
        X,
        copy_threshold=copy,
        copy_ratio=RATIO,
        spurious_minima=found.minima,
        spurious_threshold=spurious,
    )
    quality = sample_quality(samples, X, X_test)
    quality.log_likelihood = float(model.score(X_test))
    return samples, labels, found, quality


def circle_models(K):
    learned = DiffusionAM(n_memories=N_MEMORIES, random_state=0)
    overlap = DiffusionAM(n_memories=N_MEMORIES, bandwidth="overlap", random_state=0)
    return [
        ("stored, exact score, t -> 0", DenseAM(beta=1e10)),
        (f"stored, beta = {BETA:g}", DenseAM(beta=BETA)),
        (f"learned ({N_MEMORIES}), DSM bandwidth", learned),
        (f"learned ({N_MEMORIES}), overlap", overlap),
        ("stored, learned beta", None),  # the overlap model's beta_
    ]


def part_circle(quick):
    n = 200 if quick else 1000
    X_test = circle(1000, seed=123)
    rows, panels = [], {}
    for K in KS:
        X = circle(K)
        fitted = {}
        for name, model in circle_models(K):
            if model is None:
                model = DenseAM(beta=fitted["overlap"].beta_)
            t0 = time.process_time()
            model.fit(X)
            fit_s = time.process_time() - t0
            if name.endswith("overlap"):
                fitted["overlap"] = model
            samples, labels, found, q = sample_and_label(
                model, X, X_test, n, copy=COPY, spurious=COPY
            )
            fr = label_fractions(labels)
            radial = float(np.median(np.abs(np.linalg.norm(samples, axis=1) - 1)))
            rows.append(
                dict(
                    K=K,
                    name=name,
                    beta=float(model.beta_),
                    minima=found.minima.shape[0],
                    radial=radial,
                    fit=fit_s,
                    **fr,
                    **{k: q[k] for k in QUALITY},
                )
            )
            panels[(K, name)] = (X, samples, labels, getattr(model, "memories_", None))
            print(
                f"K={K:5d} {name:30s} beta {model.beta_:10.1f} copy {fr['copy']:.3f} "
                f"spurious {fr['spurious']:.3f} novel {fr['novel']:.3f} radial "
                f"{radial:.4f} ratios {q.train_distance_ratio:.2f} "
                f"{q.test_distance_ratio:.2f} {q.coverage_ratio:.2f} "
                f"loglik {q.log_likelihood:.2f} fit {fit_s:.1f}s CPU",
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
    learned = DiffusionAM(
        n_memories=N_MEMORIES, bandwidth="overlap", random_state=0
    ).fit(X)
    beta_l = learned.beta_
    E_learned = learned.energy(grid.reshape(-1, 2)).reshape(R.size, theta.size)
    closed_learned = bessel_energy(R, beta_l, N_MEMORIES)
    return R, E, closed, E_learned, closed_learned, beta_l


def part_digits(quick):
    data = load_digits().data / 16.0
    perm = np.random.RandomState(0).permutation(data.shape[0])
    X_test = data[perm[-500:]]
    Ks = (20, 200) if quick else (20, 200, data.shape[0] - 500)
    n = 100 if quick else 300
    rows, shown = [], {}
    for K in Ks:
        X = data[perm[:K]]
        spacing = np.median(
            NearestNeighbors(n_neighbors=2).fit(X).kneighbors(X)[0][:, 1]
        )
        scale = DenseAM(beta="scale").fit(X)
        t0 = time.process_time()
        learned = DiffusionAM(
            n_memories=min(K, 100),
            max_epochs=50 if quick else 200,
            random_state=0,
        ).fit(X)
        fit_s = time.process_time() - t0
        models = (
            ("stored, exact score, t -> 0", DenseAM(beta=1e10).fit(X)),
            ('stored, beta = "scale"', scale),
            (f"learned ({min(K, 100)}), DSM bandwidth", learned),
            ("stored, learned beta", DenseAM(beta=learned.beta_).fit(X)),
        )
        for name, model in models:
            samples, labels, found, q = sample_and_label(
                model, X, X_test, n, copy=np.inf, spurious=RATIO * spacing
            )
            fr = label_fractions(labels)
            rows.append(
                dict(
                    K=K,
                    name=name,
                    beta=float(model.beta_),
                    minima=found.minima.shape[0],
                    fit=fit_s if name.startswith("learned") else 0.0,
                    **fr,
                    **{k: q[k] for k in QUALITY},
                )
            )
            shown[(K, name)] = (X, samples)
            print(
                f"digits K={K:5d} {name:28s} beta {model.beta_:10.2f} copy "
                f"{fr['copy']:.3f} spurious {fr['spurious']:.3f} novel "
                f"{fr['novel']:.3f} ratios {q.train_distance_ratio:.2f} "
                f"{q.test_distance_ratio:.2f} {q.coverage_ratio:.2f} "
                f"loglik {q.log_likelihood:.1f}",
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
        len(names), len(KS), figsize=(2.9 * len(KS), 2.9 * len(names))
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
                    s=6,
                    color=c,
                    alpha=0.5,
                    zorder=3,
                    label=lab if (i, j) == (0, 0) else None,
                )
            if memories is not None and name.startswith("learned"):
                ax.scatter(
                    memories[:, 0],
                    memories[:, 1],
                    marker="x",
                    s=10,
                    linewidth=0.8,
                    color="tab:green",
                    zorder=2.5,
                    label="learned memories" if (i, j) == (2, 0) else None,
                )
            ax.set_aspect("equal")
            ax.set_xlim(-1.4, 1.4)
            ax.set_ylim(-1.4, 1.4)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"K = {K}")
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.legend(loc="lower center", ncol=5, fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(RESULTS / "sampling_circle.png", dpi=100)
    plt.close(fig)

    R, E, closed, E_learned, closed_learned, beta_l = energy
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, E_, ref, beta, label in (
        (axes[0], E, closed, BETA, "stored K = 1000"),
        (axes[1], E_learned, closed_learned, beta_l, "learned, 64 memories (overlap)"),
    ):
        ax.fill_between(
            R,
            E_.min(axis=1),
            E_.max(axis=1),
            color="tab:blue",
            alpha=0.3,
            label=f"{label} (range over angles)",
        )
        ax.plot(R, E_.mean(axis=1), color="tab:blue", label="mean over angles")
        ax.plot(R, ref, color="k", ls=":", lw=2, label="closed form (Bessel)")
        ax.set_xlabel("radius R")
        ax.set_ylabel("energy E")
        ax.set_title(f"{label}, beta = {beta:.0f}", fontsize=10)
        ax.set_ylim(ref.min() - 0.03, ref.max() + 0.03)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "sampling_energy.png", dpi=100)
    plt.close(fig)

    if digits_shown:
        K = max(k for k, _ in digits_shown)
        keys = [key for key in digits_shown if key[0] == K]
        fig, axes = plt.subplots(2 * len(keys), 10, figsize=(10, 2.1 * len(keys)))
        for r, key in enumerate(keys):
            X, samples = digits_shown[key]
            nearest = np.argmin(((samples[:10, None] - X[None]) ** 2).sum(-1), axis=1)
            for c in range(10):
                axes[2 * r, c].imshow(
                    samples[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1
                )
                axes[2 * r + 1, c].imshow(
                    X[nearest[c]].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1
                )
            axes[2 * r, 0].set_ylabel(f"{key[1]}\nsample", fontsize=7)
            axes[2 * r + 1, 0].set_ylabel("nearest\ntraining", fontsize=7)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"digits, K = {K}: samples and their nearest training image")
        fig.tight_layout()
        fig.savefig(RESULTS / "sampling_digits.png", dpi=100)
        plt.close(fig)


HEADER = (
    "| K | sampler | beta | copy | spurious | novel | spurious minima |{extra} "
    "train dist. ratio | test dist. ratio | coverage ratio | held-out log-lik. |"
)


def _table(rows, radial):
    extra = " radial error |" if radial else ""
    head = HEADER.format(extra=extra)
    lines = [head, "|" + "|".join(["---:"] * (head.count("|") - 1)) + "|"]
    lines[1] = lines[1].replace("|---:|---:|", "|---:|---|", 1)
    for r in rows:
        rad = f" {r['radial']:.4f} |" if radial else ""
        lines.append(
            f"| {r['K']} | {r['name']} | {r['beta']:.4g} | {r['copy']:.3f} | "
            f"{r['spurious']:.3f} | {r['novel']:.3f} | {r['minima']} |{rad} "
            f"{r['train_distance_ratio']:.2f} | {r['test_distance_ratio']:.2f} | "
            f"{r['coverage_ratio']:.2f} | {r['log_likelihood']:.4g} |"
        )
    return lines


def write_table(circle_rows, energy, digits_rows, speed, load, cpu):
    lines = [
        "# Sampling: memorisation, spurious states and generalisation",
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end; {cpu:.0f} s process CPU time.",
        "",
        'Samples are the end points of reverse diffusion (`sample(method="anneal")`, '
        "no descent). Ratios of `skam.diagnostics.sample_quality` against held-out "
        "data: train distance ratio about 0 for copies, about 1 for samples like "
        "unseen data, above 1 off the data; test distance ratio 1 for copies, "
        "above 1 off the data; coverage ratio 1 for copies, below 1 when samples "
        "fill the gaps between training points. Held-out log-likelihood: "
        "`score` of the held-out points (mean log-density).",
        "",
    ]
    if circle_rows:
        lines += [
            "## Circle (1000 samples per row, 1000 held-out points)",
            "",
            *_table(circle_rows, radial=True),
        ]
        R, E, closed, E_learned, closed_learned, beta_l = energy
        band = (R > 0.7) & (R < 1.3)
        lines += [
            "",
            f"Energy at K = 1000, 0.7 < R < 1.3, against the closed form: stored at "
            f"beta = {BETA:g}, largest gap of the angle-averaged energy "
            f"{np.max(np.abs(E.mean(axis=1) - closed)[band]):.4f}, spread over "
            f"angles {np.max((E.max(axis=1) - E.min(axis=1))[band]):.4f} (thermal "
            f"energy {1 / BETA:.4f}); learned (overlap) at its beta = {beta_l:.0f}, "
            f"gap {np.max(np.abs(E_learned.mean(axis=1) - closed_learned)[band]):.4f}, "
            f"spread {np.max((E_learned.max(axis=1) - E_learned.min(axis=1))[band]):.4f}"
            f" (thermal energy {1 / beta_l:.4f}).",
            "",
        ]
    if digits_rows:
        lines += [
            "## Digits / 16 (300 samples per row, 500 held-out images)",
            "",
            *_table(digits_rows, radial=False),
            "",
        ]
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
    load0 = os.getloadavg()[0]
    cpu0 = time.process_time()
    print(f"load average {load0:.1f}")
    circle_rows, panels, energy = (
        part_circle(args.quick) if (everything or args.circle) else ([], {}, None)
    )
    digits_rows, shown = (
        part_digits(args.quick) if (everything or args.digits) else ([], {})
    )
    speed = part_speed(args.quick) if (everything or args.speed) else None
    if speed:
        print(f"exact draws {speed[0]:.4f}s vs KernelDensity.sample {speed[1]:.4f}s")
    load1, cpu = os.getloadavg()[0], time.process_time() - cpu0
    print(f"load average {load1:.1f}; process CPU {cpu:.0f} s")
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    write_table(circle_rows, energy, digits_rows, speed, (load0, load1), cpu)
    if panels:
        write_figures(panels, energy, shown)


if __name__ == "__main__":
    main()
