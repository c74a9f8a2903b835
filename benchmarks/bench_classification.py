"""DenseAMClassifier against kNN, SVC and random Fourier features.

Protocol (``../shared/reference/baselines.md`` section 2): 5-fold
``StratifiedKFold(shuffle=True, random_state=0)`` on iris, wine and
breast_cancer (``StandardScaler`` fitted on the training fold) and digits
(divided by 16); MNIST t10k (divided by 255, from the shared data folder, when
present) on the stratified 5000/5000 split (``random_state=0``) instead of
5-fold, to keep the run short. Every model runs in the same process.

Models:

* ``knn1`` / ``knn5``: ``KNeighborsClassifier(1 | 5, algorithm="brute")``;
* ``svc``: ``SVC(C=10, gamma="scale")``;
* ``rff``: ``RBFSampler(gamma=1/(d Var X), n_components=2000)`` +
  ``LogisticRegression(C=10)``;
* ``am``: ``DenseAMClassifier()`` (nonparametric, one step, ``beta="scale"``);
* ``am-cv``: the same with ``beta`` tuned by ``GridSearchCV`` (inner 5-fold
  shuffled stratified CV on the training fold) over ``beta_scale * 2**k``,
  ``k = -4..6``;
* ``am-param``: ``DenseAMClassifier(mode="parametric", n_memories=0.1)``
  (10 % of each class's training samples as learned memories).

Times are seconds per fold. Predict times are timeit-style: each fitted model
predicts the test fold at least 3 times in a row (up to 50 while the calls are
short) and its best call counts, the steady state of repeated predict calls;
kNN and the AM models are timed the same way. Run it on a quiet machine.

Run: ``python benchmarks/bench_classification.py [--threads N] [--quick]``.
Writes ``benchmarks/results/classification.md`` and
``benchmarks/results/classification_beta.png``.
"""

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_approximation import RBFSampler
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skam.datasets import load_mnist_t10k
from skam.supervised import DenseAMClassifier

RESULTS = Path(__file__).parent / "results"
BETA_FACTORS = 2.0 ** np.arange(-4, 7)
# accuracies closer than this count as equal (the same number of errors)
TIE = 1e-9


def datasets(quick):
    """(name, X, y, standardise, splits) for each data set."""
    for name, loader in (
        ("iris", load_iris),
        ("wine", load_wine),
        ("breast_cancer", load_breast_cancer),
    ):
        X, y = loader(return_X_y=True)
        yield name, X, y, True, _five_fold(X, y)
    X, y = load_digits(return_X_y=True)
    yield "digits", X / 16.0, y, False, _five_fold(X, y)
    if quick:
        return
    try:
        X, y = load_mnist_t10k()
    except FileNotFoundError:
        print("MNIST t10k not found (set SKAM_DATA): skipped")
        return
    train, test = train_test_split(
        np.arange(y.size), test_size=0.5, stratify=y, random_state=0
    )
    yield "mnist_t10k (5000/5000)", X, y, False, [(train, test)]


def _five_fold(X, y):
    return list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))


def models(X_train):
    """Fresh models for one training fold (already scaled)."""
    gamma = 1.0 / (X_train.shape[1] * X_train.var())
    return {
        "knn1": KNeighborsClassifier(1, algorithm="brute"),
        "knn5": KNeighborsClassifier(5, algorithm="brute"),
        "svc": SVC(C=10, gamma="scale"),
        "rff": make_pipeline(
            RBFSampler(gamma=gamma, n_components=2000, random_state=0),
            LogisticRegression(C=10),
        ),
        "am": DenseAMClassifier(),
        "am-cv": "grid",  # built in run_fold (needs the fold's beta_scale)
        "am-param": DenseAMClassifier(mode="parametric", random_state=0),
    }


def tuned_am(X_train, y_train):
    """GridSearchCV over beta around the fold's Scott-rule value."""
    beta0 = DenseAMClassifier().fit(X_train, y_train).beta_
    inner = StratifiedKFold(5, shuffle=True, random_state=0)
    return GridSearchCV(
        DenseAMClassifier(), {"beta": list(beta0 * BETA_FACTORS)}, cv=inner
    )


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_fold(X, y, train, test, standardise, record):
    Xtr, Xte = X[train], X[test]
    if standardise:
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    fitted = {}
    for name, model in models(Xtr).items():
        if model == "grid":
            model = tuned_am(Xtr, y[train])
        model = clone(model)
        _, fit_s = _timed(lambda m=model: m.fit(Xtr, y[train]))
        fitted[name] = model
        pred = model.predict(Xte)
        entry = record.setdefault(
            name, {"acc": [], "correct": 0, "n": 0, "fit": [], "predict": []}
        )
        entry["acc"].append(float(np.mean(pred == y[test])))
        entry["correct"] += int(np.sum(pred == y[test]))
        entry["n"] += len(test)
        entry["fit"].append(fit_s)
        if name == "am-cv":
            entry.setdefault("curves", []).append(
                (
                    np.asarray(model.cv_results_["param_beta"], dtype=float),
                    model.cv_results_["mean_test_score"],
                )
            )
            entry.setdefault("best_beta", []).append(model.best_params_["beta"])
        if name == "am-param":
            entry.setdefault("memories", []).append(model.memories_.shape[0])
            entry.setdefault("n_train", []).append(len(train))
    # predict times, timeit-style: each model predicts several times in a row
    # (steady state, as for a user calling predict repeatedly) and the best
    # call counts; at least 3 calls, more (up to 50) while they are short.
    # Every model, kNN included, is timed the same way.
    times = {name: [] for name in fitted}
    for name, model in fitted.items():
        while True:
            times[name].append(_timed(lambda m=model: m.predict(Xte))[1])
            calls = len(times[name])
            if calls >= 50 or (calls >= 3 and sum(times[name]) > 0.5):
                break
    for name, t in times.items():
        record[name]["predict"].append(min(t))


