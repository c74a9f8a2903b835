"""skam on Dask: exactness and overheads of memories sharded across workers.

This machine has 2 cores, so a speed-up from scaling out cannot be measured
here. What can be measured honestly, on a real ``distributed.LocalCluster``
(two worker processes, one thread each, 127.0.0.1):

1. exactness: sharded vs in-memory DenseAM (every separation), state and
   energy differences;
2. CPU-seconds of a sharded one-step retrieval vs the in-memory one (client
   and worker processes' CPU time, interleaved A B A B, medians);
3. the time of one shard's partial state vs its size (in this process);
4. bytes moved per descent step (serialised states out, partial states back);
5. the time to merge S partial states, S = 8 .. 128;
6. the round-trip floor (an empty task submitted and gathered);
7. a scaling model built from 3-6, **labelled as a model**: the predicted
   time of one step on W workers (the cross-worker merge a tree of tasks);
8. exactness of the fits on dask arrays whose model comes back in memory
   (RandomFeatureAM's T, AMClustering's passes, the beta rules' per-block
   statistics) against the in-memory fits;
9. CPU-seconds of RandomFeatureAM.fit on a dask array vs in memory.

The load average is printed at the start and the end (the machine is shared).
Writes ``benchmarks/results/dask.md``.

Usage::

    python benchmarks/bench_dask.py           # the full run (a few minutes)
    python benchmarks/bench_dask.py --quick   # small sizes, nothing written
"""

import argparse
import os
import pickle
import time
from pathlib import Path

import dask.array as da
import numpy as np
from array_api_compat import numpy as np_xp
from distributed import Client, LocalCluster
from threadpoolctl import threadpool_limits

from skam import DenseAM
from skam._energy import EnergySpec, prepare_memories
from skam._partial import block_state, merge_all

RESULTS = Path(__file__).resolve().parent / "results"


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(client):
    """CPU seconds used so far by this process and by every worker."""
    workers = client.run(time.process_time)
    return time.process_time() + sum(workers.values())


def median(values):
    return float(np.median(values))


# ------------------------------------------------------------------ parts
def exactness(client, rng):
    M = rng.normal(size=(3000, 16))
    M[2500] = M[10]  # a duplicate in another shard
    w = rng.uniform(0.5, 2, size=3000)
    w[900:1100] = 0.0
    Q = M[:200] + 0.2 * rng.normal(size=(200, 16))
    chunks = (700, 500, 401, 899, 500)
    rows = []
    for params in [
        dict(separation="lse", beta="scale"),
        dict(separation="lse", similarity="dot", beta=0.05),
        dict(separation="poly", similarity="dot", degree=3, beta=0.2),
        dict(separation="rectified_poly", degree=2, beta="scale"),
        dict(separation="lsr", beta="scale"),
        dict(separation="poly", degree=4, beta="scale", binary=True),
    ]:
        params = dict(params)
        Mx, Qx = M, Q
        if params.pop("binary", False):  # self-coupling removed ("auto")
            Mx, Qx = np.sign(M), np.sign(Q)
        est = DenseAM(max_iter=10, **params)
        ref = DenseAM(max_iter=10, **params).fit(Mx, sample_weight=w)
        sh = est.fit(
            da.from_array(Mx, chunks=(chunks, -1)),
            sample_weight=da.from_array(w, chunks=(chunks,)),
        )
        assert sh.self_coupling_ == ref.self_coupling_
        Qd = da.from_array(Qx, chunks=(50, -1))
        ds = np.abs(sh.transform(Qd).compute() - ref.transform(Qx)).max()
        e_ref = ref.energy(Qx)
        de = np.abs(sh.energy(Qd).compute() - e_ref) / np.maximum(np.abs(e_ref), 1)
        same = bool((sh.predict(Qx) == ref.predict(Qx)).all())
        name = "-".join(str(v) for v in params.values())
        if not ref.self_coupling_:
            name += " (binary, no self-coupling)"
        rows.append((name, ds, de.max(), same))
    return rows


