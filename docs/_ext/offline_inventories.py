"""Intersphinx inventories for scikit-learn, NumPy and SciPy, made offline.

The docs build reaches no network, so the ``objects.inv`` files of other
projects cannot be downloaded. Their URL schemes are regular, so this module
writes small inventories (Sphinx's format, version 2) from the installed
packages themselves: every public class and function of scikit-learn's
submodules (and their public methods), NumPy's top-level namespace and the
main SciPy subpackages, plus the scikit-learn glossary terms and labels used
by the docstrings skam inherits. ``conf.py`` points ``intersphinx_mapping`` at
these files, so ``:class:`sklearn.neighbors.KernelDensity``` and the See Also
entries become links to the real pages, and nothing is fetched.
"""

import importlib
import inspect
import re
import zlib
from pathlib import Path

SKLEARN_GLOSSARY = "glossary.html#term-"
# labels of scikit-learn's docs used in inherited docstrings -> their page
SKLEARN_LABELS = {
    "metadata_routing": "metadata_routing.html#metadata-routing",
    "rolling_your_own_estimator": "developers/develop.html#rolling-your-own-estimator",
    "developer_api_set_output": "developers/develop.html#developer-api-set-output",
    "df_output_transform": "auto_examples/miscellaneous/plot_set_output.html",
    "accuracy_score": "modules/model_evaluation.html#accuracy-score",
    "r2_score": "modules/model_evaluation.html#r2-score",
    "randomness": "common_pitfalls.html#randomness",
    "glossary": "glossary.html#glossary",
}
SKLEARN_TERMS = (
    "fit", "predict", "transform", "meta-estimator", "meta-estimators",
    "consumer", "router", "random_state", "get_feature_names_out", "n_jobs",
    "estimator", "estimators", "array-like", "sample_weight", "classifier",
    "regressor", "transformer", "metadata", "partial_fit", "warm_start",
)  # fmt: skip
SCIPY_SUBPACKAGES = (
    "stats", "special", "spatial", "spatial.distance", "linalg", "optimize",
    "integrate", "sparse", "signal", "interpolate",
)  # fmt: skip


def _public(module):
    names = getattr(module, "__all__", None) or dir(module)
    for name in names:
        if name.startswith("_"):
            continue
        try:
            obj = getattr(module, name, None)
        except ImportError:  # experimental names that need an explicit enable
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj) or callable(obj):
            yield name, obj


def _entry(name, role, uri, display="-"):
    # uri ending in "$" stands for the name itself (the inventory convention)
    if uri.endswith("#" + name):
        uri = uri[: -len(name)] + "$"
    return f"{name} {role} 1 {uri} {display}"


def _role(obj):
    return "py:class" if inspect.isclass(obj) else "py:function"


def sklearn_entries():
    import sklearn

    lines = []
    for sub in sklearn.__all__:
        try:
            module = importlib.import_module(f"sklearn.{sub}")
        except ImportError:
            continue
        if not hasattr(module, "__path__") and not hasattr(module, "__all__"):
            continue
        for name, obj in _public(module):
            if inspect.ismodule(obj):
                continue
            full = f"sklearn.{sub}.{name}"
            page = f"modules/generated/{full}.html"
            lines.append(_entry(full, _role(obj), f"{page}#{full}"))
            if inspect.isclass(obj):
                for meth, _ in inspect.getmembers(obj, callable):
                    if not meth.startswith("_"):
                        method = f"{full}.{meth}"
                        lines.append(_entry(method, "py:method", f"{page}#{method}"))
    for name in ("clone", "get_config", "set_config", "config_context"):
        full = f"sklearn.{name}"
        lines.append(
            _entry(full, "py:function", f"modules/generated/{full}.html#{full}")
        )
    for term in SKLEARN_TERMS:
        slug = re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")
        lines.append(f"{term} std:term -1 {SKLEARN_GLOSSARY}{slug} {term}")
    for label, uri in SKLEARN_LABELS.items():
        lines.append(f"{label} std:label -1 {uri} {label}")
    for label, uri in _sklearn_gallery_labels():
        lines.append(f"{label} std:label -1 {uri} -")
    return lines


def _sklearn_gallery_labels():
    """``sphx_glr_auto_examples_<dir>_<file>.py`` labels cited by base classes."""
    for folder, files in {
        "miscellaneous": ("plot_metadata_routing", "plot_set_output"),
    }.items():
        for stem in files:
            yield (
                f"sphx_glr_auto_examples_{folder}_{stem}.py",
                f"auto_examples/{folder}/{stem}.html",
            )


def numpy_entries():
    import numpy as np

    lines = []
    for name, obj in _public(np):
        if inspect.ismodule(obj):
            continue
        full = f"numpy.{name}"
        role = "py:class" if inspect.isclass(obj) else "py:function"
        lines.append(_entry(full, role, f"reference/generated/{full}.html#{full}"))
    for name in ("RandomState", "Generator"):
        page = "legacy" if name == "RandomState" else "generator"
        full = f"numpy.random.{name}"
        lines.append(_entry(full, "py:class", f"reference/random/{page}.html#{full}"))
    lines.append("numpy.ndarray py:class 1 reference/generated/numpy.ndarray.html#$ -")
    return lines


def scipy_entries():
    lines = []
    for sub in SCIPY_SUBPACKAGES:
        try:
            module = importlib.import_module(f"scipy.{sub}")
        except ImportError:
            continue
        for name, obj in _public(module):
            if inspect.ismodule(obj):
                continue
            full = f"scipy.{sub}.{name}"
            lines.append(
                _entry(full, _role(obj), f"reference/generated/{full}.html#{full}")
            )
    return lines


def write_inventory(path, project, version, lines):
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "\n".join(sorted(set(lines))) + "\n"
    path.write_bytes(header.encode() + zlib.compress(body.encode()))


def write_all(outdir):
    """Write the three inventories into ``outdir``; returns intersphinx_mapping."""
    import numpy
    import scipy
    import sklearn

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    projects = {
        "sklearn": ("scikit-learn", sklearn, sklearn_entries,
                    "https://scikit-learn.org/stable/"),
        "numpy": ("NumPy", numpy, numpy_entries, "https://numpy.org/doc/stable/"),
        "scipy": ("SciPy", scipy, scipy_entries,
                  "https://docs.scipy.org/doc/scipy/"),
    }  # fmt: skip
    mapping = {}
    for key, (project, module, entries, url) in projects.items():
        path = outdir / f"{key}.inv"
        write_inventory(path, project, module.__version__, entries())
        mapping[key] = (url, str(path))
    return mapping
