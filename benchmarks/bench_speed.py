"""Speed against what users would pick instead (issue 16).

Every row times skam and its baseline **in the same process, interleaved**
(``A B A B ...``, one BLAS thread), and reports medians and their ratio; the
load average is printed at the start and at the end. Workloads:

* ``predict``: nonparametric :class:`~skam.DenseAMClassifier` ``predict``
  against ``KNeighborsClassifier(n_neighbors=1, algorithm="brute")`` (float32
  and float64) and faiss ``IndexFlatL2`` k=1 search plus the label look-up
  (float32; faiss has no float64), on iris, digits, MNIST t10k (5000/5000) and
  a generated Fashion-MNIST-sized set (50 000 x 784 training points, values
  in [0, 1], 10 classes; ``--n-queries`` queries, default 500: the three are
  all GEMM-bound, so the ratio does not depend on the query count).
* ``single``: latency of ``predict`` of 1 row (digits) and 10 rows (MNIST)
  against kNN brute, and of ``DenseAM.transform`` of 1 row (K = 1000,
  d = 64) against the same LSE step written in plain NumPy.
* ``retrieval``: one LSE step of ``DenseAM.transform`` (n = K = 10 000 at
  d = 64, n = K = 5 000 at d = 784) against its two BLAS matrix products.
* ``parametric``: the default ``DenseAMClassifier(mode="parametric").fit``
  (early stopping; ``--epochs N`` caps it at N epochs) on the generated
  50 000 x 784 set, float32 and float64: wall and process CPU seconds,
  epochs, memories and test accuracy. No baseline: the target is absolute
  (60 s).
* ``clustering``: ``AMClustering.fit`` against ``KMeans(n_init=10)`` on blobs,
  n = 10^3 to 10^5, d = 2 and 64, k = 10 and 100, and the growth in n (the
  rows of ``bench_clustering_speed.py``, wall and process CPU seconds).
* ``growth``: log-log slopes of fit and predict time in the number of
  training points K (queries fixed) and in the number of queries n (K fixed).

Add a workload by writing one function ``def workload_<name>(args) ->
list[Row]`` and decorating it with ``@workload("<name>")``; it is then run by
default and selectable with ``--only <name>``.

faiss (``pip install faiss-cpu``, the ``bench`` extra) is optional: without
it, its rows are skipped.

Usage::

    python benchmarks/bench_speed.py                 # every workload, writes speed.md
    python benchmarks/bench_speed.py --only predict single
    python benchmarks/bench_speed.py --quick         # small sizes, nothing written
    python benchmarks/bench_speed.py --label before --json /tmp/before.json
"""

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

import skam
from skam import DenseAM, DenseAMClassifier
from skam.datasets import load_mnist_t10k

try:
    import faiss
except ImportError:  # benchmark-only dependency
    faiss = None

RESULTS = Path(__file__).resolve().parent / "results"


def mnist():
    """MNIST t10k (X in [0, 1], y) or None when the shared data are absent."""
    try:
        return load_mnist_t10k()
    except FileNotFoundError:
        print("MNIST t10k not found (set SKAM_DATA): its rows are skipped")
        return None


@dataclass
class Row:
    """One line of the table: skam against a baseline (or alone)."""

    workload: str
    skam_s: float
    baseline: str = ""
    baseline_s: float = float("nan")
    note: str = ""
    extra: dict = field(default_factory=dict)
    wall_ratio: float = float("nan")

    @property
    def ratio(self):
        return self.skam_s / self.baseline_s


WORKLOADS = {}


def workload(name):
    """Register ``fn(args) -> list[Row]`` under ``name``."""

    def register(fn):
        WORKLOADS[name] = fn
        return fn

    return register


# --------------------------------------------------------------------- timing
def interleaved(contenders, rounds, repeat=1):
    """Median process-CPU seconds per call of each contender, timed A B A B ...

    ``contenders`` maps a name to a no-argument callable; each round calls
    every contender ``repeat`` times in turn (one warm-up round first). The
    machine is shared, so the ratios use process CPU time, which other jobs
    inflate far less than wall time; the wall-time medians are kept too
    (``WALL``, same keys).
    """
    for fn in contenders.values():
        fn()
    cpu = {name: [] for name in contenders}
    wall = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(repeat):
                fn()
            cpu[name].append((time.process_time() - c) / repeat)
            wall[name].append((time.perf_counter() - w) / repeat)
    WALL.clear()
    WALL.update({name: statistics.median(t) for name, t in wall.items()})
    return {name: statistics.median(t) for name, t in cpu.items()}


