"""Robustness battery: every public estimator and method against bad input.

Runs the deterministic battery of ``tests/test_fuzz.py`` (its catalog of
estimators, kinds of input, sample weights, parameter extremes and the
specific scenarios of issue 14) and classifies every call:

* ``ok``: finite output of the right shape and dtype (a clear warning allowed);
* ``clear``: a ValueError/TypeError naming the argument (or raised by
  scikit-learn's own input validation);
* ``obscure``: any other error, or valid input rejected;
* ``silent``: a non-finite or wrong result, or invalid input accepted;
* ``hang``: more than 20 s.

Usage::

    python benchmarks/bench_robustness.py --label after
    # "before": the same battery against another checkout of skam
    PYTHONPATH=/path/to/old/checkout python benchmarks/bench_robustness.py --label before

Each run stores its cases in ``benchmarks/results/robustness_<label>.json``;
``benchmarks/results/robustness.md`` is rewritten from every stored run.
"""

import argparse
import importlib.util
import json
import os
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("SCIPY_ARRAY_API", "1")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CATEGORIES = ("ok", "clear", "obscure", "silent", "hang")


def load_catalog():
    """``tests/test_fuzz.py`` as a module (the catalog and the judge)."""
    spec = importlib.util.spec_from_file_location(
        "skam_fuzz_catalog", ROOT / "tests" / "test_fuzz.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(label, seconds):
    import skam

    catalog = load_catalog()
    start = time.perf_counter()
    rows = []
    for group, case, category, detail in catalog.battery(seconds=seconds):
        rows.append(
            {"group": group, "case": case, "category": category, "detail": detail}
        )
    seconds = round(time.perf_counter() - start, 1)
    memory = {}
    if label == "after":  # the before checkout has no memory cases
        memory = {
            case: round(catalog.peak_ratio(est, method, Q), 2)
            for case, est, method, Q in catalog.memory_cases()
        }
    record = {
        "label": label,
        "skam": str(Path(skam.__file__).resolve().parent),
        "seconds": seconds,
        "load_average": os.getloadavg()[0],
        "cases": rows,
        "memory": memory,
    }
    (RESULTS / f"robustness_{label}.json").write_text(json.dumps(record, indent=1))
    return record


def _counts(cases, group=None):
    counts = Counter(c["category"] for c in cases if group in (None, c["group"]))
    return [sum(counts.values())] + [counts[k] for k in CATEGORIES]


def _estimator(case):
    """The estimator a case is about (scenarios are their own group)."""
    if ":" in case or " " in case.split(".")[0]:
        return "scenario"
    return case.split(".")[0].split("(")[0].split("[")[0]


def write_report():
    runs = [
        json.loads((RESULTS / f"robustness_{label}.json").read_text())
        for label in ("before", "after")
        if (RESULTS / f"robustness_{label}.json").exists()
    ]
    lines = [
        "# Robustness battery",
        "",
        "Written by `benchmarks/bench_robustness.py` from the catalog and judge of",
        "`tests/test_fuzz.py` (NumPy path). Categories: **ok** finite output of the",
        "right shape and dtype; **clear** a ValueError/TypeError naming the argument",
        "(or from scikit-learn's input validation); **obscure** any other error, or",
        "valid input rejected; **silent** a non-finite or wrong result, or invalid",
        "input accepted; **hang** more than 20 s. *before* is the battery run",
        "against main before issue 14, *after* against the branch that fixed it.",
        "",
        "| run | group | cases | ok | clear | obscure | silent | hang |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    if len(runs) == 2:
        # the estimators the "before" run knew (later ones have no before)
        known = {_estimator(c["case"]) for c in runs[0]["cases"]}
        same = [c for c in runs[1]["cases"] if _estimator(c["case"]) in known]
        lines.append(
            "| after, estimators of the before run | **all** | "
            + " | ".join(str(v) for v in _counts(same))
            + " |"
        )
    for record in runs:
        groups = sorted({c["group"] for c in record["cases"]})
        for group in groups + [None]:
            counts = _counts(record["cases"], group)
            name = "**all**" if group is None else group
            lines.append(
                f"| {record['label']} | {name} | "
                + " | ".join(str(v) for v in counts)
                + " |"
            )
    for record in runs:
        lines += [
            "",
            f"## {record['label']}: cases that were not handled "
            f"({record['seconds']} s, load average {record['load_average']:.2f})",
            "",
        ]
        bad = [
            c for c in record["cases"] if c["category"] in ("obscure", "silent", "hang")
        ]
        if not bad:
            lines.append("None.")
        for c in bad:
            detail = c["detail"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"- {c['category']}: `{c['case']}` -- {detail}")
    lines += _memory_report(runs)
    (RESULTS / "robustness.md").write_text("\n".join(lines) + "\n")


def _memory_report(runs):
    """Peak traced memory / working_memory of every chunked method."""
    after = next((r["memory"] for r in runs if r.get("memory")), None)
    if not after:
        return []
    path = RESULTS / "robustness_memory_before.json"
    before = json.loads(path.read_text()) if path.exists() else {"ratios": {}}
    lines = [
        "",
        "## Peak memory of every chunked method",
        "",
        "Peak traced memory (tracemalloc) of one call beyond its output, divided",
        "by `working_memory` (1 MiB; queries x memories about 11 MB, so only",
        "chunked code can pass), from `tests/test_fuzz.py::memory_cases`; the",
        "test asserts <= 1.25 for every row. *before*: " + before.get("note", "-"),
        "",
        "| method | before | after |",
        "|---|---:|---:|",
    ]
    for case, ratio in after.items():
        old = before["ratios"].get(case)
        lines.append(
            f"| `{case}` | {'-' if old is None else f'{old:.2f}'} | {ratio:.2f} |"
        )
    lines.append("")
    lines.append(f"Largest after: {max(after.values()):.2f}.")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", choices=("before", "after"))
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite robustness.md only"
    )
    args = parser.parse_args()
    if not args.report_only:
        record = run(args.label, args.seconds)
        print(
            args.label,
            dict(zip(("cases",) + CATEGORIES, _counts(record["cases"]), strict=True)),
        )
    write_report()


if __name__ == "__main__":
    main()