def fit_exactness(client, rng):
    """Fits on dask arrays whose model comes back in memory, vs in memory."""
    from skam import AMClustering, RandomFeatureAM
    from skam._beta import RULES, resolve_beta, resolve_beta_blocks
    from skam._dask._blocks import DaskBlocks

    n, d = 20_000, 8
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d)
    w = rng.uniform(0.1, 2, n)
    w[3000:4000] = 0.0
    Xd = da.from_array(X, chunks=(3001, -1))
    wd = da.from_array(w, chunks=3001)
    rows = []
    for rule in RULES:
        a = resolve_beta("scale", X, rule=rule, sample_weight=w)
        b = resolve_beta_blocks("scale", DaskBlocks(Xd, wd), rule=rule)
        rows.append((f"beta rule {rule!r}", abs(b / a - 1), "relative"))
    rf = dict(n_components=1024, beta="scale", random_state=0, max_iter=20)
    ref = RandomFeatureAM(**rf).fit(X, sample_weight=w)
    got = RandomFeatureAM(**rf).fit(Xd, sample_weight=wd)
    T = np.abs(got.distributed_memory_ - ref.distributed_memory_).max()
    rows.append(
        (
            "RandomFeatureAM T",
            T / np.abs(ref.distributed_memory_).max(),
            "relative to max |T|",
        )
    )
    Q = X[:300] + 0.1
    rows.append(
        (
            "RandomFeatureAM transform",
            np.abs(got.transform(Q) - ref.transform(Q)).max(),
            "absolute",
        )
    )
    cl = dict(n_clusters=5, n_init=1, max_epochs=10, random_state=0)
    Xc = X[:4000]
    ref = AMClustering(**cl).fit(Xc, sample_weight=w[:4000])
    got = AMClustering(**cl).fit(
        da.from_array(Xc, chunks=(900, -1)),
        sample_weight=da.from_array(w[:4000], chunks=900),
    )
    rows.append(
        (
            "AMClustering centres (n <= max_samples_per_epoch)",
            np.abs(got.cluster_centers_ - ref.cluster_centers_).max(),
            "absolute",
        )
    )
    rows.append(
        ("AMClustering inertia_", abs(got.inertia_ / ref.inertia_ - 1), "relative")
    )
    rows.append(
        (
            "AMClustering labels_ differing",
            float((got.labels_.compute() != ref.labels_).sum()),
            "count",
        )
    )
    return rows


def rf_fit_cpu(client, repeat):
    """RandomFeatureAM.fit: a dask array (chunks on the workers) vs NumPy."""
    from skam import RandomFeatureAM

    X = da.random.default_rng(5).normal(size=(40_000, 16), chunks=(5000, 16)).persist()
    M = X.compute()
    params = dict(n_components=1024, beta="scale", random_state=0, max_iter=5)
    cpu = {"in memory (1 thread)": [], "dask (8 chunks, 2 workers)": []}
    for _ in range(repeat):
        for name, data in zip(cpu, (M, X), strict=True):
            with threadpool_limits(1):
                c0 = cpu_seconds(client)
                RandomFeatureAM(**params).fit(data)
                cpu[name].append(cpu_seconds(client) - c0)
    return {k: median(v) for k, v in cpu.items()}


def _merge_pair(a, b):
    return merge_all([a, b], np_xp)


def merge_hop(client, D, n, repeat):
    """One merge task on the cluster between two states held by the workers."""
    rng = np.random.default_rng(4)
    V = rng.normal(size=(n, D))
    spec = EnergySpec("lse", "sqeuclidean", 0.5)
    mem = prepare_memories(rng.normal(size=(64, D)), np_xp)
    state = block_state(V, mem, spec, np_xp)
    workers = sorted(client.scheduler_info()["workers"])
    parts = [client.scatter(state, workers=[w], hash=False) for w in workers[:2]]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.submit(_merge_pair, *parts, pure=False).result()
        times.append(time.perf_counter() - t0)
    return median(times)


