"""AMClustering (ClAM) against KMeans, GaussianMixture and Ward.

Protocol (``../shared/reference/baselines.md`` section 3):

* scikit-learn sets: iris raw, wine and breast_cancer standardised
  (``StandardScaler``), digits divided by 16; the ``fcps`` and ``sipu``
  batteries from the shared data folder (skipped when absent), scaled as the
  suite does, ``(X - X.mean(axis=0)) / X.std()`` (one overall std);
* k = the true number of clusters (distinct labels >= 1); points labelled 0
  (noise) are left out of ARI and NMI;
* silhouette on the predicted labels, ``sample_size=min(n, 4000)``,
  ``random_state=0``;
* ``KMeans(k, n_init=10, random_state=0)``; ``GaussianMixture(k,
  covariance_type="full", n_init=3, random_state=0)``;
  ``AgglomerativeClustering(k, linkage="ward")``; ``AMClustering(k,
  random_state=0)`` (every parameter at its default: ``init="lloyd"``,
  ``n_polish=20``);
* does the ClAM training earn its cost? ``AMClustering(k, max_epochs=0)``
  is the same fit without the training (the Lloyd start and the basin
  polish only);
* model selection without labels (the ClAM paper's): ``AMClustering(k,
  beta="silhouette")`` trains the 5 candidate ``beta`` of its grid and keeps
  the one of highest silhouette; KMeans gets the same selection budget: 5
  fits of ``KMeans(k, n_init=10, random_state=s)``, ``s = 0..4``, the one of
  highest silhouette kept (same silhouette subsample).
  GaussianMixture and Ward run up to 20 000 samples (Ward needs O(n^2)
  memory); birch2 and worms_2 (100 000+ samples) run only with ``--all``.

Fit times are wall-clock seconds of one fit on this machine (other processes
may share its cores: compare ratios). On birch1 (n = 100 000, k = 100) the
peak memory of a fit is measured with ``tracemalloc`` on a separate 3-epoch
fit (same code path: seeding, minibatches, restart comparison, final
assignment of all samples).

Run: ``python benchmarks/bench_clustering.py [--all] [--quick]``. Writes
``benchmarks/results/clustering.md`` and ``benchmarks/results/clustering.png``.
"""

import argparse
import os
import platform
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from skam.cluster import AMClustering
from skam.datasets import load_clustering_benchmark

RESULTS = Path(__file__).parent / "results"
FCPS = [
    "atom",
    "chainlink",
    "engytime",
    "hepta",
    "lsun",
    "target",
    "tetra",
    "twodiamonds",
    "wingnut",
]
SIPU = [
    "a1",
    "a2",
    "a3",
    "aggregation",
    "birch1",
    "birch2",
    "compound",
    "d31",
    "flame",
    "jain",
    "pathbased",
    "r15",
    "s1",
    "s2",
    "s3",
    "s4",
    "spiral",
    "unbalance",
    "worms_2",
]
ONLY_WITH_ALL = {"birch2", "worms_2"}
QUICK = {"iris", "wine", "fcps/hepta", "sipu/r15"}
MAX_N_BASELINES = 20000
METHODS = ("am", "kmeans", "gmm", "ward")
SELECTION = ("am0", "am_sil", "km_sil")
N_SELECT = 5


def datasets(include_all, quick):
    """(name, X, y) with y = -1 where the point is noise (left out of scores)."""
    X, y = load_iris(return_X_y=True)
    yield "iris", X, y
    for name, loader in (("wine", load_wine), ("breast_cancer", load_breast_cancer)):
        X, y = loader(return_X_y=True)
        yield name, StandardScaler().fit_transform(X), y
    X, y = load_digits(return_X_y=True)
    yield "digits", X / 16.0, y
    for battery, names in (("fcps", FCPS), ("sipu", SIPU)):
        for name in names:
            if name in ONLY_WITH_ALL and not include_all:
                continue
            try:
                X, labels = load_clustering_benchmark(battery, name)
            except FileNotFoundError:
                print(f"{battery}/{name} not found (set SKAM_DATA): skipped")
                continue
            X = (X - X.mean(axis=0)) / X.std()
            yield f"{battery}/{name}", X, np.where(labels > 0, labels, -1)


