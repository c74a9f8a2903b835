"""Layered memories on MNIST t10k: occluded completion, classification, depth.

Protocol (issue 10): MNIST t10k split 5000 / 5000 (stratified,
``random_state=0``), pixels in [0, 1].

* **Completion**: the bottom half of each test image is hidden (set to the
  training mean image) and the top half clamped; the score is the pixel MSE
  on the hidden half. :class:`skam.HierarchicalAM` at depth 2, 3, 4 (an
  identity visible layer, then softmax layers of 256, 64 and 16 units in a
  chain of dense synapses with biases), trained on masked reconstruction,
  against :class:`skam.DenseAM` storing the 5000 training images (default
  ``beta="scale"``), :class:`sklearn.impute.KNNImputer` with 1 and 5
  neighbours, and the mean image.
* **Classification**: :class:`skam.HierarchicalAMClassifier` at depth 2, 3, 4
  (the same layers plus a softmax label layer) against the parametric
  :class:`skam.DenseAMClassifier` and 1-NN.

Fit and predict times are wall-clock seconds of one run on a shared machine
(load average printed): they compare models of this table, not machines.
Writes ``benchmarks/results/hierarchical.md`` and ``hierarchical.png``.

Usage::

    python benchmarks/bench_hierarchical.py           # full (10 epochs: about 1 h on 2 busy cores)
    python benchmarks/bench_hierarchical.py --epochs 1 --n-test 1000  # what results/ holds
    python benchmarks/bench_hierarchical.py --quick   # 1000/500 images, few epochs, nothing written
    python benchmarks/bench_hierarchical.py --depth-only --epochs 3  # depth ablation alone
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.impute import KNNImputer
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from skam import DenseAM, DenseAMClassifier, HierarchicalAM, HierarchicalAMClassifier
from skam.datasets import load_mnist_t10k

RESULTS = Path(__file__).resolve().parent / "results"
VISIBLE = ("visible", "identity", None)
HIDDEN = [
    ("hidden1", "softmax", 256),
    ("hidden2", "softmax", 64),
    ("hidden3", "softmax", 16),
]


def layers(depth):
    """Visible layer plus ``depth - 1`` softmax layers."""
    return [VISIBLE] + HIDDEN[: depth - 1]


def timed(fn):
    """``fn()``, its wall-clock seconds and this process's CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def load(quick, n_test=None):
    X, y = load_mnist_t10k()
    train, test = train_test_split(
        np.arange(y.size), test_size=0.5, stratify=y, random_state=0
    )
    if quick:
        train, test = train[:1000], test[:500]
    if n_test is not None:
        test = test[:n_test]
    return X[train], y[train], X[test], y[test]