def cpu_vs_memory(client, K, D, n, repeat):
    """One-step retrieval, in memory (1 BLAS thread, like each worker) vs sharded.

    The memories are generated on the workers (as a user's data would be
    loaded there); the in-memory model gets a gathered copy.
    """
    X = da.random.default_rng(0).normal(size=(K, D), chunks=(K // 8, D)).persist()
    M = X.compute()
    Q = M[:n] + 0.3 * np.random.default_rng(1).normal(size=(n, D))
    beta = 0.5
    local = DenseAM(beta=beta, max_iter=1).fit(M)
    sharded = DenseAM(beta=beta, max_iter=1).fit(X)
    assert np.abs(local.transform(Q) - sharded.transform(Q)).max() < 1e-10
    wall = {"in memory (1 thread)": [], "sharded (8 shards, 2 workers)": []}
    cpu = {k: [] for k in wall}
    for _ in range(repeat):  # interleaved A B A B
        for name, est in zip(wall, (local, sharded), strict=True):
            with threadpool_limits(1):
                c0, t0 = cpu_seconds(client), time.perf_counter()
                est.transform(Q)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(cpu_seconds(client) - c0)
    return {k: (median(wall[k]), median(cpu[k])) for k in wall}


def per_shard_time(D, n, sizes, repeat):
    rng = np.random.default_rng(1)
    V = rng.normal(size=(n, D))
    spec = EnergySpec("lse", "sqeuclidean", 0.5)
    rows = []
    for size in sizes:
        mem = prepare_memories(rng.normal(size=(size, D)), np_xp)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            block_state(V, mem, spec, np_xp)
            times.append(time.perf_counter() - t0)
        rows.append((size, min(times)))
    return rows


def bytes_per_step(D, n, n_workers):
    rng = np.random.default_rng(2)
    V = rng.normal(size=(n, D))
    mem = prepare_memories(rng.normal(size=(100, D)), np_xp)
    state = block_state(V, mem, EnergySpec("lse", "sqeuclidean", 0.5), np_xp)
    out = len(pickle.dumps(V, protocol=5))
    back = len(pickle.dumps(state, protocol=5))
    return out, back, n_workers * (out + back)


def merge_time(D, n, counts, repeat):
    rng = np.random.default_rng(3)
    V = rng.normal(size=(n, D))
    spec = EnergySpec("lse", "sqeuclidean", 0.5)
    mem = prepare_memories(rng.normal(size=(64, D)), np_xp)
    one = block_state(V, mem, spec, np_xp)
    rows = []
    for S in counts:
        states = [one] * S
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            merge_all(states, np_xp)
            times.append(time.perf_counter() - t0)
        rows.append((S, min(times)))
    return rows


def _noop(x):
    return x


def round_trip(client, repeat):
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        times.append(time.perf_counter() - t0)
    return median(times), min(times)


# ------------------------------------------------------------------ report
def scaling_model(shard_rows, merge_rows, floor, hop, bytes_total, K, n, workers):
    """Predicted one-step time on W workers (a model, not a measurement).

    ``t(W) = floor + c * n * K / W + ceil(log2 W) * (m + h) + W * b_out /
    bandwidth``: ``c`` is the median cost per query x memory of section 3,
    ``m`` the median cost per merge of section 5, ``h`` the measured time of
    one merge task between two workers (section 6, minus nothing: it
    includes a round trip), ``b_out`` the bytes of the states sent to each
    worker (section 4), and the bandwidth an assumed 1 GB/s (10 GbE;
    loopback here is faster). One shard per worker; the per-worker states
    are merged as a balanced tree of tasks on the cluster, so the client
    receives one state whatever W.
    """
    import math

    c = median([t / (s * n) for s, t in shard_rows])
    m = median([t / (S - 1) for S, t in merge_rows])
    per_worker_bytes = bytes_total / 2
    rows = []
    for W in workers:
        shard = c * n * K / W
        merge = math.ceil(math.log2(W)) * (m + hop) if W > 1 else 0.0
        net = W * per_worker_bytes / 1e9
        rows.append((W, floor + shard + merge + net, shard, merge, net))
    return rows, (c, m)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    K, D, n = (8000, 32, 128) if args.quick else (80_000, 64, 512)
    repeat = 2 if args.quick else 5
    start_load = load()
    rng = np.random.default_rng(0)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        exact = exactness(client, rng)
        cpu = cpu_vs_memory(client, K, D, n, repeat)
        floor, floor_min = round_trip(client, 50)
        hop = merge_hop(client, D, n, 20)
        fits = fit_exactness(client, rng)
        rf_cpu = rf_fit_cpu(client, 3 if not args.quick else 1)
    sizes = [K // 32, K // 16, K // 8, K // 4, K // 2]
    shard_rows = per_shard_time(D, n, sizes, repeat)
    out, back, total = bytes_per_step(D, n, 2)
    merge_rows = merge_time(D, n, [8, 16, 32, 64, 128], repeat)
    model, (c, m) = scaling_model(
        shard_rows,
        merge_rows,
        floor,
        hop,
        out * 2,
        10 * K,
        n,
        [1, 2, 4, 8, 16, 32, 64, 128],
    )
    break_even = floor / (c * n)  # memories per worker whose compute = floor
    end_load = load()

    text = [
        "# skam on Dask: sharded memories, exactness and overheads",
        "",
        "Generated by `python benchmarks/bench_dask.py` on a shared 2-core machine",
        "(a two-process `distributed.LocalCluster`, one thread per worker, 127.0.0.1).",
        f"Load average at start: {start_load}; at end: {end_load}.",
        "",
        "## 1. Exactness: sharded vs in-memory DenseAM",
        "",
        "3000 memories (d = 16) in 5 uneven shards, one duplicate across shards,",
        "200 zero-weight memories; 200 queries as a dask array, 10 descent steps.",
        "",
        "| energy | max abs state diff | max energy diff (rel., floor 1) | predict equal |",
        "|---|---|---|---|",
    ]
    text += [f"| {r[0]} | {r[1]:.1e} | {r[2]:.1e} | {r[3]} |" for r in exact]
    text += [
        "",
        f"## 2. One-step retrieval, K = {K}, d = {D}, {n} queries (NumPy in, NumPy out)",
        "",
        f"Medians of {repeat} interleaved runs; CPU = client + both workers (each",
        "worker runs one thread; the in-memory call is held to one BLAS thread too).",
        "Wall times on a loaded shared machine mostly measure the load. The",
        "in-memory call works on one (n, K) block per temporary; a shard's blocks",
        "are K/8 wide, which may explain a lower CPU cost per query x memory.",
        "",
        "| path | wall s | CPU s | CPU / in-memory CPU |",
        "|---|---|---|---|",
    ]
    base_cpu = cpu["in memory (1 thread)"][1]
    text += [
        f"| {k} | {w:.3f} | {c:.3f} | {c / base_cpu:.2f} |" for k, (w, c) in cpu.items()
    ]
    text += [
        "",
        f"## 3. One shard's partial state vs its size ({n} queries, d = {D}, LSE)",
        "",
        f"| shard rows | seconds (best of {repeat}) | ns per query x memory |",
        "|---|---|---|",
    ]
    text += [f"| {s} | {t:.4f} | {1e9 * t / (s * n):.2f} |" for s, t in shard_rows]
    text += [
        "",
        f"## 4. Bytes moved per descent step ({n} queries, d = {D}, 2 workers)",
        "",
        f"- states out to each worker: {out} bytes (n x d float64 + header)",
        f"- one partial state from each worker: {back} bytes (n x (d+1)), to the",
        "  worker that merges it (a tree of merge tasks); the client receives the",
        "  root state only",
        f"- per step in all: {total} bytes; the memories never move after `fit`",
        "",
        f"## 5. Merging S partial states ({n} queries, d = {D}, balanced tree)",
        "",
        f"| S | seconds (best of {repeat}) |",
        "|---|---|",
    ]
    text += [f"| {s} | {t:.5f} |" for s, t in merge_rows]
    text += [
        "",
        "## 6. Round-trip floor",
        "",
        f"An empty task submitted and gathered: median {1e3 * floor:.2f} ms, "
        f"best {1e3 * floor_min:.2f} ms. A descent step costs at least this.",
        f"One merge task between two states held by the two workers (the tree's "
        f"level): median {1e3 * hop:.2f} ms.",
        "",
        f"## 7. Scaling model (a MODEL from 3-6, not a measurement): K = {10 * K}",
        "",
        "`t(W) = round trip + c n K / W + ceil(log2 W) (m + h) + W b / (1 GB/s)`",
        f"with the median round trip of section 6, c = {1e9 * c:.2f} ns per query x",
        f"memory (section 3), m = {1e6 * m:.1f} us per merge (section 5), h =",
        f"{1e3 * hop:.2f} ms per merge task (section 6), b the bytes of the states",
        "sent to each worker (section 4); one shard per worker, the per-worker",
        "states merged as a balanced tree of tasks (the client gets one state).",
        "",
        "| workers W | model s per step | shard compute s | merge s | network s |",
        "|---|---|---|---|---|",
    ]
    text += [
        f"| {w} | {t:.4f} | {s:.4f} | {m:.5f} | {b:.5f} |" for w, t, s, m, b in model
    ]
    text += [
        "",
        "Reading: the shard compute shrinks as 1/W while the round trip stays,",
        "the tree merge grows as log2 W and the states sent out grow with W, so a",
        "step stops getting faster",
        "once a worker's shard costs about one round trip: here at about",
        f"{break_even:,.0f} memories per worker for {n} queries (fewer queries per",
        "step need proportionally larger shards). Sharding pays when the",
        "memories do not fit one machine, or when each worker's shard is well",
        "above that size.",
        "",
        "## 8. Fits on dask arrays whose model comes back in memory: exactness",
        "",
        "20000 x 8 rows in chunks of 3001 (1000 zero-weight rows) vs the same fit",
        "on NumPy: the beta rules (per-block statistics merged as a tree),",
        "RandomFeatureAM (1024 components, beta='scale'), AMClustering on 4000 of",
        "the rows (n <= max_samples_per_epoch: the same training; the passes over",
        "the chunks on the workers).",
        "",
        "| quantity | difference | kind |",
        "|---|---|---|",
    ]
    text += [f"| {a} | {b:.1e} | {k} |" for a, b, k in fits]
    base = rf_cpu["in memory (1 thread)"]
    text += [
        "",
        "## 9. RandomFeatureAM.fit on 40000 x 16 rows (1024 components): CPU",
        "",
        "Medians of interleaved runs; CPU = client + both workers; the dask fit",
        "reads the chunks where they are (persisted on the workers).",
        "",
        "| path | CPU s | CPU / in-memory CPU |",
        "|---|---|---|",
    ]
    text += [f"| {k} | {v:.3f} | {v / base:.2f} |" for k, v in rf_cpu.items()]
    text += [""]
    report = "\n".join(text)
    print(report)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "dask.md").write_text(report)


if __name__ == "__main__":
    main()