class KMeansSelected:
    """The KMeans(n_init=10) of highest silhouette among ``N_SELECT`` seeds."""

    def __init__(self, k):
        self.k = k

    def fit_predict(self, X):
        best = None
        for seed in range(N_SELECT):
            labels = KMeans(self.k, n_init=10, random_state=seed).fit_predict(X)
            score = _silhouette(X, labels)
            if best is None or score > best[0]:
                best = (score, labels)
        return best[1]


def _silhouette(X, labels):
    if not 1 < np.unique(labels).size < X.shape[0]:
        return float("nan")
    return silhouette_score(
        X, labels, sample_size=min(X.shape[0], 4000), random_state=0
    )


def make_models(k, n):
    models = {
        "am": AMClustering(k, random_state=0),
        "kmeans": KMeans(k, n_init=10, random_state=0),
        "am0": AMClustering(k, max_epochs=0, random_state=0),
        "am_sil": AMClustering(k, beta="silhouette", random_state=0),
        "km_sil": KMeansSelected(k),
    }
    if n <= MAX_N_BASELINES:
        models["gmm"] = GaussianMixture(
            k, covariance_type="full", n_init=3, random_state=0
        )
        models["ward"] = AgglomerativeClustering(k, linkage="ward")
    return models


def evaluate(X, y, labels):
    keep = y >= 0
    ari = adjusted_rand_score(y[keep], labels[keep])
    nmi = normalized_mutual_info_score(y[keep], labels[keep])
    return ari, nmi, _silhouette(X, labels)