def completion(X_train, X_test, epochs, baselines=True):
    d = X_train.shape[1]
    known = np.zeros(d, dtype=bool)
    known[: d // 2] = True
    fill = X_train.mean(axis=0)
    occluded = X_test.copy()
    occluded[:, ~known] = fill[~known]

    def mse(Z):
        return float(np.mean((Z[:, ~known] - X_test[:, ~known]) ** 2))

    rows = [("mean image", mse(occluded), 0.0, 0.0, 0.0)]
    for depth in (2, 3, 4):
        model = HierarchicalAM(
            layers=layers(depth),
            n_steps=5,
            max_epochs=epochs,
            learning_rate=0.005,
            random_state=0,
        )
        _, fit_s, fit_cpu = timed(lambda m=model: m.fit(X_train))
        Z, pred_s, _ = timed(lambda m=model: m.transform(occluded, clamp_mask=known))
        rows.append((f"HierarchicalAM depth {depth}", mse(Z), fit_s, pred_s, fit_cpu))
        print(rows[-1], flush=True)
    if not baselines:
        return rows, occluded, known
    dense = DenseAM()
    _, fit_s, fit_cpu = timed(lambda: dense.fit(X_train))
    Z, pred_s, _ = timed(lambda: dense.transform(occluded, clamp_mask=known))
    rows.append(("DenseAM (5000 memories)", mse(Z), fit_s, pred_s, fit_cpu))
    print(rows[-1], flush=True)
    hidden = X_test.copy()
    hidden[:, ~known] = np.nan
    for k in (1, 5):
        imputer = KNNImputer(n_neighbors=k)
        _, fit_s, fit_cpu = timed(lambda i=imputer: i.fit(X_train))
        Z, pred_s, _ = timed(lambda i=imputer: i.transform(hidden))
        rows.append((f"KNNImputer(n_neighbors={k})", mse(Z), fit_s, pred_s, fit_cpu))
        print(rows[-1], flush=True)
    return rows, occluded, known


def classification(X_train, y_train, X_test, y_test, epochs, baselines=True):
    rows = []
    for depth in (2, 3, 4):
        model = HierarchicalAMClassifier(
            layers=layers(depth),
            n_steps=3,
            max_epochs=epochs,
            learning_rate=0.02,
            random_state=0,
        )
        _, fit_s, fit_cpu = timed(lambda m=model: m.fit(X_train, y_train))
        acc, pred_s, _ = timed(lambda m=model: m.score(X_test, y_test))
        rows.append(
            (f"HierarchicalAMClassifier depth {depth}", acc, fit_s, pred_s, fit_cpu)
        )
        print(rows[-1], flush=True)
    if not baselines:
        return rows
    for name, model in [
        (
            "DenseAMClassifier(mode='parametric')",
            DenseAMClassifier(mode="parametric", random_state=0),
        ),
        ("1-NN", KNeighborsClassifier(1, algorithm="brute")),
    ]:
        _, fit_s, fit_cpu = timed(lambda m=model: m.fit(X_train, y_train))
        acc, pred_s, _ = timed(lambda m=model: m.score(X_test, y_test))
        rows.append((name, acc, fit_s, pred_s, fit_cpu))
        print(rows[-1], flush=True)
    return rows


def figure(comp, clf, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    names, values = zip(*[(r[0], r[1]) for r in comp], strict=True)
    colors = ["tab:blue" if "Hierarchical" in n else "tab:gray" for n in names]
    a.barh(names, values, color=colors)
    a.invert_yaxis()
    a.set_xlabel("pixel MSE on the hidden bottom half (lower is better)")
    a.set_title("occluded-MNIST completion")
    names, values = zip(*[(r[0], r[1]) for r in clf], strict=True)
    colors = ["tab:blue" if "Hierarchical" in n else "tab:gray" for n in names]
    b.barh(names, values, color=colors)
    b.invert_yaxis()
    b.set_xlim(min(values) - 0.05, 1.0)
    b.set_xlabel("test accuracy")
    b.set_title("MNIST t10k classification")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(rows, metric):
    out = [
        f"| model | {metric} | fit (s) | fit CPU (s) | predict (s) |",
        "|---|---|---|---|---|",
    ]
    for name, value, fit_s, pred_s, fit_cpu in rows:
        out.append(
            f"| {name} | {value:.4f} | {fit_s:.1f} | {fit_cpu:.1f} | {pred_s:.1f} |"
        )
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of the graph models (default 10)",
    )
    parser.add_argument(
        "--n-test", type=int, default=None, help="score on the first N test images"
    )
    parser.add_argument(
        "--depth-only",
        action="store_true",
        help="the depth ablation alone (no baselines); writes hierarchical_depth.md",
    )
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 10)
    load_before = os.getloadavg()
    print("load average:", load_before)
    X_train, y_train, X_test, y_test = load(args.quick, args.n_test)
    baselines = not args.depth_only
    comp, _, _ = completion(X_train, X_test, epochs, baselines)
    clf = classification(X_train, y_train, X_test, y_test, epochs, baselines)
    load_after = os.getloadavg()
    text = "\n\n".join(
        [
            "# Layered memories on MNIST t10k (benchmarks/bench_hierarchical.py)",
            f"{X_train.shape[0]} training / {X_test.shape[0]} test images; "
            f"{epochs} epochs for the graph models; load average "
            f"{load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end "
            "(shared machine: wall times are indicative only; fit CPU is this "
            "process's CPU seconds, time.process_time()).",
            "## Completion of the occluded bottom half",
            table(comp, "pixel MSE (hidden half)"),
            "## Classification",
            table(clf, "accuracy"),
        ]
    )
    print(text)
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    if args.depth_only:
        (RESULTS / "hierarchical_depth.md").write_text(text + "\n")
        return
    (RESULTS / "hierarchical.md").write_text(text + "\n")
    figure(comp, clf, RESULTS / "hierarchical.png")


if __name__ == "__main__":
    main()
