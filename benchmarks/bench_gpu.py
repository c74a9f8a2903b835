"""NumPy vs CuPy backend on the same retrievals, against the pure GPU matmuls.

The same four workloads run with ``backend="numpy"`` and ``backend="cupy"`` in
one process, on n = K = 50 000 (queries = memories), d = 784, float32:

* ``DenseAM.transform`` (one LSE step, ``step_size=1``, ``max_iter=1``);
* ``DenseAMClassifier.predict`` (nonparametric, one step on the label neurons);
* ``RandomFeatureAM.transform`` (one step);
* ``AMClustering.fit`` (a fixed, small number of epochs).

The CuPy retrieval is also compared with the time of the two matrix products it
needs on the GPU (``Q @ M.T`` then ``(n, K) @ M`` with CuPy, chunked the same
way so that they fit in memory). Targets (issue "Prove the CuPy backend"):
CuPy >= 30x the NumPy backend, and within 2x of the pure-matmul time.

Usage (on a machine with an NVIDIA GPU and CuPy)::

    python benchmarks/bench_gpu.py                 # the full table
    python benchmarks/bench_gpu.py --n 5000        # quick look
    python benchmarks/bench_gpu.py --skip-numpy    # GPU rows only
    python benchmarks/bench_gpu.py --n 500 --gpu-backend array_api_strict  # dry run, no GPU

The NumPy rows at n = 50 000 take minutes on a CPU; ``--numpy-n`` times the NumPy
backend on fewer queries and scales linearly (the cost is linear in n at fixed
K), which the table states. Writes ``benchmarks/results/gpu.md``.
"""

import argparse
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _sync():
    try:
        import cupy

        cupy.cuda.Device().synchronize()
    except Exception:
        pass


def timed(fn, repeat=3):
    """Best wall time of ``repeat`` calls (after one warm-up call)."""
    fn()
    _sync()
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - start)
    return best


def gpu_matmul_time(Q, M, chunk, backend):
    """The two products of one LSE step on the GPU, chunked like skam."""
    if backend == "cupy":
        import cupy

        Qg, Mg = cupy.asarray(Q), cupy.asarray(M)
    else:  # dry run on the CPU
        Qg, Mg = Q, M

    def run():
        for start in range(0, Qg.shape[0], chunk):
            S = Qg[start : start + chunk] @ Mg.T
            _ = S @ Mg

    return timed(run)


def workloads(X, y, n_queries, backend):
    """Callables that time each workload with one backend."""
    from skam import AMClustering, DenseAM, DenseAMClassifier, RandomFeatureAM

    d = X.shape[1]
    Q = X[:n_queries]
    beta = 1.0 / d
    am = DenseAM(beta=beta, max_iter=1, backend=backend).fit(X)
    clf = DenseAMClassifier(beta=beta, backend=backend).fit(X, y)
    rf = RandomFeatureAM(
        beta=beta, n_components=4096, max_iter=1, random_state=0, backend=backend
    ).fit(X)
    clu = AMClustering(
        n_clusters=10, max_epochs=2, n_init=1, random_state=0, backend=backend
    )
    return {
        "DenseAM.transform": lambda: am.transform(Q),
        "DenseAMClassifier.predict": lambda: clf.predict(Q),
        "RandomFeatureAM.transform": lambda: rf.transform(Q),
        "AMClustering.fit": lambda: clu.fit(X),  # all n samples on both backends
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=784)
    parser.add_argument("--numpy-n", type=int, default=2_000)
    parser.add_argument("--skip-numpy", action="store_true")
    parser.add_argument(
        "--gpu-backend", default="cupy", choices=["cupy", "array_api_strict"]
    )
    args = parser.parse_args()

    import sklearn

    from skam._chunking import rows_per_chunk
    from skam._descent import TEMPORARIES_PER_COLUMN

    rng = np.random.RandomState(0)
    X = rng.rand(args.n, args.d).astype(np.float32)
    y = rng.randint(0, 10, args.n)
    if args.gpu_backend == "cupy":
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        device += f"; CuPy {cupy.__version__}"
    else:
        device = "array_api_strict on the CPU (dry run: timings are meaningless)"

    rows = []
    gpu = {
        k: timed(f, repeat=2)
        for k, f in workloads(X, y, args.n, args.gpu_backend).items()
    }
    cpu = {}
    if not args.skip_numpy:
        n_cpu = min(args.numpy_n, args.n)
        for k, f in workloads(X, y, n_cpu, "numpy").items():
            t = timed(f, repeat=1)
            # retrieval is linear in the number of queries at fixed K (the
            # clustering fit always runs on all n samples)
            cpu[k] = t if k == "AMClustering.fit" else t * args.n / n_cpu
    chunk = rows_per_chunk(args.n, TEMPORARIES_PER_COLUMN * args.n * 4)
    mm = gpu_matmul_time(X, X, chunk, args.gpu_backend)
    for k, t in gpu.items():
        c = cpu.get(k, float("nan"))
        ratio_mm = t / mm if k == "DenseAM.transform" else float("nan")
        rows.append((k, c, t, c / t, ratio_mm))

    lines = [
        "# CuPy backend vs NumPy backend and pure GPU matmuls",
        "",
        f"Device: {device}; host: {platform.machine()}; "
        f"scikit-learn {sklearn.__version__}. n = K = {args.n}, d = {args.d}, "
        f"float32; GPU matmul pair (chunks of {chunk} rows): {mm:.3f} s. "
        f"NumPy retrieval rows timed on {min(args.numpy_n, args.n)} queries and "
        "scaled linearly to n.",
        "",
        "| workload | NumPy s | CuPy s | speed-up | CuPy / matmuls |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {c:.3f} | {g:.3f} | {s:.1f} | {m:.2f} |" for k, c, g, s, m in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    if args.gpu_backend == "cupy":  # a dry run writes nothing
        (RESULTS / "gpu.md").write_text(text)


if __name__ == "__main__":
    main()
