"""Retrieval benchmark: one-step DenseAM speed and memory; exact-recall rates.

Part 1 (speed, ``--speed``): one-step retrieval, ``DenseAM(beta=<float>,
step_size=1.0, max_iter=1).transform(Q)`` (the attention update
``softmax(beta S) @ M``), against the two BLAS matrix products it cannot avoid,
``Q @ M.T`` then ``P @ M`` with the same shapes and dtype, timed in the same run
on the same data (best of 3, interleaved), for n = K = 10000 queries and
memories, d in {64, 784}, float32 and float64. Peak memory (tracemalloc, in a
separate untimed run) is compared with one n x K matrix and with scikit-learn's
``working_memory``. A breakdown of the LSE step at d = 784 shows where the time
goes. Writes ``benchmarks/results/retrieval.md``.

Part 2 (recall, ``--recall``): the protocol of baselines.md section 4 on
binarised digits and, when the shared data are present, binarised MNIST t10k:
store K in {10, 100, 500} unique patterns drawn with ``random_state=0``,
corrupt them (10% and 30% bit flips, bottom half occluded) and report the
exact-recall rate (sign of the retrieved state equal to the stored pattern in
every bit). Writes ``benchmarks/results/recall.md``.

Usage::

    python benchmarks/bench_retrieval.py            # both parts
    python benchmarks/bench_retrieval.py --speed    # part 1 only
    python benchmarks/bench_retrieval.py --recall   # part 2 only
    python benchmarks/bench_retrieval.py --quick    # small sizes, nothing written
"""

import argparse
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn import get_config
from threadpoolctl import threadpool_info

from skam import DenseAM, HopfieldNetwork
from skam._validation import median_nearest_sq_distance
from skam.datasets import flip_bits, load_binary_digits, load_mnist_t10k, occlude

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 2.0**20


