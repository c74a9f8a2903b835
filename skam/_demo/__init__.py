"""The main job (``python -m skam``): short, real comparisons on bundled data.

Each section is a module of this package with a ``TITLE``, an optional
``NOTE`` and a function ``run()`` returning ``(columns, rows)``; :func:`main`
times and prints them as plain-text tables. Sections are listed in
:data:`SECTIONS`, in order; ``python -m skam --help`` lists them and
``python -m skam clustering`` runs one.
"""

import argparse
import importlib
import time

SECTIONS = ["retrieval", "capacity", "classification", "clustering", "random_features"]

_DESCRIPTION = """\
skam's main job: short, real comparisons of skam's estimators against
scikit-learn baselines on data bundled with scikit-learn (a few minutes on
two cores). Each section prints what it measures, then one table."""


def format_table(columns, rows):
    """A readable fixed-width table (floats with 3 decimals)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [
        max(len(str(c)), *(len(r[i]) for r in cells)) if cells else len(str(c))
        for i, c in enumerate(columns)
    ]
    line = "  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(out)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _titles():
    """``name: title`` of every section (imports each section's module)."""
    return {
        name: importlib.import_module(f"skam._demo.{name}").TITLE for name in SECTIONS
    }


def build_parser():
    """The command-line parser of ``python -m skam``."""
    sections = "\n".join(f"  {name:<16} {title}" for name, title in _titles().items())
    parser = argparse.ArgumentParser(
        prog="python -m skam",
        description=_DESCRIPTION,
        epilog=f"sections (default: all, in this order):\n{sections}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help="sections to run (default: all); see the list below",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the sections and exit"
    )
    parser.add_argument(
        "--no-notes",
        action="store_true",
        help="print only the tables, not the paragraph explaining each one",
    )
    return parser


def main(argv=None):
    """Parse the command line, run the chosen sections and print one table each.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    status : int
        0 on success (argparse exits with 2 on an unknown section).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}"
        )
    if args.list:
        for name, title in _titles().items():
            print(f"{name:<16} {title}")
        return 0
    total = time.perf_counter()
    for name in args.sections or SECTIONS:
        module = importlib.import_module(f"skam._demo.{name}")
        start = time.perf_counter()
        columns, rows = module.run()
        print(f"\n== {module.TITLE} ({time.perf_counter() - start:.1f} s)")
        if getattr(module, "NOTE", None) and not args.no_notes:
            print(module.NOTE)
        print(format_table(columns, rows))
    print(f"\nTotal: {time.perf_counter() - total:.1f} s")
    return 0