def peak_memory_mib(model, X):
    """Peak traced allocation (MiB) of one fit."""
    tracemalloc.start()
    model.fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def run(include_all, quick):
    rows = []
    memory = {}
    start = time.perf_counter()
    for name, X, y in datasets(include_all, quick):
        if quick and name not in QUICK:
            continue
        k = int(np.unique(y[y >= 0]).size)
        row = {"name": name, "n": X.shape[0], "d": X.shape[1], "k": k}
        for method, model in make_models(k, X.shape[0]).items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                labels = model.fit_predict(X)
            row[f"time_{method}"] = time.perf_counter() - t0
            scores = evaluate(X, y, np.asarray(labels))
            for metric, value in zip(("ari", "nmi", "sil"), scores, strict=True):
                row[f"{metric}_{method}"] = value
            if method == "am_sil":
                row["beta_pick"] = float(model.beta_ / model.beta_candidates_[-1])
        if name == "sipu/birch1":
            memory["am"] = peak_memory_mib(
                AMClustering(k, max_epochs=3, random_state=0), X
            )
            memory["kmeans"] = peak_memory_mib(KMeans(k, n_init=10, random_state=0), X)
            memory["data"] = X.nbytes / 2**20
        rows.append(row)
        print(
            f"{name:20s} n={row['n']:6d} k={k:3d}  ARI am {row['ari_am']:.3f} "
            f"km {row['ari_kmeans']:.3f}  sil am {row['sil_am']:.3f} "
            f"km {row['sil_kmeans']:.3f}  time am {row['time_am']:.2f}s "
            f"km {row['time_kmeans']:.2f}s  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    return rows, memory, time.perf_counter() - start


def _cell(row, key, fmt="{:.3f}"):
    value = row.get(key)
    if value is None:
        return "–"
    if isinstance(value, float) and np.isnan(value):
        return "nan"
    return fmt.format(value)


def _at_least(a, b):
    """``a >= b`` on the values as printed (3 decimals)."""
    return round(a, 3) >= round(b, 3)


def summary(rows, memory):
    n = len(rows)
    sil_ok = sum(_at_least(r["sil_am"], r["sil_kmeans"]) for r in rows)
    ari_ok = sum(_at_least(r["ari_am"], r["ari_kmeans"]) for r in rows)
    lines = [
        f"- Silhouette of AMClustering >= KMeans's on **{sil_ok} of {n}** sets "
        f"(target: most).",
        f"- ARI of AMClustering >= KMeans's on **{ari_ok} of {n}** sets "
        f"(target: at least two thirds, {int(np.ceil(2 * n / 3))}).",
        f"- Mean ARI: AMClustering {np.mean([r['ari_am'] for r in rows]):.3f}, "
        f"KMeans {np.mean([r['ari_kmeans'] for r in rows]):.3f}; mean "
        f"silhouette: {np.nanmean([r['sil_am'] for r in rows]):.3f} vs "
        f"{np.nanmean([r['sil_kmeans'] for r in rows]):.3f}.",
    ]

    def count(a, b, metric):
        return sum(_at_least(r[f"{metric}_{a}"], r[f"{metric}_{b}"]) for r in rows)

    def strictly(a, b, metric):
        return sum(
            round(r[f"{metric}_{a}"], 3) > round(r[f"{metric}_{b}"], 3) for r in rows
        )

    lines += [
        f"- Without the ClAM training (`max_epochs=0`: Lloyd start and basin "
        f"polish only): ARI >= KMeans's on **{count('am0', 'kmeans', 'ari')} of "
        f"{n}**, silhouette on **{count('am0', 'kmeans', 'sil')} of {n}**. The "
        f"training raises ARI on {strictly('am', 'am0', 'ari')} sets and lowers it"
        f" on {strictly('am0', 'am', 'ari')}; silhouette up on "
        f"{strictly('am', 'am0', 'sil')}, down on {strictly('am0', 'am', 'sil')}.",
        f"- Selection by silhouette, same budget ({N_SELECT} candidates each): "
        f"`AMClustering(beta='silhouette')` vs the best-silhouette of {N_SELECT} "
        f"`KMeans(n_init=10)` seeds: ARI >= on **{count('am_sil', 'km_sil', 'ari')}"
        f" of {n}**, silhouette >= on **{count('am_sil', 'km_sil', 'sil')} of "
        f"{n}**; mean ARI {np.mean([r['ari_am_sil'] for r in rows]):.3f} vs "
        f"{np.mean([r['ari_km_sil'] for r in rows]):.3f}, mean silhouette "
        f"{np.nanmean([r['sil_am_sil'] for r in rows]):.3f} vs "
        f"{np.nanmean([r['sil_km_sil'] for r in rows]):.3f}.",
    ]
    birch = [r for r in rows if r["name"] == "sipu/birch1"]
    if birch:
        r = birch[0]
        ratio = r["time_am"] / r["time_kmeans"]
        lines.append(
            f"- birch1 (n = 100 000, k = 100): AMClustering fit {r['time_am']:.1f} s"
            f" vs KMeans(n_init=10) {r['time_kmeans']:.1f} s, ratio **{ratio:.1f}x**"
            " (target: <= 10x)."
        )
    if memory:
        lines.append(
            f"- birch1 peak traced memory of one fit: AMClustering "
            f"{memory['am']:.0f} MiB, KMeans {memory['kmeans']:.0f} MiB (the data "
            f"is {memory['data']:.1f} MiB; AMClustering's temporaries are bounded "
            "by minibatches, 4096-row chunks and scikit-learn's `working_memory`)."
        )
    return lines


def write_markdown(rows, memory, elapsed, path):
    head = (
        "| data set | n | d | k | ARI AM | ARI KM | ARI GMM | ARI Ward | "
        "NMI AM | NMI KM | sil AM | sil KM | sil GMM | sil Ward |"
    )
    lines = [
        "# Clustering: AMClustering (ClAM) vs KMeans, GaussianMixture, Ward",
        "",
        "Written by `benchmarks/bench_clustering.py`; protocol in its docstring "
        "(`baselines.md` section 3). AM = `AMClustering(k, "
        "random_state=0)` (defaults: `init='lloyd'`, `n_init=1`, `n_polish=20`), "
        "KM = `KMeans(k, n_init=10, random_state=0)`, "
        "GMM = `GaussianMixture(k, covariance_type='full', n_init=3)`, Ward = "
        "`AgglomerativeClustering(k, linkage='ward')` (– : not run, n > "
        f"{MAX_N_BASELINES}). Noise points (label 0) are left out of ARI and NMI.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores (shared with other processes), Python "
        f"{platform.python_version()}, NumPy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}. Whole run: {elapsed / 60:.1f} min.",
        "",
        "## Summary",
        "",
        *summary(rows, memory),
        "",
        "## Scores",
        "",
        head,
        "|" + "---|" * 14,
    ]
    for r in rows:
        cells = [r["name"], str(r["n"]), str(r["d"]), str(r["k"])]
        cells += [_cell(r, f"ari_{m}") for m in METHODS]
        cells += [_cell(r, "nmi_am"), _cell(r, "nmi_kmeans")]
        cells += [_cell(r, f"sil_{m}") for m in METHODS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## With and without the ClAM training; selection by silhouette",
        "",
        "AM0 = `AMClustering(k, max_epochs=0)` (no training), AM-sil = "
        "`AMClustering(k, beta='silhouette')` (beta picked: a multiple of the "
        f"'scale' rule), KM-sil = the best-silhouette of {N_SELECT} "
        "`KMeans(n_init=10)` seeds.",
        "",
        "| data set | ARI AM | ARI AM0 | ARI KM | sil AM | sil AM0 | sil KM | "
        "ARI AM-sil | ARI KM-sil | sil AM-sil | sil KM-sil | beta picked |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        cells = [r["name"]]
        cells += [_cell(r, f"ari_{m}") for m in ("am", "am0", "kmeans")]
        cells += [_cell(r, f"sil_{m}") for m in ("am", "am0", "kmeans")]
        cells += [_cell(r, f"ari_{m}") for m in ("am_sil", "km_sil")]
        cells += [_cell(r, f"sil_{m}") for m in ("am_sil", "km_sil")]
        cells.append(f"{r['beta_pick']:g} x scale")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Fit times (seconds)",
        "",
        "| data set | AM | KM | GMM | Ward | AM / KM | AM0 | AM-sil | KM-sil |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["name"]] + [_cell(r, f"time_{m}", "{:.2f}") for m in METHODS]
        cells.append(f"{r['time_am'] / r['time_kmeans']:.1f}")
        cells += [_cell(r, f"time_{m}", "{:.2f}") for m in SELECTION]
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, metric, title in (
        (axes[0], "ari", "ARI against the reference labels"),
        (axes[1], "sil", "silhouette"),
    ):
        km = np.array([r[f"{metric}_kmeans"] for r in rows])
        am = np.array([r[f"{metric}_am"] for r in rows])
        ax.scatter(km, am, s=18, color="tab:blue")
        for r, x, y in zip(rows, km, am, strict=True):
            if abs(y - x) > 0.02:
                ax.annotate(r["name"].split("/")[-1], (x, y), fontsize=7)
        low = min(np.nanmin(km), np.nanmin(am)) - 0.05
        ax.plot([low, 1], [low, 1], color="grey", lw=0.8)
        ax.set_xlabel("KMeans(n_init=10)")
        ax.set_ylabel("AMClustering()")
        ax.set_title(title)
    fig.suptitle("Above the diagonal: AMClustering is better")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="add birch2, worms_2")
    parser.add_argument("--quick", action="store_true", help="a few sets only")
    args = parser.parse_args()
    rows, memory, elapsed = run(args.all, args.quick)
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    md = RESULTS / f"clustering{suffix}.md"
    write_markdown(rows, memory, elapsed, md)
    plot(rows, RESULTS / f"clustering{suffix}.png")
    print("\n".join(summary(rows, memory)))
    print(f"wrote {md} ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
