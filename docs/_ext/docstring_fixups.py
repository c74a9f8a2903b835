"""Sphinx extension: fix two reST pitfalls of numpydoc docstrings before parsing.

* In reST a bare word ending in "_" is a hyperlink reference, so a type such
  as "ndarray of shape (n_features_in_,)" fails with 'Unknown target name':
  trailing underscores of fitted-attribute names inside "shape (...)" are
  escaped.
* A reference that starts with an initial (".. [2] H. Ramsauer et al., ...")
  is parsed by docutils as a list lettered from "H.", which renders on top of
  the label "[2]": the initial's period is escaped.
"""

import re

_SHAPE = re.compile(r"shape \(([^()`]*)\)")
_BARE_ATTRIBUTE = re.compile(r"\b([A-Za-z]\w*)_(?=[,)\s]|$)")
_CITATION_INITIAL = re.compile(r"^(\s*\.\. \[[^\]]+\]\s+[A-Za-z])\.(\s)")


def fix_line(line):
    """One docstring line with both pitfalls escaped."""
    line = _SHAPE.sub(
        lambda m: "shape (" + _BARE_ATTRIBUTE.sub(r"\1\\_", m.group(1)) + ")", line
    )
    return _CITATION_INITIAL.sub(r"\1\\.\2", line)


def fix_docstring(app, what, name, obj, options, lines):
    lines[:] = [fix_line(line) for line in lines]


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", fix_docstring, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
