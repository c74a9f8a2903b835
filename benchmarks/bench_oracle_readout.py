"""The random-feature energy read through the classifier's shared read-out.

``RandomFeatureOracle.log_kernel_sum`` (the energy of :class:`RandomFeatureAM`)
now computes ``log <phi(v), T>`` with :func:`skam._bochner.log_kernel_sums`,
the read-out of :class:`RandomFeatureAMClassifier`'s class memories, instead
of its own copy. This compares the two, interleaved in one process (A B A B,
medians of ``--repeat`` rounds), for each feature map: ``A`` is the former
copy (written out below), ``B`` the shared read-out. Ratios B/A near 1 mean
the sharing costs no speed.

Usage::

    python benchmarks/bench_oracle_readout.py            # n=1000 queries, Y=1024
    python benchmarks/bench_oracle_readout.py --quick
"""

import argparse
import os
import time

import numpy as np
from array_api_compat import numpy as xp

from skam._bochner import (
    RandomFeatureOracle,
    _log_sq_prefactor,
    draw_frequencies,
    features,
    positive_log_sum,
)


def former_log_kernel_sum(oracle, V):
    """The oracle's own copy before the change (the baseline A)."""
    if oracle.feature_map == "positive":
        H = V @ oracle.W
        log_s = positive_log_sum(H, oracle.log_T, xp)[0]
        return log_s - _log_sq_prefactor(V, oracle.gamma, oracle.W.shape[1], xp)
    s = (
        features(
            V,
            oracle.W,
            oracle.b,
            feature_map=oracle.feature_map,
            gamma=oracle.gamma,
            xp=xp,
        )
        @ oracle.T
    )
    return oracle._clip(s)[0]


def timed(fn, *args):
    tic = time.perf_counter()
    fn(*args)
    return time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--components", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.components, args.repeat = 500, 256, 3
    rng = np.random.RandomState(0)
    X, V = rng.randn(300, args.d), rng.randn(args.n, args.d)
    gamma = 0.05
    print(
        f"load average {os.getloadavg()}; n={args.n}, d={args.d}, "
        f"Y={args.components}, {args.repeat} interleaved rounds"
    )
    print("| feature map | former copy (ms) | shared read-out (ms) | ratio |")
    print("| --- | --- | --- | --- |")
    for fmap in ("sincos", "cos", "positive"):
        W, b = draw_frequencies(
            args.d,
            args.components,
            kernel="gaussian",
            gamma=gamma,
            nu=1.5,
            feature_map=fmap,
            orthogonal=False,
            random_state=rng,
        )
        T = features(X, W, b, feature_map=fmap, gamma=gamma, xp=xp).sum(axis=0)
        oracle = RandomFeatureOracle(
            W,
            b,
            T,
            feature_map=fmap,
            gamma=gamma,
            beta=2 * gamma,
            epsilon=1e-10,
            xp=xp,
        )
        np.testing.assert_allclose(
            oracle.log_kernel_sum(V)[0],
            former_log_kernel_sum(oracle, V),
            rtol=1e-12,
        )
        a, b_ = [], []
        for _ in range(args.repeat):
            a.append(timed(former_log_kernel_sum, oracle, V))
            b_.append(timed(oracle.log_kernel_sum, V))
        ta, tb = np.median(a), np.median(b_)
        print(f"| {fmap} | {1e3 * ta:.1f} | {1e3 * tb:.1f} | {tb / ta:.3f} |")


if __name__ == "__main__":
    main()