# --------------------------------------------------------------------- helpers
def machine():
    """One line naming the machine and the BLAS."""
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return (
        f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} cores, NumPy {np.__version__}, BLAS: "
        + (", ".join(blas) or "unknown")
    )


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mib(fn):
    """Peak memory allocated while ``fn`` runs, above what was allocated before."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - before) / MiB


def markdown(columns, rows):
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ part 1
def two_matmuls(Q, M):
    S = Q @ M.T  # (n, K): the similarities
    return S @ M  # (n, d): the weighted sum (P has the shape and dtype of S)


def measure(am, Q, M, repeat):
    """Best-of-``repeat`` times (interleaved) and peak memory of both contenders."""
    t_mm, t_am = [], []
    for _ in range(repeat):  # interleaved, so load changes hit both
        t_mm.append(best_of(lambda: two_matmuls(Q, M), 1))
        t_am.append(best_of(lambda: am.transform(Q), 1))
    out = am.transform(Q)
    assert out.dtype == Q.dtype and out.shape == Q.shape
    peak_am = peak_mib(lambda: am.transform(Q))
    peak_mm = peak_mib(lambda: two_matmuls(Q, M))
    return min(t_mm), min(t_am), peak_am, peak_mm


def speed(n, dims, repeat):
    rows, breakdown = [], []
    for d in dims:
        for dtype in (np.float32, np.float64):
            rng = np.random.RandomState(0)
            M = rng.standard_normal((n, d)).astype(dtype)
            Q = (M[rng.permutation(n)] + 0.5 * rng.standard_normal((n, d))).astype(
                dtype
            )
            beta = 1.0 / d  # explicit: fit skips the "scale" heuristic
            am = DenseAM(beta=beta, step_size=1.0, max_iter=1).fit(M)
            t_mm, t_am, peak_am, peak_mm = measure(am, Q, M, repeat)
            nk = n * n * np.dtype(dtype).itemsize / MiB
            rows.append(
                (
                    d,
                    np.dtype(dtype).name,
                    t_mm,
                    t_am,
                    t_am / t_mm,
                    peak_am,
                    peak_mm,
                    nk,
                    peak_am / nk,
                )
            )
            print(
                f"d={d:4d} {np.dtype(dtype).name}: matmuls {t_mm:.3f} s, "
                f"DenseAM {t_am:.3f} s, ratio {t_am / t_mm:.2f}, "
                f"peak {peak_am:.0f} MiB (matmuls {peak_mm:.0f}, n x K {nk:.0f})",
                flush=True,
            )
            if d == max(dims):
                breakdown.append(step_breakdown(am, Q, M, beta, repeat))
    return rows, breakdown


STEP_PIECES = [
    "GEMM (beta V) @ M.T",
    "logits += bias",
    "row max",
    "logits -= row max",
    "subnormal guard: min, floor only if needed",
    "exp (in place)",
    "row sum",
    "GEMM T @ M",
    "V - (T @ M) / r",
]


class Stopwatch:
    """Accumulates the time between successive ``tick(name)`` calls."""

    def __init__(self):
        self.spent = dict.fromkeys(STEP_PIECES, 0.0)
        self.last = time.perf_counter()

    def tick(self, name):
        now = time.perf_counter()
        self.spent[name] += now - self.last
        self.last = now


def replica_step(V, M, beta, bias, floor, watch):
    """NumPy replica of one engine LSE step (``_lse_terms`` + direction).

    Mirrors ``skam/_energy.py`` (``_cross``, ``_exp_shifted``, ``_lse_terms``,
    ``log_z_and_direction``); update it when they change.
    """
    watch.last = time.perf_counter()
    logits = (beta * V) @ M.T
    watch.tick(STEP_PIECES[0])
    logits += bias[None, :]
    watch.tick(STEP_PIECES[1])
    row_max = np.max(logits, axis=1, keepdims=True)
    watch.tick(STEP_PIECES[2])
    logits -= row_max
    watch.tick(STEP_PIECES[3])
    if np.min(logits) < floor:
        np.maximum(logits, floor, out=logits)
    watch.tick(STEP_PIECES[4])
    T = np.exp(logits, out=logits)  # in place, as the engine does with NumPy
    watch.tick(STEP_PIECES[5])
    r = np.sum(T, axis=1)
    watch.tick(STEP_PIECES[6])
    pulled = T @ M
    watch.tick(STEP_PIECES[7])
    out = V - (V - pulled / r[:, None])  # step_size = 1: the new state
    watch.tick(STEP_PIECES[8])
    return out


def step_breakdown(am, Q, M, beta, repeat):
    """Where one-step retrieval spends its time, piece by piece.

    A NumPy replica of the engine's LSE step (``skam/_energy.py``:
    ``_lse_terms`` + ``log_z_and_direction``) on the same chunks, each piece
    timed in sequence; per piece the best of ``repeat`` passes. The replica is
    checked against ``DenseAM.transform`` so it cannot drift silently.
    """
    from skam._chunking import chunk_slices, rows_per_chunk
    from skam._descent import TEMPORARIES_PER_COLUMN

    n, K = Q.shape[0], M.shape[0]
    per_row = TEMPORARIES_PER_COLUMN * K * Q.dtype.itemsize  # the engine's chunks
    rows = rows_per_chunk(n, per_row)
    bias = -beta * 0.5 * np.sum(M * M, axis=1)
    floor = -87.0 if Q.dtype == np.float32 else -700.0
    best = dict.fromkeys(STEP_PIECES, np.inf)
    for _ in range(repeat):
        watch = Stopwatch()
        replica = np.concatenate(
            [
                replica_step(Q[sl], M, beta, bias, floor, watch)
                for sl in chunk_slices(n, per_row)
            ]
        )
        best = {k: min(best[k], watch.spent[k]) for k in STEP_PIECES}
    tol = 1e-3 if Q.dtype == np.float32 else 1e-9
    assert np.allclose(replica, am.transform(Q), atol=tol), "replica drifted"
    pieces = list(best.items())
    pieces.append(("sum of the pieces", sum(best.values())))
    pieces.append(
        ("DenseAM.transform (whole call)", best_of(lambda: am.transform(Q), repeat))
    )
    pieces.append(
        ("two matmuls (the baseline)", best_of(lambda: two_matmuls(Q, M), repeat))
    )
    return {
        "dtype": Q.dtype.name,
        "rows": rows,
        "chunks": len(range(0, n, rows)),
        "pieces": pieces,
    }


def write_speed(rows, breakdown, n, path):
    wm = get_config()["working_memory"]
    cols = [
        "d",
        "dtype",
        "matmuls s",
        "DenseAM s",
        "ratio",
        "peak MiB",
        "matmuls peak MiB",
        "n x K MiB",
        "peak / (n x K)",
    ]
    text = [
        "# One-step DenseAM retrieval vs the two BLAS matmuls it needs",
        "",
        f"Machine: {machine()}.",
        f"n = K = {n} (queries = memories), "
        "`DenseAM(beta=1/d, step_size=1.0, max_iter=1).transform(Q)` (fit not timed) "
        "vs `Q @ M.T` then `(n, K) @ M` on the same data; best of 3, interleaved. "
        "Peak = extra memory allocated during the call (tracemalloc); "
        f"sklearn working_memory = {wm} MiB. Target: ratio <= 1.3 at d = 784.",
        "",
        markdown(cols, rows),
        "",
    ]
    for b in breakdown:
        text += [
            f"Where one-step retrieval spends its time (d = {max(r[0] for r in rows)}, "
            f"{b['dtype']}, {b['chunks']} chunks of up to {b['rows']} queries x "
            f"{n} memories; a NumPy replica of the engine's LSE step, each piece "
            "timed in sequence, best of 3 per piece):",
            "",
            markdown(["piece", "s"], b["pieces"]),
            "",
        ]
    path.write_text("\n".join(text))
    print(f"wrote {path}")


# ------------------------------------------------------------------ part 2
def recall_methods(D, r2):
    """(name, description, factory(kind) -> callable(P, Q, mask) -> recalled)."""

    def dense(clamp=True, **params):
        def run(P, Q, mask):
            am = DenseAM(**params).fit(P)
            return np.sign(am.transform(Q, clamp_mask=mask if clamp else None))

        return run

    def hebb(update):
        def run(P, Q, mask):
            net = HopfieldNetwork(update=update, max_iter=50, random_state=0)
            return net.fit(P).transform(Q)

        return run

    def nn(P, Q, mask):
        return P[np.argmax(Q @ P.T, axis=1)]

    return [
        ("nn", "exact nearest stored pattern by overlap (oracle, beta -> inf)", nn),
        (
            "dam1 b=100/N",
            "protocol one-step update sign(softmax(100/N * Xi q) Xi), unclamped: "
            "DenseAM(beta=100/N, max_iter=1)",
            dense(clamp=False, beta=100.0 / D, max_iter=1),
        ),
        ("lse scale", "DenseAM() (LSE, beta='scale', max_iter=100)", dense()),
        (
            "lse b=1000/N",
            "DenseAM(beta=1000/N): a large beta",
            dense(beta=1000.0 / D),
        ),
        (
            "poly n=3",
            "DenseAM(separation='poly', similarity='dot', beta=1/N, degree=3)",
            dense(separation="poly", similarity="dot", beta=1.0 / D, degree=3),
        ),
        (
            "poly n=100",
            "DenseAM(separation='poly', similarity='dot', beta=1/N, degree=100)",
            dense(separation="poly", similarity="dot", beta=1.0 / D, degree=100),
        ),
        (
            "rpoly scale",
            "DenseAM(separation='rectified_poly') (degree 3, beta='scale')",
            dense(separation="rectified_poly"),
        ),
        (
            "lsr scale",
            "DenseAM(separation='lsr') (beta='scale')",
            dense(separation="lsr"),
        ),
        (
            "lsr b=2/r2",
            "DenseAM(separation='lsr', beta=2/r2): support radius = the median "
            "nearest-memory distance r",
            dense(separation="lsr", beta=2.0 / r2),
        ),
        (
            "hebb sync",
            "HopfieldNetwork(update='sync', max_iter=50) (protocol)",
            hebb("sync"),
        ),
        (
            "hebb async",
            "HopfieldNetwork(update='async', max_iter=50)",
            hebb("async"),
        ),
    ]


def corruptions(P):
    """(name, queries, clamp mask or None): the three protocol corruptions."""
    hidden, mask = occlude(P)
    return [
        ("flip 10%", flip_bits(P, 0.1, random_state=1), None),
        ("flip 30%", flip_bits(P, 0.3, random_state=2), None),
        ("occlude 50%", hidden, mask),
    ]


def recall(Ks, datasets):
    columns, rows, legend = None, [], None
    for data_name, X in datasets:
        D = X.shape[1]
        for K in Ks:
            rng = np.random.RandomState(0)
            P = X[rng.choice(X.shape[0], K, replace=False)]
            r2 = median_nearest_sq_distance(P)
            methods = recall_methods(D, r2)
            legend = [(name, text) for name, text, _ in methods]
            columns = ["data", "K", "corruption"] + [m[0] for m in methods]
            for corruption, Q, mask in corruptions(P):
                row = [data_name, K, corruption]
                start = time.perf_counter()
                for _, _, method in methods:
                    recalled = method(P, Q, mask)
                    row.append(float(np.mean(np.all(recalled == P, axis=1))))
                rows.append(row)
                print(
                    " ".join(
                        str(v) if not isinstance(v, float) else f"{v:.2f}" for v in row
                    )
                    + f"  ({time.perf_counter() - start:.1f} s)",
                    flush=True,
                )
    return columns, rows, legend


def load_recall_data(quick):
    X, _ = load_binary_digits()
    datasets = [("digits (64)", X)]
    try:
        M, _ = load_mnist_t10k(binarize=True)
    except FileNotFoundError:
        print("MNIST t10k not found (../shared/data or $SKAM_DATA): digits only")
    else:
        M = np.unique(M, axis=0)
        if quick:
            M = M[:2000]
        datasets.append((f"MNIST-t10k ({M.shape[1]})", M))
    return datasets


def write_recall(columns, rows, legend, elapsed, path):
    text = [
        "# Exact-recall rate of corrupted stored patterns",
        "",
        f"Machine: {machine()}; run time {elapsed:.0f} s.",
        "Protocol (baselines.md section 4): unique +-1 patterns (digits: pixel >= 8 "
        "of 16; MNIST t10k: pixel >= 128), K stored patterns drawn with "
        "`RandomState(0)`; queries = every stored pattern with 10% / 30% of its bits "
        "flipped (`flip_bits`, seeds 1 / 2) or its last 50% of pixels set to -1 "
        "(`occlude`; DenseAM clamps the visible half except `dam1`, the "
        "HopfieldNetwork cannot clamp). Score: fraction of queries whose retrieved "
        "state has the sign of the stored pattern in every bit. N = number of "
        "pixels; r2 = median squared distance from a stored pattern to its nearest "
        "other one.",
        "",
        markdown(columns, rows),
        "",
        "Methods:",
        "",
    ]
    text += [f"- `{name}`: {description}" for name, description in legend]
    path.write_text("\n".join(text) + "\n")
    print(f"wrote {path}")


# ------------------------------------------------------------------------ main
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", action="store_true", help="part 1 only")
    parser.add_argument("--recall", action="store_true", help="part 2 only")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, write nothing"
    )
    args = parser.parse_args()
    both = not (args.speed or args.recall)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.speed or both:
        n = 2000 if args.quick else 10000
        rows, breakdown = speed(n, (64, 784), repeat=1 if args.quick else 3)
        if not args.quick:
            write_speed(rows, breakdown, n, RESULTS / "retrieval.md")
    if args.recall or both:
        start = time.perf_counter()
        Ks = (10, 100) if args.quick else (10, 100, 500)
        columns, rows, legend = recall(Ks, load_recall_data(args.quick))
        if not args.quick:
            write_recall(
                columns,
                rows,
                legend,
                time.perf_counter() - start,
                RESULTS / "recall.md",
            )


if __name__ == "__main__":
    main()
