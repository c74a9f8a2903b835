"""AMClustering.fit against KMeans(n_init=10): time ratios and growth in n.

Every cell times ``AMClustering(k, random_state=0).fit`` (defaults) and
``KMeans(k, n_init=10, random_state=0).fit`` on the same generated blobs
(``make_blobs(n, d, centers=k, random_state=0)``) **in the same process,
interleaved** (A B A B, one BLAS thread), and reports the medians of wall and
process CPU seconds and their ratios; the load average is printed at the
start and at the end. CPU seconds are the better measure on a shared machine
(wall time under load says little).

Cells: n = 10^3, 10^4, 10^5 for (d, k) = (2, 10), (2, 100), (64, 10),
(64, 100); the growth slope in n (log-log, d = 2, k = 10, n = 10^3 ... 10^5).
Target (issue 16): AMClustering at most 3x KMeans(n_init=10) everywhere.

``fit_rows`` returns the rows as dicts (``workload``, ``skam_s`` and
``baseline_s`` in wall seconds, ``skam_cpu_s`` and ``baseline_cpu_s`` in CPU
seconds, ``baseline``, ``note``); ``bench_speed.py`` shows them as its
``clustering`` workload.

Run: ``python benchmarks/bench_clustering_speed.py [--quick] [--rounds R]``.
Writes ``benchmarks/results/clustering_speed.md`` (not with ``--quick``).
"""

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from skam.cluster import AMClustering

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = [(2, 10), (2, 100), (64, 10), (64, 100)]
SIZES = [1_000, 10_000, 100_000]
GROWTH = [1_000, 3_000, 10_000, 30_000, 100_000]
QUICK_SHAPES = [(2, 10), (64, 100)]
QUICK_SIZES = [1_000, 3_000]


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(contenders, rounds):
    """Median (wall, cpu) seconds of each no-argument callable, A B A B ...

    A warm-up round first when a call takes under a second.
    """
    first = {name: _timed(fn) for name, fn in contenders.items()}
    times = {name: [] for name in contenders}
    if max(w for w, _ in first.values()) > 1.0:
        for name, t in first.items():
            times[name].append(t)
        rounds -= 1
    for _ in range(max(rounds, 0)):
        for name, fn in contenders.items():
            times[name].append(_timed(fn))
    return {
        name: (
            statistics.median(w for w, _ in t),
            statistics.median(c for _, c in t),
        )
        for name, t in times.items()
    }


def fit_pair(n, d, k, rounds):
    """Median wall and CPU seconds of AMClustering and KMeans on one cell."""
    X, _ = make_blobs(n, d, centers=k, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interleaved(
            {
                "am": lambda: AMClustering(k, random_state=0).fit(X),
                "km": lambda: KMeans(k, n_init=10, random_state=0).fit(X),
            },
            rounds,
        )


def slope(sizes, times):
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def fit_rows(quick=False, rounds=3, max_n=None):
    """The rows of the AMClustering/KMeans table (dicts, see module doc).

    ``max_n`` leaves out the cells (and growth sizes) of more samples.
    """
    shapes = QUICK_SHAPES if quick else SHAPES
    sizes = QUICK_SIZES if quick else SIZES
    growth = QUICK_SIZES if quick else GROWTH
    if max_n is not None:
        sizes = [n for n in sizes if n <= max_n]
        growth = [n for n in growth if n <= max_n]
    rows, measured = [], {}
    for d, k in shapes:
        for n in sizes:
            t = measured[n, d, k] = fit_pair(n, d, k, rounds)
            rows.append(_row(f"AMClustering.fit, blobs n={n}, d={d}, k={k}", t))
            print(_line(rows[-1]), flush=True)
    am_t, km_t = [], []
    for n in growth:
        t = measured.get((n, 2, 10)) or fit_pair(n, 2, 10, rounds)
        am_t.append(t["am"][1])
        km_t.append(t["km"][1])
    rows.append(
        {
            "workload": f"growth: AMClustering.fit CPU time in n (d=2, k=10, n={growth})",
            "skam_s": am_t[-1],
            "baseline": "KMeans(n_init=10)",
            "baseline_s": km_t[-1],
            "note": f"log-log slope {slope(growth, am_t):.2f} "
            f"(KMeans {slope(growth, km_t):.2f})",
            "skam_cpu_s": am_t[-1],
            "baseline_cpu_s": km_t[-1],
        }
    )
    print(_line(rows[-1]), flush=True)
    return rows


def _row(name, t):
    (am_w, am_c), (km_w, km_c) = t["am"], t["km"]
    return {
        "workload": name,
        "skam_s": am_w,
        "baseline": "KMeans(n_init=10)",
        "baseline_s": km_w,
        "note": f"CPU {am_c:.3g} s vs {km_c:.3g} s: {am_c / km_c:.2f} x",
        "skam_cpu_s": am_c,
        "baseline_cpu_s": km_c,
    }


def _line(row):
    return (
        f"{row['workload']}: AM {row['skam_s']:.3g} s | {row['baseline']} "
        f"{row['baseline_s']:.3g} s | {row['skam_s'] / row['baseline_s']:.2f} x "
        f"wall; {row['note']}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--max-n", type=int, help="leave out larger cells (a loaded machine)"
    )
    args = parser.parse_args()
    start_load, start = os.getloadavg()[0], time.perf_counter()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with threadpool_limits(1):
        rows = fit_rows(args.quick, args.rounds, args.max_n)
    header = (
        f"`python benchmarks/bench_clustering_speed.py`: {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs, one BLAS thread, NumPy "
        f"{np.__version__}; {args.rounds} interleaved rounds (A B A B), medians; "
        f"load average {start_load:.2f} at start, {os.getloadavg()[0]:.2f} at "
        f"end; {time.perf_counter() - start:.0f} s in all."
    )
    lines = [
        "| workload | AMClustering (wall) | baseline | baseline (wall) | ratio (wall) "
        "| note |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['skam_s']:.3g} s | {r['baseline']} | "
            f"{r['baseline_s']:.3g} s | {r['skam_s'] / r['baseline_s']:.2f} × | "
            f"{r['note']} |"
        )
    print(header)
    print("\n".join(lines))
    if not args.quick:
        (RESULTS / "clustering_speed.md").write_text(
            "# AMClustering.fit against KMeans(n_init=10)\n\n"
            + header
            + "\n\n"
            + "\n".join(lines)
            + "\n"
        )


if __name__ == "__main__":
    main()
