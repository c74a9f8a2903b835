"""Random-feature benchmark: kernel errors, the beta breakdown, K scaling, RBFSampler.

Part 1 (``--error``): error of the kernel estimate ``<phi(x), phi(y)>`` against
the exact kernel (scikit-learn's ``rbf_kernel``, ``laplacian_kernel``, the
rational quadratic and Matern kernels) for every kernel and feature map of
:class:`skam.random_features.BochnerFeatures`, at Y = 64 ... 16384 frequencies
(RMS over all pairs of 60 points in 8 dimensions, ``gamma = 1/8``, mean of 3
seeds), with the fitted log-log slope (theory: -1/2).

Part 2 (``--breakdown``): baselines.md section 5.4 on digits / 16. Energy: 1000
digits stored, 200 others queried; median relative error of the kernel-sum
estimate and fraction of queries whose estimate is <= 0, for sklearn's
``RBFSampler(gamma=beta/2, n_components=4096)`` and skam's maps at 4096
dimensions. Classification: the class-sum vote (``RandomFeatureAMClassifier``)
at 1024 and 8192 dimensions against the exact vote, StratifiedKFold(5,
shuffle=True, random_state=0).

Part 3 (``--scaling``): model size (bytes of the fitted arrays) and retrieval
time (16 queries, 10 descent steps) of ``RandomFeatureAM`` (sincos, Y=1024) and
exact ``DenseAM`` for K = 1e3 ... 1e6 stored patterns in d = 16 (Gaussian
mixture, beta = 1 given as a float), and the gap between their outputs.
Both models are fitted with ``max_iter=0`` (no fit-time self-recall descent,
which would dominate DenseAM's fit at K = 1e6) and then set to ``max_iter=10``.

Part 4 (``--digits``): ``BochnerFeatures`` against ``RBFSampler`` at equal output
dimension (1000) under ``LogisticRegression`` on digits / 16, 5-fold
(StratifiedKFold(5, shuffle=True, random_state=0)): accuracy and time.

Writes ``benchmarks/results/random_features.md`` and the plots
``random_features_error.png``, ``random_features_scaling.png``.

Usage::

    python benchmarks/bench_random_features.py            # all parts
    python benchmarks/bench_random_features.py --scaling  # one part
    python benchmarks/bench_random_features.py --quick    # small sizes, nothing written
"""

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import Matern, RationalQuadratic
from sklearn.kernel_approximation import RBFSampler
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import laplacian_kernel, rbf_kernel
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_info

from skam import DenseAM
from skam.random_features import (
    BochnerFeatures,
    KernelSumClippedWarning,
    RandomFeatureAM,
    RandomFeatureAMClassifier,
)

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    """One line naming the machine and the BLAS."""
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, NumPy {np.__version__}, "
        + f"BLAS: {', '.join(blas) or 'unknown'}"
    )


