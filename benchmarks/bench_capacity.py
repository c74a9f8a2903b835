"""Capacity benchmark: how many random patterns each Dense AM energy stores.

Protocol (the tutorial's Section 2.1): store K random +-1 patterns of D bits
(``RandomState(0)``), query up to 100 of them with 10% of their bits flipped,
and count a query as recalled when the final state equals the stored pattern
in every bit (:func:`skam.capacity.capacity_curve`). ``K50`` is the K at which
half the queries are recalled (interpolated in log K).

Part 1 (D = 100): the fraction recalled against K / D for every energy, with
the theory: 0.138 D for the Hebbian network, ``D^(n-1) / (2 (2n-3)!! log D)``
for ``F(x) = x^n``; the exponential's ``exp(alpha D)`` (about 1e8 at D = 100
from 10% flips) is off the chart, so its curve is measured up to 3e4 and shown
as recalled throughout. Figure ``benchmarks/results/capacity.png``.

Part 2 (D sweep): K50 for D in a range per degree, and the slope of
``log K50`` against ``log D`` fitted by least squares, next to the theory's
``n - 1`` (the ``log D`` in the denominator lowers the apparent slope a bit;
the slope of ``K50 log D`` is reported as well).

Writes ``benchmarks/results/capacity.md`` and the figure. Capacities do not
depend on the machine; run times are printed with the load average.

Usage::

    python benchmarks/bench_capacity.py           # everything (about 10 min on 2 cores)
    python benchmarks/bench_capacity.py --quick   # small grids, nothing written
    python benchmarks/bench_capacity.py --part 2  # the D sweep only (cached)
    python benchmarks/bench_capacity.py --part 1  # D = 100, table from the cache
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from skam import DenseAM, DiscreteDenseAM, HopfieldNetwork
from skam.capacity import (
    capacity_curve,
    exponential_capacity,
    hopfield_capacity,
    polynomial_capacity,
)

RESULTS = Path(__file__).resolve().parent / "results"
LEVEL = 0.1


def energies(quick):
    """(label, estimator, theory at D, degree or None) for part 1."""
    iters = dict(max_iter=30)
    out = [
        ("Hopfield (quadratic), async", HopfieldNetwork(random_state=0), "hebb", 2),
        ("poly n=3, async", DiscreteDenseAM(degree=3, random_state=0), "poly", 3),
        (
            "rectified_poly n=3, async",
            DiscreteDenseAM(separation="rectified_poly", degree=3, random_state=0),
            "poly",
            3,
        ),
        (
            "poly n=4, sync",
            DiscreteDenseAM(degree=4, update="sync", **iters),
            "poly",
            4,
        ),
        (
            "exp (beta=1), sync",
            DiscreteDenseAM(separation="exp", update="sync", **iters),
            "exp",
            None,
        ),
        (
            "DenseAM poly n=3 (continuous, dot)",
            DenseAM(separation="poly", similarity="dot", degree=3),
            "poly",
            3,
        ),
    ]
    return out[:3] if quick else out


def theory(kind, D, degree):
    if kind == "hebb":
        return hopfield_capacity(D)
    if kind == "poly":
        return polynomial_capacity(D, degree)
    return exponential_capacity(D, LEVEL)


def grid_around(center, lo=0.25, hi=4.0, n=9, k_max=None):
    grid = np.unique(np.geomspace(center * lo, center * hi, n).round().astype(int))
    grid = grid[grid >= 2]
    if k_max is not None:
        grid = grid[grid <= k_max]
    return grid


def part1(D, quick):
    rows, curves = [], {}
    for label, est, kind, degree in energies(quick):
        start = time.perf_counter()
        th = theory(kind, D, degree)
        if kind == "exp":
            grid = np.array([100, 1000, 3000, 10000, 30000])
        else:
            grid = grid_around(th, n=7 if quick else 11)
        curve = capacity_curve(
            est,
            grid,
            n_features=D,
            n_queries=40 if quick else 100,
            level=LEVEL,
            random_state=0,
        )
        curves[label] = (curve, th, kind)
        rows.append((label, curve.k50, th, kind, time.perf_counter() - start))
        print(f"{label}: K50 = {curve.k50:.4g}, theory {th:.4g}", flush=True)
    return rows, curves


SWEEP = {
    "Hopfield (quadratic)": (
        lambda: HopfieldNetwork(random_state=0),
        2,
        [50, 100, 200, 400],
    ),
    "poly n=3": (
        lambda: DiscreteDenseAM(degree=3, update="sync", max_iter=30),
        3,
        [25, 50, 100, 200],
    ),
    "poly n=4": (
        lambda: DiscreteDenseAM(degree=4, update="sync", max_iter=30),
        4,
        [20, 30, 50, 70],
    ),
}


def part2(quick):
    rows = []
    for label, (make, degree, dims) in SWEEP.items():
        dims = dims[:2] if quick else dims
        k50 = []
        for D in dims:
            th = hopfield_capacity(D) if degree == 2 else polynomial_capacity(D, degree)
            curve = capacity_curve(
                make(),
                grid_around(th, n=9),
                n_features=D,
                n_queries=40 if quick else 100,
                level=LEVEL,
                random_state=0,
            )
            k50.append(curve.k50)
            print(
                f"  {label} D={D}: K50 = {curve.k50:.4g} (theory {th:.4g})", flush=True
            )
        logD, logK = np.log(dims), np.log(k50)
        slope = np.polyfit(logD, logK, 1)[0]
        slope_log = np.polyfit(logD, logK + np.log(logD), 1)[0]
        rows.append(
            (
                label,
                degree,
                dims,
                [float(k) for k in k50],
                float(slope),
                float(slope_log),
            )
        )
    return rows


def figure(curves, D, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, (curve, th, kind)), color in zip(curves.items(), colors, strict=False):
        style = "--" if label.startswith("DenseAM") else "-"
        ax.plot(
            curve.n_memories / D,
            curve.recalled,
            style,
            marker="o",
            ms=3,
            color=color,
            label=label,
        )
        if kind != "exp" and not label.startswith("DenseAM"):
            ax.axvline(th / D, color=color, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"stored patterns per neuron, K / D   (D = {D})")
    ax.set_ylabel("fraction recalled exactly from 10% flips")
    ax.set_title(
        "Dense storage: capacity grows with the sharpness of F "
        "(dotted: theory; exp theory ~1e8 patterns)",
        fontsize=10,
    )
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows1, rows2, D, elapsed):
    lines = [
        "# Capacity of Dense Associative Memories",
        "",
        "Produced by `python benchmarks/bench_capacity.py` "
        f"({elapsed:.0f} s, load average {os.getloadavg()[0]:.1f}).",
        "",
        f"Protocol: K random +-1 patterns of D bits (`RandomState(0)`); up to 100 "
        f"of them queried with {LEVEL:.0%} of their bits flipped; a query is recalled "
        "when the final state equals its pattern in every bit; K50 = K at which half "
        "are recalled (log-interpolated, `skam.capacity.capacity_curve`). "
        "Theory: 0.138 D (Hebbian), D^(n-1) / (2 (2n-3)!! log D) (polynomial, all "
        "patterns fixed points w.h.p.), exp(D I(1 - 2 rho) / 2) with rho = 0.1 "
        "(exponential, Demircigil et al. 2017).",
        "",
        f"## D = {D}",
        "",
        "![capacity](capacity.png)",
        "",
        "| energy | measured K50 | theory | K50 / theory |",
        "|---|---:|---:|---:|",
    ]
    for label, k50, th, kind, _ in rows1:
        if kind == "exp":
            shown = "> 30000 (all recalled)" if math.isnan(k50) else f"{k50:.0f}"
            lines.append(f"| {label} | {shown} | {th:.3g} | - |")
        else:
            lines.append(f"| {label} | {k50:.0f} | {th:.0f} | {k50 / th:.2f} |")
    lines += [
        "",
        "## D sweep: K50 against D",
        "",
        "| energy | D | K50 | fitted slope of log K50 vs log D | slope of K50 log D | theory |",
        "|---|---|---|---:|---:|---:|",
    ]
    for label, degree, dims, k50, slope, slope_log in rows2:
        lines.append(
            f"| {label} | {', '.join(map(str, dims))} | "
            f"{', '.join(f'{k:.0f}' for k in k50)} | {slope:.2f} | {slope_log:.2f} | "
            f"{degree - 1} |"
        )
    (RESULTS / "capacity.md").write_text("\n".join(lines) + "\n")


SWEEP_CACHE = RESULTS / "capacity_sweep.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small grids, nothing written"
    )
    parser.add_argument(
        "--part",
        choices=["1", "2", "both"],
        default="both",
        help="run part 1 (D = 100), part 2 (D sweep, cached in capacity_sweep.json) "
        "or both",
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    start = time.perf_counter()
    D = 100
    if args.part in ("2", "both"):
        rows2 = part2(args.quick)
        if not args.quick:
            SWEEP_CACHE.write_text(json.dumps(rows2, indent=1))
        if args.part == "2":
            return
    else:
        rows2 = json.loads(SWEEP_CACHE.read_text())
    rows1, curves = part1(D, args.quick)
    elapsed = time.perf_counter() - start
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    figure(curves, D, RESULTS / "capacity.png")
    write(rows1, rows2, D, elapsed)
    print(f"wrote {RESULTS / 'capacity.md'} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
