"""Energy Transformer as an image imputer: half of the patches masked.

Data: MNIST t10k (from the shared data folder: 8000 images to fit, 1000 to
test; 7 x 7 patches, 16 tokens) and scikit-learn's digits (1500 / 297; 2 x 2
patches of the 8 x 8 images, 16 tokens). Every test image gets its own random
half of the patches hidden (NaN); the score is the mean squared error on the
hidden pixels (intensities in [0, 1]).

Methods, all fitted on the same training images:

* mean fill: ``SimpleImputer`` (the per-pixel training mean);
* ``KNNImputer`` (5 neighbours, NaN-Euclidean distance on the visible pixels);
* ``IterativeImputer`` (BayesianRidge, 3 rounds, 40 nearest features, values
  clipped to [0, 1], float64; fitted on a 2000-image subsample on MNIST to
  stay within minutes; in float32 without the clip it diverged);
* DenseAM clamped descent: ``DenseAM().fit(train)``, hidden pixels started at
  the mean image, visible pixels clamped (``beta="scale"``, 100 steps);
* DenseAM one-step conditional mean: the softmax over memories of
  ``-beta/2`` times the squared distance on the visible pixels only, with
  DenseAM's ``beta_``; the hidden pixels become the weighted mean of the
  memories (Nadaraya-Watson);
* ``EnergyTransformer``, trained on random half masks within a time budget.

Usage::

    python benchmarks/bench_energy_transformer.py --dataset digits
    python benchmarks/bench_energy_transformer.py --dataset mnist --max-time 900
    # on a loaded machine: the fit alone, with a wall-clock deadline, and the
    # baselines in another process; then the table from both
    python benchmarks/bench_energy_transformer.py --dataset mnist --fit-only \
        --max-time 450 --wall-limit 2700 --save-model /tmp/et_mnist.npz
    python benchmarks/bench_energy_transformer.py --dataset mnist \
        --baselines-only --save-baselines /tmp/mnist_baselines.json
    python benchmarks/bench_energy_transformer.py --dataset mnist --max-time 450 \
        --load-model /tmp/et_mnist.npz --baselines /tmp/mnist_baselines.json

The fit budget ``--max-time`` is counted in CPU seconds of this process
(training runs on one BLAS thread).

Writes ``benchmarks/results/energy_transformer_<dataset>.md`` and the figures
``energy_transformer_<dataset>_steps.png``. Timings are given in CPU seconds
and in wall-clock seconds on the shared machine, with the load average.
"""

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from array_api_compat import numpy as xp  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402, F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from skam import DenseAM, EnergyTransformer  # noqa: E402
from skam._graph.token_embedding import Patcher  # noqa: E402
from skam.datasets import load_mnist_t10k  # noqa: E402

RESULTS = Path(__file__).parent / "results"


class CPUBudgetET(EnergyTransformer):
    """``max_time`` counted in CPU seconds of this process (``time.process_time``).

    The fit runs on one BLAS thread, so its CPU time is what it would take on
    a quiet machine; wall-clock time on the shared machine is several times
    longer and varies with the load, so the budget is set in CPU seconds.
    """

    _clock = staticmethod(time.process_time)


def deadline_clock(max_time, wall_limit):
    """A clock that reaches ``max_time`` at the CPU budget or at ``wall_limit``.

    Its reading is the larger of the CPU seconds used and the wall-clock
    seconds scaled so that ``wall_limit`` of them count as ``max_time``: on a
    machine so loaded that the CPU budget cannot be spent in time, the fit
    (and its learning-rate schedule) ends at the wall-clock deadline with
    fewer CPU seconds, which the table reports.
    """
    c0, w0 = time.process_time(), time.perf_counter()

    def clock():
        cpu = time.process_time() - c0
        return max(cpu, (time.perf_counter() - w0) * max_time / wall_limit)

    return clock


SETTINGS = {
    "mnist": dict(
        image_shape=(28, 28),
        patch_shape=(7, 7),
        n_train=8000,
        n_test=1000,
        et=dict(
            token_dim=64,
            n_heads=4,
            head_dim=16,
            n_memories=256,
            learning_rate=1e-2,
            batch_size=64,
            max_epochs=1000,
            early_stopping=True,
            n_iter_no_change=1000,
        ),
        iterative_subsample=2000,
    ),
    "digits": dict(
        image_shape=(8, 8),
        patch_shape=(2, 2),
        n_train=1500,
        n_test=297,
        et=dict(
            token_dim=32,
            n_heads=4,
            head_dim=8,
            n_memories=64,
            clamp_visible=False,
            learning_rate=2e-2,
            batch_size=32,
            max_epochs=5000,
            early_stopping=True,
            n_iter_no_change=1000,
        ),
        iterative_subsample=None,
    ),
}