WALL = {}
KNN = "KNeighborsClassifier(brute, k=1)"


def compare(label, times, key, baseline, note=""):
    """The :class:`Row` of skam against ``times[key]`` (last interleaved run)."""
    row = Row(
        label,
        times["skam"],
        baseline,
        times[key],
        note,
        wall_ratio=WALL["skam"] / WALL[key],
    )
    print_row(row)
    return row


def load():
    return os.getloadavg()[0]


# ----------------------------------------------------------------------- data
def fashion_sized(n, d=784, n_classes=10, seed=0):
    """Generated data of Fashion-MNIST's shape: class templates plus noise in [0, 1]."""
    rng = np.random.RandomState(seed)
    templates = rng.random_sample((n_classes, d))
    y = rng.randint(n_classes, size=n)
    X = np.clip(templates[y] + 0.35 * rng.standard_normal((n, d)), 0.0, 1.0)
    return X, y


def datasets(args):
    """(name, X_train, y_train, X_test) of the predict workloads."""
    out = []
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    out.append(("iris", X, y, X))
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    out.append(("digits (898/899)", X[::2], y[::2], X[1::2]))
    if (data := mnist()) is not None:
        X, y = data
        out.append(("MNIST t10k (5000/5000)", X[:5000], y[:5000], X[5000:]))
    n_train = 5000 if args.quick else 50_000
    X, y = fashion_sized(n_train + args.n_queries)
    out.append(
        (
            f"generated {n_train} x 784 ({args.n_queries} queries)",
            X[:n_train],
            y[:n_train],
            X[n_train:],
        )
    )
    return out


def faiss_1nn(X, y):
    """``predict`` of a 1-NN classifier on a faiss IndexFlatL2 (float32)."""
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(X, dtype=np.float32))

    def predict(Q):
        _, nearest = index.search(np.ascontiguousarray(Q, dtype=np.float32), 1)
        return y[nearest[:, 0]]

    return predict


