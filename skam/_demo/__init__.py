"""The main job (``python -m skam``): short, real comparisons on bundled data.

Each section is a module of this package with a ``TITLE`` and a function
``run()`` returning ``(columns, rows)``; :func:`main` times and prints them as
plain-text tables. Sections are listed in :data:`SECTIONS`, in order.
"""

import importlib
import time

SECTIONS = ["retrieval", "classification", "clustering", "random_features"]


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


def main(sections=None):
    """Run the sections and print one table each."""
    total = time.perf_counter()
    for name in sections or SECTIONS:
        module = importlib.import_module(f"skam._demo.{name}")
        start = time.perf_counter()
        columns, rows = module.run()
        print(f"\n== {module.TITLE} ({time.perf_counter() - start:.1f} s)")
        if getattr(module, "NOTE", None):
            print(module.NOTE)
        print(format_table(columns, rows))
    print(f"\nTotal: {time.perf_counter() - total:.1f} s")