def table(columns, rows):
    """A markdown table."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(out)


def _fmt(value):
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def _nbytes(estimator):
    return sum(v.nbytes for v in vars(estimator).values() if hasattr(v, "nbytes"))


# ------------------------------------------------------------- part 1: error
GAMMA = 1.0 / 8


def _oracles():
    ell = 1.0 / np.sqrt(2 * GAMMA)
    return {
        "gaussian": ({}, lambda X: rbf_kernel(X, gamma=GAMMA)),
        "laplacian": ({}, lambda X: laplacian_kernel(X, gamma=GAMMA)),
        "cauchy": ({}, lambda X: RationalQuadratic(length_scale=ell, alpha=1.0)(X)),
        "matern nu=0.5": ({"nu": 0.5}, lambda X: Matern(length_scale=ell, nu=0.5)(X)),
        "matern nu=1.5": ({"nu": 1.5}, lambda X: Matern(length_scale=ell, nu=1.5)(X)),
        "matern nu=2.5": ({"nu": 2.5}, lambda X: Matern(length_scale=ell, nu=2.5)(X)),
    }


def part_error(quick):
    sizes = [64, 256, 1024] if quick else [64, 256, 1024, 4096, 16384]
    X = np.random.RandomState(0).normal(scale=0.8, size=(60, 8))
    rows, curves = [], {}
    for name, (extra, oracle) in _oracles().items():
        K = oracle(X)
        kernel = name.split()[0]
        for fmap in ("sincos", "cos", "positive"):
            for orth in (False, True):
                if fmap == "positive" and kernel != "gaussian":
                    continue
                if orth and kernel == "laplacian":
                    continue
                errors = []
                for Y in sizes:
                    rms = []
                    for seed in range(3):
                        Z = BochnerFeatures(
                            kernel=kernel,
                            feature_map=fmap,
                            n_components=Y,
                            gamma=GAMMA,
                            orthogonal=orth,
                            random_state=seed,
                            **extra,
                        ).fit_transform(X)
                        rms.append(np.sqrt(np.mean((Z @ Z.T - K) ** 2)))
                    errors.append(float(np.mean(rms)))
                slope = float(np.polyfit(np.log(sizes), np.log(errors), 1)[0])
                label = f"{name} {fmap}{' orth' if orth else ''}"
                curves[label] = errors
                rows.append([name, fmap, "yes" if orth else "no", *errors, slope])
    columns = ["kernel", "map", "orthogonal"] + [f"Y={Y}" for Y in sizes] + ["slope"]
    text = (
        "RMS error of the kernel estimate over all pairs of 60 points "
        "(N(0, 0.8^2) in 8 dimensions, gamma = 1/8), mean of 3 seeds; slope = "
        "fitted log-log slope against Y (theory -0.5).\n\n" + table(columns, rows)
    )
    return text, (sizes, curves)


# --------------------------------------------------------- part 2: breakdown
def _digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def part_breakdown(quick):
    X, y = _digits()
    rng = np.random.RandomState(0)
    perm = rng.permutation(X.shape[0])
    memories, queries = X[perm[:1000]], X[perm[1000:1200]]
    betas = [0.5, 2.0, 8.0]
    maps = {
        "RBFSampler (cos)": lambda b, s: RBFSampler(
            gamma=b / 2, n_components=4096, random_state=s
        ),
        "skam cos": lambda b, s: BochnerFeatures(
            feature_map="cos", gamma=b / 2, n_components=4096, random_state=s
        ),
        "skam sincos": lambda b, s: BochnerFeatures(
            gamma=b / 2, n_components=2048, random_state=s
        ),
        "skam sincos orth": lambda b, s: BochnerFeatures(
            gamma=b / 2, n_components=2048, orthogonal=True, random_state=s
        ),
        "skam positive": lambda b, s: BochnerFeatures(
            feature_map="positive", gamma=b / 2, n_components=2048, random_state=s
        ),
    }
    seeds = [0] if quick else [0, 1, 2]
    rows = []
    for beta in betas:
        exact = rbf_kernel(queries, memories, gamma=beta / 2).sum(axis=1)
        for name, make in maps.items():
            rel, neg = [], []
            for seed in seeds:
                phi = make(beta, seed).fit(memories)
                T = phi.transform(memories).sum(axis=0)
                est = phi.transform(queries) @ T
                rel.append(np.median(np.abs(est - exact) / exact))
                neg.append(np.mean(est <= 0))
            rows.append(
                [beta, name, f"{min(rel):.3g}-{max(rel):.3g}",
                 f"{min(neg):.0%}-{max(neg):.0%}"]
            )  # fmt: skip
    energy_text = (
        "Kernel-sum estimate on digits / 16: 1000 stored, 200 other queries, "
        "4096 dimensions (sincos/positive: Y = 2048), seeds "
        f"{seeds}; ranges over seeds.\n\n"
        + table(["beta", "map", "median rel. error", "estimate <= 0"], rows)
    )
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    rows = []
    for beta in [1.0, 2.0, 5.0]:
        exact = _exact_vote_cv(X, y, beta, cv)
        row = [beta, exact]
        for Y in [512, 4096]:
            clf = RandomFeatureAMClassifier(n_components=Y, beta=beta, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", KernelSumClippedWarning)
                row.append(float(cross_val_score(clf, X, y, cv=cv).mean()))
        rows.append(row)
    class_text = (
        "Class-sum vote on digits / 16, StratifiedKFold(5, shuffle=True, "
        "random_state=0): exact one-step LSE vote against "
        "RandomFeatureAMClassifier (sincos) at 1024 and 8192 dimensions.\n\n"
        + table(["beta", "exact vote", "RF 1024 dims", "RF 8192 dims"], rows)
    )
    return energy_text + "\n\n" + class_text


def _exact_vote_cv(X, y, beta, cv):
    scores = []
    for train, test in cv.split(X, y):
        classes = np.unique(y[train])
        energies = np.column_stack(
            [
                DenseAM(beta=beta, max_iter=0)
                .fit(X[train][y[train] == c])
                .energy(X[test])
                for c in classes
            ]
        )
        scores.append(np.mean(classes[np.argmin(energies, axis=1)] == y[test]))
    return float(np.mean(scores))


# ----------------------------------------------------------- part 3: scaling
def part_scaling(quick):
    d, Y, n_queries, steps, beta = 16, 1024, 16, 10, 1.0
    Ks = [1000, 10000] if quick else [1000, 10000, 100000, 1000000]
    rng = np.random.RandomState(0)
    centers = rng.normal(scale=1.5, size=(50, d))
    rows, records = [], []
    for K in Ks:
        X = centers[rng.randint(0, 50, size=K)] + 0.25 * rng.normal(size=(K, d))
        Q = X[:n_queries] + 0.1 * rng.normal(size=(n_queries, d))
        common = {"beta": beta, "step_size": 0.5, "tol": 0.0, "max_iter": 0}
        start = time.perf_counter()
        exact = DenseAM(**common).fit(X).set_params(max_iter=steps)
        fit_exact = time.perf_counter() - start
        start = time.perf_counter()
        rf = RandomFeatureAM(n_components=Y, random_state=0, **common).fit(X)
        rf.set_params(max_iter=steps)
        fit_rf = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KernelSumClippedWarning)
            t_exact = _best_of(exact.transform, Q)
            t_rf = _best_of(rf.transform, Q)
            V_exact, result = exact.transform(Q), rf.descend(Q)
        V_rf, n_clipped = result.states, int(result.clipped.sum())
        gap = float(np.mean(np.linalg.norm(V_rf - V_exact, axis=1)))
        move = float(np.mean(np.linalg.norm(V_exact - Q, axis=1)))
        size_exact, size_rf = _nbytes(exact), _nbytes(rf)
        records.append((K, size_exact, size_rf, t_exact, t_rf))
        rows.append(
            [K, size_exact / 2**20, size_rf / 2**20, fit_exact, fit_rf, t_exact,
             t_rf, t_exact / t_rf, gap / move, n_clipped]
        )  # fmt: skip
        print(f"  K={K}: exact {t_exact:.3f} s, rf {t_rf:.3f} s", flush=True)
    columns = ["K", "DenseAM MiB", "RF MiB", "DenseAM fit s", "RF fit s",
               "DenseAM transform s", "RF transform s", "speed-up (exact/RF)",
               "gap / exact move", "RF clipped"]  # fmt: skip
    crossover = _crossover(records)
    text = (
        f"d = {d}, RandomFeatureAM sincos Y = {Y} (T has {2 * Y} numbers), beta "
        f"= {beta}, step_size = 0.5, {steps} steps, {n_queries} queries (stored "
        "patterns + N(0, 0.1^2) noise; data: 50 centres N(0, 1.5^2) + N(0, "
        "0.25^2) noise). Sizes: bytes of the fitted arrays. Times: best of 3. "
        "gap / exact move = mean |v_RF - v_exact| / mean |v_exact - q|; RF "
        "clipped = queries whose final kernel-sum estimate was <= epsilon.\n\n"
        + table(columns, rows)
        + "\n\n"
        + crossover
    )
    return text, records


def _best_of(fn, *args, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def _crossover(records):
    """Log-log interpolation of the K where the two curves cross."""
    K = np.log([r[0] for r in records])
    lines = []
    for label, i, j in (("size", 1, 2), ("transform time", 3, 4)):
        diff = np.log([r[i] for r in records]) - np.log([r[j] for r in records])
        cross = "beyond the measured range"
        for a in range(len(K) - 1):
            if diff[a] <= 0 < diff[a + 1]:
                t = -diff[a] / (diff[a + 1] - diff[a])
                cross = f"K ~ {np.exp(K[a] + t * (K[a + 1] - K[a])):.3g}"
        if diff[0] > 0:
            cross = f"below K = {int(np.exp(K[0]))}"
        lines.append(f"- crossover ({label}, DenseAM = RF): {cross}")
    return "\n".join(lines)


# ------------------------------------------------------------ part 4: digits
def part_digits(quick):
    X, y = _digits()
    cv = StratifiedKFold(3 if quick else 5, shuffle=True, random_state=0)
    dim = 300 if quick else 1000
    models = {
        f"RBFSampler(gamma=0.2, n_components={dim})": RBFSampler(
            gamma=0.2, n_components=dim, random_state=0
        ),
        f"BochnerFeatures(cos, Y={dim})": BochnerFeatures(
            feature_map="cos", gamma=0.2, n_components=dim, random_state=0
        ),
        f"BochnerFeatures(sincos, Y={dim // 2})": BochnerFeatures(
            gamma=0.2, n_components=dim // 2, random_state=0
        ),
        f"BochnerFeatures(sincos, orthogonal, Y={dim // 2})": BochnerFeatures(
            gamma=0.2, n_components=dim // 2, orthogonal=True, random_state=0
        ),
        f"BochnerFeatures(matern 2.5, sincos, Y={dim // 2})": BochnerFeatures(
            kernel="matern", nu=2.5, gamma=0.2, n_components=dim // 2, random_state=0
        ),
        f"BochnerFeatures(laplacian, sincos, Y={dim // 2})": BochnerFeatures(
            kernel="laplacian", gamma=0.02, n_components=dim // 2, random_state=0
        ),
    }
    rows, reference = [], None
    for name, features in models.items():
        pipe = make_pipeline(features, LogisticRegression())
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(pipe, X, y, cv=cv)
        elapsed = time.perf_counter() - start
        reference = reference or elapsed
        rows.append([name, f"{scores.mean():.4f} ± {scores.std():.4f}", elapsed,
                     elapsed / reference])  # fmt: skip
    return (
        f"Digits / 16, {cv.get_n_splits()}-fold StratifiedKFold(shuffle=True, "
        f"random_state=0), {dim} output dimensions, + LogisticRegression() "
        "(default C=1, max_iter=100). Laplacian gamma = 0.02 (its scale is per "
        "|x - y|_1). Times are dominated by LogisticRegression and vary by up to "
        "2x on a shared machine: RBFSampler and BochnerFeatures(cos) compute "
        "identical features (same seed), so their time ratio shows the noise."
        "\n\n" + table(["features", "accuracy", "time s", "time / RBFSampler"], rows)
    )


# ---------------------------------------------------------------- plotting
def plot_error(sizes, curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    for ax, fmap in zip(axes, ("sincos", "cos", "positive"), strict=True):
        for label, errors in curves.items():
            if f" {fmap}" in label:
                style = "--" if "orth" in label else "-"
                ax.loglog(sizes, errors, style, marker="o", ms=3, label=label)
        ref = curves[f"gaussian {fmap}"][0] * np.sqrt(sizes[0] / np.array(sizes))
        ax.loglog(sizes, ref, ":", color="k", label="1/sqrt(Y)")
        ax.set_title(f"feature_map={fmap!r}")
        ax.set_xlabel("Y (random frequencies)")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("RMS kernel error")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_scaling(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = [r[0] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.loglog(K, [r[1] / 2**20 for r in records], "o-", label="DenseAM (exact)")
    ax1.loglog(K, [r[2] / 2**20 for r in records], "s-", label="RandomFeatureAM")
    ax1.set_xlabel("stored patterns K")
    ax1.set_ylabel("fitted arrays (MiB)")
    ax1.legend()
    ax2.loglog(K, [r[3] for r in records], "o-", label="DenseAM (exact)")
    ax2.loglog(K, [r[4] for r in records], "s-", label="RandomFeatureAM")
    ax2.set_xlabel("stored patterns K")
    ax2.set_ylabel("transform time, 16 queries x 10 steps (s)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for part in ("error", "breakdown", "scaling", "digits"):
        parser.add_argument(f"--{part}", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small, write nothing")
    args = parser.parse_args()
    chosen = [p for p in ("error", "breakdown", "scaling", "digits") if vars(args)[p]]
    chosen = chosen or ["error", "breakdown", "scaling", "digits"]
    sections = [
        "# Random features\n",
        f"Machine: {machine()}. Command: `python benchmarks/bench_random_features.py`"
        + (f" --{' --'.join(chosen)}" if len(chosen) < 4 else "")
        + "\n",
    ]
    if "error" in chosen:
        print("part 1: kernel errors", flush=True)
        start = time.perf_counter()
        text, (sizes, curves) = part_error(args.quick)
        sections.append("## Kernel approximation error vs Y\n\n" + text + "\n")
        print(text, f"\n({time.perf_counter() - start:.0f} s)\n", flush=True)
        if not args.quick:
            plot_error(sizes, curves, RESULTS / "random_features_error.png")
    if "breakdown" in chosen:
        print("part 2: breakdown at large beta", flush=True)
        start = time.perf_counter()
        text = part_breakdown(args.quick)
        sections.append(
            "## Breakdown at large beta (baselines.md 5.4)\n\n" + text + "\n"
        )
        print(text, f"\n({time.perf_counter() - start:.0f} s)\n", flush=True)
    if "scaling" in chosen:
        print("part 3: scaling with K", flush=True)
        start = time.perf_counter()
        text, records = part_scaling(args.quick)
        sections.append("## Model size and retrieval time vs K\n\n" + text + "\n")
        print(text, f"\n({time.perf_counter() - start:.0f} s)\n", flush=True)
        if not args.quick:
            plot_scaling(records, RESULTS / "random_features_scaling.png")
    if "digits" in chosen:
        print("part 4: BochnerFeatures vs RBFSampler", flush=True)
        start = time.perf_counter()
        text = part_digits(args.quick)
        sections.append("## BochnerFeatures vs RBFSampler on digits\n\n" + text + "\n")
        print(text, f"\n({time.perf_counter() - start:.0f} s)\n", flush=True)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "random_features.md").write_text("\n".join(sections) + "\n")
        print(f"wrote {RESULTS / 'random_features.md'}")


if __name__ == "__main__":
    main()