def load(name):
    if name == "mnist":
        X, _ = load_mnist_t10k()
    else:
        X = load_digits().data / 16.0
    rng = np.random.RandomState(0)
    return X[rng.permutation(len(X))].astype(np.float32)


def half_patch_masks(n, patcher, rng):
    """Pixel mask (n, n_features): True on the hidden half of the patches."""
    Np = patcher.n_patches
    tokens = np.zeros((n, Np), dtype=bool)
    for i in range(n):
        tokens[i, rng.choice(Np, Np // 2, replace=False)] = True
    ones = np.ones((n, Np, patcher.patch_size))
    return patcher.unpatchify(ones * tokens[:, :, None], xp) > 0


def conditional_mean(train, X_visible, hidden, beta, chunk=250):
    """Softmax over memories of -beta/2 ||x - xi||^2 on the visible pixels."""
    out = np.empty_like(X_visible)
    sq = train * train
    for lo in range(0, len(X_visible), chunk):
        v = (~hidden[lo : lo + chunk]).astype(train.dtype)
        x = np.nan_to_num(X_visible[lo : lo + chunk]) * v
        d2 = (x * x).sum(1)[:, None] - 2 * x @ train.T + v @ sq.T
        logits = -0.5 * beta * d2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        out[lo : lo + chunk] = p @ train
    return out


def timed(fn):
    """``fn()``, its wall-clock seconds and this process's CPU seconds."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def fit_et(args, s, train):
    """Fit the EnergyTransformer within ``args.max_time`` CPU seconds."""
    settings = dict(s["et"])
    if args.learning_rate is not None:
        settings["learning_rate"] = args.learning_rate
    cls = CPUBudgetET
    if args.wall_limit is not None:
        cls = type(
            "CPUBudgetET",
            (CPUBudgetET,),
            {"_clock": staticmethod(deadline_clock(args.max_time, args.wall_limit))},
        )
    et = cls(
        image_shape=s["image_shape"],
        patch_shape=s["patch_shape"],
        **settings,
        max_time=args.max_time,
        verbose=1,
        random_state=0,
    )
    load_start = os.getloadavg()[0]
    _, wall, cpu = timed(lambda: et.fit(train))
    info = dict(
        budget=args.max_time,
        wall_limit=args.wall_limit,
        fit_wall=wall,
        fit_cpu=cpu,
        load_start=load_start,
        load_end=os.getloadavg()[0],
        epochs=et.n_iter_,
        loss_curve=et.loss_curve_,
        validation=et.validation_scores_,
    )
    if args.save_model:
        et.save(args.save_model)
        Path(args.save_model + ".json").write_text(json.dumps(info))
    print(
        f"fit: {cpu:.0f} CPU s, {wall:.0f} s wall, load {load_start:.1f} -> "
        f"{info['load_end']:.1f}, {et.n_iter_} epochs",
        flush=True,
    )
    return et, info


def run(args):
    s = SETTINGS[args.dataset]
    X = load(args.dataset)
    train, test = X[: s["n_train"]], X[s["n_train"] : s["n_train"] + s["n_test"]]
    if args.fit_only:
        fit_et(args, s, train)
        return
    patcher = Patcher((1, *s["image_shape"]), s["patch_shape"])
    hidden = half_patch_masks(len(test), patcher, np.random.RandomState(1))
    X_nan = test.copy()
    X_nan[hidden] = np.nan

    def mse(pred):
        return float(np.mean((pred[hidden] - test[hidden]) ** 2))

    rows = []
    print(f"load average {os.getloadavg()}")
    if args.baselines:
        rows = [tuple(r) for r in json.loads(Path(args.baselines).read_text())]
        print(f"baselines from {args.baselines}")
    else:
        rows = baselines(train, test, X_nan, hidden, s, mse)
    if args.baselines_only:
        Path(args.save_baselines).write_text(json.dumps(rows))
        return
    finish(args, rows, train, test, X_nan, hidden, s, mse)


def baselines(train, test, X_nan, hidden, s, mse):
    """Rows (name, MSE, fit wall, fit CPU, transform wall, transform CPU)."""
    rows = []

    def add(name, fit, transform):
        model, t_fit, c_fit = timed(fit)
        pred, t_tr, c_tr = timed(lambda: transform(model))
        rows.append((name, mse(pred), t_fit, c_fit, t_tr, c_tr))
        print(
            f"{name:40s} MSE {rows[-1][1]:.4f}  fit {t_fit:7.1f} s "
            f"({c_fit:.1f} CPU s)  transform {t_tr:6.1f} s ({c_tr:.1f} CPU s)",
            flush=True,
        )
        return model, pred

    add(
        "mean fill (SimpleImputer)",
        lambda: SimpleImputer().fit(train),
        lambda m: m.transform(X_nan),
    )
    add(
        "KNNImputer(n_neighbors=5)",
        lambda: KNNImputer().fit(train),
        lambda m: m.transform(X_nan),
    )
    sub = s["iterative_subsample"]
    it_train = train if sub is None else train[:sub]
    label = "IterativeImputer" + ("" if sub is None else f" ({sub} images)")
    add(
        label,
        lambda: IterativeImputer(
            max_iter=3,
            n_nearest_features=40,
            min_value=0.0,
            max_value=1.0,
            random_state=0,
        ).fit(it_train.astype(np.float64)),
        lambda m: m.transform(X_nan.astype(np.float64)),
    )
    mean_image = train.mean(axis=0)
    start = np.where(hidden, mean_image, np.nan_to_num(X_nan))
    am, _ = add(
        "DenseAM clamped descent",
        lambda: DenseAM().fit(train),
        lambda m: m.transform(start, clamp_mask=~hidden),
    )
    add(
        "DenseAM one-step conditional mean",
        lambda: am,
        lambda m: np.where(
            hidden, conditional_mean(train, X_nan, hidden, m.beta_), test
        ),
    )
    return rows


def finish(args, rows, train, test, X_nan, hidden, s, mse):
    """The EnergyTransformer's row, its step-by-step table and the figure."""
    if args.load_model:
        et = EnergyTransformer.load(args.load_model)
        info = json.loads(Path(args.load_model + ".json").read_text())
        print(f"loaded {args.load_model}")
    else:
        et, info = fit_et(args, s, train)
    pred, t_tr, c_tr = timed(lambda: et.transform(X_nan))
    name = f"EnergyTransformer ({et.n_iter_} epochs)"
    rows.append((name, mse(pred), info["fit_wall"], info["fit_cpu"], t_tr, c_tr))
    print(f"{name:40s} MSE {rows[-1][1]:.4f}  transform {t_tr:6.1f} s")

    # MSE and energy along the steps (the notebook's warning: trained depth)
    depth = 3 * et.n_steps
    with threadpool_limits(1, user_api="blas"):
        trace = et.descend(X_nan[:200], n_steps=depth, return_images=True)
    per_step = [
        float(np.mean((im[hidden[:200]] - test[:200][hidden[:200]]) ** 2))
        for im in trace.images_trace
    ]
    energy = trace.energy_trace
    rises = int(np.sum(np.diff(energy, axis=0) > 1e-6 * np.abs(energy[:-1])))
    write_table(args, rows, et, info, per_step, rises, energy)
    figure(args, test, X_nan, trace, per_step, energy, s["image_shape"], et)


def write_table(args, rows, et, info, per_step, rises, energy):
    load1 = os.getloadavg()[0]
    p = et.get_params()
    lines = [
        f"# Energy Transformer imputation: {args.dataset}, half the patches hidden",
        "",
        f"Machine: 2 cores, possibly shared (load average "
        f"{info['load_start']:.1f} at the start of the EnergyTransformer's fit, "
        f"{info['load_end']:.1f} at its end, {load1:.1f} when this table was "
        "written). Every method runs on one BLAS thread; CPU seconds are this "
        "process's (`time.process_time()`), what a quiet core would take, and "
        "wall-clock seconds are inflated by the load.",
        "",
        f"EnergyTransformer: {p['token_dim']}-d tokens, {p['n_heads']} heads of "
        f"{p['head_dim']}, {p['n_memories']} memories, {et.n_steps} steps of "
        f"{et.step_size}"
        + ("" if p["clamp_visible"] else " with every token moving")
        + (f", weight decay {p['weight_decay']:g}" if p["weight_decay"] else "")
        + f", Adam at {p['learning_rate']:g} with a cosine schedule, "
        f"batches of {p['batch_size']}, 10 % of the images held out for "
        f"early stopping; fit budget {info['budget']:.0f} CPU seconds "
        f"(`max_time` counted in CPU time)"
        + (
            f" or {info['wall_limit']:.0f} wall-clock seconds, whichever came "
            "first (the learning-rate schedule runs to that end)"
            if info.get("wall_limit")
            else ""
        )
        + f"; {info['epochs']} epochs, {info['fit_cpu']:.0f} CPU seconds.",
        "",
        "| method | masked-pixel MSE | fit (CPU s) | fit (wall s) "
        "| transform (CPU s) | transform (wall s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, err, t_fit, c_fit, t_tr, c_tr in rows:
        lines.append(
            f"| {name} | {err:.4f} | {c_fit:.1f} | {t_fit:.1f} | {c_tr:.2f} "
            f"| {t_tr:.2f} |"
        )
    val = info.get("validation") or []
    if val:
        marks = sorted({*range(0, len(val), max(1, len(val) // 10)), len(val) - 1})
        lines += [
            "",
            "Learning curve of the EnergyTransformer: masked-pixel MSE on the "
            "held-out 10 % (fixed half masks) after each epoch:",
            "",
            "| epoch | " + " | ".join(str(e + 1) for e in marks) + " |",
            "|---|" + "---|" * len(marks),
            "| MSE | " + " | ".join(f"{val[e]:.4f}" for e in marks) + " |",
        ]
    lines += [
        "",
        "MSE of the EnergyTransformer by descent step (200 test images):",
        "",
        "| step | " + " | ".join(str(t) for t in range(0, len(per_step), 4)) + " |",
        "|---|" + "---|" * len(range(0, len(per_step), 4)),
        "| MSE | "
        + " | ".join(f"{per_step[t]:.4f}" for t in range(0, len(per_step), 4))
        + " |",
        "",
        f"Energy along {len(per_step) - 1} steps: mean {energy[0].mean():.2f} -> "
        f"{energy[-1].mean():.2f}; one-step increases (relative > 1e-6): {rises}.",
    ]
    path = RESULTS / f"energy_transformer_{args.dataset}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def figure(args, test, X_nan, trace, per_step, energy, shape, et):
    steps = [0, 1, 2, 4, 8, et.n_steps, len(per_step) - 1]
    steps = sorted(set(s for s in steps if s < len(per_step)))
    n_show = 4
    fig = plt.figure(figsize=(2 + 1.3 * (len(steps) + 2), 1.4 * n_show + 2.6))
    grid = fig.add_gridspec(n_show + 2, len(steps) + 2)
    for r in range(n_show):
        cols = [
            ("original", test[r]),
            ("occluded", np.where(np.isnan(X_nan[r]), 0.5, X_nan[r])),
        ]
        cols += [(f"step {t}", trace.images_trace[t, r]) for t in steps]
        for c, (title, img) in enumerate(cols):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(np.clip(img.reshape(shape), 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    ax = fig.add_subplot(grid[n_show:, : (len(steps) + 2) // 2])
    ax.plot(energy.mean(axis=1), color="C0")
    ax.axvline(et.n_steps, color="gray", ls=":", lw=1)
    ax.set_xlabel("descent step")
    ax.set_ylabel("mean energy")
    ax.set_title("energy goes down", fontsize=9)
    ax = fig.add_subplot(grid[n_show:, (len(steps) + 2) // 2 :])
    ax.plot(per_step, color="C1")
    ax.axvline(et.n_steps, color="gray", ls=":", lw=1, label="trained depth")
    ax.set_xlabel("descent step")
    ax.set_ylabel("masked-pixel MSE")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = RESULTS / f"energy_transformer_{args.dataset}_steps.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SETTINGS), default="digits")
    parser.add_argument(
        "--max-time",
        type=float,
        default=900.0,
        help="fit budget of the EnergyTransformer in CPU seconds",
    )
    parser.add_argument("--learning-rate", type=float, help="overrides the setting")
    parser.add_argument(
        "--wall-limit",
        type=float,
        help="also end the fit (and its schedule) after this many wall seconds",
    )
    parser.add_argument("--save-model")
    parser.add_argument(
        "--baselines-only",
        action="store_true",
        help="only run the baselines, writing their rows to --save-baselines",
    )
    parser.add_argument("--save-baselines")
    parser.add_argument("--baselines", help="baseline rows written by --baselines-only")
    parser.add_argument(
        "--load-model",
        help="a model (and its .json fit record) saved by --save-model",
    )
    parser.add_argument(
        "--fit-only",
        action="store_true",
        help="only fit the EnergyTransformer (with --save-model)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