# ------------------------------------------------------------------ workloads
@workload("predict")
def workload_predict(args):
    rows = []
    for name, X, y, Q in datasets(args):
        for dtype in (np.float64, np.float32):
            Xd, Qd = X.astype(dtype), Q.astype(dtype)
            am = DenseAMClassifier().fit(Xd, y)
            knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(Xd, y)
            contenders = {
                "skam": lambda am=am, Qd=Qd: am.predict(Qd),
                "knn": lambda knn=knn, Qd=Qd: knn.predict(Qd),
            }
            if faiss is not None and dtype == np.float32:
                search = faiss_1nn(Xd, y)
                contenders["faiss"] = lambda search=search, Qd=Qd: search(Qd)
            repeat = max(1, int(2e8 // (X.shape[0] * Q.shape[0] * X.shape[1] + 1)))
            t = interleaved(contenders, args.rounds, repeat=min(repeat, 200))
            label = f"predict, {name}, {np.dtype(dtype).name}"
            agree = float(np.mean(am.predict(Qd) == knn.predict(Qd)))
            note = f"agrees with 1-NN on {agree:.1%}"
            rows.append(compare(label, t, "knn", KNN, note))
            if "faiss" in t:
                rows.append(compare(label, t, "faiss", "faiss IndexFlatL2 k=1", note))
    return rows


def numpy_lse_step(q, M, beta):
    """One LSE step (step_size 1), the attention update, in plain NumPy."""
    logits = beta * (q @ M.T - 0.5 * np.einsum("ij,ij->i", M, M))
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p @ M) / p.sum(axis=1, keepdims=True)


@workload("single")
def workload_single(args):
    rows = []
    sets = {}
    X, y = load_digits(return_X_y=True)
    sets["digits"] = (X[::2] / 16.0, y[::2], X[1::2] / 16.0)
    if (data := mnist()) is not None:
        X, y = data
        sets["MNIST"] = (X[:5000], y[:5000], X[5000:])
    for data, n_rows in (("digits", 1), ("digits", 10), ("MNIST", 1), ("MNIST", 10)):
        if data not in sets:
            continue
        X, y, Q = sets[data]
        Q = Q[:n_rows]
        am = DenseAMClassifier().fit(X, y)
        knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(X, y)
        t = interleaved(
            {
                "skam": lambda am=am, Q=Q: am.predict(Q),
                "knn": lambda knn=knn, Q=Q: knn.predict(Q),
            },
            args.rounds,
            repeat=20,
        )
        rows.append(
            compare(f"predict of {n_rows} row(s), {data}, float64", t, "knn", KNN)
        )
    rng = np.random.RandomState(0)
    M = rng.standard_normal((1000, 64))
    for n_rows in (1, 10):
        q = M[:n_rows] + 0.5 * rng.standard_normal((n_rows, 64))
        dam = DenseAM(beta=1.0 / 64, step_size=1.0, max_iter=1).fit(M)
        assert np.allclose(dam.transform(q), numpy_lse_step(q, M, 1.0 / 64))
        t = interleaved(
            {
                "skam": lambda q=q, dam=dam: dam.transform(q),
                "numpy": lambda q=q: numpy_lse_step(q, M, 1.0 / 64),
            },
            args.rounds,
            repeat=50,
        )
        rows.append(
            compare(
                f"DenseAM.transform of {n_rows} row(s), K = 1000, d = 64",
                t,
                "numpy",
                "the same LSE step in plain NumPy",
            )
        )
    return rows


def two_matmuls(Q, M):
    return (Q @ M.T) @ M


@workload("retrieval")
def workload_retrieval(args):
    rows = []
    for d, n in ((64, 10_000), (784, 5_000)):
        if args.quick:
            n = 2000
        for dtype in (np.float32, np.float64):
            rng = np.random.RandomState(0)
            M = rng.standard_normal((n, d)).astype(dtype)
            Q = (M[rng.permutation(n)] + 0.5 * rng.standard_normal((n, d))).astype(
                dtype
            )
            am = DenseAM(beta=1.0 / d, step_size=1.0, max_iter=1).fit(M)
            t = interleaved(
                {
                    "skam": lambda am=am, Q=Q: am.transform(Q),
                    "mm": lambda Q=Q, M=M: two_matmuls(Q, M),
                },
                args.rounds,
            )
            label = f"one LSE step, n = K = {n}, d = {d}, {np.dtype(dtype).name}"
            rows.append(compare(label, t, "mm", "its two BLAS matmuls"))
    return rows


@workload("parametric")
def workload_parametric(args):
    n_train = 5000 if args.quick else 50_000
    X, y = fashion_sized(n_train + 2000, seed=1)
    rows = []
    epochs = {} if args.epochs is None else {"max_epochs": args.epochs}
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        clf = DenseAMClassifier(mode="parametric", random_state=0, **epochs)
        load_start = load()
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():  # --epochs: max_epochs reached
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(Xd[:n_train], y[:n_train])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        acc = float(np.mean(clf.predict(Xd[n_train:]) == y[n_train:]))
        rows.append(
            Row(
                f"DenseAMClassifier(mode='parametric').fit, {n_train} x 784 "
                f"{np.dtype(dtype).name}, {clf.n_iter_} epoch(s), "
                f"{clf.memories_.shape[0]} memories",
                cpu,
                note=(
                    f"{wall:.1f} s wall, {cpu / clf.n_iter_:.1f} s process CPU "
                    f"an epoch with the k-means start, load {load_start:.2f} "
                    f"-> {load():.2f}, test accuracy {acc:.4f}"
                ),
                extra={"wall_s": wall, "epochs": clf.n_iter_, "accuracy": acc},
            )
        )
        print_row(rows[-1])
    return rows


def slope(sizes, times):
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


@workload("growth")
def workload_growth(args):
    """Log-log slopes of fit and predict time (d = 64, float64)."""
    Ks = [2000, 4000, 8000] if args.quick else [4000, 8000, 16000]
    X, y = fashion_sized(max(Ks) + 4000, d=64, seed=2)
    Q = X[max(Ks) :]
    fit_t, pred_t = [], []
    for K in Ks:
        t = interleaved(
            {
                "fit": lambda K=K: DenseAMClassifier().fit(X[:K], y[:K]),
            },
            args.rounds,
        )
        am = DenseAMClassifier().fit(X[:K], y[:K])
        fit_t.append(t["fit"])
        pred_t.append(interleaved({"p": lambda am=am: am.predict(Q)}, args.rounds)["p"])
    am = DenseAMClassifier().fit(X[: Ks[0]], y[: Ks[0]])
    ns = [1000, 2000, 4000]
    by_n = [
        interleaved({"p": lambda n=n: am.predict(Q[:n])}, args.rounds)["p"] for n in ns
    ]
    rows = [
        Row(
            f"growth: fit time in K (K = {Ks}, d = 64)",
            fit_t[-1],
            note=f"log-log slope {slope(Ks, fit_t):.2f}",
        ),
        Row(
            f"growth: predict time in K (4000 queries, K = {Ks})",
            pred_t[-1],
            note=f"log-log slope {slope(Ks, pred_t):.2f}",
        ),
        Row(
            f"growth: predict time in n queries (K = {Ks[0]}, n = {ns})",
            by_n[-1],
            note=f"log-log slope {slope(ns, by_n):.2f}",
        ),
    ]
    for row in rows:
        print_row(row)
    return rows


@workload("clustering")
def workload_clustering(args):
    """AMClustering.fit against KMeans(n_init=10): bench_clustering_speed.py's rows."""
    from bench_clustering_speed import fit_rows

    rows = [
        Row(
            r["workload"],
            r["skam_cpu_s"],
            r["baseline"],
            r["baseline_cpu_s"],
            r["note"],
            wall_ratio=r["skam_s"] / r["baseline_s"],
        )
        for r in fit_rows(quick=args.quick, rounds=args.rounds)
    ]
    for row in rows:
        print_row(row)
    return rows


# --------------------------------------------------------------------- report
def fmt_s(s):
    if s != s:  # nan
        return ""
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def print_row(row):
    base = (
        f" | {row.baseline} {fmt_s(row.baseline_s)} | {row.ratio:.2f} x CPU, "
        f"{row.wall_ratio:.2f} x wall"
    ) * bool(row.baseline)
    print(f"{row.workload}: skam {fmt_s(row.skam_s)}{base} {row.note}", flush=True)


def table(rows):
    lines = [
        "| workload | skam (CPU) | baseline | baseline (CPU) | ratio (CPU) "
        "| ratio (wall) | note |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f} ×" if r.baseline else ""
        wall = f"{r.wall_ratio:.2f} ×" if r.wall_ratio == r.wall_ratio else ""
        lines.append(
            f"| {r.workload} | {fmt_s(r.skam_s)} | {r.baseline} | "
            f"{fmt_s(r.baseline_s)} | {ratio} | {wall} | {r.note} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-queries", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--label", default="skam " + skam.__version__)
    parser.add_argument("--json", type=Path, help="also dump the rows here")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = args.only or list(WORKLOADS)
    start_load, start = load(), time.perf_counter()
    print(f"load average at start: {os.getloadavg()}, skam from {skam.__file__}")
    rows = []
    with threadpool_limits(1):
        if faiss is not None:
            faiss.omp_set_num_threads(1)
        for name in names:
            rows += WORKLOADS[name](args)
    end_load = load()
    header = (
        f"`python benchmarks/bench_speed.py` ({args.label}): {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs, one BLAS thread, NumPy "
        f"{np.__version__}, faiss {getattr(faiss, '__version__', 'absent')}; "
        f"{args.rounds} interleaved rounds, medians of process CPU time (ratios "
        "in wall time too); load average "
        f"{start_load:.2f} at start, {end_load:.2f} at end; "
        f"{time.perf_counter() - start:.0f} s in all."
    )
    print(header)
    print(table(rows))
    if args.json:
        args.json.write_text(
            json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=1)
        )
    if not (args.quick or args.no_write):
        (RESULTS / "speed.md").write_text(
            "# Speed against the baselines users would pick\n\n"
            + header
            + "\n\n"
            + table(rows)
            + "\n"
        )


if __name__ == "__main__":
    main()