def table(name, record):
    knn_pred = np.mean(record["knn1"]["predict"])
    rows = [
        f"### {name}",
        "",
        "| model | accuracy | fit s/fold | predict s/fold | predict / knn1 |",
        "|---|---|---|---|---|",
    ]
    for model, e in record.items():
        acc = np.array(e["acc"])
        pred = np.mean(e["predict"])
        rows.append(
            f"| {model} | {acc.mean():.4f} ± {acc.std():.4f} | "
            f"{np.mean(e['fit']):.3f} | {pred:.4f} | {pred / knn_pred:.2f} |"
        )
    extra = []
    if "am-cv" in record:
        betas = ", ".join(f"{b:.3g}" for b in record["am-cv"]["best_beta"])
        extra.append(f"am-cv chosen beta per fold: {betas}.")
    if "am-param" in record:
        e = record["am-param"]
        share = np.mean(np.array(e["memories"]) / np.array(e["n_train"]))
        extra.append(
            f"am-param memories: {e['memories'][0]} "
            f"({100 * share:.1f} % of the training samples)."
        )
    return "\n".join(rows + [""] + extra + [""])


def targets(results):
    """Check the project's targets; returns markdown lines."""
    lines = [
        "## Targets",
        "",
        "Accuracies here are pooled over the folds (correct / all test "
        "predictions), so that equal numbers of errors compare equal.",
        "",
    ]

    def acc(ds, model):
        """Pooled accuracy (correct / all test predictions): equal numbers of
        errors compare equal, whatever folds they fall in."""
        e = results[ds][model]
        return e["correct"] / e["n"]

    def pred(ds, model):
        return float(np.mean(results[ds][model]["predict"]))

    for ds in results:
        ok = acc(ds, "am-cv") >= acc(ds, "knn1") - TIE
        errors = {
            m: results[ds][m]["n"] - results[ds][m]["correct"] for m in results[ds]
        }
        lines.append(
            f"- {ds}: am-cv {acc(ds, 'am-cv'):.4f} ({errors['am-cv']} errors) >= "
            f"knn1 {acc(ds, 'knn1'):.4f} ({errors['knn1']} errors): "
            f"{'met' if ok else 'NOT met'}"
        )
    for ds in results:
        if not (ds.startswith("mnist") or ds == "digits"):
            continue
        a, k = acc(ds, "am-param"), acc(ds, "knn1")
        ok = a >= k - TIE if ds.startswith("mnist") else a >= k - 0.01 - TIE
        rule = ">= knn1" if ds.startswith("mnist") else "within 1 point of knn1"
        speed = pred(ds, "am") / pred(ds, "am-param")
        lines.append(
            f"- {ds}: am-param {a:.4f} {rule} ({k:.4f}): "
            f"{'met' if ok else 'NOT met'}; predict {speed:.1f}x faster than am "
            f"({'met' if speed >= 5 else 'NOT met'}, target 5x)"
        )
    for ds in results:
        parts = []
        for model in ("am", "am-cv", "am-param"):
            ratio = pred(ds, model) / pred(ds, "knn1")
            verdict = "met" if ratio <= 1 else "NOT met"
            parts.append(f"{model} {ratio:.2f} ({verdict})")
        lines.append(f"- {ds}: predict time / knn1 (brute): " + ", ".join(parts))
    return lines + [""]


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for ds, record in results.items():
        curves = record["am-cv"]["curves"]
        factors = BETA_FACTORS
        mean = np.mean([c[1] for c in curves], axis=0)
        ax.semilogx(factors, mean, marker="o", label=ds)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel('beta / beta("scale")  (Scott\'s rule)')
    ax.set_ylabel("inner-CV accuracy")
    ax.set_title("DenseAMClassifier: accuracy against beta")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads")
    parser.add_argument("--quick", action="store_true", help="skip MNIST")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = {}
    total = time.perf_counter()
    for name, X, y, standardise, splits in datasets(args.quick):
        tic = time.perf_counter()
        record = {}
        for train, test in splits:
            run_fold(X, y, train, test, standardise, record)
        results[name] = record
        print(table(name, record))
        print(f"({time.perf_counter() - tic:.1f} s)\n", flush=True)
    elapsed = time.perf_counter() - total
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / "classification_beta.png"
    has_png = plot(results, png)
    header = [
        "# Classification benchmark",
        "",
        "`python benchmarks/bench_classification.py"
        + (f" --threads {args.threads}" if args.threads else "")
        + "`: 5-fold shuffled stratified CV (seed 0) on iris, wine, breast_cancer "
        "(StandardScaler on the training fold) and digits (/16); MNIST t10k (/255) "
        "on the stratified 5000/5000 split (seed 0) instead of 5-fold. Accuracy is "
        "mean ± std over folds; times are seconds per fold (predict: best of >= 3 consecutive calls) on "
        f"{platform.machine()} with {args.threads or 'default'} BLAS thread(s); "
        f"whole run {elapsed:.0f} s. See the docstring of the script for the "
        "models.",
        "",
    ]
    body = [table(name, record) for name, record in results.items()]
    footer = targets(results)
    if has_png:
        footer += [f"![accuracy against beta]({png.name})", ""]
    text = "\n".join(header + body + footer)
    (RESULTS / "classification.md").write_text(text)
    print("\n".join(footer))
    print(f"Total {elapsed:.0f} s; wrote {RESULTS / 'classification.md'}")


if __name__ == "__main__":
    main()
