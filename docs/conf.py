"""Sphinx configuration of the skam documentation.

Build (offline, a few minutes on 2 cores)::

    python -m sphinx -b html docs docs/_build/html

Add ``-D plot_gallery=0`` to skip running the gallery examples;
``python docs/check.py`` builds with ``-W`` and opens every page in headless
Chromium (see CONTRIBUTING.md). The build reaches no network:

* math is typeset by the MathJax copy of the ``sphinx-mathjax-offline``
  package (docs extra), copied into ``_static/mathjax``;
* intersphinx reads inventories of scikit-learn, NumPy and SciPy written at
  build time from the installed packages (``_ext/offline_inventories.py``),
  so links into their docs work without downloading ``objects.inv``.
"""

import os
import sys
from pathlib import Path

import skam

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS / "_ext"))

import offline_inventories  # noqa: E402  (docs/_ext)

# The gallery examples plot off-screen.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "skam"
author = "skam developers"
copyright = "2025, skam developers"
release = skam.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "sphinx-mathjax-offline",  # MathJax 3 shipped in the package, no CDN
    "matplotlib.sphinxext.plot_directive",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "benchmark_tables",  # docs/_ext: benchmark Markdown rendered as tables
    "docstring_fixups",  # docs/_ext: two reST pitfalls of numpydoc docstrings
]

templates_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/README.txt"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

# -- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- intersphinx, offline --------------------------------------------------------
intersphinx_mapping = offline_inventories.write_all(
    DOCS / "_build" / "intersphinx-inventories"
)
intersphinx_disabled_reftypes = []
intersphinx_timeout = 1

# -- figures made at build time (``.. plot::`` in the user guide) ----------------
plot_basedir = str(DOCS)  # ``.. plot:: user_guide/figures/NAME.py``
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.autolayout": True, "savefig.bbox": "tight"}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skam {release}"
html_static_path = ["_static"]
html_css_files = ["skam.css"]
# `python docs/check.py` builds with SKAM_DOCS_CHECK=1: each page then records
# broken images and untypeset math for the headless-browser check
html_js_files = ["skam_check.js"] if os.environ.get("SKAM_DOCS_CHECK") else []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
}
html_show_sourcelink = False

# -- sphinx-gallery ----------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("skam",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "show_memory": False,
}
